#!/usr/bin/env bash
# Set up and run the main job on the embedded default. Until the local Dataverse emulator lands (issue 3),
# the command line can only show what it offers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/abm --help
