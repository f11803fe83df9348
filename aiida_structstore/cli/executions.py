"""``verdi data structstore executions``: project the state of AiiDA processes beside the structures, follow it live,
and read it back from the store."""

from __future__ import annotations

import click
from aiida.cmdline.params import options as aiida_options
from aiida.cmdline.params import types as aiida_types
from aiida.cmdline.utils import decorators, echo

from . import cmd_structstore
from .params import options
from .params.types import IdentifierType
from .utils import echo_verify, opened_store, store_errors, store_settings, table

PROCESS_NODES = aiida_options.NODES.clone(
    type=aiida_types.ProcessParamType(), help='Processes by pk, UUID or label (with all they called).'
)
LINKED = click.option(
    '--linked/--no-linked',
    default=None,
    help='Select the processes that took or produced a structure synced into the workspace (with all they called). '
    'The default when neither -G nor -N is given.',
)


def selection_options(command):
    """The options that select processes and the target, shared by ``sync`` and ``watch``."""
    for option in reversed(
        (
            options.GROUP(help='The processes of this group (with all they called).'),
            PROCESS_NODES(),
            LINKED,
            options.TENANT(),
            options.WORKSPACE(),
        )
    ):
        command = option(command)
    return command


def _selection(group, nodes, linked) -> dict:
    if linked is None:
        linked = group is None and not nodes
    if group is None and not nodes and not linked:
        raise click.UsageError('select processes: -G/--group, -N/--nodes or --linked')
    return {'group': group, 'processes': [node.pk for node in nodes or ()], 'linked': linked}


@cmd_structstore.group('executions')
def cmd_executions():
    """The state of AiiDA processes beside the structures: what the application shows about workflows."""


@cmd_executions.command('sync')
@selection_options
@click.option(
    '--all',
    'everything',
    is_flag=True,
    help='Project every selected process; by default only those modified (or linked to structures synced) since '
    'the newest record of the workspace, less a minute.',
)
@click.option('--batch-size', type=click.IntRange(1, 5000), default=500, show_default=True, help='Processes per batch.')
@click.option(
    '--check-store', is_flag=True, help='Compare against the hashes in the store, not the ones remembered on the nodes.'
)
@options.DRY_RUN(help='Count what would be written; write nothing.')
@decorators.with_dbenv()
@store_errors
def cmd_sync(group, nodes, linked, tenant_id, workspace_id, everything, batch_size, check_store, dry_run):
    """Project the selected processes into the store, writing only the records that changed.

    Exit code 1 if any process failed.
    """
    from ..executions.sync import sync_executions

    selection = _selection(group, nodes, linked)
    settings = store_settings()
    with opened_store(settings) as store:
        report = sync_executions(
            store,
            tenant_id=tenant_id,
            workspace_id=workspace_id,
            since=None if everything else 'auto',
            batch_size=batch_size,
            hostnames=settings.execution_hostnames,
            check_store=check_store,
            dry_run=dry_run,
            **selection,
        )
    for pk, message in report.failures:
        echo.echo_error(f'process {pk}: {message}')
    if report.aborted:
        echo.echo_error(report.aborted)
    since = report.since.isoformat(timespec='seconds') if report.since else 'the beginning'
    verb = 'would be ' if dry_run else ''
    row = [
        report.selected,
        report.considered,
        report.new,
        report.updated,
        report.unchanged,
        report.stale,
        report.failed,
        f'{report.seconds:.2f}',
    ]
    headers = [
        'selected',
        f'changed since {since}',
        f'{verb}new',
        f'{verb}updated',
        'unchanged',
        'stale',
        'failed',
        'seconds',
    ]
    if report.lost:  # written, then lost with the store's data: not in new or updated
        row.insert(-1, report.lost)
        headers.insert(-1, 'lost by the store')
    echo.echo(table([row], headers))
    if report.aborted:
        echo.echo_critical('the sync was aborted')
    if not report.ok:
        echo.echo_critical(f'{report.failed} processes failed')
    if dry_run:
        echo.echo_success(f'dry run of the executions sync to {tenant_id}/{workspace_id} done: nothing was written')
        return
    echo.echo_success(f'executions of {tenant_id}/{workspace_id} are up to date')


