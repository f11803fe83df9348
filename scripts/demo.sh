#!/usr/bin/env bash
# The main job, from nothing: install, create an AiiDA profile on embedded defaults (SQLite, no server), start the
# local Convex server (an in-memory test double), import the bundled example files, project them, read them back
# through the store, print a summary, and stop the server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case " $* " in *' --serve '*) bash scripts/setup.sh api ;; *) bash scripts/setup.sh ;; esac  # --serve: the read API too
echo '== demo'
exec .venv/bin/python scripts/demo.py "$@"
