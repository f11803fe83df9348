"""Incremental projection of many ``StructureData`` nodes into one target (store, tenant, workspace).

How it works, batch by batch (``batch_size`` nodes, default 1000):

1. Select: a ``QueryBuilder`` over ``StructureData`` (all of them, a group, a list of pks/UUIDs, and/or
   ``filters``, which can only narrow the selection) projects ``id``, ``uuid``, ``label`` and the one extra that
   remembers this target straight from the database: no ORM node is loaded, and memory stays flat in the number
   of nodes.
2. Skip: a stored ``StructureData`` never changes, so a node whose extra remembers a projection into this store
   instance with the same structure id, raw option and projection rules (``PROJECTION_VERSION``) is unchanged,
   decided without loading anything else (see :mod:`aiida_structstore.tracking`).
3. Project the rest: attributes (one query per batch) → record (:mod:`aiida_structstore.structures`); structures
   created by the import calcfunctions get their raw file and parameters (three queries per batch). The content
   hash is compared with the remembered one, or with ``check_store=True`` (and always for a store that does not
   persist) with the store's own hashes. Equal means unchanged: nothing is sent.
4. Write: the changed records go to the store in ``put_prepared`` batches (for Convex: one mutation per ~250
   records). A record under the same id that belongs to another node is never overwritten: that node fails, naming
   both nodes.
5. Track: the new hashes are merged into the nodes' extras, one statement per batch, atomically per node.

Steps 2 to 5 are the sync engine's (:mod:`aiida_structstore.sync`), shared with the execution sync; this module is
the structures' adapter (:class:`StructureSync`: selection, projection, what is remembered) and
:func:`sync_structures`.

Failures: a node that cannot be projected (invalid attributes or file name, an id template giving an invalid id,
an id already taken by another node) is counted as failed with its reason, and the sync goes on. A store that
fails after its retries stops the sync. A store that loses its data during the sync (its instance changes) stops
it too (the report says it was ``aborted``), before anything is remembered for the batch: run it again.

A sync that is interrupted (Ctrl-C, SIGKILL, a lost connection) can simply be run again: batches already written
are remembered in the extras and skipped, a batch that was written but not yet remembered is found unchanged by
the store (writes are idempotent), and a large upload that was cut off is resumed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from aiida import orm
from aiida.common.progress_reporter import get_progress_reporter

from ..core.exceptions import InvalidInputError, StructStoreError
from ..core.structures import Source, StructureKey
from ..store.base import Store
from ..store.structures import PreparedWrite, ownership_message
from ..sync import Item, Projected, SyncAdapter, SyncReport, run_sync
from ..tools.files import read_text
from ..tracking import Origin, find_origins, is_current, target_entry, target_extra
from .projection import DEFAULT_ID_TEMPLATE, render_structure_id, structure_content
from .selection import count_selected, pages, rows

__all__ = ('StructureSync', 'SyncReport', 'prepare_node', 'sync_structures')


def _attributes(pks: list[int]) -> dict[int, dict]:
    """The attributes of the structures ``pks``, in one query.

    They are projected as the database's JSON text (``QueryBuilder``'s documented ``cast: 't'``) and decoded here:
    projected as they are, each value is walked by ``aiida.orm.convert`` (a ``singledispatch`` call per nested
    value, about a quarter of a first sync's time), while decoding the same text gives the same values about
    four times faster. Both storage backends (PostgreSQL, SQLite) return the JSON document as text.
    """
    query = orm.QueryBuilder().append(
        orm.StructureData, filters={'id': {'in': pks}}, project=['id', {'attributes': {'cast': 't'}}]
    )
    return {pk: json.loads(text) if isinstance(text, (str, bytes)) else text for pk, text in rows(query)}


def _raw_text(file_pk: int) -> str:
    return read_text(orm.load_node(file_pk))


def prepare_node(store: Store, key: StructureKey, uuid: str, attributes: dict, origin: Origin | None) -> PreparedWrite:
    """The validated write of one node's record (raw file and parameters from its origin, if any)."""
    source = origin.source if origin else Source.of('aiida')
    content = structure_content(
        attributes, key=key, node_uuid=uuid, source=source, params=origin.parameters if origin else None
    )
    raw = _raw_text(origin.file_pk) if origin and origin.file_pk is not None else None
    return store.structures.prepare(content, raw)


def _reason(exc: Exception) -> str:
    """One line saying why a node failed."""
    if isinstance(exc, StructStoreError):
        return str(exc)
    return f'{type(exc).__name__}: {" ".join(str(exc).split())[:500]}'


class StructureSync(SyncAdapter):
    """The structures' part of a sync into one target (see the module docstring)."""

    def __init__(
        self, store: Store, tenant_id: str, workspace_id: str, *, id_template: str, include_raw: bool, check_store: bool
    ) -> None:
        super().__init__(store, tenant_id, workspace_id)
        self.id_template = id_template
        self.include_raw, self.check_store = include_raw, check_store
        self._extra = target_extra(store.store_id, tenant_id, workspace_id) if self.tracked else None

    @property
    def collection(self):
        return self.store.structures

    @property
    def extra(self) -> str | None:  # type: ignore[override]
        return self._extra

    def project(self, batch: list[list[Any]]) -> Projected:
        """Project the rows ``[pk, uuid, label, extra?]`` of a batch."""
        projected = Projected()
        # Phase 1, from ids and the target's extra alone: a stored StructureData never changes, so a node
        # remembered as projected into this store instance with the current rules is unchanged.
        todo: dict[int, tuple[str, str, dict | None]] = {}
        seen_ids: dict[str, tuple[int, str]] = {}
        for pk, uuid, label, *extra in batch:
            entry = extra[0] if extra else None
            try:
                structure_id = render_structure_id(self.id_template, uuid=uuid, pk=pk, label=label)
            except StructStoreError as exc:
                projected.failures.append((pk, str(exc)))
                continue
            if structure_id in seen_ids:
                other_pk, other_uuid = seen_ids[structure_id]
                projected.failures.append(
                    (
                        pk,
                        f'structure id {structure_id!r} of node {uuid} is also the id of node {other_pk} '
                        f'({other_uuid}); it was not projected',
                    )
                )
                continue
            seen_ids[structure_id] = (pk, uuid)
            entry = entry if isinstance(entry, dict) else None
            if self.tracked and not self.check_store and self._current(entry, structure_id, uuid):
                projected.unchanged += 1
                continue
            todo[pk] = (uuid, structure_id, entry)
        # Phase 2, for the rest: load attributes and origins, project.
        if todo:
            attributes_of = _attributes(list(todo))
            origins = find_origins(list(todo)) if self.include_raw else {}
            for pk, (uuid, structure_id, entry) in todo.items():
                try:
                    key = StructureKey.of(self.tenant_id, self.workspace_id, structure_id)
                    write = prepare_node(self.store, key, uuid, attributes_of[pk], origins.get(pk))
                except Exception as exc:  # one bad node never stops the others
                    projected.failures.append((pk, _reason(exc)))
                    continue
                remembered = entry['content_hash'] if self._current(entry, structure_id, uuid) else None  # type: ignore[index]
                projected.items.append(Item(pk=pk, write=write, ident=structure_id, remembered=remembered))
        return projected

    def _current(self, entry: dict | None, structure_id: str, uuid: str) -> bool:
        return is_current(entry, structure_id, with_raw=self.include_raw, instance=self.instance, node_uuid=uuid)

    def entry(self, item: Item) -> dict[str, Any]:
        write: PreparedWrite = item.write
        return target_entry(
            self.store,
            self.tenant_id,
            self.workspace_id,
            item.ident,
            write.content_hash,
            with_raw=self.include_raw,
            node_uuid=write.content.node_uuid,
            id_template=self.id_template,
        )

    def conflict(self, item: Item, owner: str | None) -> str:
        return ownership_message(item.write.key, item.write.content.node_uuid, owner)

    def notes(self, item: Item) -> list[str]:
        return self.store.structures.storage_notes(item.write)


def sync_structures(
    store: Store,
    *,
    tenant_id: str,
    workspace_id: str,
    group: orm.Group | None = None,
    nodes: Sequence[int | str] | None = None,
    filters: dict[str, Any] | None = None,
    id_template: str = DEFAULT_ID_TEMPLATE,
    batch_size: int = 1000,
    include_raw: bool = True,
    check_store: bool = False,
    dry_run: bool = False,
    progress: bool = True,
) -> SyncReport:
    """Project the selected structures into ``tenant_id``/``workspace_id`` of ``store``, skipping unchanged ones.

    The writes of one batch go to the store in a background thread while the next batch is read and projected
    (the store's round trips overlap the work on the AiiDA side); the nodes of a batch are remembered, in this
    thread, once its writes are committed.
    """
    StructureKey.of(tenant_id, workspace_id, 'x')  # validates the scope before any work
    if not 1 <= batch_size <= 5000:
        raise InvalidInputError(f'batch_size must be from 1 to 5000, got {batch_size}')
    if filters is not None and not isinstance(filters, dict):
        raise InvalidInputError(f'filters must be a JSON object (a dict), got {type(filters).__name__}')
    render_structure_id(id_template, uuid='00000000-0000-0000-0000-000000000000', pk=1, label='label')
    started = time.perf_counter()
    adapter = StructureSync(
        store, tenant_id, workspace_id, id_template=id_template, include_raw=include_raw, check_store=check_store
    )
    selection = {'group': group, 'nodes': nodes, 'filters': filters, 'extra': adapter.extra}
    report = SyncReport(tenant_id=tenant_id, workspace_id=workspace_id, dry_run=dry_run)
    report.selected = report.considered = count_selected(**selection)
    desc = f'sync → {tenant_id}/{workspace_id}'
    with get_progress_reporter()(total=report.selected, desc=desc, disable=not progress) as bar:
        run_sync(
            adapter,
            pages(batch_size, **selection),
            report,
            check_store=check_store,
            dry_run=dry_run,
            on_batch=bar.update,
        )
    report.seconds = time.perf_counter() - started
    return report
