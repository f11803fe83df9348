"""Selecting the entries of one workspace that match a compiled filter (see :mod:`.filters` for what is pushed to
the store's indexes and what is evaluated after reading).

Cost per request, for a workspace of N records:

* no filter, or a filter on summary properties only: the summaries of all N records, read in pages of 200 through
  the ``updated_at`` index (small documents: no payload, no chunks), plus one full read per entry returned;
* ``last_modified`` bounded at the top level: only the records updated in that range (a range of the index);
* ``id = ...`` at the top level: one point read per id, nothing else;
* a filter on ``species_at_sites``, ``species`` or ``cartesian_site_positions``: a full read of each of the N
  records (payload included, chunks reassembled), since the payload is not in any index.

This module imports no AiiDA module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...core.exceptions import InvalidInputError
from ...core.structures import StructureKey, StructureRecord
from ...store import Store
from ..context import Scope
from .fields import document
from .filters import CompiledFilter

__all__ = ('SCAN_PAGE_SIZE', 'Selection', 'select')

#: Summaries per store page while scanning a workspace.
SCAN_PAGE_SIZE = 200


@dataclass
class Selection:
    """The matching entries' documents, the full records read on the way, and the workspace's size when known."""

    documents: list[dict[str, Any]]
    records: dict[str, StructureRecord] = field(default_factory=dict)
    #: Records in the workspace; ``None`` when the selection did not read it whole (point lookups, a time range).
    available: int | None = None
    #: Records read from the store to answer.
    read: int = 0


def select(store: Store, scope: Scope, compiled: CompiledFilter) -> Selection:
    """The entries of ``scope``'s workspace that match ``compiled`` (in no particular order)."""
    selection = Selection(documents=[])
    candidates: list[dict[str, Any]] = []
    if compiled.ids is not None:
        for structure_id in sorted(compiled.ids):
            try:
                key = StructureKey.of(scope.tenant_id, scope.workspace_id, structure_id)
            except InvalidInputError:
                continue  # no record can have this id
            record = store.structures.find(key)
            selection.read += 1
            if record is not None:
                selection.records[structure_id] = record
                candidates.append(document(record))
    else:
        count = 0
        bounded = compiled.modified_from is not None or compiled.modified_to is not None
        for summary in store.structures.iter_workspace(
            scope.tenant_id,
            scope.workspace_id,
            page_size=SCAN_PAGE_SIZE,
            updated_from=compiled.modified_from,
            updated_to=compiled.modified_to,
        ):
            count += 1
            selection.read += 1
            if compiled.needs_payload:
                record = store.structures.find(summary.key)
                if record is None:
                    continue  # deleted meanwhile
                selection.records[summary.key.structure_id] = record
                candidates.append(document(record))
            else:
                candidates.append(document(summary))
        selection.available = None if bounded else count
    selection.documents = [doc for doc in candidates if compiled.matches(doc)]
    return selection
