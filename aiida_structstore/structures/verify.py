"""Verify a workspace of the store against AiiDA, in both directions.

Store → AiiDA, for each record (page by page): it must name an AiiDA node (``node_uuid``) that exists in this
profile; its record, computed again exactly as a projection computes it (with the raw file only if the record has
one), must have the record's content hash; and, unless ``check_raw`` is off, the raw input must read back with the
committed size, sha256 and chunk count.

AiiDA → store, for each node that remembers a projection into this target (its ``structstore_…`` extra): the store
must hold a record under the remembered structure id. A record that is missing is reported
even when the remembered projection was into an earlier instance of the store (its data was lost since): that is
exactly the case a sync cannot see, since it trusts what the nodes remember.

For the missing records and those that differ from their nodes the report gives the commands that write them again
(``restore``): a ``sync --check-store`` (which compares with the store, not with what the nodes remember) of exactly
those nodes, with the id template and raw option they were synced with; ``project --structure-id`` for a node whose
id template is not known (projected by ``project``, or by a version that did not remember it).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace as dc_replace

from aiida import orm

from ..core.exceptions import InvalidInputError, StructStoreError
from ..core.values import validate_id
from ..store.base import Store
from ..sync import VerifyReport
from ..tracking import find_origins, iter_remembered, target_extra
from .projection import DEFAULT_ID_TEMPLATE
from .sync import prepare_node

__all__ = ('VerifyReport', 'verify_workspace')

#: Missing nodes a restore command names by pk at most; beyond, it selects them by the extra that remembers them.
RESTORE_BY_PK = 50


#: How a node was projected: its id template (``None``: not known) and whether with its raw file.
Way = tuple[str | None, bool]


class _Restore:
    """The records to write again, by how their nodes were projected, and every way seen among remembered nodes."""

    def __init__(self) -> None:
        self.nodes: dict[Way, list[tuple[int, str]]] = {}
        self.ways: set[Way] = set()

    def add(self, way: Way, pk: int, structure_id: str) -> None:
        self.nodes.setdefault(way, []).append((pk, structure_id))

    def commands(self, tenant_id: str, workspace_id: str, extra: str) -> list[str]:
        commands = []
        for way, nodes in self.nodes.items():
            alone = self.ways <= {way}
            commands.extend(_restore_commands(tenant_id, workspace_id, extra, way, nodes, alone=alone))
        return commands


def verify_workspace(
    store: Store, tenant_id: str, workspace_id: str, *, check_raw: bool = True, page_size: int = 200
) -> VerifyReport:
    report = VerifyReport()
    extra = target_extra(store.store_id, tenant_id, workspace_id)
    restore = _Restore()
    _records_against_nodes(store, tenant_id, workspace_id, report, restore, check_raw=check_raw, page_size=page_size)
    if store.persistent:
        _nodes_against_records(store, tenant_id, workspace_id, report, restore, page_size=page_size)
    report.restore = restore.commands(tenant_id, workspace_id, extra)
    return report


def _records_against_nodes(
    store: Store,
    tenant_id: str,
    workspace_id: str,
    report: VerifyReport,
    restore: _Restore,
    *,
    check_raw: bool,
    page_size: int,
) -> None:
    extra = target_extra(store.store_id, tenant_id, workspace_id)
    cursor = None
    while True:
        page = store.structures.list(tenant_id, workspace_id, cursor=cursor, limit=page_size)
        uuids = [item.node_uuid for item in page.items if item.node_uuid]
        nodes = {}
        if uuids:
            query = orm.QueryBuilder().append(
                orm.StructureData,
                filters={'uuid': {'in': uuids}},
                project=['id', 'uuid', 'attributes', f'extras.{extra}'],
            )
            nodes = {uuid: (pk, attributes, entry) for pk, uuid, attributes, entry in query.iterall()}
        origins = find_origins([pk for pk, *_ in nodes.values()]) if nodes else {}
        for item in page.items:
            report.checked += 1
            problem = None
            try:
                if item.has_raw and check_raw:
                    store.structures.get_raw(item.key)
                if item.node_uuid is None:
                    report.without_node += 1
                    problem = 'has no AiiDA node: it was not projected from AiiDA and cannot be verified'
                elif item.node_uuid not in nodes:
                    problem = f'its AiiDA node {item.node_uuid} does not exist in this profile'
                else:
                    pk, attributes, entry = nodes[item.node_uuid]
                    origin = origins.get(pk)
                    if origin is not None and not item.has_raw:
                        origin = dc_replace(origin, file_pk=None)
                    write = prepare_node(store, item.key, item.node_uuid, attributes, origin)
                    if write.content_hash != item.content_hash:
                        problem = f'differs from its AiiDA node {pk}'
                        remembered = isinstance(entry, dict) and entry.get('structure_id') == item.key.structure_id
                        way = _synced_as(entry, item.node_uuid) if remembered else (None, item.has_raw)
                        restore.add(way, pk, item.key.structure_id)
            except StructStoreError as exc:
                problem = f'{type(exc).__name__}: {exc}'
            if problem:
                report.problems.append((item.key.structure_id, problem))
            else:
                report.matching += 1
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _nodes_against_records(
    store: Store, tenant_id: str, workspace_id: str, report: VerifyReport, restore: _Restore, *, page_size: int
) -> None:
    extra = target_extra(store.store_id, tenant_id, workspace_id)
    for rows in iter_remembered(orm.StructureData, extra, page_size):
        remembered = {}
        for pk, uuid, entry in rows:
            if isinstance(entry, dict) and entry.get('node_uuid', uuid) != uuid:
                continue  # copied from another node by clone(): not a projection of this one
            structure_id = entry.get('structure_id') if isinstance(entry, dict) else None
            try:
                remembered[validate_id(structure_id, 'structure_id')] = (pk, uuid, _synced_as(entry, uuid))
            except InvalidInputError:
                report.problems.append((str(structure_id), f'node {pk} ({uuid}) remembers an invalid structure id'))
        report.remembered += len(remembered)
        found = store.structures.content_hashes(tenant_id, workspace_id, list(remembered)) if remembered else {}
        for structure_id, (pk, uuid, way) in remembered.items():
            restore.ways.add(way)
            if structure_id not in found:
                report.missing += 1
                restore.add(way, pk, structure_id)
                report.problems.append((structure_id, f'missing from the store: node {pk} ({uuid}) was projected here'))


def _synced_as(entry: dict, uuid: str) -> Way:
    """How a node was projected: its id template (``None``: not known) and whether with its raw file."""
    template = entry.get('id_template')
    if not isinstance(template, str):
        template = DEFAULT_ID_TEMPLATE if entry.get('structure_id') == uuid else None
    return template, entry.get('with_raw') is not False


def _restore_commands(
    tenant_id: str,
    workspace_id: str,
    extra: str,
    way: Way,
    nodes: list[tuple[int, str]],
    *,
    alone: bool,
) -> list[str]:
    """The commands that write the records of ``nodes`` (``(pk, structure_id)``, projected the same ``way``) again.
    ``alone``: every node remembered in this target was projected this way, so the extra selects them all."""
    template, with_raw = way
    target = ['-t', tenant_id, '-w', workspace_id] + ([] if with_raw else ['--no-raw'])
    if template is None:
        return [
            shlex.join(['verdi', 'data', 'structstore', 'project', str(pk), *target, '--structure-id', structure_id])
            for pk, structure_id in nodes
        ]
    command = ['verdi', 'data', 'structstore', 'sync', *target, '--check-store']
    if template != DEFAULT_ID_TEMPLATE:
        command += ['--id-template', template]
    if len(nodes) > RESTORE_BY_PK and alone:
        command += ['--filters', json.dumps({'extras': {'has_key': extra}}, separators=(',', ':'))]
    else:
        command += ['-N', *(str(pk) for pk, _ in nodes)]
    return [shlex.join(command)]
