"""Many outputs of a calcfunction stored in two statements, with the links AiiDA would make for them.

AiiDA's engine stores a process's outputs one by one when it leaves the running state
(``Process.update_outputs``): for each, a query to check that the link label is free, a recursive query that the link
closes no cycle, the insert, and a commit. With 1,000 structures of one CIF file that took about 70 s even inside one
transaction (and minutes outside one), and a kill in the middle left part of them. Here the outputs are inserted with
the storage's public bulk interface (``StorageBackend.bulk_insert``, as ``verdi archive import`` uses it) inside one
transaction: the nodes, then their ``CREATE`` links from the running process under the labels the engine gives them
(``namespace__label``). The engine then finds those labels taken and stores nothing again.

The checks the engine would have made hold by construction: the nodes are new (no cycle, no other incoming link) and
the labels are unique (:func:`aiida_structstore.tools.files.link_label`).
"""

from __future__ import annotations

from aiida import orm

__all__ = ('store_outputs',)


def store_outputs(namespace: str, nodes: dict[str, orm.Data]) -> dict[str, orm.Data]:
    """Store ``nodes`` as the running process's outputs ``namespace.<label>``; return them stored, by label.

    Only inside a transaction that the caller opened around the whole process (as ``verdi data structstore import``
    does), so that the process and its outputs commit together. Otherwise (a calcfunction called alone, provenance
    off, nodes with repository files) the nodes are returned as they are and the engine stores them one by one.
    """
    from aiida.common import timezone
    from aiida.common.hashing import make_hash
    from aiida.common.links import LinkType
    from aiida.engine import Process
    from aiida.engine.processes.ports import PORT_NAMESPACE_SEPARATOR
    from aiida.orm.entities import EntityTypes

    process = Process.current()
    if process is None or not process.node.is_stored or not process.node.backend.in_transaction or not nodes:
        return nodes
    if any(node.is_stored or node.base.repository.list_object_names() for node in nodes.values()):
        return nodes
    storage = process.node.backend
    now, user = timezone.now(), process.node.user.pk
    rows = []
    for node in nodes.values():
        node.backend_entity.clean_values()  # as Node.store() does, before the hash
        rows.append(
            {
                'uuid': node.uuid,
                'node_type': node.node_type,
                'process_type': node.process_type,
                'label': node.label,
                'description': node.description,
                'ctime': now,
                'mtime': now,
                'user_id': user,
                'dbcomputer_id': None,
                'attributes': node.base.attributes.all,
                'extras': {node.base.caching._HASH_EXTRA_KEY: make_hash(node.base.caching.get_objects_to_hash())},
                'repository_metadata': {},
            }
        )
    pks = storage.bulk_insert(EntityTypes.NODE, rows)
    loaded = orm.QueryBuilder().append(orm.Data, filters={'id': {'in': pks}}, project=['uuid', '*']).all()
    stored = dict(loaded)
    links = [
        {
            'input_id': process.node.pk,
            'output_id': stored[node.uuid].pk,
            'label': f'{namespace}{PORT_NAMESPACE_SEPARATOR}{label}',
            'type': LinkType.CREATE.value,
        }
        for label, node in nodes.items()
    ]
    storage.bulk_insert(EntityTypes.LINK, links)
    return {label: stored[node.uuid] for label, node in nodes.items()}
