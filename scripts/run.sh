#!/usr/bin/env bash
# Install what is needed, then run the whole stack (Asterisk, Redis, API, FastAGI, AMI listener)
# on embedded defaults (SQLite in ./var). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/hotline setup
exec .venv/bin/hotline up
