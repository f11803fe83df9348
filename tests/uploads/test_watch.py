"""``verdi data structstore uploads watch`` as real ``verdi`` processes against the local Convex server and
PostgreSQL: two watchers over 1,000 uploads import each exactly once; a watcher SIGKILLed in the middle of an import
leaves nothing half done, and a later watcher imports that upload once, after the lease.

Waits are on conditions (the store's records, PostgreSQL's lock table), looked at again when the watcher process
could have moved, with a deadline that guards against a hang; no test sleeps for a time.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import time

import pytest
from aiida import orm
from aiida.manage import get_manager
from aiida.manage.configuration import get_config

from aiida_structstore.uploads.importer import UPLOAD_EXTRA

from ..test_import_interrupted import last_node_id, many_blocks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

ROOT = pathlib.Path(__file__).resolve().parents[2]
SI_CIF = (ROOT / 'examples' / 'cif' / 'si.cif').read_text()
SI_PW = (ROOT / 'examples' / 'pw' / 'si_scf.in').read_text()


@pytest.fixture(autouse=True)
def _postgres(request):
    if request.config.getoption('--db-backend') != 'psql':
        pytest.skip('watchers in several processes need PostgreSQL')


@pytest.fixture
def store(convex_backend):
    if not hasattr(convex_backend, 'uploads'):
        pytest.skip('the Convex backend has no uploads yet')
    return convex_backend


def environment(convex_server) -> dict:
    return {
        **os.environ,
        'AIIDA_PATH': str(pathlib.Path(get_config().dirpath).parent),
        'PYTHONUNBUFFERED': '1',
        'STRUCTURE_STORE_BACKEND': 'convex',
        'CONVEX_URL': convex_server.url,
        'CONVEX_DEPLOY_KEY': convex_server.deploy_key,
    }


def watcher(profile: str, convex_server, *args: str, log: pathlib.Path) -> subprocess.Popen:
    command = [str(pathlib.Path(sys.executable).parent / 'verdi'), '-p', profile, 'data', 'structstore']
    command += ['uploads', 'watch', '--interval', '0.2', *args]
    handle = log.open('wb')
    return subprocess.Popen(command, env=environment(convex_server), stdout=handle, stderr=subprocess.STDOUT)


def wait_for(condition, what: str, processes: list[subprocess.Popen], logs: list[pathlib.Path], timeout=600) -> None:
    """Look at ``condition`` until it holds: again as soon as a watcher ends (a failure), else every 0.1 s (the
    store and the database give no event to wait on); fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f'timed out waiting for {what}: ' + ' | '.join(log.read_text()[-2000:] for log in logs))
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None:
                pytest.fail(f'a watcher ended before {what}: {log.read_text()[-3000:]}')
        if processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                processes[0].wait(0.1)
        else:
            time.sleep(0.1)  # polling a condition: the dead watcher's backend commits on its own, with no event


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(120)


def statuses(store, tenant: str, space: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in store.uploads.iter(tenant, space):
        counts[record.status] = counts.get(record.status, 0) + 1
    return counts


def upload_files(tenant: str, space: str) -> orm.QueryBuilder:
    return orm.QueryBuilder().append(
        (orm.SinglefileData, orm.CifData),
        filters={f'extras.{UPLOAD_EXTRA}.key': {'like': f'{tenant}/{space}/%'}},
        tag='file',
        project=['id', f'extras.{UPLOAD_EXTRA}.key'],
    )


def test_two_watchers_import_1000_uploads_each_exactly_once(aiida_profile, convex_server, store, tmp_path):
    tenant, space, group = 'acme', f'many-{secrets.token_hex(3)}', f'uploads/many-{secrets.token_hex(3)}'
    count = 1000
    keys = []
    for index in range(count):
        if index % 2:
            content = SI_CIF.replace('data_Si_diamond', f'data_Si_diamond_{index}')
            kind, name = 'cif', f'si-{index}.cif'
        else:
            content = SI_PW.replace("prefix = 'silicon'", f"prefix = 'silicon{index}'")
            kind, name = 'pw', f'si-{index}.in'
        record, created = store.uploads.create(
            tenant, space, filename=name, kind=kind, content=content.encode(), uploaded_by=f'user{index % 7}'
        )
        assert created
        keys.append(record.key)

    logs = [tmp_path / 'first.log', tmp_path / 'second.log']
    args = ('-t', tenant, '-w', space, '--group', group, '--lease', '60')
    processes = [watcher(aiida_profile.name, convex_server, *args, log=log) for log in logs]
    try:
        wait_for(
            lambda: statuses(store, tenant, space).get('imported', 0) == count,
            f'{count} uploads imported',
            processes,
            logs,
            timeout=2200,
        )
    finally:
        codes = [stop(process) for process in processes]
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0], outputs

    assert statuses(store, tenant, space) == {'imported': count}
    records = [store.uploads.get(key) for key in keys]
    assert all(record.attempts == 1 for record in records)
    node_uuids = {record.node_uuid for record in records}
    assert len(node_uuids) == count
    # AiiDA: one file node, one import process and one structure per upload, all in the group, nothing else.
    files = upload_files(tenant, space).all()
    assert len(files) == count
    assert len({key for _, key in files}) == count
    processes_query = orm.QueryBuilder().append(
        (orm.SinglefileData, orm.CifData),
        filters={f'extras.{UPLOAD_EXTRA}.key': {'like': f'{tenant}/{space}/%'}},
        tag='file',
    )
    processes_query.append(orm.CalcFunctionNode, with_incoming='file')
    assert processes_query.count() == count
    members = {node.uuid for node in orm.load_group(group).nodes}
    assert members == node_uuids
    # Both watchers worked (each line names an imported upload).
    imported_by = [output.count(': imported as ') for output in outputs]
    assert sum(imported_by) == count, outputs


