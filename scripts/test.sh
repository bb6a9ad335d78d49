#!/usr/bin/env bash
# Install what is needed, then run every check CI runs: lint, types, the dialplan check, the
# routing evaluation floors, and the whole test suite (unit + integration against real Asterisk 22,
# SIPp, Redis, SQLite and PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy hotline agi call_flows app routing transcription operations agents
echo "== layers (import-linter: pyproject.toml [tool.importlinter])"
.venv/bin/lint-imports --no-cache
echo "== dialplan check (asterisklint + Asterisk's own load)"
.venv/bin/hotline dialplan check
if [ -f routing/cli.py ]; then
  echo "== routing evaluation (fails under the floors)"
  .venv/bin/hotline route eval --floors
fi
echo "== pytest"
.venv/bin/pytest -p no:cacheprovider "$@"
# Every benchmark with a quick mode runs it: the same code paths and baseline, far fewer calls,
# results not written; a row that measured nothing fails the run (bench/common.py).
echo "== benchmarks, quick (bench/*.py --quick)"
echo "-- bench_routing"
.venv/bin/python -m bench.bench_routing --quick
echo "-- bench_transfer (one-touch, three-way, and Asterisk's own ## as the baseline)"
.venv/bin/python -m bench.bench_transfer --quick
echo "-- bench_capacity (concurrent calls through intake, queue and seats; fails on lost work logged)"
.venv/bin/python -m bench.bench_capacity --quick
echo "-- bench_loop (work-order transitions, 12345 -> 110 exchange between two processes, deadline sweep)"
.venv/bin/python -m bench.bench_loop --quick
echo "-- bench_callbacks (outbound callbacks beside inbound calls; fails on a failed origination or a line over the cap)"
.venv/bin/python -m bench.bench_callbacks --quick
echo "-- bench_console (a call event on open wallboards beside its Redis publication; KPI query over stored calls)"
.venv/bin/python -m bench.bench_console --quick
