"""Imports stopped half-way leave nothing half-done (issue 19).

A real ``verdi data structstore import`` of a CIF with 1,000 data blocks (COD entries joined) is stopped by a signal
while it stores its outputs. The moment is chosen from the database, not by time: the node table's id sequence,
which advances for every node inserted and is visible to other connections before the transaction commits. Then the
nodes, the unfinished import processes and the group are counted against the numbers before.

And an import calcfunction called from a script (no transaction around it) that is SIGKILLed while it stores its
outputs: the next ``verdi data structstore import`` refuses to start, naming the unfinished process, until it is
deleted; a live run of the same kind is not taken for a dead one.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import secrets
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from aiida import orm
from aiida.manage import get_manager
from aiida.manage.configuration import get_config

from aiida_structstore.calculations.functions.interrupted import IMPORT_PROCESS_TYPES, find_interrupted
from aiida_structstore.cli import cmd_structstore
from aiida_structstore.tools.files import MAX_DATA_BLOCKS

pytestmark = pytest.mark.timeout(600)

COD = pathlib.Path(__file__).resolve().parent / 'cli' / 'files' / 'cod'


@pytest.fixture(autouse=True)
def _postgres(request):
    if request.config.getoption('--db-backend') != 'psql':
        pytest.skip('reads the node id sequence of PostgreSQL')


def many_blocks(path: pathlib.Path, count: int) -> pathlib.Path:
    """A CIF of ``count`` data blocks: the COD entries again and again, each block renamed."""
    texts = [file.read_text() for file in sorted(COD.glob('*.cif'))]
    parts = []
    for index in range(count):
        text = texts[index % len(texts)]
        parts.append(re.sub(r'(?m)^data_(\S+)', rf'data_\g<1>_{index}', text, count=1))
    path.write_text(''.join(parts))
    return path


def last_node_id() -> int:
    """The node table's id sequence: it advances when a node is inserted, committed or not."""
    from sqlalchemy import text

    session = get_manager().get_profile_storage().get_session()
    return session.execute(text('SELECT last_value FROM db_dbnode_id_seq')).scalar()


def wait_for(condition, what: str, process: subprocess.Popen, timeout: float = 300) -> None:
    """Poll ``condition`` until it holds; fail if ``process`` ends first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        try:  # the database gives no event for these conditions: look again after 50 ms, or when the process ends
            process.wait(0.05)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f'the process ended before {what}: {process.stdout.read().decode(errors="replace")}')


def environment() -> dict:
    return {**os.environ, 'AIIDA_PATH': str(pathlib.Path(get_config().dirpath).parent), 'PYTHONUNBUFFERED': '1'}


def verdi(profile: str, *args: str) -> subprocess.Popen:
    command = [str(pathlib.Path(sys.executable).parent / 'verdi'), '-p', profile, 'data', 'structstore', *args]
    return subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def unfinished() -> int:
    """Import process nodes that are not sealed (Created, Running, Waiting), live or not."""
    builder = orm.QueryBuilder().append(
        orm.CalcFunctionNode,
        filters={
            'process_type': {'in': list(IMPORT_PROCESS_TYPES)},
            'or': [{'attributes': {'!has_key': 'sealed'}}, {'attributes.sealed': False}],
        },
    )
    return builder.count()


def counts(group: str) -> tuple[int, int, int]:
    members = orm.QueryBuilder().append(orm.Group, filters={'label': group}, tag='g')
    members.append(orm.Node, with_group='g')
    return orm.QueryBuilder().append(orm.Node).count(), unfinished(), members.count()


@contextlib.contextmanager
def group_held(label: str):
    """Another connection inserts a group of this label and keeps its transaction open: an import that creates the
    group waits for it (the unique label) inside its own transaction, with its outputs stored, until released."""
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
        user = connection.execute('SELECT id FROM db_dbuser ORDER BY id LIMIT 1').fetchone()[0]
        connection.execute(
            'INSERT INTO db_dbgroup (uuid, label, type_string, time, description, extras, user_id) '
            "VALUES (gen_random_uuid(), %s, 'core', now(), '', '{}', %s)",
            (label, user),
        )
        yield connection
    finally:
        connection.rollback()
        connection.close()


def waiting_for_a_lock(connection) -> bool:
    """Whether some other session of this database waits for a lock (the import, on the held group)."""
    query = (
        # pg_blocking_pids reads the lock table as it is now; pg_stat_activity would not do: a transaction sees it
        # as it was at its first look, so a session that connected later never shows up (this one holds the lock in
        # an open transaction).
        'SELECT count(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))'
    )
    return connection.execute(query).fetchone()[0] > 0


@pytest.mark.parametrize('number', [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda n: n.name)
def test_an_import_stopped_after_storing_its_outputs_leaves_nothing(aiida_profile, tmp_path, number):
    """The import has stored its 1,000 outputs and waits for the group, inside its transaction, when the signal
    comes: no node, process or group may remain."""
    path = many_blocks(tmp_path / 'many.cif', MAX_DATA_BLOCKS)
    group = f'stopped-{secrets.token_hex(3)}'
    before, start = counts(group), last_node_id()
    with group_held(group) as holder:
        process = verdi(aiida_profile.name, 'import', str(path), '-G', group)
        wait_for(lambda: last_node_id() >= start + MAX_DATA_BLOCKS, 'the outputs were inserted', process)
        wait_for(lambda: waiting_for_a_lock(holder), 'the import waits for the group', process)
        process.send_signal(number)
    output = process.communicate(timeout=120)[0].decode(errors='replace')

    assert process.returncode != 0, output
    assert counts(group) == before, output
    assert not orm.QueryBuilder().append(orm.Group, filters={'label': group}).count()
    if number != signal.SIGKILL:  # the others are caught: one clear line, no traceback
        assert 'Traceback' not in output, output
        errors = [line for line in output.splitlines() if line.startswith(('Error:', 'Critical:'))]
        assert len(errors) == 1, output
        assert f'interrupted by {number.name}: many.cif: nothing of this file was stored' in errors[0], output


@pytest.mark.parametrize('number', [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda n: n.name)
def test_an_import_stopped_while_reading_in_its_process_leaves_nothing(aiida_profile, tmp_path, number):
    """The file node and the process are inserted, and the calcfunction reads the file (seconds for 1,000 blocks),
    when the signal comes. Before the transaction, this left a Running process."""
    path = many_blocks(tmp_path / 'many.cif', MAX_DATA_BLOCKS)
    group = f'stopped-{secrets.token_hex(3)}'
    before, start = counts(group), last_node_id()
    process = verdi(aiida_profile.name, 'import', str(path), '-G', group)
    wait_for(lambda: last_node_id() >= start + 2, 'the file node and the process were inserted', process)
    process.send_signal(number)
    output = process.communicate(timeout=120)[0].decode(errors='replace')
    if process.returncode == 0:
        # The reading (about a second since the readers are linear) ended before the signal came: this run tested
        # nothing. A skip, not a pass, and not a failure that depends on timing; the moment is not held yet.
        pytest.skip('the import finished before the signal arrived')

    assert process.returncode != 0, output
    assert counts(group) == before, output
    if number != signal.SIGKILL:
        assert 'Traceback' not in output, output
        errors = [line for line in output.splitlines() if line.startswith(('Error:', 'Critical:'))]
        assert len(errors) == 1, output
        assert f'interrupted by {number.name}: many.cif: nothing of this file was stored' in errors[0], output


SCRIPT = """
import sys
from aiida import load_profile, orm
from aiida.plugins import CalculationFactory

