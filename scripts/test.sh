#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Azurite, the storage emulator the Azure state store's tests run against: the versions locked in scripts/azurite/
# (Azurite 3.35.0, the last release that runs on Node 20), installed into .tools/ with npm ci, again when the lock
# changes.
if [ ! -x .tools/node_modules/.bin/azurite ] || ! cmp -s scripts/azurite/package-lock.json .tools/package-lock.json; then
  command -v npm >/dev/null 2>&1 || { echo "test: npm (Node 20+) is needed to install Azurite" >&2; exit 1; }
  mkdir -p .tools
  cp scripts/azurite/package.json scripts/azurite/package-lock.json .tools/
  npm ci --prefix .tools --no-audit --no-fund >&2
fi
# Chromium and its driver, for the tests that open the insights report (tests/browser.py): Debian's packages.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1 ||
    { echo "test: chromium and chromium-driver are missing; installing them needs root or sudo" >&2; exit 1; }
  install_chromium() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver >&2
  }
  install_chromium || { as_root apt-get update >&2 && install_chromium; } ||
    { echo "test: could not install chromium and chromium-driver with apt-get (Debian/Ubuntu needed)" >&2; exit 1; }
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] ||
    { echo "test: /usr/bin/chromium or /usr/bin/chromedriver still missing after installing" >&2; exit 1; }
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
