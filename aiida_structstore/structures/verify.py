"""Verify a workspace of the store against AiiDA, in both directions.

Store → AiiDA, for each record (page by page): it must name an AiiDA node (``node_uuid``) that exists in this
profile; its record, computed again exactly as a projection computes it (with the raw file only if the record has
one), must have the record's content hash; and, unless ``check_raw`` is off, the raw input must read back with the
committed size, sha256 and chunk count.

AiiDA → store, for each node that remembers a projection into this target (its ``structstore_…`` extra): the store
must hold a record under the remembered structure id. A record that is missing is reported
even when the remembered projection was into an earlier instance of the store (its data was lost since): that is
exactly the case a sync cannot see, since it trusts what the nodes remember.
"""

from __future__ import annotations

from dataclasses import replace as dc_replace

from aiida import orm

from ..core.exceptions import InvalidInputError, StructStoreError
from ..core.values import validate_id
from ..store.base import Store
from ..sync import VerifyReport
from ..tracking import find_origins, iter_remembered, target_extra
from .sync import prepare_node

__all__ = ('VerifyReport', 'verify_workspace')


def verify_workspace(
    store: Store, tenant_id: str, workspace_id: str, *, check_raw: bool = True, page_size: int = 200
) -> VerifyReport:
    report = VerifyReport()
    _records_against_nodes(store, tenant_id, workspace_id, report, check_raw=check_raw, page_size=page_size)
    if store.persistent:
        _nodes_against_records(store, tenant_id, workspace_id, report, page_size=page_size)
    return report


def _records_against_nodes(
    store: Store, tenant_id: str, workspace_id: str, report: VerifyReport, *, check_raw: bool, page_size: int
) -> None:
    cursor = None
    while True:
        page = store.structures.list(tenant_id, workspace_id, cursor=cursor, limit=page_size)
        uuids = [item.node_uuid for item in page.items if item.node_uuid]
        nodes = {}
        if uuids:
            query = orm.QueryBuilder().append(
                orm.StructureData, filters={'uuid': {'in': uuids}}, project=['id', 'uuid', 'attributes']
            )
            nodes = {uuid: (pk, attributes) for pk, uuid, attributes in query.iterall()}
        origins = find_origins([pk for pk, _ in nodes.values()]) if nodes else {}
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
                    pk, attributes = nodes[item.node_uuid]
                    origin = origins.get(pk)
                    if origin is not None and not item.has_raw:
                        origin = dc_replace(origin, file_pk=None)
                    write = prepare_node(store, item.key, item.node_uuid, attributes, origin)
                    if write.content_hash != item.content_hash:
                        problem = f'differs from its AiiDA node {pk} (project or sync it again)'
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
    store: Store, tenant_id: str, workspace_id: str, report: VerifyReport, *, page_size: int
) -> None:
    extra = target_extra(store.store_id, tenant_id, workspace_id)
    for rows in iter_remembered(orm.StructureData, extra, page_size):
        remembered = {}
        for pk, uuid, entry in rows:
            if isinstance(entry, dict) and entry.get('node_uuid', uuid) != uuid:
                continue  # copied from another node by clone(): not a projection of this one
            structure_id = entry.get('structure_id') if isinstance(entry, dict) else None
            try:
                remembered[validate_id(structure_id, 'structure_id')] = (pk, uuid)
            except InvalidInputError:
                report.problems.append((str(structure_id), f'node {pk} ({uuid}) remembers an invalid structure id'))
        report.remembered += len(remembered)
        found = store.structures.content_hashes(tenant_id, workspace_id, list(remembered)) if remembered else {}
        for structure_id, (pk, uuid) in remembered.items():
            if structure_id not in found:
                report.missing += 1
                report.problems.append(
                    (structure_id, f'missing from the store: node {pk} ({uuid}) was projected here (sync it again)')
                )
