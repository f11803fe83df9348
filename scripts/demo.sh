#!/usr/bin/env bash
# The main job, from nothing: install, create an AiiDA profile on embedded defaults (SQLite, no server), start the
# local Convex server (an in-memory test double), import the bundled example files, project them, read them back
# through the store, print a summary, and stop the server.
# Usage: bash scripts/demo.sh [--serve [--port PORT]]   (--serve: then the read API and the viewer; the port also
# from STRUCTSTORE_DEMO_PORT, default 8000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STRUCTSTORE_DEMO_STARTED=$(date +%s.%N)  # the demo's total time counts the installs too
export STRUCTSTORE_DEMO_STARTED
# Bad arguments or a port in use: said now, not after the installs (demo.py imports only the standard library first).
if command -v python3 >/dev/null; then python3 scripts/demo.py --preflight "$@"; fi
case " $* " in *' --serve '*) bash scripts/setup.sh api ;; *) bash scripts/setup.sh ;; esac  # --serve: the read API too
echo '== demo'
exec .venv/bin/python scripts/demo.py "$@"
