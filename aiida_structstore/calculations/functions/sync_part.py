"""``structstore.sync_part``: sync one slice of a selection of structures into the store, as one process.

The parallel sync (work chain ``structstore.sync``) splits a selection into slices of consecutive pks and submits one
``sync_part`` per slice; the daemon workers run them at the same time, on one machine or on several that share the
profile's PostgreSQL and RabbitMQ. Each slice is an ordinary incremental sync
(:func:`aiida_structstore.structures.sync.sync_structures`) of the structures whose pk lies in ``[pk_min, pk_max]``: the
nodes of different slices are disjoint, and each node's projection is remembered in its own extra by an atomic merge, so
the slices never step on each other.

Inputs: ``tenant_id``, ``workspace_id`` (``Str``), ``selection`` (``Dict``: ``pk_min``, ``pk_max`` (none for the
last slice), and optionally ``group`` (a group pk) and ``filters``), ``options`` (``Dict``: ``id_template``,
``include_raw``, ``batch_size``).
Output: ``report`` (``Dict``: selected, new, updated, unchanged, failed, the first failures, seconds).

Writing to the store is a side effect, so this process is never taken from AiiDA's cache.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import Process, calcfunction


@calcfunction
def sync_part(tenant_id: orm.Str, workspace_id: orm.Str, selection: orm.Dict, options: orm.Dict) -> dict:
    """Sync the structures of one pk slice of a selection; return the sync's report."""
    from ...store import open_store
    from ...structures.sync import sync_structures

    process = Process.current()
    if process is not None:
        process.node.base.caching.is_valid_cache = False
    chosen = selection.get_dict()
    settings = options.get_dict()
    pk_range = [{'id': {'>=': int(chosen['pk_min'])}}]
    if chosen.get('pk_max') is not None:
        pk_range.append({'id': {'<=': int(chosen['pk_max'])}})
    filters = {'and': [chosen['filters'], *pk_range] if chosen.get('filters') else pk_range}
    group = orm.load_group(chosen['group']) if chosen.get('group') is not None else None
    with open_store() as store:
        report = sync_structures(
            store,
            tenant_id=tenant_id.value,
            workspace_id=workspace_id.value,
            group=group,
            filters=filters,
            progress=False,
            **settings,
        )
    summary = report.as_dict()
    summary['failures'] = [[pk, message] for pk, message in report.failures]
    return {'report': orm.Dict(summary)}