@contextlib.contextmanager
def group_locked(label: str):
    """Another connection locks the group's row (``FOR UPDATE``): an import that adds its structures to the group
    waits for it inside its transaction, with the file node, the process and its outputs inserted, until released."""
    import psycopg

    config = get_manager().get_profile().storage_config
    connection = psycopg.connect(
        host=config['database_hostname'],
        port=config['database_port'],
        user=config['database_username'],
        password=config['database_password'],
        dbname=config['database_name'],
    )
    try:
        connection.execute('SELECT id FROM db_dbgroup WHERE label = %s FOR UPDATE', (label,)).fetchone()
        yield connection
    finally:
        connection.rollback()
        connection.close()


def waiting_for_a_lock(connection) -> bool:
    query = (
        # pg_blocking_pids reads the lock table as it is now; pg_stat_activity would not do: a transaction sees it
        # as it was at its first look, so a session that connected later never shows up (this one holds the lock in
        # an open transaction).
        'SELECT count(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))'
    )
    return connection.execute(query).fetchone()[0] > 0


def test_a_watcher_killed_in_its_transaction_leaves_nothing_and_a_later_one_imports_once(
    aiida_profile, convex_server, store, tmp_path
):
    """Killed while the import stores its outputs (the node id sequence says so; a CIF of 300 blocks takes seconds
    to store): nothing is committed, the upload stays claimed, and a later watcher imports it, once, after the
    lease."""
    tenant, space, group = 'acme', f'killed-{secrets.token_hex(3)}', f'uploads/killed-{secrets.token_hex(3)}'
    blocks = 300
    path = many_blocks(tmp_path / 'many.cif', blocks)
    record, _ = store.uploads.create(
        tenant, space, filename=path.name, kind='cif', content=path.read_bytes(), uploaded_by='eve'
    )
    nodes_before, start = orm.QueryBuilder().append(orm.Node).count(), last_node_id()
    args = ('-t', tenant, '-w', space, '--group', group, '--lease', '3')
    logs = [tmp_path / 'killed.log']
    first = watcher(aiida_profile.name, convex_server, *args, log=logs[0])
    wait_for(lambda: last_node_id() >= start + 2 + blocks // 3, 'a third of the outputs inserted', [first], logs)
    first.send_signal(signal.SIGKILL)
    first.wait(60)

    # Nothing of the import was committed; the upload is still claimed by the dead watcher.
    assert orm.QueryBuilder().append(orm.Node).count() == nodes_before
    assert upload_files(tenant, space).count() == 0
    assert store.uploads.get(record.key).status == 'importing'

    done = later_watcher(aiida_profile, convex_server, store, record, args, tmp_path)
    assert done.attempts == 2
    assert upload_files(tenant, space).count() == 1
    members = orm.load_group(group).nodes
    assert len(members) == blocks
    assert done.node_uuid in {node.uuid for node in members}
    assert len(store.structures.list(tenant, space, limit=500).items) == blocks


def test_a_watcher_killed_while_it_commits_is_completed_by_a_later_one_without_importing_again(
    aiida_profile, convex_server, store, tmp_path
):
    """Killed while its COMMIT waits (for a row lock another connection holds on the group): the commit goes through
    after the watcher is dead, so the import exists but the upload was never marked. The later watcher finds the
    import and completes the upload from it."""
    tenant, space, group = 'acme', f'commit-{secrets.token_hex(3)}', f'uploads/commit-{secrets.token_hex(3)}'
    orm.Group.collection.get_or_create(group)
    path = ROOT / 'examples' / 'cif' / 'fe2o3.cif'
    record, _ = store.uploads.create(
        tenant, space, filename=path.name, kind='cif', content=path.read_bytes(), uploaded_by='eve'
    )
    args = ('-t', tenant, '-w', space, '--group', group, '--lease', '3')
    logs = [tmp_path / 'killed.log']
    with group_locked(group) as holder:
        first = watcher(aiida_profile.name, convex_server, *args, log=logs[0])
        wait_for(lambda: waiting_for_a_lock(holder), 'the commit to wait for the group', [first], logs)
        first.send_signal(signal.SIGKILL)
        first.wait(60)
    wait_for(lambda: upload_files(tenant, space).count() == 1, 'the commit', [], [])
    assert store.uploads.get(record.key).status == 'importing'
    processes_before = orm.QueryBuilder().append(orm.CalcFunctionNode).count()

    done = later_watcher(aiida_profile, convex_server, store, record, args, tmp_path)
    assert done.attempts == 2
    assert upload_files(tenant, space).count() == 1
    assert [node.uuid for node in orm.load_group(group).nodes] == [done.node_uuid]
    # The later watcher ran no process: it found the import and projected it.
    assert orm.QueryBuilder().append(orm.CalcFunctionNode).count() == processes_before
    assert 'found imported earlier' in (tmp_path / 'later.log').read_text()
    structure = orm.load_node(done.node_uuid)
    process = structure.base.links.get_incoming(node_class=orm.CalcFunctionNode).one().node
    assert process.inputs.file.get_content(mode='rb') == path.read_bytes()


def later_watcher(aiida_profile, convex_server, store, record, args, tmp_path):
    """Run a second watcher until the upload is imported (its claim comes once the dead one's lease expired)."""
    log = tmp_path / 'later.log'
    later = watcher(aiida_profile.name, convex_server, *args, log=log)
    try:
        wait_for(lambda: store.uploads.get(record.key).status == 'imported', 'the upload imported', [later], [log])
    finally:
        assert stop(later) == 0, log.read_text()
    return store.uploads.get(record.key)
