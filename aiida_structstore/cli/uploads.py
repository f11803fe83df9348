"""``verdi data structstore uploads``: import the files users uploaded through the API into AiiDA, with provenance."""

from __future__ import annotations

import click
from aiida.cmdline.utils import decorators, echo

from . import cmd_structstore
from .params import options
from .utils import store_errors, table


def upload_options(command):
    """The options shared by ``uploads import`` and ``uploads watch``."""
    for option in reversed(
        (
            options.TENANT(required=False, help='Only the uploads of this tenant (default: all).'),
            options.WORKSPACE(required=False, help='Only the uploads of this workspace (default: all of the tenant).'),
            click.option(
                '--group',
                'group_label',
                help='Group the imported structures are added to (created if missing) '
                '[default: STRUCTURE_STORE_UPLOADS_GROUP, else structstore/uploads].',
            ),
            click.option(
                '--lease',
                type=click.FloatRange(min=1, max=86400),
                help='Seconds a claim lasts without renewal; renewed while importing, so a crashed importer '
                'leaves the upload to another after this long [default: STRUCTURE_STORE_UPLOADS_LEASE, else 120].',
            ),
            click.option(
                '--workchain',
                help='Submit this work chain (entry point or module:Class) to the daemon on each imported structure '
                '[default: STRUCTURE_STORE_UPLOADS_WORKCHAIN, else none].',
            ),
            click.option(
                '--workchain-code',
                help='Code label for a work chain built from a protocol '
                '[default: STRUCTURE_STORE_UPLOADS_WORKCHAIN_CODE].',
            ),
            click.option(
                '--workchain-protocol',
                help='Protocol of the work chain [default: STRUCTURE_STORE_UPLOADS_WORKCHAIN_PROTOCOL, else fast].',
            ),
        )
    ):
        command = option(command)
    return command


def _importer(store, tenant_id, workspace_id, group_label, lease, workchain, workchain_code, workchain_protocol):
    from ..uploads.importer import UploadImporter
    from ..uploads.settings import read_upload_settings
    from ..uploads.watch import claimer_id

    if workspace_id and not tenant_id:
        raise click.UsageError('-w/--workspace needs -t/--tenant')
    overrides = {
        name: value
        for name, value in (
            ('group', group_label),
            ('lease', lease),
            ('workchain', workchain),
            ('workchain_code', workchain_code),
            ('workchain_protocol', workchain_protocol),
        )
        if value is not None
    }
    settings = read_upload_settings(**overrides)
    hook = None
    if settings.workchain:
        from aiida.engine.daemon.client import get_daemon_client

        from ..uploads.workchain import WorkchainHook

        hook = WorkchainHook(
            settings.workchain,
            code=settings.workchain_code,
            protocol=settings.workchain_protocol,
            overrides=settings.workchain_overrides,
        )
        if not get_daemon_client().is_daemon_running:
            echo.echo_warning(f'the daemon is not running: the {settings.workchain} work chains wait for it')
    importer = UploadImporter(
        store,
        claimer=claimer_id(),
        lease_seconds=settings.lease,
        group_label=settings.group,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
        workchain=hook,
    )
    return importer, settings


def _describe(tenant_id, workspace_id) -> str:
    return f'{tenant_id}/{workspace_id}' if workspace_id else (f'{tenant_id}/*' if tenant_id else 'all workspaces')


def _line(outcome) -> str:
    key = outcome.key
    where = f'{key.tenant_id}/{key.workspace_id}/{key.upload_id} ({outcome.filename})'
    if outcome.status == 'imported':
        again = ', found imported earlier' if outcome.found else ''
        chain = f', work chain {outcome.workchain_pk}' if outcome.workchain_pk else ''
        return f'{where}: imported as {outcome.structure_id} (StructureData {outcome.node_pk}{again}{chain})'
    return f'{where}: {outcome.status}: {outcome.message}'


def _signals(loop):
    import signal

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda *_: loop.request_stop())
    return previous


