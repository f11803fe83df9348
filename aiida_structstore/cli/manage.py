"""``verdi data structstore delete`` and ``gc``: remove records and leftover chunks from the store."""

from __future__ import annotations

import click
from aiida.cmdline.utils import echo

from . import cmd_structstore
from .params import options
from .params.types import IdentifierType
from .utils import opened_store, store_errors


@cmd_structstore.command('delete')
@click.argument('structure_ids', nargs=-1, required=True, type=IdentifierType('structure_id'))
@options.TENANT()
@options.WORKSPACE()
@options.FORCE()
@store_errors
def cmd_delete(structure_ids, tenant_id, workspace_id, force):
    """Delete records (and all their chunks) from the store. AiiDA is not touched."""
    from ..core.structures import StructureKey

    if not force:
        click.confirm(f'Delete {len(structure_ids)} records from {tenant_id}/{workspace_id}?', abort=True)
    missing = 0
    with opened_store() as store:
        for structure_id in structure_ids:
            if store.structures.delete(StructureKey.of(tenant_id, workspace_id, structure_id)):
                echo.echo_report(f'deleted {structure_id}')
            else:
                missing += 1
                echo.echo_warning(f'no record {structure_id}')
    echo.echo_success(f'deleted {len(structure_ids) - missing} records')


@cmd_structstore.command('gc')
@options.TENANT()
@options.WORKSPACE()
@click.option(
    '--older-than',
    type=click.FloatRange(min=0),
    default=3600,
    show_default=True,
    help='Collect abandoned uploads not touched for this many seconds (younger ones may be in progress).',
)
@store_errors
def cmd_gc(tenant_id, workspace_id, older_than):
    """Delete chunks that no record references (left by interrupted or replaced writes)."""
    with opened_store() as store:
        deleted = store.structures.collect_garbage(tenant_id, workspace_id, older_than_seconds=older_than)
    echo.echo_success(f'collected {deleted} chunks in {tenant_id}/{workspace_id}')