@cmd_executions.command('watch')
@selection_options
@click.option(
    '--catch-up-interval',
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    help='Seconds between catch-ups from modification times (besides those after a broker reconnection).',
)
@decorators.with_dbenv()
@store_errors
def cmd_watch(group, nodes, linked, tenant_id, workspace_id, catch_up_interval):
    """Follow process state changes as they happen (AiiDA's broadcasts over RabbitMQ) and push their records.

    Runs until interrupted (Ctrl-C or SIGTERM). Start it where the daemon runs, with the store settings.
    """
    import signal
    import threading

    from aiida.manage import get_manager

    from ..executions.watch import ExecutionWatcher

    if get_manager().get_profile().process_control_backend is None:
        echo.echo_critical('the profile has no broker: the live path needs RabbitMQ (`verdi status`)')
    selection = _selection(group, nodes, linked)
    stop = threading.Event()

    def report(push) -> None:
        if push is not None and (push.written or push.failed):
            echo.echo_report(f'{push.new} new, {push.updated} updated, {push.failed} failed')

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    settings = store_settings()
    with opened_store(settings) as store:
        watcher = ExecutionWatcher(
            store,
            tenant_id=tenant_id,
            workspace_id=workspace_id,
            catch_up_interval=catch_up_interval,
            hostnames=settings.execution_hostnames,
            on_push=report,
            **selection,
        )
        with watcher:
            echo.echo_report(f'watching {watcher.selection.describe()} → {tenant_id}/{workspace_id} (Ctrl-C stops)')
            stop.wait()
    stats = watcher.stats
    echo.echo_success(f'stopped: {stats.events} events, {stats.pushes} pushes, {stats.written} records written')


@cmd_executions.command('verify')
@options.TENANT()
@options.WORKSPACE()
@decorators.with_dbenv()
@store_errors
def cmd_verify(tenant_id, workspace_id):
    """Check the execution records against AiiDA, both ways: each record against its process (content hash), and
    each process remembered as projected here against the store.

    Exit code 1 if a record's process is missing or differs (sync again), or a projected process's record is missing
    from the store.
    """
    from ..executions.verify import verify_executions

    settings = store_settings()
    with opened_store(settings) as store:
        report = verify_executions(store, tenant_id, workspace_id, hostnames=settings.execution_hostnames)
    echo_verify(report, f'execution records of {tenant_id}/{workspace_id}', 'process', 'processes')


@cmd_executions.command('list')
@options.TENANT()
@options.WORKSPACE()
@click.option('-s', '--structure', 'structure_id', type=IdentifierType('structure_id'), help='Of this structure.')
@click.option('-l', '--limit', type=click.IntRange(1, 200), default=50, show_default=True, help='Records to show.')
@store_errors
def cmd_list(tenant_id, workspace_id, structure_id, limit):
    """List execution records of a workspace (or of one structure), most recently modified first."""
    with opened_store() as store:
        page = store.executions.list(tenant_id, workspace_id, structure_id=structure_id, limit=limit)
    rows = [
        [
            r.key.process_uuid,
            r.process_label,
            r.state,
            '' if r.exit_status is None else r.exit_status,
            (r.scheduler.job_id or '') if r.scheduler else '',
            r.computer or '',
            ' '.join(r.roles(structure_id)) if structure_id else len(r.structures_in) + len(r.structures_out),
            r.modified_at.isoformat(timespec='seconds'),
        ]
        for r in page.items
    ]
    what = 'role' if structure_id else 'structures'
    echo.echo(table(rows, ['process', 'label', 'state', 'exit', 'job id', 'computer', what, 'modified']))
    if page.next_cursor is not None:
        echo.echo_report(f'showing the most recent {limit}')
    elif not rows:
        echo.echo_report(
            f'no execution records in {tenant_id}/{workspace_id}' + (f' for {structure_id}' * bool(structure_id))
        )


@cmd_executions.command('show')
@click.argument('process_uuid')
@options.TENANT()
@options.WORKSPACE()
@store_errors
def cmd_show(process_uuid, tenant_id, workspace_id):
    """Show the execution record of one process (by UUID) from the store."""
    from ..core.executions import ExecutionKey

    with opened_store() as store:
        record = store.executions.get(ExecutionKey.of(tenant_id, workspace_id, process_uuid))
    scheduler = record.scheduler
    rows = [
        ['process', f'{record.process_label} ({record.kind}, {record.process_type or "no type"})'],
        ['state', record.state],
        ['exit status', '' if record.exit_status is None else record.exit_status],
        ['exit message', record.exit_message or ''],
        ['computer', record.computer or ''],
        [
            'scheduler',
            f'{scheduler.type} job {scheduler.job_id or "-"} ({scheduler.state or "-"})' if scheduler else '',
        ],
        ['called by', record.parent_uuid or ''],
        ['took', ' '.join(record.structures_in)],
        ['produced', ' '.join(record.structures_out)],
        ['created', record.created_at.isoformat(timespec='seconds')],
        ['modified', record.modified_at.isoformat(timespec='seconds')],
    ]
    echo.echo(table(rows, ['field', 'value']))