@cmd_structstore.group('uploads')
def cmd_uploads():
    """Files users uploaded through the API: import them into AiiDA with provenance, into the upload's workspace."""


@cmd_uploads.command('import')
@upload_options
@decorators.with_dbenv()
@store_errors
def cmd_import(tenant_id, workspace_id, group_label, lease, workchain, workchain_code, workchain_protocol):
    """Import every pending upload (claimed one by one, so several importers can run), print a table, and stop.

    Each upload is imported in one database transaction with the existing import calcfunctions (the uploaded bytes
    as the file node), projected into its workspace, and marked imported or failed with its parse error. Exit code 1
    if an upload could not be worked on (the store or the database failed; it is tried again after the lease).
    """
    import signal

    from ..uploads.watch import UploadLoop
    from .utils import opened_store, quiet_store_tracebacks

    with opened_store() as store:
        importer, _ = _importer(
            store, tenant_id, workspace_id, group_label, lease, workchain, workchain_code, workchain_protocol
        )
        loop = UploadLoop(importer, on_outcome=lambda outcome: echo.echo_report(_line(outcome)))
        previous = _signals(loop)
        try:
            with quiet_store_tracebacks():  # a parse error is one line of the report; the process log keeps the rest
                outcomes = loop.drain()
        except KeyboardInterrupt:
            echo.echo_critical(
                'interrupted: the upload being imported was rolled back; it is claimed again after the lease'
            )
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    rows = [
        [
            f'{o.key.tenant_id}/{o.key.workspace_id}',
            o.key.upload_id,
            o.filename,
            o.status,
            o.structure_id or '',
            o.node_pk or '',
            (o.message or '')[:80],
        ]
        for o in outcomes
    ]
    if rows:
        echo.echo(table(rows, ['workspace', 'upload', 'file', 'status', 'structure id', 'pk', 'message']))
    counts = loop.stats.counts
    summary = ', '.join(f'{count} {status}' for status, count in counts.items() if count)
    if loop.stop.is_set():
        echo.echo_report('stopped by a signal after the upload in progress')
    if counts.get('error'):
        echo.echo_critical(f'{summary}: uploads in error are tried again after the lease')
    echo.echo_success(f'{summary or "no pending uploads"} in {_describe(tenant_id, workspace_id)}')


@cmd_uploads.command('watch')
@upload_options
@click.option(
    '--interval',
    type=click.FloatRange(min=0.05, max=3600),
    help='Seconds between looks for pending uploads when none is left [default: STRUCTURE_STORE_UPLOADS_INTERVAL, '
    'else 2].',
)
@decorators.with_dbenv()
@store_errors
def cmd_watch(tenant_id, workspace_id, group_label, lease, workchain, workchain_code, workchain_protocol, interval):
    """Import uploads as they come, until stopped (SIGTERM or Ctrl-C: the upload in progress is finished first).

    Start it where the daemon runs, with the store settings (a systemd service or a terminal). One line per upload.
    Several watchers may run, on one machine or more: each upload is claimed by one, and imported once.
    """
    from ..uploads.watch import UploadLoop
    from .utils import opened_store, quiet_store_tracebacks

    with opened_store() as store:
        importer, settings = _importer(
            store, tenant_id, workspace_id, group_label, lease, workchain, workchain_code, workchain_protocol
        )
        loop = UploadLoop(
            importer,
            interval=interval or settings.interval,
            on_outcome=lambda outcome: echo.echo_report(_line(outcome)),
        )
        _signals(loop)
        echo.echo_report(
            f'watching uploads of {_describe(tenant_id, workspace_id)} → group {settings.group} as {importer.claimer} '
            f'(lease {settings.lease:g} s; SIGTERM or Ctrl-C stops)'
        )
        try:
            with quiet_store_tracebacks():
                loop.run()
        except KeyboardInterrupt:
            echo.echo_critical(
                'interrupted: the upload being imported was rolled back; it is claimed again after the lease'
            )
    counts = loop.stats.counts
    echo.echo_success('stopped: ' + ', '.join(f'{count} {status}' for status, count in counts.items()))
