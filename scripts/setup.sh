#!/usr/bin/env bash
# Creates .venv (Python 3.11 or 3.12) and installs the project with its dev tools, pinned by requirements.txt (what
# Azure installs) and requirements-dev.txt (the tools), so every run installs the same versions.
# Idempotent: a second run only checks what is there. Used by both Quick start commands.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" 2>/dev/null -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)'; then
      echo "$candidate"; return 0
    fi
  done
  echo "setup: Python 3.11 or 3.12 is required (azure-functions 1.x serves those)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
stamp=.venv/.abm-installed
want=$(cat pyproject.toml requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check pip==26.3 >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.txt -c requirements-dev.txt \
    -e '.[dev]' >&2
  echo "$want" > "$stamp"
fi
