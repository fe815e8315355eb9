#!/usr/bin/env sh
# Installs what the test suite needs beyond Python packages: Debian's chromium, used by
# tests/integration/test_report_chromium.py to render the HTML report headless.
# Safe to run again: it does nothing when chromium is already on PATH.
set -eu
if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(command -v chromium)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
command -v chromium
