"""``ProcessNode`` → execution record, for many processes at once, from database rows (no ORM node is loaded).

One batch of processes costs a fixed number of ``QueryBuilder`` queries whatever its size: the processes' columns
and the attributes a record needs; their computers; their callers; the structures they took (``INPUT_CALC``,
``INPUT_WORK`` links) and produced (``CREATE``, ``RETURN``) with the one extra that remembers each structure's
projection into the target (:func:`~aiida_structstore.tracking.target_extra`).

The structure ids of a record are those remembered projections, trusted only for the store's current instance (a
store that lost its data holds none of them); a structure never projected into the workspace is not named. So the
in-memory store, whose projections are not remembered on nodes, gets records without structure ids.

What a record leaves out on purpose: remote working directories, the user, the computer's host name (unless
``hostnames`` is asked for: ``STRUCTURE_STORE_EXECUTION_HOSTNAMES=true``), and absolute paths in exit messages
(:func:`~aiida_structstore.core.executions.scrub_text`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiida import orm
from aiida.common.links import LinkType

from ..core.executions import MAX_STRUCTURE_LINKS, ExecutionContent, ExecutionKey, Scheduler, scrub_text
from ..store.base import Store
from ..tracking import target_extra

__all__ = (
    'CALL_LINKS',
    'INPUT_LINKS',
    'OUTPUT_LINKS',
    'Projected',
    'ProjectionTarget',
    'kind_of',
    'project_processes',
    'remembered_structure_id',
)

INPUT_LINKS = (LinkType.INPUT_CALC.value, LinkType.INPUT_WORK.value)
OUTPUT_LINKS = (LinkType.CREATE.value, LinkType.RETURN.value)
CALL_LINKS = (LinkType.CALL_CALC.value, LinkType.CALL_WORK.value)
_KINDS = {
    'process.calculation.calcjob.': 'calcjob',
    'process.calculation.calcfunction.': 'calcfunction',
    'process.workflow.workchain.': 'workchain',
    'process.workflow.workfunction.': 'workfunction',
}
#: Entries of an ``in`` filter per query (PostgreSQL takes far more; this keeps statements small).
IN_CHUNK = 5000


@dataclass(frozen=True)
class ProjectionTarget:
    """Where records go: the store (for its instance id), tenant and workspace; and whether host names are shown."""

    store: Store
    tenant_id: str
    workspace_id: str
    hostnames: bool = False

    @property
    def extra(self) -> str:
        """The extra that remembers projections into this target, on structures and processes alike."""
        return target_extra(self.store.store_id, self.tenant_id, self.workspace_id)


def kind_of(node_type: str) -> str:
    """``calcjob``, ``calcfunction``, ``workchain``, ``workfunction`` or ``process``, from a node type string."""
    return next((kind for prefix, kind in _KINDS.items() if node_type.startswith(prefix)), 'process')


def remembered_structure_id(entry: Any, instance: str, node_uuid: str) -> str | None:
    """The structure id of a remembered projection, if it went to this very store instance and was written on the
    node ``node_uuid`` itself (``clone()`` copies extras: see :mod:`aiida_structstore.tracking`)."""
    if (
        isinstance(entry, Mapping)
        and entry.get('instance') == instance
        and entry.get('node_uuid') == node_uuid
        and isinstance(entry.get('structure_id'), str)
    ):
        return entry['structure_id']
    return None


def batched(ids: Iterable[int], size: int = IN_CHUNK) -> Iterable[list[int]]:
    """``ids`` in lists of at most ``size``."""
    items = list(ids)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _process_rows(pks: list[int], extra: str) -> list[list[Any]]:
    query = orm.QueryBuilder().append(
        orm.ProcessNode,
        filters={'id': {'in': pks}},
        project=[
            'id',
            'uuid',
            'node_type',
            'process_type',
            'ctime',
            'mtime',
            'dbcomputer_id',
            'attributes.process_label',
            'attributes.process_state',
            'attributes.exit_status',
            'attributes.exit_message',
            'attributes.job_id',
            'attributes.scheduler_state',
            f'extras.{extra}',
        ],
    )
    return [list(row) for row in query.iterall()]


def _computers(ids: set[int]) -> dict[int, tuple[str, str, str]]:
    if not ids:
        return {}
    query = orm.QueryBuilder().append(
        orm.Computer, filters={'id': {'in': sorted(ids)}}, project=['id', 'label', 'hostname', 'scheduler_type']
    )
    return {pk: (label, hostname, scheduler) for pk, label, hostname, scheduler in query.iterall()}


def _callers(pks: list[int]) -> dict[int, str]:
    query = orm.QueryBuilder()
    query.append(orm.ProcessNode, filters={'id': {'in': pks}}, tag='process', project=['id'])
    query.append(orm.ProcessNode, with_outgoing='process', edge_filters={'type': {'in': CALL_LINKS}}, project=['uuid'])
    return {pk: uuid for pk, uuid in query.iterall()}


def _structures(pks: list[int], extra: str, instance: str, *, produced: bool) -> dict[int, set[str]]:
    """The ids of the structures each process took (or ``produced``) that are projected into the target."""
    query = orm.QueryBuilder()
    query.append(orm.ProcessNode, filters={'id': {'in': pks}}, tag='process', project=['id'])
    relation = {'with_incoming': 'process'} if produced else {'with_outgoing': 'process'}
    query.append(
        orm.StructureData,
        edge_filters={'type': {'in': OUTPUT_LINKS if produced else INPUT_LINKS}},
        filters={'extras': {'has_key': extra}},
        project=['uuid', f'extras.{extra}'],
        **relation,
    )
    found: dict[int, set[str]] = {}
    for pk, uuid, entry in query.iterall():
        structure_id = remembered_structure_id(entry, instance, uuid)
        if structure_id is not None:
            found.setdefault(pk, set()).add(structure_id)
    return found


def _limited(ids: set[str]) -> tuple[list[str], bool]:
    ordered = sorted(ids)
    return ordered[:MAX_STRUCTURE_LINKS], len(ordered) > MAX_STRUCTURE_LINKS


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


@dataclass
class Projected:
    """What :func:`project_processes` made of a batch: the contents, why others failed, and what each process's
    extra remembers of its last projection into the target (``None`` if nothing)."""

    contents: dict[int, ExecutionContent] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    remembered: dict[int, Any] = field(default_factory=dict)


def project_processes(target: ProjectionTarget, pks: list[int]) -> Projected:
    """The execution contents of the processes ``pks``; pks that are not processes are left out."""
    projected = Projected()
    contents, failures = projected.contents, projected.failures
    if not pks:
        return projected
    rows = _process_rows(pks, target.extra)
    computers = _computers({row[6] for row in rows if row[6] is not None})
    callers = _callers(pks)
    persistent = target.store.persistent
    instance = target.store.instance if persistent else ''
    taken = _structures(pks, target.extra, instance, produced=False) if persistent else {}
    made = _structures(pks, target.extra, instance, produced=True) if persistent else {}
    for row in rows:
        pk, uuid, node_type, process_type, ctime, mtime, computer_pk = row[:7]
        label, state, exit_status, exit_message, job_id, scheduler_state, entry = row[7:]
        projected.remembered[pk] = entry
        structures_in, cut_in = _limited(taken.get(pk, set()))
        structures_out, cut_out = _limited(made.get(pk, set()))
        computer = computers.get(computer_pk) if computer_pk is not None else None
        kind = kind_of(node_type)
        scheduler = None
        if computer is not None and kind == 'calcjob':
            state_name = scheduler_state.replace(' ', '_') if isinstance(scheduler_state, str) else None
            scheduler = Scheduler(type=computer[2], job_id=None if job_id is None else str(job_id), state=state_name)
        try:
            contents[pk] = ExecutionContent.build(
                key=ExecutionKey.of(target.tenant_id, target.workspace_id, uuid),
                process_label=(label or node_type.rstrip('.').rsplit('.', 1)[-1] or 'process')[:255],
                process_type=process_type[:255] if process_type else None,
                kind=kind,
                state=state or 'created',
                exit_status=exit_status if state in ('finished', 'excepted', 'killed') else None,
                exit_message=scrub_text(exit_message),
                computer=computer[0] if computer else None,
                hostname=computer[1] if computer and target.hostnames else None,
                scheduler=scheduler,
                parent_uuid=callers.get(pk),
                structures_in=structures_in,
                structures_out=structures_out,
                structures_truncated=cut_in or cut_out,
                created_at=_aware(ctime),
                modified_at=_aware(mtime),
            )
        except Exception as exc:  # one process that cannot be projected never stops the others
            failures[pk] = f'{type(exc).__name__}: {" ".join(str(exc).split())[:500]}'
    return projected
