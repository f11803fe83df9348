"""Verify the execution records of a workspace against AiiDA, in both directions (as :mod:`..structures.verify`
does for structures).

Store → AiiDA, for each record (page by page): its process must exist in this profile, and the record computed
again from the process as the sync computes it (:func:`~.projection.project_processes`) must have the record's
content hash. A process that moved on since (a new state, a structure projected since) differs: sync again.

AiiDA → store, for each process node that remembers a projection into this target (its ``structstore_…`` extra):
the store must hold a record for it. A record that is missing is reported even when the remembered projection was
into an earlier instance of the store (its data was lost since): the case a sync cannot see, since it trusts what
the nodes remember. The report gives the commands that write them again (``restore``): ``executions sync --all
--check-store`` of those processes.
"""

from __future__ import annotations

import shlex

from aiida import orm

from ..core.executions import ExecutionKey
from ..store.base import Store
from ..store.executions import MAX_EXECUTION_PAGE
from ..sync import VerifyReport
from ..tracking import iter_remembered
from .projection import ProjectionTarget, project_processes

__all__ = ('verify_executions',)

#: Missing processes one restore command names at most.
RESTORE_BY_PK = 50


def verify_executions(
    store: Store, tenant_id: str, workspace_id: str, *, hostnames: bool = False, page_size: int = MAX_EXECUTION_PAGE
) -> VerifyReport:
    """Check the execution records of ``tenant_id``/``workspace_id`` against AiiDA (see the module docstring).
    ``hostnames`` must be what the syncs used (``STRUCTURE_STORE_EXECUTION_HOSTNAMES``), or every record that has
    a computer differs."""
    ExecutionKey.of(tenant_id, workspace_id, '00000000-0000-0000-0000-000000000000')  # validates the scope
    target = ProjectionTarget(store, tenant_id, workspace_id, hostnames=hostnames)
    report = VerifyReport()
    _records_against_processes(target, report, page_size)
    if store.persistent:
        _processes_against_records(target, report, page_size)
    return report


def _records_against_processes(target: ProjectionTarget, report: VerifyReport, page_size: int) -> None:
    cursor = None
    while True:
        page = target.store.executions.list(target.tenant_id, target.workspace_id, cursor=cursor, limit=page_size)
        uuids = [record.key.process_uuid for record in page.items]
        query = orm.QueryBuilder().append(orm.ProcessNode, filters={'uuid': {'in': uuids}}, project=['id', 'uuid'])
        pks = {uuid: pk for pk, uuid in query.iterall()} if uuids else {}
        projected = project_processes(target, list(pks.values()))
        for record in page.items:
            report.checked += 1
            uuid = record.key.process_uuid
            pk = pks.get(uuid)
            if pk is None:
                problem = f'its AiiDA process {uuid} does not exist in this profile'
            elif pk in projected.failures:
                problem = f'its AiiDA process {pk} cannot be projected: {projected.failures[pk]}'
            elif target.store.executions.prepare(projected.contents[pk]).content_hash != record.content_hash:
                problem = f'differs from its AiiDA process {pk} (sync it again)'
            else:
                report.matching += 1
                continue
            report.problems.append((uuid, problem))
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _processes_against_records(target: ProjectionTarget, report: VerifyReport, page_size: int) -> None:
    missing: list[int] = []
    for rows in iter_remembered(orm.ProcessNode, target.extra, page_size):
        remembered = {uuid: pk for pk, uuid, entry in rows if isinstance(entry, dict)}
        report.remembered += len(remembered)
        found = target.store.executions.content_hashes(target.tenant_id, target.workspace_id, list(remembered))
        for uuid, pk in remembered.items():
            if uuid not in found:
                report.missing += 1
                missing.append(pk)
                report.problems.append((uuid, f'missing from the store: process {pk} was projected here'))
    command = ['verdi', 'data', 'structstore', 'executions', 'sync', '-t', target.tenant_id, '-w', target.workspace_id]
    for start in range(0, len(missing), RESTORE_BY_PK):
        pks = [str(pk) for pk in missing[start : start + RESTORE_BY_PK]]
        report.restore.append(shlex.join([*command, '--all', '--check-store', '-N', *pks]))
