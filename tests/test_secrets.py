"""After projections, syncs and CLI runs, the deploy key and the deployment URL appear nowhere in AiiDA."""

from __future__ import annotations

import pathlib

from aiida import orm
from aiida.engine import run_get_node
from aiida.manage import get_manager
from aiida.manage.configuration import get_config
from aiida.plugins import CalculationFactory, WorkflowFactory
from sqlalchemy import inspect, text

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.sync import sync_structures


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
