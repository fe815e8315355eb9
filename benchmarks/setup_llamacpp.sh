#!/usr/bin/env bash
# Build llama-cpp-python from source for benchmarks/generate_throughput.py (part b).
# It is a benchmark-only peer: never a default sftflow dependency.
# Takes ~5 minutes on 2 cores; set CMAKE_BUILD_PARALLEL_LEVEL to use more.
set -euo pipefail
PY="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
if "$PY" -c "import llama_cpp" 2>/dev/null; then
  echo "llama-cpp-python already installed"; exit 0
fi
command -v cmake >/dev/null || "$PY" -m pip install cmake
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
# Native CPU build: the peer gets every SIMD path this machine has, as a user's build would.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}"
"$PY" -m pip install --no-binary llama-cpp-python "llama-cpp-python>=0.3"
"$PY" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__)"
