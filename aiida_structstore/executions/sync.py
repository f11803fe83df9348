"""Incremental projection of many processes into one target: ``verdi data structstore executions sync``.

Per batch of processes (``batch_size``, default 500), as the structure sync does:

1. **Project** them from database rows (:func:`~.projection.project_processes`: a fixed number of queries).
2. **Diff** each content hash with the one remembered on the process node (its extra for the target, the same name
   as on structures) for the store's current instance; for a store that does not persist (memory), with the
   store's own hashes. Equal means unchanged: nothing is sent.
3. **Write** the changed records (Convex: up to 200 per mutation, within the function's link and byte budgets).
   The store keeps the later state of a process: a record older than the committed one is ``stale``.
4. **Check** that the store still has the same instance id (it did not lose its data meanwhile), then
   **remember** the hashes on the process nodes, one atomic merge per node (:func:`~..projection.nodes.remember`),
   keeping every other extra (the engine's ``_aiida_hash`` included).

Incremental by modification time: with ``since`` (a time, or ``'auto'``: the newest ``modified_at`` the workspace
holds, less :data:`MARGIN`), only the selected processes modified since then, or that took or produced a structure
projected into the target since then, are projected. Without it every selected process is, and the unchanged ones
cost nothing but the reading.

Failures: a process that cannot be projected, or whose record the store refuses, is counted as failed with its
reason and the others go on. A store that fails after its retries stops the sync.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiida import orm

from ..core.exceptions import InvalidInputError
from ..core.executions import ExecutionContent, execution_hash
from ..core.values import validate_id
from ..store.base import Store
from ..store.settings import read_settings
from ..tracking import remember
from .projection import ProjectionTarget, chunks, project_processes
from .selection import Selection, check_processes

__all__ = (
    'EXECUTION_PROJECTION_VERSION',
    'MARGIN',
    'ExecutionSyncReport',
    'push_processes',
    'record_processes',
    'sync_executions',
)

#: Version of the execution projection rules; a remembered entry of another version is projected again.
EXECUTION_PROJECTION_VERSION = 1
#: How far before the newest record an incremental sync looks again: a process committed late (its transaction
#: ended after a later one's) is still found.
MARGIN = dt.timedelta(seconds=60)
MAX_REPORTED_FAILURES = 100


@dataclass
class ExecutionSyncReport:
    """What a sync (or one push of the live path) did."""

    tenant_id: str
    workspace_id: str
    selected: int = 0
    considered: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    failed: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    since: dt.datetime | None = None
    seconds: float = 0.0
    #: The contents a push projected, and those it wrote (created or updated): kept by :func:`push_processes` for
    #: the live path, not summed by :meth:`add`.
    contents: list[ExecutionContent] = field(default_factory=list, repr=False)
    written_contents: list[ExecutionContent] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def written(self) -> int:
        return self.new + self.updated

    def fail(self, pk: int, message: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append((pk, message))

    def add(self, other: ExecutionSyncReport) -> None:
        """Count ``other``'s outcome into this report."""
        for name in ('new', 'updated', 'unchanged', 'stale'):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for pk, message in other.failures:
            self.fail(pk, message)
        self.failed += other.failed - len(other.failures)

    def as_dict(self) -> dict[str, Any]:
        return {
            'tenant_id': self.tenant_id,
            'workspace_id': self.workspace_id,
            'selected': self.selected,
            'considered': self.considered,
            'new': self.new,
            'updated': self.updated,
            'unchanged': self.unchanged,
            'stale': self.stale,
            'failed': self.failed,
            'since': None if self.since is None else self.since.isoformat(),
            'seconds': round(self.seconds, 3),
        }


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


def _write(store: Store, changed: list[tuple[int, ExecutionContent]], report: ExecutionSyncReport):
    """Write ``changed``; a record the store refuses fails its process only. Returns ``[(pk, status)]``."""
    try:
        results = store.executions.put_many([content for _, content in changed])
        return [(pk, result.status) for (pk, _), result in zip(changed, results, strict=True)]
    except InvalidInputError as exc:
        if len(changed) == 1:
            report.fail(changed[0][0], f'the store refused the record: {exc}')
            return []
    statuses = []
    for pk, content in changed:
        try:
            statuses.append((pk, store.executions.put(content).status))
        except InvalidInputError as exc:
            report.fail(pk, f'the store refused the record: {exc}')
    return statuses