load_profile(sys.argv[1])
import_cif = CalculationFactory('structstore.import_cif')
import_cif(file=orm.CifData(file=sys.argv[2], parse_policy='lazy').store())
"""


def outputs_of(pk: int) -> int:
    builder = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'id': pk}, tag='p')
    return builder.append(orm.StructureData, with_incoming='p').count()


def test_an_import_left_unfinished_by_a_script_is_named_and_refused(aiida_profile, tmp_path, run_cli_command):
    path = many_blocks(tmp_path / 'many.cif', 600)
    script = tmp_path / 'run_import.py'
    script.write_text(textwrap.dedent(SCRIPT))
    already = {item.pk for item in find_interrupted()}
    command = [sys.executable, str(script), aiida_profile.name, str(path)]
    process = subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def running():
        builder = orm.QueryBuilder().append(
            orm.CalcFunctionNode,
            filters={'process_type': IMPORT_PROCESS_TYPES[0], 'attributes.process_state': 'running'},
            project='id',
        )
        return {pk for (pk,) in builder.all()} - already

    # Outside a transaction, the outputs are committed one by one: wait until 50 are there.
    wait_for(lambda: running() and outputs_of(max(running())) >= 50, '50 outputs were stored', process)
    pk = max(running())
    assert pk not in {item.pk for item in find_interrupted()}  # its runner is alive: not a leftover
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)

    left = {item.pk: item.outputs for item in find_interrupted()}
    assert pk in left and left[pk] >= 50
    nodes = orm.QueryBuilder().append(orm.Node).count()
    result = run_cli_command(cmd_structstore, ['import', COD / 'cod_9004112.cif'], raises=True)
    assert orm.QueryBuilder().append(orm.Node).count() == nodes
    errors = [line for line in result.output.splitlines() if line.startswith(('Error:', 'Critical:'))]
    assert len(errors) == 1 and re.search(rf'verdi node delete [\d ]*\b{pk}\b', errors[0]), result.output

    from aiida.tools import delete_nodes

    delete_nodes(list(left), dry_run=False)
    assert not find_interrupted()
    result = run_cli_command(cmd_structstore, ['import', COD / 'cod_9004112.cif'])
    assert 'imported 1 structures from 1 files' in result.output
