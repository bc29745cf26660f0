#!/usr/bin/env bash
# Set up and run the main job on the embedded default: a local Dataverse emulator loaded with the synthetic
# tenant (size small), the job running through the production client over real HTTP. Extra arguments go to
# `abm demo` (e.g. --json, --size ref, --faults 429=0.1,503=0.05,seed=7).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/abm demo "$@"
