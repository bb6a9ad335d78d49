#!/usr/bin/env bash
# Install what the stack and the tests need on a fresh Debian machine (run as root):
# Debian packages (SIPp, mmdebstrap for the Asterisk runtime, Redis, espeak-ng, Chromium and its
# WebDriver and a Chinese font for the console's browser tests), a virtualenv
# with the project and its test tools, and the cached Asterisk 22 runtime.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(sip-tester mmdebstrap redis-server espeak-ng sox python3-venv ca-certificates chromium chromium-driver fonts-wqy-zenhei)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
echo "== installing the locked dependencies into .venv (requirements.lock, see scripts/lock.sh)"
# Exactly the versions CI tested, each file checked against its hash; then the project itself,
# built with the locked setuptools and nothing fetched unhashed.
.venv/bin/pip install -q --require-hashes -r requirements.lock
.venv/bin/pip install -q --no-deps --no-build-isolation -e .

echo "== the console's front-end libraries (npm registry tarballs, checked against their sha512)"
.venv/bin/python -m operations.vendor

echo "== Asterisk 22 runtime (cached after the first build)"
.venv/bin/hotline asterisk build