def push_processes(target: ProjectionTarget, pks: Sequence[int]) -> ExecutionSyncReport:
    """Project the processes ``pks`` into the target, writing only what changed (see the module docstring)."""
    report = ExecutionSyncReport(tenant_id=target.tenant_id, workspace_id=target.workspace_id)
    store = target.store
    tracked = store.persistent
    instance = store.instance if tracked else ''
    projected = project_processes(target, list(pks))
    for pk, reason in projected.failures.items():
        report.fail(pk, reason)
    hashes = {pk: execution_hash(content) for pk, content in projected.contents.items()}
    if tracked:
        known = {
            pk: hashes[pk] for pk in projected.contents if _current(projected.remembered.get(pk), instance, hashes[pk])
        }
    else:
        stored = store.executions.content_hashes(
            target.tenant_id, target.workspace_id, [c.key.process_uuid for c in projected.contents.values()]
        )
        known = {pk: stored.get(c.key.process_uuid) for pk, c in projected.contents.items()}
    changed = [(pk, content) for pk, content in projected.contents.items() if known.get(pk) != hashes[pk]]
    report.unchanged += len(projected.contents) - len(changed)
    report.contents = list(projected.contents.values())
    statuses = _write(store, changed, report) if changed else []
    for pk, status in statuses:
        name = {'created': 'new'}.get(status, status)
        setattr(report, name, getattr(report, name) + 1)
        if status in ('created', 'updated'):
            report.written_contents.append(projected.contents[pk])
    if tracked and statuses:
        if store.current_instance() != instance:
            report.fail(0, 'the store lost its data during this sync (its instance id changed): run it again')
            return report
        entries = {
            pk: _entry(target, instance, projected.contents[pk], hashes[pk])
            for pk, status in statuses
            if status != 'stale'
        }
        remember(target.extra, entries)
    return report


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
    hostnames: bool | None = None,
) -> ExecutionSyncReport:
    """Project the selected processes into ``tenant_id``/``workspace_id`` of ``store`` (see the module docstring).

    ``hostnames`` defaults to ``STRUCTURE_STORE_EXECUTION_HOSTNAMES`` (off).
    """
    validate_id(tenant_id, 'tenant_id')
    validate_id(workspace_id, 'workspace_id')
    if not 1 <= batch_size <= 5000:
        raise InvalidInputError(f'batch_size must be from 1 to 5000, got {batch_size}')
    if since is not None and since != 'auto' and (not isinstance(since, dt.datetime) or since.tzinfo is None):
        raise InvalidInputError(f"since must be a timezone-aware datetime or 'auto', got {since!r}")
    started = time.perf_counter()
    if hostnames is None:
        hostnames = read_settings().execution_hostnames
    target = ProjectionTarget(store, tenant_id, workspace_id, hostnames=hostnames)
    selection = Selection(target.extra, group=group, processes=check_processes(processes or ()), linked=linked)
    report = ExecutionSyncReport(tenant_id=tenant_id, workspace_id=workspace_id)
    if since == 'auto':
        latest = store.executions.latest_modified(tenant_id, workspace_id)
        since = None if latest is None else latest - MARGIN
    report.since = since
    selected = selection.all()
    report.selected = len(selected)
    considered = selection.changed_since(selected, since) if since is not None else selected
    report.considered = len(considered)
    for pks in chunks(sorted(considered), batch_size):
        part = push_processes(target, pks)
        report.add(part)
        if any(pk == 0 for pk, _ in part.failures):
            break  # the store lost its data: stop, nothing more is remembered
    report.seconds = time.perf_counter() - started
    return report


def record_processes(tenant_id: str, workspace_id: str, pks: Sequence[int]) -> ExecutionSyncReport:
    """Push the records of the processes ``pks`` into the store of the environment (``open_store()``), whatever
    selection they belong to: what a workflow step does to record itself and its caller."""
    from ..store import open_store

    with open_store() as store:
        target = ProjectionTarget(store, tenant_id, workspace_id, hostnames=read_settings().execution_hostnames)
        return push_processes(target, pks)
