"""``verdi data structstore executions``: sync, list and show in-process against the local Convex server; watch as a
real ``verdi`` process, stopped with SIGINT."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pytest

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.core.executions import ExecutionKey
from aiida_structstore.structures.sync import sync_structures

from ..cli.test_commands import rows
from .processes import FailingWorkChain, StrainWorkChain, run_broadcasting


@pytest.fixture
def scope(convex_backend, tenant):
    return ['--tenant', tenant, '--workspace', 'w']


@pytest.fixture
def ran(convex_backend, generate_structure, tenant):
    """A structure synced into the workspace, a StrainWorkChain and a FailingWorkChain on it."""
    structure = generate_structure('silicon').store()
    assert sync_structures(convex_backend, tenant_id=tenant, workspace_id='w', nodes=[structure.pk], progress=False).ok
    _, chain = run_broadcasting(StrainWorkChain, structure=structure)
    _, failed = run_broadcasting(FailingWorkChain, structure=structure)
    return structure, chain, failed


def test_sync_list_show(run_cli_command, convex_backend, ran, scope, tenant):
    structure, chain, failed = ran
    result = run_cli_command(cmd_structstore, ['executions', 'sync', *scope])
    (summary,) = rows(result.output)
    assert (summary['selected'], summary['new'], summary['failed']) == ('3', '3', '0')
    again = rows(run_cli_command(cmd_structstore, ['executions', 'sync', *scope]).output)[0]
    assert (again['new'], again['updated']) == ('0', '0')

    listed = rows(run_cli_command(cmd_structstore, ['executions', 'list', *scope, '-s', structure.uuid]).output)
    by_uuid = {row['process']: row for row in listed}
    assert set(by_uuid) == {chain.uuid, chain.called[0].uuid, failed.uuid}
    assert (by_uuid[failed.uuid]['state'], by_uuid[failed.uuid]['exit']) == ('finished', '400')
    assert by_uuid[chain.uuid]['role'] == 'input'

    shown = {
        row['field']: row['value']
        for row in rows(run_cli_command(cmd_structstore, ['executions', 'show', failed.uuid, *scope]).output)
    }
    assert shown['state'] == 'finished' and shown['exit status'] == '400'
    assert shown['exit message'] == 'could not read <path> on the cluster'
    assert shown['took'] == structure.uuid


def test_a_group_and_bad_input(run_cli_command, convex_backend, ran, scope, tenant):
    from aiida import orm

    _, chain, _ = ran
    group = orm.Group(label=f'cli-exec-{tenant}').store()
    group.add_nodes(chain)
    result = run_cli_command(cmd_structstore, ['executions', 'sync', '-G', group.label, '--all', *scope[:2], '-w', 'g'])
    assert rows(result.output)[0]['new'] == '2'
    result = run_cli_command(cmd_structstore, ['executions', 'sync', '--no-linked', *scope], raises=True)
    assert 'select processes' in result.output
    result = run_cli_command(cmd_structstore, ['executions', 'show', 'not-a-uuid', *scope], raises=True)
    assert 'not a UUID' in result.output and 'Traceback' not in result.output
    missing = '00000000-0000-4000-8000-000000000000'
    result = run_cli_command(cmd_structstore, ['executions', 'show', missing, *scope], raises=True)
    assert 'no execution' in result.output
    result = run_cli_command(cmd_structstore, ['executions', 'list', '--tenant', '../x', '-w', 'w'], raises=True)
    assert 'tenant_id' in result.output


def test_watch_runs_until_interrupted(broker, convex_backend, convex_server, generate_structure, tenant, aiida_profile):
    """``verdi data structstore executions watch`` as a user runs it: it catches up on start, follows broadcasts,
    and stops cleanly on SIGINT."""
    structure = generate_structure('silicon').store()
    assert sync_structures(convex_backend, tenant_id=tenant, workspace_id='w', nodes=[structure.pk], progress=False).ok
    _, before = run_broadcasting(StrainWorkChain, structure=structure)
    env = {
        **os.environ,
        'AIIDA_PROFILE': aiida_profile.name,
        'STRUCTURE_STORE_BACKEND': 'convex',
        'CONVEX_URL': convex_server.url,
        'CONVEX_DEPLOY_KEY': convex_server.deploy_key,
    }
    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    process = subprocess.Popen(
        [str(verdi), 'data', 'structstore', 'executions', 'watch', '-t', tenant, '-w', 'w'],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:  # reading the output is the wait: each push prints a report line
            lines.append(line)
            if 'new' in line and 'updated' in line:
                break
        key = ExecutionKey.of(tenant, 'w', before.uuid)
        assert convex_backend.executions.get(key).state == 'finished', ''.join(lines)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, ''.join(lines) + rest
    assert 'stopped:' in rest
    assert convex_server.deploy_key not in ''.join(lines) + rest


def test_sync_dry_run(run_cli_command, convex_backend, ran, scope, tenant):
    _structure, chain, _failed = ran
    result = run_cli_command(cmd_structstore, ['executions', 'sync', '--dry-run', *scope])
    (summary,) = rows(result.output)
    assert (summary['selected'], summary['would be new'], summary['failed']) == ('3', '3', '0')
    assert 'nothing was written' in result.output
    assert convex_backend.executions.find(ExecutionKey.of(tenant, 'w', chain.uuid)) is None


def test_verify(run_cli_command, convex_backend, ran, scope, tenant):
    _, chain, _ = ran
    run_cli_command(cmd_structstore, ['executions', 'sync', *scope])
    (summary,) = rows(run_cli_command(cmd_structstore, ['executions', 'verify', *scope]).output)
    assert (summary['records'], summary['match their process'], summary['missing from the store']) == ('3', '3', '0')
    convex_backend.executions.delete(ExecutionKey.of(tenant, 'w', chain.uuid))
    result = run_cli_command(cmd_structstore, ['executions', 'verify', *scope], raises=True)
    assert f'{chain.uuid}: missing from the store' in result.output
    assert rows(result.output)[0]['missing from the store'] == '1'


def test_verify_says_how_to_write_a_deleted_record_again(run_cli_command, convex_backend, ran, scope, tenant):
    """A deleted execution record: a plain sync trusts what the process remembers; the command ``verify`` prints
    (``executions sync --all --check-store -N``) writes it again."""
    import shlex

    _, chain, _ = ran
    run_cli_command(cmd_structstore, ['executions', 'sync', *scope])
    key = ExecutionKey.of(tenant, 'w', chain.uuid)
    assert convex_backend.executions.delete(key)
    result = run_cli_command(cmd_structstore, ['executions', 'verify', *scope], raises=True)
    assert f'missing from the store: process {chain.pk} was projected here' in result.output
    run_cli_command(cmd_structstore, ['executions', 'sync', '--all', *scope])
    assert convex_backend.executions.find(key) is None  # a plain sync does not write it again
    prefix = 'to write the records again: verdi data structstore '
    (line,) = [line for line in result.output.splitlines() if prefix in line]
    run_cli_command(cmd_structstore, shlex.split(line.split(prefix, 1)[1]))
    assert convex_backend.executions.find(key) is not None
    run_cli_command(cmd_structstore, ['executions', 'verify', *scope])
