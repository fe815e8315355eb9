# Two commands do everything on a fresh machine: `make demo` and `make test`.
.PHONY: setup demo test test-fast
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

setup:
	scripts/setup.sh

demo: setup
	.venv/bin/sftflow demo

test:
	SFTFLOW_TEST_DEPS=1 scripts/setup.sh
	.venv/bin/python -m pytest -q -p no:cacheprovider tests

test-fast:
	SFTFLOW_TEST_DEPS=1 scripts/setup.sh
	.venv/bin/python -m pytest -q -m "not slow" tests
