#!/usr/bin/env bash
# Runs the platform on this machine with the embedded defaults (SQLite under ./data, local sandboxes).
set -euo pipefail
cd "$(dirname "$0")/.."
COOLCODING_WITH_BROWSER=0 scripts/setup.sh
exec .venv/bin/coolcoding serve "$@"
