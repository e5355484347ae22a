#!/usr/bin/env bash
# Set up (if needed) and run every check: ruff lint + format check, then the whole pytest suite
# (unit, provider wire-format, engine on SQLite and Postgres, end-to-end in Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# shellcheck disable=SC1091
. .venv/bin/activate
export REFLEX_TELEMETRY_ENABLED=false
echo "==> ruff"
ruff check .
ruff format --check .
echo "==> pytest"
python -m pytest "$@"
