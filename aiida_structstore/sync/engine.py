"""The one sync engine: select → project → diff → write → remember, for every record kind.

A record kind plugs in through a :class:`SyncAdapter` (:class:`~aiida_structstore.structures.sync.StructureSync`,
:class:`~aiida_structstore.executions.sync.ExecutionSync`), which knows how to read and project its AiiDA nodes and
what to remember on them; the engine does the rest, the same way for every kind. Per batch of nodes:

1. **Project** (adapter): the nodes' records, prepared for the store (validated, content hash computed), each with
   the hash its node remembers for this store instance (``None`` if nothing current). An adapter may decide some
   nodes are unchanged without projecting them (a stored ``StructureData`` never changes).
2. **Diff**: a record whose hash equals the known one is unchanged and not sent. Known is what the nodes remember
   or, with ``check_store`` (and always for a store that does not persist, which is not remembered), what the store
   itself holds.
3. **Write**, in a writer thread while the next batch is read and projected: the changed records go to the store in
   one ``put_prepared`` call (batched by the backend). When the store refuses one record of a batch as invalid, the
   batch is written one by one so that only that node fails; a record owned by another node (``conflict``) fails
   its node, naming both.
4. **Check** that the store still has the instance it had when the sync started (it did not lose its data), else
   the sync is aborted with nothing more remembered, and the report counts as ``lost`` what this sync wrote into
   the lost data (every earlier batch, and what of this batch the store does not hold); then **remember** each
   written or unchanged-but-unremembered record on its node (:func:`aiida_structstore.tracking.remember`, one
   atomic merge per batch).

A node that cannot be projected or written fails alone, with its reason; a store that fails after its retries
stops the sync with its error. Every write is idempotent, so a sync interrupted anywhere can simply run again.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..core.exceptions import InvalidInputError, StructStoreError
from ..store.base import Store
from ..tracking import remember
from .report import SyncReport

__all__ = ('Item', 'Projected', 'SyncAdapter', 'run_sync')

LOST_DATA = (
    'the store lost its data during this sync (its instance id changed): {lost} records this sync wrote are gone '
    'with it, and so is what earlier syncs wrote; the counts say what the store holds now; run the sync again'
)


@dataclass
class Item:
    """One node's record, ready to write: ``write`` is the collection's prepared write (it has ``key``,
    ``content`` and ``content_hash``), ``ident`` the record's id in its workspace, ``remembered`` the content hash
    the node remembers for this store instance (``None``: nothing current)."""

    pk: int
    write: Any
    ident: str
    remembered: str | None = None


@dataclass
class Projected:
    """What an adapter made of a batch: the items, the nodes it found unchanged without projecting them, and the
    nodes that failed with their reasons."""

    items: list[Item] = field(default_factory=list)
    unchanged: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)


class SyncAdapter(abc.ABC):
    """One record kind's part of a sync into one target (store, tenant, workspace)."""

    def __init__(self, store: Store, tenant_id: str, workspace_id: str) -> None:
        self.store = store
        self.tenant_id, self.workspace_id = tenant_id, workspace_id
        self.tracked = store.persistent
        self.instance = store.instance if self.tracked else ''

    @property
    @abc.abstractmethod
    def collection(self) -> Any:
        """The store's collection of this kind (``store.structures``, ``store.executions``)."""

    @property
    @abc.abstractmethod
    def extra(self) -> str:
        """The extra that remembers projections into this target."""

    @abc.abstractmethod
    def project(self, batch: list[Any]) -> Projected:
        """Project one batch (rows or pks, as the adapter's selection yields them)."""

    @abc.abstractmethod
    def entry(self, item: Item) -> dict[str, Any]:
        """What to remember on ``item``'s node about its projection into this target."""

    def conflict(self, item: Item, owner: str | None) -> str:
        """Why ``item`` was not written: the key holds the record of another node."""
        return f'{item.write.key} holds the record of another AiiDA node ({owner})'

    def notes(self, item: Item) -> list[str]:
        """For a dry run: how the store would keep ``item`` (values that go to chunks, ...)."""
        return []


@dataclass
class _Written:
    """What writing one batch did (computed in the writer thread, counted in the sync's thread)."""

    written: list[tuple[Item, str]] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    instance: str | None = None


def _write(adapter: SyncAdapter, changed: list[Item], check_instance: bool) -> _Written:
    """Write ``changed`` (in the writer thread); then read the store's instance id again, to notice a store that lost
    its data."""
    result = _Written()
    if changed:
        collection = adapter.collection
        try:
            results: list[Any] = collection.put_prepared([item.write for item in changed])
        except InvalidInputError as exc:
            if len(changed) == 1:
                results = [None]
                result.failures.append((changed[0].pk, f'the store refused the record: {exc}'))
            else:
                # One record the store refuses fails the batch: write them one by one to find it.
                results = []
                for item in changed:
                    try:
                        results.extend(collection.put_prepared([item.write]))
                    except InvalidInputError as one:
                        result.failures.append((item.pk, f'the store refused the record: {one}'))
                        results.append(None)
        for item, put in zip(changed, results, strict=True):
            if put is None:
                continue
            if put.status == 'conflict':
                result.failures.append((item.pk, adapter.conflict(item, getattr(put, 'owner', None))))
                continue
            result.statuses[put.status] = result.statuses.get(put.status, 0) + 1
            if put.status != 'stale':  # the store keeps a later state: nothing to remember
                result.written.append((item, put.status))
    if check_instance:
        result.instance = adapter.store.current_instance()
    return result


