#!/usr/bin/env bash
# Runs the whole test suite: lint, types, web unit tests, and pytest (unit, integration on SQLite
# and PostgreSQL, security attacks on real sandboxes, end-to-end in a real browser).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh
echo "== ruff"; .venv/bin/ruff check src tests bench; .venv/bin/ruff format --check src tests bench
echo "== mypy"; .venv/bin/mypy
if [ -f web/package.json ]; then
  echo "== web: typecheck + vitest"; (cd web && npm run --silent typecheck && npm test --silent)
fi
echo "== pytest"
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
