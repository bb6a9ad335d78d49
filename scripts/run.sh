#!/usr/bin/env bash
# Install what is needed, then run the whole stack (Asterisk, Redis, API, FastAGI, AMI listener)
# on embedded defaults (SQLite in ./var). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/hotline setup
# The console's first admin (once): its password goes to var/console-admin.txt, readable by root only.
.venv/bin/hotline user bootstrap
echo "         add an operator: .venv/bin/hotline user add LOGIN --role operator --platform 12345 --seat 1201"
exec .venv/bin/hotline up
