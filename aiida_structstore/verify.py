"""Verify a workspace of the store against AiiDA: every record against the node it was projected from.

For each record (page by page): the node named by ``node_uuid`` must exist; its record, computed again exactly as a
projection computes it (with the raw file only if the record has one), must have the record's content hash; and,
unless ``check_raw`` is off, the raw input must read back with the committed size, sha256 and chunk count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import replace as dc_replace

from aiida import orm

from .exceptions import StructStoreError
from .store.base import StructureStore
from .sync import find_origins, prepare_node

__all__ = ('VerifyReport', 'verify_workspace')


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    without_node: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)


def verify_workspace(
    store: StructureStore, tenant_id: str, workspace_id: str, *, check_raw: bool = True, page_size: int = 200
) -> VerifyReport:
    report = VerifyReport()
    cursor = None
    while True:
        page = store.list(tenant_id, workspace_id, cursor=cursor, limit=page_size)
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
                    store.get_raw(item.key)
                if item.node_uuid is None:
                    report.without_node += 1
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
                report.ok += 1
        if page.next_cursor is None:
            return report
        cursor = page.next_cursor
