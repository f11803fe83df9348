"""Incremental projection of many ``StructureData`` nodes into one target (store, tenant, workspace).

How it works, batch by batch (``batch_size`` nodes, default 1000):

1. Select: a ``QueryBuilder`` over ``StructureData`` (all of them, a group, a list of pks/UUIDs, and/or
   ``filters``) projects ``id``, ``uuid``, ``label`` and ``extras`` straight from the database with ``iterall``:
   no ORM node is loaded, and memory stays flat in the number of nodes.
2. Skip: a stored ``StructureData`` never changes, so a node whose ``structstore`` extra remembers a projection into
   this target with the same structure id, raw option and projection rules (``PROJECTION_VERSION``) is unchanged,
   decided without loading anything else (see :mod:`aiida_structstore.projection.nodes`).
3. Project the rest: attributes (one query per batch) → record (:mod:`aiida_structstore.projection`); structures
   created by the import calcfunctions get their raw file and parameters (three queries per batch). The content
   hash is compared with the remembered one, or with ``check_store=True`` with the store's own hashes (use it after
   the store was rebuilt or edited). Equal means unchanged: nothing is sent.
4. Write: the changed records go to the store in ``put_many`` batches (for Convex: one mutation per ~250 records).
5. Track: the new hashes are written to the nodes' extras in one bulk update per batch.

A sync that is interrupted (Ctrl-C, SIGKILL, a lost connection) can simply be run again: batches already written
are remembered in the extras and skipped, and a batch that was written but not yet remembered is found unchanged by
the store (writes are idempotent). A node that cannot be projected (invalid attributes, id template giving an
invalid id) is counted as failed and the sync goes on; a store that fails after its retries stops the sync.
"""

from __future__ import annotations

import contextlib
import gc
import time
import uuid as uuid_lib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiida import orm
from aiida.common.links import LinkType
from aiida.common.progress_reporter import get_progress_reporter

from .exceptions import InvalidInputError, StructStoreError
from .models import Source, StructureKey
from .projection.nodes import EXTRA_KEY, find_target, import_kind, is_current, target_entry, with_target
from .projection.record import DEFAULT_ID_TEMPLATE, render_structure_id, structure_content
from .store.base import PreparedWrite, StructureStore
from .store.convex import INLINE_BYTES

__all__ = ('SyncReport', 'find_origins', 'prepare_node', 'select_structures', 'sync_structures')

#: Failures kept in the report with their messages (all are counted).
MAX_REPORTED_FAILURES = 100


