"""Incremental projection of many processes into one target: ``verdi data structstore executions sync``.

Per batch of processes (``batch_size``, default 500), as the structure sync does:

1. **Project** them from database rows (:func:`~.projection.project_processes`: a fixed number of queries).
2. **Diff** each content hash with the one remembered on the process node (its extra for the target, the same name
   as on structures) for the store's current instance; for a store that does not persist (memory), with the
   store's own hashes. Equal means unchanged: nothing is sent.
3. **Write** the changed records (Convex: up to 200 per mutation, within the function's link and byte budgets).
   The store keeps the later state of a process: a record older than the committed one is ``stale``.
4. **Check** that the store still has the same instance id (it did not lose its data meanwhile), then
   **remember** the hashes on the process nodes, one atomic merge per node
   (:func:`~aiida_structstore.tracking.remember`), keeping every other extra (the engine's ``_aiida_hash`` included).

Steps 2 to 4 are the sync engine's (:mod:`aiida_structstore.sync`), shared with the structure sync, writes in a
writer thread included; this module is the executions' adapter (:class:`ExecutionSync`), :func:`sync_executions`,
and :func:`sync_processes` (one batch, for the live path and the work chains).

Incremental by modification time: with ``since`` (a time, or ``'auto'``: the newest ``modified_at`` the workspace
holds, less :data:`MARGIN`), only the selected processes modified since then, or that took or produced a structure
projected into the target since then, are projected. Without it every selected process is, and the unchanged ones
cost nothing but the reading.

Failures: a process that cannot be projected, or whose record the store refuses, is counted as failed with its
reason and the others go on. A store that fails after its retries stops the sync; a store that lost its data during
the sync aborts it (``report.aborted``). ``dry_run`` counts what would be written, and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any, Literal

from aiida import orm

from ..core.exceptions import InvalidInputError
from ..core.executions import ExecutionContent
from ..core.values import validate_id
from ..store.base import Store
from ..sync import Item, Projected, SyncAdapter, SyncReport, run_sync
from .projection import ProjectionTarget, batched, project_processes
from .selection import ProcessSelection, check_processes

__all__ = (
    'EXECUTION_PROJECTION_VERSION',
    'MARGIN',
    'ExecutionSync',
    'record_processes',
    'sync_executions',
    'sync_processes',
)

#: Version of the execution projection rules; a remembered entry of another version is projected again.
EXECUTION_PROJECTION_VERSION = 1
#: How far before the newest record an incremental sync looks again: a process committed late (its transaction
#: ended after a later one's) is still found.
MARGIN = dt.timedelta(seconds=60)


def _entry(target: ProjectionTarget, instance: str, content: ExecutionContent, content_hash: str) -> dict:
    return {
        'store': target.store.store_id,
        'instance': instance,
        'tenant_id': target.tenant_id,
        'workspace_id': target.workspace_id,
        'content_hash': content_hash,
        'modified_ms': round(content.modified_at.timestamp() * 1000),
        'projection': EXECUTION_PROJECTION_VERSION,
        'projected_at': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
    }


def _current(entry: Any, instance: str, content_hash: str) -> bool:
    return (
        isinstance(entry, dict)
        and entry.get('instance') == instance
        and entry.get('projection') == EXECUTION_PROJECTION_VERSION
        and entry.get('content_hash') == content_hash
    )


class ExecutionSync(SyncAdapter):
    """The executions' part of a sync into one target (see the module docstring)."""

    def __init__(self, target: ProjectionTarget) -> None:
        super().__init__(target.store, target.tenant_id, target.workspace_id)
        self.target = target

    @property
    def collection(self):
        return self.store.executions

    @property
    def extra(self) -> str:
        return self.target.extra

    def project(self, batch: list[int]) -> Projected:
        """Project the processes ``batch`` (pks)."""
        projected = project_processes(self.target, list(batch))
        result = Projected(failures=list(projected.failures.items()))
        for pk, content in projected.contents.items():
            write = self.collection.prepare(content)
            current = _current(projected.remembered.get(pk), self.instance, write.content_hash)
            result.items.append(
                Item(
                    pk=pk,
                    write=write,
                    ident=content.key.process_uuid,
                    remembered=write.content_hash if current else None,
                )
            )
        return result

    def entry(self, item: Item) -> dict[str, Any]:
        return _entry(self.target, self.instance, item.write.content, item.write.content_hash)


def sync_processes(target: ProjectionTarget, pks: Sequence[int]) -> SyncReport:
    """Project the processes ``pks`` into the target, writing only what changed, as one batch (see the module
    docstring). The report keeps the contents projected and written, for the live path."""
    report = SyncReport(tenant_id=target.tenant_id, workspace_id=target.workspace_id)
    report.considered = len(pks)
    return run_sync(ExecutionSync(target), [list(pks)], report, keep_contents=True)


def sync_executions(
    store: Store,
    *,
    tenant_id: str,
    workspace_id: str,
    group: orm.Group | None = None,
    processes: Sequence[int] | None = None,
    linked: bool = False,
    since: dt.datetime | Literal['auto'] | None = None,
    batch_size: int = 500,
    hostnames: bool = False,
    check_store: bool = False,
    dry_run: bool = False,
) -> SyncReport:
    """Project the selected processes into ``tenant_id``/``workspace_id`` of ``store`` (see the module docstring).
    ``check_store``: compare with the store's hashes, not those remembered on the nodes (restores deleted records).

    ``hostnames``: records carry the computer's host name (the CLI passes ``STRUCTURE_STORE_EXECUTION_HOSTNAMES``).
    """
    validate_id(tenant_id, 'tenant_id')
    validate_id(workspace_id, 'workspace_id')
    if not 1 <= batch_size <= 5000:
        raise InvalidInputError(f'batch_size must be from 1 to 5000, got {batch_size}')
    if since is not None and since != 'auto' and (not isinstance(since, dt.datetime) or since.tzinfo is None):
        raise InvalidInputError(f"since must be a timezone-aware datetime or 'auto', got {since!r}")
    started = time.perf_counter()
    target = ProjectionTarget(store, tenant_id, workspace_id, hostnames=hostnames)
    selection = ProcessSelection(target.extra, group=group, processes=check_processes(processes or ()), linked=linked)
    report = SyncReport(tenant_id=tenant_id, workspace_id=workspace_id, dry_run=dry_run)
    if since == 'auto':
        latest = store.executions.latest_modified(tenant_id, workspace_id)
        since = None if latest is None else latest - MARGIN
    report.since = since
    selected = selection.all()
    report.selected = len(selected)
    considered = selection.changed_since(selected, since) if since is not None else selected
    report.considered = len(considered)
    batches = batched(sorted(considered), batch_size)
    run_sync(ExecutionSync(target), batches, report, check_store=check_store, dry_run=dry_run)
    report.seconds = time.perf_counter() - started
    return report


def record_processes(tenant_id: str, workspace_id: str, pks: Sequence[int]) -> SyncReport:
    """Push the records of the processes ``pks`` into the store of the environment (``open_store()`` and its
    settings, ``STRUCTURE_STORE_EXECUTION_HOSTNAMES`` included), whatever selection they belong to: what a workflow
    step does to record itself and its caller."""
    from ..store import open_store
    from ..store.settings import read_settings

    settings = read_settings()
    with open_store(settings) as store:
        target = ProjectionTarget(store, tenant_id, workspace_id, hostnames=settings.execution_hostnames)
        return sync_processes(target, pks)