class _Run:
    """The state of one run of the engine."""

    def __init__(self, adapter: SyncAdapter, report: SyncReport, check_store: bool, keep_contents: bool) -> None:
        self.adapter, self.report = adapter, report
        self.check_store = check_store
        self.keep_contents = keep_contents

    def diff(self, projected: Projected) -> tuple[list[Item], list[Item], dict[str, str | None]]:
        """The changed items, the unchanged ones that must be remembered again, and the known hashes."""
        adapter, report = self.adapter, self.report
        for pk, message in projected.failures:
            report.fail(pk, message)
        items = projected.items
        if self.keep_contents:
            report.projected.extend(item.write.content for item in items)
        if self.check_store or not adapter.tracked:
            found = adapter.collection.content_hashes(
                adapter.tenant_id, adapter.workspace_id, [item.ident for item in items]
            )
            known: dict[str, str | None] = dict(found)
        else:
            known = {item.ident: item.remembered for item in items if item.remembered is not None}
        changed = [item for item in items if known.get(item.ident) != item.write.content_hash]
        same = [item for item in items if known.get(item.ident) == item.write.content_hash]
        report.unchanged += projected.unchanged + len(same)
        stale_memory = [item for item in same if adapter.tracked and item.remembered != item.write.content_hash]
        return changed, stale_memory, known

    def dry_run(self, changed: list[Item], known: dict[str, str | None]) -> None:
        for item in changed:
            if known.get(item.ident) is None:
                self.report.new += 1
            else:
                self.report.updated += 1
            notes = self.adapter.notes(item)
            if notes:
                self.report.note(item.pk, '; '.join(notes))

    def lost_store(self, result: _Written) -> None:
        """The store lost its data while this batch was written: everything this sync wrote before is gone, and of
        this batch only what the store holds now counts as written (the rest is ``lost``)."""
        adapter, report = self.adapter, self.report
        written = [(item, status) for item, status in result.written if status in ('created', 'updated')]
        report.lost += report.new + report.updated - len(written)  # the earlier batches (this one was counted)
        report.new = report.updated = 0
        try:
            held = adapter.collection.content_hashes(
                adapter.tenant_id, adapter.workspace_id, [item.ident for item, _ in written]
            )
        except StructStoreError:
            held = {}  # not known to be in the store: counted as lost
        for item, status in written:
            if held.get(item.ident) == item.write.content_hash:
                report.new += status == 'created'
                report.updated += status == 'updated'
            else:
                report.lost += 1
        report.abort(LOST_DATA.format(lost=report.lost))

    def finish(self, future: Future[_Written], same: list[Item]) -> bool:
        """Wait for a batch's writes, count them, and remember the batch; false if the sync must stop."""
        result = future.result()  # the store's failure (after its retries) stops the sync here
        adapter, report = self.adapter, self.report
        for pk, message in result.failures:
            report.fail(pk, message)
        report.new += result.statuses.get('created', 0)
        report.updated += result.statuses.get('updated', 0)
        report.unchanged += result.statuses.get('unchanged', 0)
        report.stale += result.statuses.get('stale', 0)
        if self.keep_contents:
            report.written_contents.extend(
                item.write.content for item, status in result.written if status in ('created', 'updated')
            )
        if result.instance is not None and result.instance != adapter.instance:
            self.lost_store(result)
            return False
        if adapter.tracked:
            entries = {item.pk: adapter.entry(item) for item in [*(item for item, _ in result.written), *same]}
            if entries:
                remember(adapter.extra, entries)
        return True


def run_sync(
    adapter: SyncAdapter,
    batches: Iterable[list[Any]],
    report: SyncReport,
    *,
    check_store: bool = False,
    dry_run: bool = False,
    keep_contents: bool = False,
    on_batch: Any = None,
) -> SyncReport:
    """Run the steps of the module docstring over ``batches`` (the adapter's selection, a batch at a time), counting
    into ``report``. ``on_batch(size)`` is called as each batch is done (a progress bar). With ``keep_contents``,
    the report keeps the contents projected and written (the live path tells listeners about them)."""
    run = _Run(adapter, report, check_store, keep_contents)
    done = on_batch or (lambda size: None)
    pending: tuple[Future[_Written], list[Item], int] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix='structstore-write') as writer:
        for batch in _batches(batches):
            changed, same, known = run.diff(adapter.project(batch))
            if dry_run:
                run.dry_run(changed, known)
                done(len(batch))
                continue
            if pending is not None:
                future, previous, size = pending
                pending = None
                if not run.finish(future, previous):
                    break
                done(size)
            if not changed and not same:  # all unchanged and remembered: nothing to write or remember
                done(len(batch))
                continue
            check_instance = adapter.tracked
            pending = (writer.submit(_write, adapter, changed, check_instance), same, len(batch))
        if pending is not None:
            future, previous, size = pending
            if run.finish(future, previous):
                done(size)
    return report


def _batches(batches: Iterable[list[Any]]) -> Iterator[list[Any]]:
    for batch in batches:
        if batch:
            yield batch
