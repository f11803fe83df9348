"""``verdi data structstore`` commands, run in-process against the local Convex server."""

from __future__ import annotations

import json

import pytest
from aiida import orm

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.models import StructureKey


@pytest.fixture
def scope(convex_backend, tenant):
    return ['--tenant', tenant, '--workspace', 'cli']


@pytest.fixture
def tenant():
    import secrets

    return f'cli-{secrets.token_hex(3)}'


def test_project_show_list_delete(run_cli_command, convex_backend, scope, tenant, generate_structure):
    node = generate_structure('fe2o3').store()
    result = run_cli_command(cmd_structstore, ['project', node.pk, *scope, '--structure-id', 'hematite'])
    assert 'hematite' in result.output and 'created' in result.output

    summary = run_cli_command(cmd_structstore, ['show', 'hematite', *scope]).output
    assert 'Fe2O3' in summary
    assert 'Fe1 Fe2 O' in summary
    assert node.uuid in summary

    cif = run_cli_command(cmd_structstore, ['show', 'hematite', *scope, '--format', 'cif']).output
    assert cif == convex_backend.get(StructureKey.of(tenant, 'cli', 'hematite')).cif
    record = json.loads(run_cli_command(cmd_structstore, ['show', 'hematite', *scope, '-F', 'json']).output)
    assert record['structure']['chemical_formula_reduced'] == 'Fe2O3'

    listing = run_cli_command(cmd_structstore, ['list', *scope]).output
    assert 'hematite' in listing and 'Fe2O3' in listing

    run_cli_command(cmd_structstore, ['delete', 'hematite', *scope, '--force'])
    missing = run_cli_command(cmd_structstore, ['show', 'hematite', *scope], raises=True)
    assert 'NotFoundError: no structure' in missing.output


def test_show_raw_is_byte_exact(run_cli_command, convex_backend, scope, tenant, generate_structure, tmp_path):
    from aiida_structstore.calculations.functions.project_structure import project_structure

    path = tmp_path / 'x.in'
    path.write_bytes('é \r\n 中文 \U0001f600\n'.encode())
    node = generate_structure().store()
    project_structure(
        structure=node,
        tenant_id=orm.Str(tenant),
        workspace_id=orm.Str('cli'),
        structure_id=orm.Str('raw'),
        raw=orm.SinglefileData(path).store(),
    )
    result = run_cli_command(cmd_structstore, ['show', 'raw', *scope, '--format', 'raw'])
    assert result.stdout_bytes == path.read_bytes()
    no_raw = run_cli_command(cmd_structstore, ['project', node.pk, *scope, '--structure-id', 'noraw'])
    assert 'created' in no_raw.output
    result = run_cli_command(cmd_structstore, ['show', 'noraw', *scope, '--format', 'raw'], raises=True)
    assert 'has no raw input' in result.output


def test_sync_verify_gc(run_cli_command, convex_backend, scope, tenant, generate_structure):
    group = orm.Group(label=f'cli-{tenant}').store()
    group.add_nodes([generate_structure(name).store() for name in ('silicon', 'fe2o3', 'alloy', 'vacancy')])
    first = run_cli_command(cmd_structstore, ['sync', '--group', group.label, *scope]).output
    assert 'selected' in first
    assert '4' in first.split('\n')[2]
    second = run_cli_command(cmd_structstore, ['sync', '--group', group.label, *scope]).output
    row = second.strip().split('\n')[-2].split()
    assert row[:5] == ['4', '0', '0', '4', '0']
    dry = run_cli_command(cmd_structstore, ['sync', '--group', group.label, '--dry-run', *scope[:2], '-w', 'other'])
    assert 'would be new' in dry.output
    assert convex_backend.list(tenant, 'other').items == ()

    verified = run_cli_command(cmd_structstore, ['verify', *scope]).output
    assert '4 records' in verified
    # A record that no longer matches its node is reported, with exit code 1.
    uuid = next(iter(group.nodes)).uuid
    content = convex_backend.get(StructureKey.of(tenant, 'cli', uuid)).to_content()
    convex_backend.put(content.model_copy(update={'cif': 'data_tampered\n'}))
    failed = run_cli_command(cmd_structstore, ['verify', *scope], raises=True)
    assert 'differs from its AiiDA node' in failed.output

    assert 'collected 0 chunks' in run_cli_command(cmd_structstore, ['gc', *scope, '--older-than', '0']).output


def test_sync_failure_exit_code(run_cli_command, convex_backend, scope, generate_structure):
    node = generate_structure()
    node.label = 'has spaces'
    node.store()
    result = run_cli_command(cmd_structstore, ['sync', '-N', node.pk, '--id-template', '{label}', *scope], raises=True)
    assert "character ' ' is not allowed" in result.output
    assert '1 structures failed' in result.output


@pytest.mark.parametrize(
    ('args', 'match'),
    [
        (['show', 'x/y', '-t', 'a', '-w', 'b'], "character '/' is not allowed"),
        (['show', 'x', '-t', '', '-w', 'b'], 'must not be empty'),
        (['list', '-t', 'a'], "Missing option '-w' / '--workspace'"),
        (['sync', '-t', 'a', '-w', 'b', '--filters', '[1]'], 'must be a JSON object'),
    ],
)
def test_usage_errors(run_cli_command, memory_backend, args, match):
    assert match in run_cli_command(cmd_structstore, args, raises=True).output


def test_missing_convex_settings_are_named(run_cli_command, monkeypatch, tmp_path):
    monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'convex')
    monkeypatch.delenv('CONVEX_URL', raising=False)
    monkeypatch.delenv('CONVEX_DEPLOY_KEY', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))
    result = run_cli_command(cmd_structstore, ['list', '-t', 'a', '-w', 'b'], raises=True)
    assert 'CONVEX_URL and CONVEX_DEPLOY_KEY' in result.output
    assert result.exit_code == 1


def test_project_refuses_other_node_types(run_cli_command, memory_backend):
    node = orm.Int(1).store()
    result = run_cli_command(cmd_structstore, ['project', node.pk, '-t', 'a', '-w', 'b'], raises=True)
    assert 'not StructureData' in result.output
