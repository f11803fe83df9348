"""``verdi data structstore show``, ``list`` and ``verify``: read back from the store (never from AiiDA, except
``verify``, which compares the two)."""

from __future__ import annotations

import sys

import click
from aiida.cmdline.utils import decorators, echo

from . import cmd_structstore
from .params import options
from .params.types import IdentifierType
from .utils import echo_verify, opened_store, store_errors, table


@cmd_structstore.command('show')
@click.argument('structure_id', type=IdentifierType('structure_id'))
@options.TENANT()
@options.WORKSPACE()
@options.FORMAT()
@store_errors
def cmd_show(structure_id, tenant_id, workspace_id, output_format):
    """Show one record of the store: summary, CIF, JSON (the whole record) or the raw input."""
    from ..core.structures import StructureKey

    key = StructureKey.of(tenant_id, workspace_id, structure_id)
    with opened_store() as store:
        if output_format == 'raw':
            raw = store.structures.get_raw(key)
            if raw is None:
                echo.echo_critical(f'{key} has no raw input')
            sys.stdout.write(raw)
            sys.stdout.flush()
            return
        record = store.structures.get(key)
    if output_format == 'cif':
        if record.cif is None:
            echo.echo_critical(f'{key} has no CIF (its cell has no volume)')
        sys.stdout.write(record.cif)
    elif output_format == 'json':
        echo.echo(record.model_dump_json(indent=2))
    else:
        summary = record.summary
        rows = [
            ['key', str(record.key)],
            ['source', f'{record.source.kind}' + (f' ({record.source.filename})' if record.source.filename else '')],
            ['formula', summary.get('chemical_formula_reduced', '')],
            ['sites', summary.get('nsites', '')],
            ['elements', ' '.join(summary.get('elements', []))],
            ['kinds', ' '.join(s['name'] for s in (record.structure or {}).get('species', []))],
            ['periodic dimensions', summary.get('nperiodic_dimensions', '')],
            ['AiiDA node', record.node_uuid or ''],
            ['parameters', ', '.join(sorted(record.params)) if record.params else ''],
            ['raw input', f'{record.raw_size} bytes in {record.chunk_count} chunks' if record.has_raw else 'none'],
            ['content hash', record.content_hash],
            ['created', record.created_at.isoformat(timespec='seconds')],
            ['updated', record.updated_at.isoformat(timespec='seconds')],
        ]
        echo.echo(table(rows, ['field', 'value']))


@cmd_structstore.command('list')
@options.TENANT()
@options.WORKSPACE()
@click.option('-l', '--limit', type=click.IntRange(1, 200), default=50, show_default=True, help='Records per page.')
@click.option('-a', '--all', 'all_pages', is_flag=True, help='List every record, not just the first page.')
@store_errors
def cmd_list(tenant_id, workspace_id, limit, all_pages):
    """List the records of a workspace, most recently updated first."""
    with opened_store() as store:
        if all_pages:
            items = list(store.structures.iter_workspace(tenant_id, workspace_id, page_size=limit))
            more = False
        else:
            page = store.structures.list(tenant_id, workspace_id, limit=limit)
            items, more = list(page.items), page.next_cursor is not None
    rows = [
        [
            i.key.structure_id,
            i.summary.get('chemical_formula_reduced', ''),
            i.summary.get('nsites', ''),
            i.source.kind,
            i.source.filename or '',
            i.raw_size if i.has_raw else '',
            i.updated_at.isoformat(timespec='seconds'),
        ]
        for i in items
    ]
    echo.echo(table(rows, ['structure id', 'formula', 'sites', 'source', 'file', 'raw bytes', 'updated']))
    if more:
        echo.echo_report(f'showing the first {limit}; use --all for every record')
    elif not items:
        echo.echo_report(f'no records in {tenant_id}/{workspace_id}')


@cmd_structstore.command('verify')
@options.TENANT()
@options.WORKSPACE()
@click.option('--no-raw', is_flag=True, help='Do not read back and check the raw input of each record.')
@decorators.with_dbenv()
@store_errors
def cmd_verify(tenant_id, workspace_id, no_raw):
    """Check the store against AiiDA, both ways: each record against its node (content hash, chunk integrity),
    and each node remembered as projected here against the store.

    Exit code 1 if any record has no node or differs from it or fails the integrity check, or if a projected node's
    record is missing from the store.
    """
    from ..structures.verify import verify_workspace

    with opened_store() as store:
        report = verify_workspace(store, tenant_id, workspace_id, check_raw=not no_raw)
    echo_verify(report, f'records of {tenant_id}/{workspace_id}', 'node', 'nodes')
