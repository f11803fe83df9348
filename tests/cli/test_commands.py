"""``verdi data structstore`` commands, run in-process against the local Convex server.

Assertions are on values: the store's state, and the printed tables parsed into rows (:func:`rows`).
"""

from __future__ import annotations

import json
import re
import secrets

import pytest
from aiida import orm

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.core.structures import StructureKey

ECHO_PREFIXES = ('Success:', 'Report:', 'Warning:', 'Error:', 'Critical:', 'Info:')


def rows(output: str) -> list[dict[str, str]]:
    """The rows of the first table (tabulate's ``simple`` format) in ``output``, as dicts keyed by header."""
    lines = output.splitlines()
    for index, line in enumerate(lines[1:], start=1):
        if line and set(line) <= {'-', ' '} and '-' in line:
            spans, start = [], None
            for position, char in enumerate(line + ' '):
                if char == '-' and start is None:
                    start = position
                elif char != '-' and start is not None:
                    spans.append((start, position))
                    start = None
            ends = [s for s, _ in spans[1:]] + [None]
            cut = [(s, e) for (s, _), e in zip(spans, ends, strict=True)]
            # Headers are split on runs of spaces: a progress bar may have left text before them on their line.
            header = re.split(r'\s{2,}', lines[index - 1].split('\r')[-1].strip())
            table = []
            for body in lines[index + 1 :]:
                if not body.strip() or body.startswith(ECHO_PREFIXES):
                    break
                table.append(dict(zip(header, (body[s:e].strip() for s, e in cut), strict=True)))
            return table
    raise AssertionError(f'no table in {output!r}')


@pytest.fixture
def tenant():
    return f'cli-{secrets.token_hex(3)}'


@pytest.fixture
def scope(convex_backend, tenant):
    return ['--tenant', tenant, '--workspace', 'cli']


def test_project_show_list_delete(run_cli_command, convex_backend, scope, tenant, generate_structure):
    node = generate_structure('fe2o3').store()
    result = run_cli_command(cmd_structstore, ['project', node.pk, *scope, '--structure-id', 'hematite'])
    (receipt,) = rows(result.output)
    record = convex_backend.structures.get(StructureKey.of(tenant, 'cli', 'hematite'))
    assert (receipt['pk'], receipt['structure id'], receipt['status']) == (str(node.pk), 'hematite', 'created')
    assert record.content_hash.startswith(receipt['content hash'])
    assert record.node_uuid == node.uuid

    summary = {
        row['field']: row['value']
        for row in rows(run_cli_command(cmd_structstore, ['show', 'hematite', *scope]).output)
    }
    assert summary['formula'] == 'Fe2O3'
    assert summary['kinds'] == 'Fe1 Fe2 O'
    assert summary['AiiDA node'] == node.uuid
    assert summary['content hash'] == record.content_hash

    cif = run_cli_command(cmd_structstore, ['show', 'hematite', *scope, '--format', 'cif']).output
    assert cif == record.cif
    shown = json.loads(run_cli_command(cmd_structstore, ['show', 'hematite', *scope, '-F', 'json']).output)
    assert shown['structure'] == record.structure

    (listed,) = rows(run_cli_command(cmd_structstore, ['list', *scope]).output)
    assert (listed['structure id'], listed['formula'], listed['sites']) == ('hematite', 'Fe2O3', '10')

    run_cli_command(cmd_structstore, ['delete', 'hematite', *scope, '--force'])
    assert convex_backend.structures.find(record.key) is None
    missing = run_cli_command(cmd_structstore, ['show', 'hematite', *scope], raises=True)
    assert f'NotFoundError: no structure {tenant}/cli/hematite' in missing.output


def test_project_into_another_nodes_record(run_cli_command, convex_backend, scope, tenant, generate_structure):
    first, second = generate_structure().store(), generate_structure('alloy').store()
    run_cli_command(cmd_structstore, ['project', first.pk, *scope, '--structure-id', 'latest'])
    processes = orm.QueryBuilder().append(orm.CalcFunctionNode).count()
    refused = run_cli_command(cmd_structstore, ['project', second.pk, *scope, '--structure-id', 'latest'], raises=True)
    assert first.uuid in refused.output and second.uuid in refused.output
    assert orm.QueryBuilder().append(orm.CalcFunctionNode).count() == processes  # refused before any provenance
    assert convex_backend.structures.get(StructureKey.of(tenant, 'cli', 'latest')).node_uuid == first.uuid
    replaced = run_cli_command(cmd_structstore, ['project', second.pk, *scope, '--structure-id', 'latest', '--replace'])
    assert rows(replaced.output)[0]['status'] == 'updated'
    assert convex_backend.structures.get(StructureKey.of(tenant, 'cli', 'latest')).node_uuid == second.uuid


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
    run_cli_command(cmd_structstore, ['project', node.pk, *scope, '--structure-id', 'noraw'])
    result = run_cli_command(cmd_structstore, ['show', 'noraw', *scope, '--format', 'raw'], raises=True)
    assert f'{tenant}/cli/noraw has no raw input' in result.output