@dataclass
class SyncReport:
    """What a sync did (or, with ``dry_run``, would do)."""

    tenant_id: str
    workspace_id: str
    dry_run: bool = False
    selected: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def fail(self, pk: int, message: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append((pk, message))

    def as_dict(self) -> dict[str, Any]:
        return {
            'tenant_id': self.tenant_id,
            'workspace_id': self.workspace_id,
            'dry_run': self.dry_run,
            'selected': self.selected,
            'new': self.new,
            'updated': self.updated,
            'unchanged': self.unchanged,
            'failed': self.failed,
            'seconds': round(self.seconds, 3),
        }


def select_structures(
    *,
    group: orm.Group | None = None,
    nodes: Sequence[int | str] | None = None,
    filters: dict[str, Any] | None = None,
    after_id: int | None = None,
    limit: int | None = None,
) -> orm.QueryBuilder:
    """A query of the selected ``StructureData`` rows: ``id``, ``uuid``, ``label``, ``extras``."""
    query = orm.QueryBuilder()
    node_filters: dict[str, Any] = dict(filters or {})
    if nodes is not None:
        pks = [n for n in nodes if isinstance(n, int)]
        uuids = []
        for value in (n for n in nodes if not isinstance(n, int)):
            try:
                uuids.append(str(uuid_lib.UUID(str(value))))
            except ValueError:
                raise InvalidInputError(f'node {value!r} is neither a pk nor a UUID') from None
        clauses = ([{'id': {'in': pks}}] if pks else []) + ([{'uuid': {'in': uuids}}] if uuids else [])
        node_filters['or'] = clauses or [{'id': {'in': [-1]}}]
    if after_id is not None:
        node_filters = {'and': [node_filters, {'id': {'>': after_id}}]} if node_filters else {'id': {'>': after_id}}
    if group is not None:
        query.append(orm.Group, filters={'id': group.pk}, tag='group')
        query.append(
            orm.StructureData,
            with_group='group',
            filters=node_filters,
            tag='structure',
            project=['id', 'uuid', 'label', 'extras'],
        )
    else:
        query.append(
            orm.StructureData,
            filters=node_filters,
            tag='structure',
            project=['id', 'uuid', 'label', 'extras'],
        )
    query.order_by({'structure': {'id': 'asc'}})
    if limit is not None:
        query.limit(limit)
    return query


def _rows(query: orm.QueryBuilder) -> list[list[Any]]:
    """All rows of ``query`` as plain values.

    ``QueryBuilder.iterall`` passes every projected value through AiiDA's front-end conversion, which recurses into
    attribute and extra dictionaries (about half the cost of reading them); plain columns need none of it.
    """
    implementation = getattr(query, '_impl', None)
    if implementation is None or not hasattr(implementation, 'iterall'):
        return list(query.iterall())
    return [list(row) for row in implementation.iterall(query.as_dict(), None)]


def _pages(batch_size: int, **selection: Any) -> Iterator[list[list[Any]]]:
    """The selected rows, ``batch_size`` at a time, each page a fresh query after the last id seen (keyset paging).

    Nothing is held open between pages, so the extras written after each page are committed safely.
    """
    after_id = None
    while True:
        rows = _rows(select_structures(after_id=after_id, limit=batch_size, **selection))
        if not rows:
            return
        yield rows
        after_id = rows[-1][0]


@dataclass
class _Origin:
    kind: str
    file_pk: int | None = None
    filename: str | None = None
    parameters: dict | None = None


def find_origins(pks: list[int]) -> dict[int, _Origin]:
    """Origins of the structures among ``pks`` that an import calcfunction created (three queries per batch)."""
    query = orm.QueryBuilder()
    query.append(orm.StructureData, filters={'id': {'in': pks}}, tag='structure', project=['id'])
    query.append(
        orm.CalcFunctionNode,
        with_outgoing='structure',
        tag='creator',
        project=['id', 'process_type'],
        edge_filters={'type': LinkType.CREATE.value},
        filters={'process_type': {'like': '%structstore%'}},
    )
    creators: dict[int, int] = {}
    kinds: dict[int, str] = {}
    for structure_pk, creator_pk, process_type in _rows(query):
        kind = import_kind(process_type)
        if kind:
            creators[structure_pk] = creator_pk
            kinds[creator_pk] = kind
    if not creators:
        return {}
    files: dict[int, tuple[int, str]] = {}
    query = orm.QueryBuilder()
    query.append(orm.CalcFunctionNode, filters={'id': {'in': list(kinds)}}, tag='creator', project=['id'])
    query.append(
        orm.SinglefileData,
        with_outgoing='creator',
        edge_filters={'label': 'file'},
        project=['id', 'attributes.filename'],
    )
    for creator_pk, file_pk, filename in _rows(query):
        files[creator_pk] = (file_pk, filename)
    parameters: dict[int, dict] = {}
    pw_creators = [pk for pk, kind in kinds.items() if kind == 'pw-input']
    if pw_creators:
        query = orm.QueryBuilder()
        query.append(orm.CalcFunctionNode, filters={'id': {'in': pw_creators}}, tag='creator', project=['id'])
        query.append(orm.Dict, with_incoming='creator', edge_filters={'label': 'parameters'}, project=['attributes'])
        for creator_pk, attributes in _rows(query):
            parameters[creator_pk] = attributes
    origins = {}
    for structure_pk, creator_pk in creators.items():
        file_pk, filename = files.get(creator_pk, (None, None))
        origins[structure_pk] = _Origin(kinds[creator_pk], file_pk, filename, parameters.get(creator_pk))
    return origins


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the garbage collector's first threshold for the duration of a sync.

    Projecting allocates many small, short-lived, acyclic containers (positions, dicts of fields); with the default
    threshold (700) the collector runs thousands of times and walks every object the process holds (ORM session,
    caches), which measured at about 40 % of a sync's time. Reference counting frees these objects anyway.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _attributes(pks: list[int]) -> dict[int, dict]:
    """The attributes of the structures ``pks``, in one query."""
    query = orm.QueryBuilder().append(orm.StructureData, filters={'id': {'in': pks}}, project=['id', 'attributes'])
    return {pk: attributes for pk, attributes in _rows(query)}


def _raw_text(file_pk: int) -> str:
    from .calculations.functions._files import read_text

    return read_text(orm.load_node(file_pk))


def prepare_node(
    store: StructureStore, key: StructureKey, uuid: str, attributes: dict, origin: _Origin | None
) -> PreparedWrite:
    """The validated write of one node's record (raw file and parameters from its origin, if any)."""
    source = Source(kind=origin.kind, filename=origin.filename) if origin else Source(kind='aiida')
    content = structure_content(
        attributes, key=key, node_uuid=uuid, source=source, params=origin.parameters if origin else None
    )
    raw = _raw_text(origin.file_pk) if origin and origin.file_pk is not None else None
    return store.prepare(content, raw)


def sync_structures(
    store: StructureStore,
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
    """Project the selected structures into ``tenant_id``/``workspace_id`` of ``store``, skipping unchanged ones."""
    StructureKey.of(tenant_id, workspace_id, 'x')  # validates the scope before any work
    if not 1 <= batch_size <= 5000:
        raise InvalidInputError(f'batch_size must be from 1 to 5000, got {batch_size}')
    render_structure_id(id_template, uuid='00000000-0000-0000-0000-000000000000', pk=1, label='label')
    started = time.perf_counter()
    report = SyncReport(tenant_id=tenant_id, workspace_id=workspace_id, dry_run=dry_run)
    query = select_structures(group=group, nodes=nodes, filters=filters)
    total = query.count()
    report.selected = total
    identity = store.identity
    from aiida.manage import get_manager
    from aiida.orm.entities import EntityTypes

    storage = get_manager().get_profile_storage()

    with (
        _fewer_collections(),
        get_progress_reporter()(total=total, desc=f'sync → {tenant_id}/{workspace_id}', disable=not progress) as bar,
    ):
        for batch in _pages(batch_size, group=group, nodes=nodes, filters=filters):
            # Phase 1, from ids and extras alone: a stored StructureData never changes, so a node remembered as
            # projected into this target with the current projection rules is unchanged; nothing else is loaded.
            todo: dict[int, tuple[str, str, dict, dict | None]] = {}
            seen_ids: dict[str, int] = {}
            for pk, uuid, label, extras in batch:
                extras = extras or {}
                try:
                    structure_id = render_structure_id(id_template, uuid=uuid, pk=pk, label=label)
                    if structure_id in seen_ids:
                        raise InvalidInputError(
                            f'structure id {structure_id!r} is also the id of node {seen_ids[structure_id]}'
                        )
                except StructStoreError as exc:
                    report.fail(pk, str(exc))
                    continue
                seen_ids[structure_id] = pk
                target = find_target(extras, identity, tenant_id, workspace_id)
                if not check_store and is_current(target, structure_id, with_raw=include_raw):
                    report.unchanged += 1
                    continue
                todo[pk] = (uuid, structure_id, extras, target)

            # Phase 2, for the rest: load attributes and origins, project, diff against the known hash.
            prepared: list[tuple[int, dict, PreparedWrite]] = []
            if todo:
                attributes_of = _attributes(list(todo))
                origins = find_origins(list(todo)) if include_raw else {}
                for pk, (uuid, structure_id, extras, _) in todo.items():
                    try:
                        key = StructureKey.of(tenant_id, workspace_id, structure_id)
                        prepared.append(
                            (pk, extras, prepare_node(store, key, uuid, attributes_of[pk], origins.get(pk)))
                        )
                    except StructStoreError as exc:
                        report.fail(pk, str(exc))
            if check_store:
                known = store.content_hashes(tenant_id, workspace_id, [w.key.structure_id for _, _, w in prepared])
            else:
                known = {
                    todo[pk][1]: todo[pk][3].get('content_hash')
                    for pk, _, _ in prepared
                    if todo[pk][3] and todo[pk][3].get('structure_id') == todo[pk][1]
                }
            changed = [(pk, extras, w) for pk, extras, w in prepared if known.get(w.key.structure_id) != w.content_hash]
            same = [(pk, extras, w) for pk, extras, w in prepared if known.get(w.key.structure_id) == w.content_hash]
            report.unchanged += len(same)

            if dry_run:
                for pk, _, write in changed:
                    if known.get(write.key.structure_id) is None:
                        report.new += 1
                    else:
                        report.updated += 1
                    _note_chunking(report, pk, write)
                bar.update(len(batch))
                continue
            results = store.put_prepared([w for _, _, w in changed]) if changed else []
            for result in results:
                if result.status == 'created':
                    report.new += 1
                elif result.status == 'updated':
                    report.updated += 1
                else:
                    report.unchanged += 1
            # Remember the projection (also for unchanged nodes whose remembered entry was out of date).
            rows = []
            for (pk, extras, write), content_hash in [
                *((c, r.content_hash) for c, r in zip(changed, results, strict=True)),
                *((u, u[2].content_hash) for u in same),
            ]:
                entry = target_entry(
                    identity, tenant_id, workspace_id, write.key.structure_id, content_hash, with_raw=include_raw
                )
                rows.append({'id': pk, 'extras': {**extras, EXTRA_KEY: with_target(extras, entry)}})
            if rows:
                storage.bulk_update(EntityTypes.NODE, rows)
            bar.update(len(batch))
    report.seconds = time.perf_counter() - started
    return report


def _note_chunking(report: SyncReport, pk: int, write: PreparedWrite) -> None:
    """For a dry run: say which values would break a Convex limit if stored inline, and so go to chunks."""
    content = write.content
    notes = []
    for name, text in (('cif', content.cif), ('structure', content.structure_json), ('params', content.params_json)):
        if text is None:
            continue
        size = len(text.encode('utf-8'))
        if size > 1024 * 1024:
            notes.append(f'{name} is {size / 2**20:.1f} MiB, over the 1 MiB Convex document limit: stored in chunks')
        elif size > INLINE_BYTES:  # the Convex backend's inline budget
            notes.append(f'{name} is {size / 1024:.0f} KiB: stored in chunks')
    if content.structure and len(content.structure.get('cartesian_site_positions', [])) > 8192:
        notes.append(
            f'{content.structure["nsites"]} sites, over the 8192-element Convex array limit: '
            'the structure payload is stored as JSON text'
        )
    if write.raw is not None and write.raw.count:
        notes.append(f'raw input {write.raw.size} bytes in {write.raw.count} chunks')
    if notes and len(report.notes) < MAX_REPORTED_FAILURES:
        report.notes.append((pk, '; '.join(notes)))
