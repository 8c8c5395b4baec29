#!/usr/bin/env bash
# Installs what the tests need (tshark from Debian, Interlock with its test extras), then runs
# the linters and the test suite. The README's second quick-start command.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v tshark >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends tshark >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e ".[test]"
ruff check src tests benchmarks
mypy
python3 -m pytest -q
