"""After projections, syncs and CLI runs, the deploy key and the deployment URL appear nowhere in AiiDA."""

from __future__ import annotations

import json
import logging
import pathlib

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.manage import get_manager
from aiida.manage.configuration import get_config
from aiida.plugins import CalculationFactory, WorkflowFactory
from sqlalchemy import inspect, text

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.core.exceptions import StructStoreError
from aiida_structstore.structures.sync import sync_structures

from .leaks import leaks
from .ports import free_port


def database_text() -> str:
    """Every row of every table of the profile's database, as text."""
    storage = get_manager().get_profile_storage()
    session = storage.get_session()
    session.commit()
    names = inspect(session.get_bind()).get_table_names()
    parts = []
    for name in names:
        for row in session.execute(text(f'SELECT * FROM "{name}"')):
            parts.append(repr(tuple(row)))
    return '\n'.join(parts)


def files_containing(root: pathlib.Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob('*') if p.is_file() and needle in p.read_bytes()]


def test_no_secret_in_the_graph_database_repository_or_config(
    convex_backend, convex_server, generate_structure, run_cli_command, caplog
):
    key, url = convex_server.deploy_key, convex_server.url
    structure = generate_structure('fe2o3').store()
    CalculationFactory('structstore.project_structure').run_get_node(
        structure=structure, tenant_id=orm.Str('secrets'), workspace_id=orm.Str('w')
    )
    run_get_node(
        WorkflowFactory('structstore.project'),
        structures={'s': generate_structure().store()},
        tenant_id=orm.Str('secrets'),
        workspace_id=orm.Str('wf'),
    )
    group = orm.Group(label='secrets-sync').store()
    group.add_nodes([generate_structure('alloy').store()])
    sync_structures(convex_backend, tenant_id='secrets', workspace_id='sync', group=group, progress=False)
    run_cli_command(cmd_structstore, ['sync', '-G', group.label, '-t', 'secrets', '-w', 'cli'])
    run_cli_command(cmd_structstore, ['list', '-t', 'secrets', '-w', 'cli'])

    dump = database_text()
    assert 'secrets' in dump  # the search does see the projection's data
    assert key not in dump
    assert key.split('|')[1] not in dump
    assert url not in dump
    assert url.split('//')[1] not in dump

    config = get_config()
    assert not files_containing(pathlib.Path(config.dirpath), key.encode())
    storage_config = get_manager().get_profile().storage_config
    repository = storage_config.get('repository_uri') or storage_config.get('filepath')
    if repository:
        root = pathlib.Path(str(repository).removeprefix('file://'))
        assert not files_containing(root, key.encode())
        assert not files_containing(root, url.encode())
    assert key not in caplog.text


# -- misconfigurations and failing projections ----------------------------------------------------------------------


def closed_port_url() -> str:
    return f'http://127.0.0.1:{free_port()}'  # nothing listens there


def misconfigurations(server) -> dict[str, tuple[dict[str, str], list[str]]]:
    """name → (store settings, secrets that must appear nowhere)."""
    key, dead = server.deploy_key, closed_port_url()
    password = 'pw-hunter2-in-the-url'
    return {
        'key with a trailing newline, deployment down': (
            {'CONVEX_URL': dead, 'CONVEX_DEPLOY_KEY': key + '\n'},
            [key, dead, dead.split('//')[1]],
        ),
        'key with a trailing space, deployment up': (
            {'CONVEX_URL': server.url, 'CONVEX_DEPLOY_KEY': key + ' '},
            [key, server.url, server.url.split('//')[1]],
        ),
        'URL and key swapped': ({'CONVEX_URL': key, 'CONVEX_DEPLOY_KEY': server.url}, [key, server.url]),
        'credentials in the URL': (
            {'CONVEX_URL': f'http://admin:{password}@127.0.0.1:9', 'CONVEX_DEPLOY_KEY': key},
            [key, password],
        ),
        'wrong key': ({'CONVEX_URL': server.url, 'CONVEX_DEPLOY_KEY': 'wrong-' + key}, [key, server.url]),
    }


def log_table_text() -> str:
    return '\n'.join(repr((log.message, log.metadata)) for log in orm.Log.collection.find())


@pytest.mark.parametrize('case', range(5))
def test_failing_projection_leaves_no_secret_in_aiida(convex_server, generate_structure, monkeypatch, caplog, case):
    name, (settings, secrets) = list(misconfigurations(convex_server).items())[case]
    monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'convex')
    monkeypatch.setenv('STRUCTURE_STORE_RETRIES', '2')
    for variable, value in settings.items():
        monkeypatch.setenv(variable, value)
    structure = generate_structure().store()
    project = CalculationFactory('structstore.project_structure')
    caplog.set_level(logging.DEBUG, logger='aiida_structstore')
    try:
        _, node = project.run_get_node(structure=structure, tenant_id=orm.Str('leak'), workspace_id=orm.Str('w'))
    except StructStoreError as exc:
        # The text of every chained exception; the transport's frames are checked in tests/store/test_convex.py.
        assert leaks(exc, *secrets, frames=False) == [], name
        node = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'id': {'>': structure.pk}}).all(flat=True)[-1]
    if 'trailing space, deployment up' in name:
        assert node.is_finished_ok  # the key is usable once the whitespace is removed
    else:
        assert node.is_excepted, name
        assert node.exception
    text = '\n'.join([database_text(), log_table_text(), caplog.text, repr(node.base.attributes.all)])
    for secret in secrets:
        assert secret not in text, f'{name}: {secret!r} leaked'


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    """The store settings in a settings file only (as daemon workers get them), none in the environment."""
    path = tmp_path / 'settings.env'
    path.touch(mode=0o600)
    monkeypatch.setenv('STRUCTURE_STORE_SETTINGS_FILE', str(path))
    for name in ('STRUCTURE_STORE_BACKEND', 'CONVEX_URL', 'CONVEX_DEPLOY_KEY'):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.mark.slow
def test_failing_projections_in_the_daemon_leave_no_secret_in_its_log_file(
    convex_server, generate_structure, settings_file, daemon_environment, submit_and_await, started_daemon_client
):
    """Daemon workers read the store settings from the settings file; five misconfigurations, five failures, and
    neither the key nor the URL in the daemon's log file, the process nodes or the database."""
    from aiida.engine import ProcessState

    from aiida_structstore.calculations.functions.project_structure import project_structure

    all_secrets = set()
    for name, (settings, secrets) in misconfigurations(convex_server).items():
        all_secrets.update(secrets)
        lines = ['STRUCTURE_STORE_BACKEND=convex', 'STRUCTURE_STORE_RETRIES=2']
        lines += [f'{variable}={json.dumps(value)}' for variable, value in settings.items()]
        settings_file.write_text('\n'.join(lines) + '\n')
        expected = ProcessState.FINISHED if 'trailing space, deployment up' in name else ProcessState.EXCEPTED
        node = submit_and_await(
            project_structure.process_class,
            state=expected,
            timeout=120,
            structure=generate_structure().store(),
            tenant_id=orm.Str('leak'),
            workspace_id=orm.Str('daemon'),
        )
        assert node.process_state is expected, name
    log_file = pathlib.Path(started_daemon_client.daemon_log_file).read_text(encoding='utf-8', errors='replace')
    # The failures are in the log file, with their reasons, and the secrets are not.
    for reason in ('swapped', 'must not contain a user name or password', 'rejected the deploy key', 'ConnectError'):
        assert reason in log_file
    text = '\n'.join([database_text(), log_table_text(), log_file])
    for secret in all_secrets:
        assert secret not in text, f'{secret!r} leaked'
