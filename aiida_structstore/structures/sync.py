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

Failures: a node that cannot be projected (invalid attributes or file name, an id template giving an invalid id,
an id already taken by another node) is counted as failed with its reason, and the sync goes on. A store that
fails after its retries stops the sync. A store that loses its data during the sync (its instance changes) stops
it too, before anything is remembered for the batch: run it again.

A sync that is interrupted (Ctrl-C, SIGKILL, a lost connection) can simply be run again: batches already written
are remembered in the extras and skipped, a batch that was written but not yet remembered is found unchanged by
the store (writes are idempotent), and a large upload that was cut off is resumed.
"""

from __future__ import annotations

import contextlib
import gc
import json
import time
import uuid as uuid_lib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiida import orm
from aiida.common.progress_reporter import get_progress_reporter
from aiida.manage import get_manager

from ..core.exceptions import InvalidInputError, StructStoreError
from ..core.limits import CONVEX
from ..core.structures import Source, StructureKey
from ..store.base import Store
from ..store.convex import INLINE_BYTES
from ..store.structures import PreparedWrite, ownership_message
from ..tracking import Origin, find_origins, is_current, remember, target_entry, target_extra
from .projection import DEFAULT_ID_TEMPLATE, render_structure_id, structure_content

__all__ = ('SyncReport', 'count_selected', 'find_origins', 'prepare_node', 'select_structures', 'sync_structures')

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

    def fail_all(self, message: str) -> None:
        """The sync as a whole failed (``pk`` 0): it stops, and nothing more is counted."""
        self.failed += 1
        self.failures.insert(0, (0, message))

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
    extra: str | None = None,
) -> orm.QueryBuilder:
    """A query of the selected ``StructureData`` rows: ``id``, ``uuid``, ``label`` and, if given, the extra ``extra``.

    ``filters`` are combined with ``and``: they narrow the selection and can never widen it beyond
    ``StructureData`` (a filter on ``node_type`` alone would replace the type restriction).
    """
    query = orm.QueryBuilder()
    clauses: list[dict[str, Any]] = [filters] if filters else []
    if nodes is not None:
        pks = [n for n in nodes if isinstance(n, int)]
        uuids = []
        for value in (n for n in nodes if not isinstance(n, int)):
            try:
                uuids.append(str(uuid_lib.UUID(str(value))))
            except ValueError:
                raise InvalidInputError(f'node {value!r} is neither a pk nor a UUID') from None
        either = ([{'id': {'in': pks}}] if pks else []) + ([{'uuid': {'in': uuids}}] if uuids else [])
        clauses.append({'or': either or [{'id': {'in': [-1]}}]})
    if after_id is not None:
        clauses.append({'id': {'>': after_id}})
    node_filters = {'and': clauses} if clauses else {}
    # Only the one extra: the whole of ``extras`` (aiida's own ``_aiida_hash`` among them) costs a conversion per row.
    project = ['id', 'uuid', 'label', *([f'extras.{extra}'] if extra else [])]
    if group is not None:
        query.append(orm.Group, filters={'id': group.pk}, tag='group')
        query.append(orm.StructureData, with_group='group', filters=node_filters, tag='structure', project=project)
    else:
        query.append(orm.StructureData, filters=node_filters, tag='structure', project=project)
    query.order_by({'structure': {'id': 'asc'}})
    if limit is not None:
        query.limit(limit)
    return query


def count_selected(**selection: Any) -> int:
    """The number of selected structures; invalid ``filters`` raise :class:`InvalidInputError` naming the problem."""
    storage = get_manager().get_profile_storage()
    try:
        # In a savepoint: a statement the database refuses then rolls back only itself, never the session's
        # transaction (inside a daemon worker, that holds other processes' nodes).
        with storage.transaction():
            return select_structures(**selection).count()
    except InvalidInputError:
        raise
    except Exception as exc:  # QueryBuilder and the database report bad filters in many ways
        message = ' '.join(str(exc).split())[:300]
        filters = selection.get('filters')
        raise InvalidInputError(f'invalid filters {filters!r}: {type(exc).__name__}: {message}') from None


def _rows(query: orm.QueryBuilder) -> list[list[Any]]:
    """All rows of ``query`` as plain values."""
    return [list(row) for row in query.iterall()]


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
    """The attributes of the structures ``pks``, in one query.

    They are projected as the database's JSON text (``QueryBuilder``'s documented ``cast: 't'``) and decoded here:
    projected as they are, each value is walked by ``aiida.orm.convert`` (a ``singledispatch`` call per nested
    value, about a quarter of a first sync's time), while decoding the same text gives the same values about
    four times faster. Both storage backends (PostgreSQL, SQLite) return the JSON document as text.
    """
    query = orm.QueryBuilder().append(
        orm.StructureData, filters={'id': {'in': pks}}, project=['id', {'attributes': {'cast': 't'}}]
    )
    return {pk: json.loads(text) if isinstance(text, (str, bytes)) else text for pk, text in _rows(query)}


def _raw_text(file_pk: int) -> str:
    from ..tools.files import read_text

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
    sync = _Sync(store, tenant_id, workspace_id, id_template, include_raw, check_store, dry_run)
    selection = {'group': group, 'nodes': nodes, 'filters': filters, 'extra': sync.extra}
    total = count_selected(**selection)
    sync.report.selected = total
    pending: tuple[Future[_Written], list[tuple[int, PreparedWrite]], int] | None = None
    with (
        _fewer_collections(),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix='structstore-write') as writer,
        get_progress_reporter()(total=total, desc=f'sync → {tenant_id}/{workspace_id}', disable=not progress) as bar,
    ):
        for batch in _pages(batch_size, **selection):
            changed, same = sync.project(batch)
            if dry_run:
                sync.count_dry_run(changed)
                bar.update(len(batch))
                continue
            if pending is not None and not sync.finish(*pending, bar):
                pending = None
                break
            if not changed and not same:  # all unchanged and remembered: nothing to write or remember
                bar.update(len(batch))
                pending = None
                continue
            pending = (writer.submit(_write, store, changed, sync.tracked), same, len(batch))
        if pending is not None:
            sync.finish(*pending, bar)
    sync.report.seconds = time.perf_counter() - started
    return sync.report


#: A node's pk with its prepared write.
_Node = tuple[int, PreparedWrite]


@dataclass
class _Written:
    """What writing one batch did (computed in the writer thread, applied to the report in the sync's thread)."""

    written: list[tuple[int, PreparedWrite]] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    instance: str | None = None


class _Sync:
    """The state of one sync: its target, its report, and the steps of each batch."""

    def __init__(
        self,
        store: Store,
        tenant_id: str,
        workspace_id: str,
        id_template: str,
        include_raw: bool,
        check_store: bool,
        dry_run: bool,
    ) -> None:
        self.store = store
        self.tenant_id, self.workspace_id = tenant_id, workspace_id
        self.id_template = id_template
        self.include_raw, self.check_store = include_raw, check_store
        self.report = SyncReport(tenant_id=tenant_id, workspace_id=workspace_id, dry_run=dry_run)
        self.tracked = store.persistent
        self.extra = target_extra(store.store_id, tenant_id, workspace_id) if self.tracked else None
        self.instance = store.instance if self.tracked else ''
        self.known: dict[str, str | None] = {}

    def project(
        self, batch: list[list[Any]]
    ) -> tuple[list[tuple[int, PreparedWrite]], list[tuple[int, PreparedWrite]]]:
        """The changed and the unchanged-but-not-remembered writes of a batch; failures go to the report."""
        report = self.report
        # Phase 1, from ids and the target's extra alone: a stored StructureData never changes, so a node
        # remembered as projected into this store instance with the current rules is unchanged.
        todo: dict[int, tuple[str, str, dict | None]] = {}
        seen_ids: dict[str, tuple[int, str]] = {}
        for pk, uuid, label, *extra in batch:
            entry = extra[0] if extra else None
            try:
                structure_id = render_structure_id(self.id_template, uuid=uuid, pk=pk, label=label)
            except StructStoreError as exc:
                report.fail(pk, str(exc))
                continue
            if structure_id in seen_ids:
                other_pk, other_uuid = seen_ids[structure_id]
                report.fail(
                    pk,
                    f'structure id {structure_id!r} of node {uuid} is also the id of node {other_pk} '
                    f'({other_uuid}); it was not projected',
                )
                continue
            seen_ids[structure_id] = (pk, uuid)
            entry = entry if isinstance(entry, dict) else None
            if self.tracked and not self.check_store and self._current(entry, structure_id, uuid):
                report.unchanged += 1
                continue
            todo[pk] = (uuid, structure_id, entry)

        # Phase 2, for the rest: load attributes and origins, project, diff against the known hash.
        prepared: list[tuple[int, PreparedWrite]] = []
        if todo:
            attributes_of = _attributes(list(todo))
            origins = find_origins(list(todo)) if self.include_raw else {}
            for pk, (uuid, structure_id, _) in todo.items():
                try:
                    key = StructureKey.of(self.tenant_id, self.workspace_id, structure_id)
                    prepared.append((pk, prepare_node(self.store, key, uuid, attributes_of[pk], origins.get(pk))))
                except Exception as exc:  # one bad node never stops the others
                    report.fail(pk, _reason(exc))
        if self.check_store or not self.tracked:
            ids = [w.key.structure_id for _, w in prepared]
            known: dict[str, str | None] = dict(
                self.store.structures.content_hashes(self.tenant_id, self.workspace_id, ids)
            )
        else:
            known = {}
            for pk, write in prepared:
                uuid, _, entry = todo[pk]
                if self._current(entry, write.key.structure_id, uuid):
                    known[write.key.structure_id] = entry['content_hash']  # type: ignore[index]
        self.known = known
        changed = [(pk, w) for pk, w in prepared if known.get(w.key.structure_id) != w.content_hash]
        same = [(pk, w) for pk, w in prepared if known.get(w.key.structure_id) == w.content_hash]
        report.unchanged += len(same)
        return changed, same

    def _current(self, entry: dict | None, structure_id: str, uuid: str) -> bool:
        return is_current(entry, structure_id, with_raw=self.include_raw, instance=self.instance, node_uuid=uuid)

    def count_dry_run(self, changed: list[tuple[int, PreparedWrite]]) -> None:
        for pk, write in changed:
            if self.known.get(write.key.structure_id) is None:
                self.report.new += 1
            else:
                self.report.updated += 1
            _note_chunking(self.report, pk, write)

    def finish(self, future: Future[_Written], same: list[tuple[int, PreparedWrite]], size: int, bar: Any) -> bool:
        """Wait for a batch's writes, count them, and remember the batch on its nodes; false if the sync must stop
        (the store lost its data meanwhile)."""
        result = future.result()  # the store's failure (after its retries) stops the sync here
        report = self.report
        for pk, message in result.failures:
            report.fail(pk, message)
        report.new += result.statuses.get('created', 0)
        report.updated += result.statuses.get('updated', 0)
        report.unchanged += result.statuses.get('unchanged', 0)
        if self.tracked and result.instance != self.instance:
            report.fail_all(
                'the store lost its data during this sync (its instance id changed): what was written before '
                'may be gone; run the sync again'
            )
            return False
        if self.tracked:
            # Remember the projection (also for unchanged nodes whose remembered entry was out of date).
            entries = {
                pk: target_entry(
                    self.store,
                    self.tenant_id,
                    self.workspace_id,
                    write.key.structure_id,
                    write.content_hash,
                    with_raw=self.include_raw,
                    node_uuid=write.content.node_uuid,
                )
                for pk, write in [*result.written, *same]
            }
            remember(self.extra, entries)  # type: ignore[arg-type]
        bar.update(size)
        return True


def _write(store: Store, changed: list[tuple[int, PreparedWrite]], tracked: bool) -> _Written:
    """Write ``changed`` (in the writer thread). A record the store refuses (invalid for it, or owned by another
    node) fails its node only. Then read the store's instance id again, to notice a store that lost its data."""
    result = _Written()
    if changed:
        try:
            results = store.structures.put_prepared([w for _, w in changed])
        except InvalidInputError:
            if len(changed) == 1:
                raise
            # One record the store refuses fails the batch: write them one by one to find it.
            results = []
            for pk, write in changed:
                try:
                    results.extend(store.structures.put_prepared([write]))
                except InvalidInputError as exc:
                    result.failures.append((pk, str(exc)))
                    results.append(None)
        for (pk, write), put in zip(changed, results, strict=True):
            if put is None:
                continue
            if put.status == 'conflict':
                result.failures.append((pk, ownership_message(write.key, write.content.node_uuid, put.owner)))
                continue
            result.statuses[put.status] = result.statuses.get(put.status, 0) + 1
            result.written.append((pk, write))
    if tracked:
        result.instance = store.current_instance()
    return result


def _note_chunking(report: SyncReport, pk: int, write: PreparedWrite) -> None:
    """For a dry run: say which values would break a Convex limit if stored inline, and so go to chunks."""
    content = write.content
    notes = []
    for name, text in (('cif', content.cif), ('structure', content.structure_json), ('params', content.params_json)):
        if text is None:
            continue
        size = len(text.encode('utf-8'))
        if size > CONVEX['documentBytes']:
            notes.append(f'{name} is {size / 2**20:.1f} MiB, over the Convex document limit: stored in chunks')
        elif size > INLINE_BYTES:  # the Convex backend's inline budget
            notes.append(f'{name} is {size / 1024:.0f} KiB: stored in chunks')
    if content.structure and len(content.structure.get('cartesian_site_positions', [])) > CONVEX['arrayElements']:
        notes.append(
            f'{content.structure["nsites"]} sites, over the {CONVEX["arrayElements"]}-element Convex array limit: '
            'the structure payload is stored as JSON text'
        )
    if write.raw is not None and write.raw.count:
        notes.append(f'raw input {write.raw.size} bytes in {write.raw.count} chunks')
    if notes and len(report.notes) < MAX_REPORTED_FAILURES:
        report.notes.append((pk, '; '.join(notes)))
