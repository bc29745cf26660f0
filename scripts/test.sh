#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Azurite, the storage emulator the Azure state store's tests run against: pinned, into .tools/ (from npm).
if [ ! -x .tools/node_modules/.bin/azurite ]; then
  command -v npm >/dev/null 2>&1 || { echo "test: npm (Node 20+) is needed to install Azurite" >&2; exit 1; }
  npm install --prefix .tools --no-audit --no-fund azurite@3.37.0 >&2
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