def test_sync_verify_gc(run_cli_command, convex_backend, scope, tenant, generate_structure):
    group = orm.Group(label=f'cli-{tenant}').store()
    group.add_nodes([generate_structure(name).store() for name in ('silicon', 'fe2o3', 'alloy', 'vacancy')])
    (first,) = rows(run_cli_command(cmd_structstore, ['sync', '--group', group.label, *scope]).output)
    assert {k: first[k] for k in ('selected', 'new', 'updated', 'unchanged', 'failed')} == {
        'selected': '4',
        'new': '4',
        'updated': '0',
        'unchanged': '0',
        'failed': '0',
    }
    assert {r.key.structure_id for r in convex_backend.structures.iter_workspace(tenant, 'cli')} == {
        n.uuid for n in group.nodes
    }
    (second,) = rows(run_cli_command(cmd_structstore, ['sync', '-G', group.label, *scope]).output)
    assert (second['new'], second['unchanged']) == ('0', '4')
    dry = run_cli_command(cmd_structstore, ['sync', '-G', group.label, '--dry-run', *scope[:2], '-w', 'other'])
    assert rows(dry.output)[0]['would be new'] == '4'
    assert convex_backend.structures.list(tenant, 'other').items == ()

    (verified,) = rows(run_cli_command(cmd_structstore, ['verify', *scope]).output)
    assert (verified['records'], verified['match their node'], verified['missing from the store']) == ('4', '4', '0')
    # A record that no longer matches its node is reported, with exit code 1.
    uuid = next(iter(group.nodes)).uuid
    content = convex_backend.structures.get(StructureKey.of(tenant, 'cli', uuid)).to_content()
    convex_backend.structures.put(content.model_copy(update={'cif': 'data_tampered\n'}))
    failed = run_cli_command(cmd_structstore, ['verify', *scope], raises=True)
    assert f'{uuid}: differs from its AiiDA node' in failed.output
    assert rows(failed.output)[0]['match their node'] == '3'

    gc = run_cli_command(cmd_structstore, ['gc', *scope, '--older-than', '0'])
    assert f'collected 0 chunks in {tenant}/cli' in gc.output


def test_sync_failure_exit_code(run_cli_command, convex_backend, scope, generate_structure):
    node = generate_structure()
    node.label = 'has spaces'
    node.store()
    result = run_cli_command(cmd_structstore, ['sync', '-N', node.pk, '--id-template', '{label}', *scope], raises=True)
    assert f"node {node.pk}: structure_id from template '{{label}}' 'has spaces' is invalid" in result.output
    assert rows(result.output)[0]['failed'] == '1'


def test_sync_of_nothing_says_so(run_cli_command, convex_backend, scope, tenant):
    empty = orm.Group(label=f'empty-{tenant}').store()
    result = run_cli_command(cmd_structstore, ['sync', '-G', empty.label, *scope], raises=True)
    assert 'no structures selected: nothing to sync' in result.output


def test_sync_without_a_terminal_prints_no_progress_bar(
    run_cli_command, convex_backend, scope, tenant, generate_structure
):
    group = orm.Group(label=f'nobar-{tenant}').store()
    group.add_nodes([generate_structure(name).store() for name in ('silicon', 'fe2o3')])
    result = run_cli_command(cmd_structstore, ['sync', '-G', group.label, *scope])
    assert '\r' not in result.output and '0/2' not in result.output
    assert result.output.splitlines()[0].split() == ['selected', 'new', 'updated', 'unchanged', 'failed', 'seconds']


def test_sync_on_a_terminal_ends_its_bar_at_the_count_before_the_table(
    convex_backend, scope, tenant, generate_structure, monkeypatch
):
    """On a real terminal (a pseudo-terminal), the bar is left at 2/2 on a line of its own, the table after it."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import sys
    import termios

    from aiida.common import AttributeDict
    from aiida.manage.configuration import get_config, get_profile

    group = orm.Group(label=f'bar-{tenant}').store()
    group.add_nodes([generate_structure(name).store() for name in ('silicon', 'fe2o3')])
    master, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 120, 0, 0))  # 40 rows, 120 columns
    terminal = os.fdopen(replica, 'w', buffering=1)
    monkeypatch.setattr(sys, 'stdout', terminal)
    monkeypatch.setattr(sys, 'stderr', terminal)
    obj = AttributeDict({'config': get_config(), 'profile': get_profile()})
    try:
        cmd_structstore.main(['sync', '-G', group.label, *scope], standalone_mode=False, obj=obj)
        terminal.flush()
        chunks = []
        while select.select([master], [], [], 0)[0]:
            chunks.append(os.read(master, 65536))
    finally:
        monkeypatch.undo()
        terminal.close()
        os.close(master)
    text = re.sub(r'\x1b\[[0-9;]*m', '', b''.join(chunks).decode())  # colours: it is a terminal
    lines = text.replace('\r\n', '\n').split('\n')
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ['selected', 'new'])
    assert lines[header].startswith('  selected')  # nothing of the bar in front of it
    shown = lines[header - 1].split('\r')[-1]  # what the terminal shows on the bar's line: its last drawing
    assert shown.endswith('| 2/2') and '100.0%' in shown
