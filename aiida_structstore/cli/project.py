"""``verdi data structstore project`` and ``sync``: structures → the store."""

from __future__ import annotations

import sys

import click
from aiida.cmdline.utils import decorators, echo

from . import cmd_structstore
from .params import options
from .params.types import IdentifierType, JsonType
from .utils import store_errors, table


def project_nodes(
    structures, tenant_id, workspace_id, structure_id, *, include_raw: bool, replace_owner: bool = False
) -> None:
    """Run the ``structstore.project_structure`` calcfunction for each structure and print the receipts."""
    from ..calculations.functions.project_structure import project_structure, projection_inputs
    from ..core.exceptions import OwnershipError
    from ..core.structures import StructureKey
    from ..store.structures import ownership_message
    from ..structures.projection import default_structure_id
    from .utils import opened_store, quiet_store_tracebacks

    if not replace_owner:
        # Refuse before any provenance is created; the calcfunction checks again when it writes.
        with opened_store() as store:
            for structure in structures:
                key = StructureKey.of(tenant_id, workspace_id, structure_id or default_structure_id(structure.uuid))
                existing = store.structures.find(key)
                if existing is not None and existing.node_uuid != structure.uuid:
                    raise OwnershipError(ownership_message(key, structure.uuid, existing.node_uuid))
    rows = []
    for structure in structures:
        inputs = projection_inputs(
            structure,
            tenant_id,
            workspace_id,
            structure_id=structure_id,
            include_raw=include_raw,
            replace_owner=replace_owner,
        )
        with quiet_store_tracebacks():
            results, process = project_structure.run_get_node(**inputs)
        receipt = results['receipt'].get_dict()
        rows.append(
            [
                structure.pk,
                receipt['structure_id'],
                receipt['status'],
                receipt['chunk_count'],
                receipt['content_hash'][:12],
                process.pk,
            ]
        )
    echo.echo(table(rows, ['pk', 'structure id', 'status', 'raw chunks', 'content hash', 'process']))


@cmd_structstore.command('project')
@options.STRUCTURES()
@options.TENANT()
@options.WORKSPACE()
@click.option(
    '--structure-id',
    type=IdentifierType('structure_id'),
    help='Structure id (only with one node; default: the node UUID).',
)
@options.NO_RAW()
@click.option(
    '--replace',
    is_flag=True,
    help='Replace a record of another node under the same structure id (default: refuse, naming both nodes).',
)
@decorators.with_dbenv()
@store_errors
def cmd_project(structures, tenant_id, workspace_id, structure_id, no_raw, replace):
    """Project STRUCTURES (pks, UUIDs or labels of StructureData) into the store, each with a provenance record."""
    if structure_id and len(structures) > 1:
        raise click.UsageError('--structure-id can only be used with a single structure')
    project_nodes(structures, tenant_id, workspace_id, structure_id, include_raw=not no_raw, replace_owner=replace)


def _submit_parallel_sync(group, nodes, filters, tenant_id, workspace_id, id_template, no_raw, batch_size, parts):
    """Submit the work chain ``structstore.sync`` (see :mod:`aiida_structstore.workflows.sync`)."""
    from aiida import orm
    from aiida.engine import submit
    from aiida.engine.daemon.client import get_daemon_client

    from ..workflows.sync import SyncWorkChain

    if nodes:
        raise click.UsageError('--parts works on a group or on filters, not on a list of nodes')
    if not get_daemon_client().is_daemon_running:
        echo.echo_critical('--parts needs the daemon: start it with `verdi daemon start N` (N workers)')
    inputs = {
        'tenant_id': orm.Str(tenant_id),
        'workspace_id': orm.Str(workspace_id),
        'parts': orm.Int(parts),
        'id_template': orm.Str(id_template),
        'include_raw': orm.Bool(not no_raw),
        'batch_size': orm.Int(batch_size),
    }
    if group is not None:
        inputs['group'] = orm.Str(group.label)
    if filters:
        inputs['filters'] = orm.Dict(filters)
    node = submit(SyncWorkChain, **inputs)
    echo.echo_success(f'submitted SyncWorkChain<{node.pk}> in {parts} slices; follow it: verdi process show {node.pk}')


@cmd_structstore.command('sync')
@options.GROUP(help='Sync the structures of this group.')
@options.STRUCTURE_NODES(help='Sync these structures (pks, UUIDs or labels).')
@click.option('--filters', type=JsonType(), help='QueryBuilder filters on the StructureData, as JSON.')
@options.TENANT()
@options.WORKSPACE()
@options.ID_TEMPLATE()
@options.NO_RAW()
@options.DRY_RUN()
@click.option(
    '--check-store', is_flag=True, help='Compare against the hashes in the store, not the ones remembered on the nodes.'
)
@click.option(
    '--batch-size',
    type=click.IntRange(1, 5000),
    default=1000,
    show_default=True,
    help='Nodes per batch (one page of the query, one extras update).',
)
@click.option(
    '--parts',
    type=click.IntRange(1, 1000),
    help='Submit the sync to the daemon as this many slices that the daemon workers run in parallel '
    '(work chain structstore.sync); prints its pk and returns.',
)
@decorators.with_dbenv()
@store_errors
def cmd_sync(
    group, nodes, filters, tenant_id, workspace_id, id_template, no_raw, dry_run, check_store, batch_size, parts
):
    """Project every selected StructureData (all, a group, nodes, filters), skipping unchanged ones.

    Resumable: run it again after an interruption. Exit code 1 if any structure failed.
    """
    from aiida.common.progress_reporter import set_progress_bar_tqdm

    if parts is not None:
        if dry_run or check_store:
            raise click.UsageError('--dry-run and --check-store cannot be combined with --parts')
        _submit_parallel_sync(group, nodes, filters, tenant_id, workspace_id, id_template, no_raw, batch_size, parts)
        return

    from ..structures.sync import sync_structures
    from .utils import fewer_collections, opened_store

    # On a terminal: the bar ends at its final count, on a line of its own, before the table. Elsewhere (a log, a
    # pipe) no bar: its carriage returns would leave `0/4` in front of the table's header.
    set_progress_bar_tqdm(leave=True)
    with opened_store() as store, fewer_collections():
        report = sync_structures(
            store,
            tenant_id=tenant_id,
            workspace_id=workspace_id,
            group=group,
            nodes=[node.pk for node in nodes] if nodes else None,
            filters=filters,
            id_template=id_template,
            batch_size=batch_size,
            include_raw=not no_raw,
            check_store=check_store,
            dry_run=dry_run,
            progress=sys.stderr.isatty(),
        )
    if report.selected == 0:
        echo.echo_critical('no structures selected: nothing to sync (check -G, -N and --filters)')
    for pk, note in report.notes:
        echo.echo_report(f'{pk}: {note}')
    for pk, message in report.failures:
        echo.echo_error(f'node {pk}: {message}')
    if report.aborted:
        echo.echo_error(report.aborted)
    verb = 'would be ' if dry_run else ''
    row = [report.selected, report.new, report.updated, report.unchanged, report.failed, f'{report.seconds:.2f}']
    headers = ['selected', f'{verb}new', f'{verb}updated', 'unchanged', 'failed', 'seconds']
    if report.lost:  # written, then lost with the store's data: not in new or updated
        row.insert(-1, report.lost)
        headers.insert(-1, 'lost by the store')
    echo.echo(table([row], headers))
    if report.aborted:
        echo.echo_critical('the sync was aborted')
    if not report.ok:
        echo.echo_critical(f'{report.failed} structures failed')
    echo.echo_success(f'{"dry run of " if dry_run else ""}sync to {tenant_id}/{workspace_id} done')
