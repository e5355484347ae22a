#!/usr/bin/env bash
# Set up (if needed) and start Maestro at http://localhost:3000 on its embedded defaults:
# SQLite (maestro.db), an in-process bus, and the tiny offline model, so no API key is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export REFLEX_TELEMETRY_ENABLED=false
echo "==> Starting Maestro at http://localhost:3000 (the first start builds the front end: 1-3 minutes)"
exec reflex run --env prod --frontend-port "${PORT:-3000}" "$@"
