#!/usr/bin/env bash
# Install what aiida-structstore needs on a fresh machine of this kind (Debian, root): system packages only if
# missing, the Python virtual environment (.venv) with the package, and the Node packages (node_modules).
# Usage: bash scripts/setup.sh [python-extra]   e.g. `tests` to include the test dependencies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
extra=${1:-}

need_apt=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v node >/dev/null || need_apt+=(nodejs npm)
if ((${#need_apt[@]})); then
  echo "== apt-get install ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "error: run as root, or install ${need_apt[*]} first" >&2; exit 1; fi
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo '== Python environment (.venv)'
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
if [ -n "$extra" ]; then .venv/bin/pip install -q -e ".[$extra]"; else .venv/bin/pip install -q -e .; fi

echo '== Node environment (npm ci)'
npm ci --no-audit --no-fund --loglevel=error

echo '== Viewer bundle (3Dmol.js from node_modules into aiida_structstore/api/static/viewer.js)'
npm run --silent build:viewer
