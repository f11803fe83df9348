"""The limits of a Convex deployment and of the project's Convex functions, read from ``convex/limits.json``.

That file is the one place for them: the Convex functions (``convex/structures.ts``, ``convex/executions.ts``), the
local server (``devserver/limits.ts``) and this client all read it. A wheel carries a copy in ``core/``
(``convex_limits.json``); a source checkout reads the file in ``convex/``. This module sits in ``core`` with the
records (:mod:`.executions` reads the limits) and below the store (which imports them).

This module imports no AiiDA module.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ('CONVEX', 'PROTOCOL')


def _load() -> dict:
    here = Path(__file__).resolve().parent
    for path in (here / 'convex_limits.json', here.parent.parent / 'convex' / 'limits.json'):
        if path.is_file():
            return json.loads(path.read_text(encoding='utf-8'))
    raise RuntimeError(f'the Convex limits file is missing (looked next to {here} and in the source checkout)')


_LIMITS = _load()
#: A Convex deployment's limits (document size, array length, transaction budgets, write throughput, ...).
CONVEX: dict[str, int] = _LIMITS['convex']
#: What the project's Convex functions accept (chunk size, inline payload size, ids per call, page size, ...).
PROTOCOL: dict[str, int] = _LIMITS['protocol']
