"""A corpus of hostile and mistaken inputs, run through ``verdi data structstore``.

Each case must end with exactly one clear error line that names the problem, a non-zero exit code, no traceback, and
nothing changed: the same records in the store, the same nodes and groups in the AiiDA database.
"""

from __future__ import annotations

import os
import pathlib
import re
import secrets
import socket

import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.core.structures import Source, StructureContent, StructureKey
from aiida_structstore.tools.files import MAX_DATA_BLOCKS

ROOT = pathlib.Path(__file__).resolve().parents[2]
T = 'hostile'
SCOPE = ['-t', T, '-w', 'w']


SI_CIF = (ROOT / 'examples' / 'cif' / 'si.cif').read_text()
COD_CIF = (ROOT / 'tests' / 'cli' / 'files' / 'cod' / 'cod_9004112.cif').read_text()
SI_PW = (ROOT / 'examples' / 'pw' / 'si_scf.in').read_text()
#: Files for the import cases: name → content (bytes are written as they are).
FILES = {
    'empty.cif': '',
    'garbage.cif': bytes(range(256)) * 4,
    'latin1.cif': SI_CIF.replace('data_', '# caf\xe9\ndata_').encode('latin-1'),
    'no-atoms.cif': 'data_x\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n'
    '_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n',
    'unknown-group.cif': 'data_x\n_cell_length_a 5.43\n_cell_length_b 5.43\n_cell_length_c 5.43\n'
    '_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n'
    "_space_group_name_H-M_nonsense 'F d -3 m'\n"
    'loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n'
    'Si1 Si 0 0 0\n',
    'wrong-nat.in': SI_PW.replace('nat = 2', 'nat = 3').replace('nat=2', 'nat=3'),
    'tab\tname.cif': SI_CIF,
    'evil\u202ename.cif': SI_CIF,
    'notes.txt': 'nothing a structure reader knows',
    # One more data block than an import takes (a real COD entry, renamed): refused before any block is read.
    'many-blocks.cif': ''.join(
        COD_CIF.replace('data_9004112', f'data_9004112_{i}') for i in range(MAX_DATA_BLOCKS + 1)
    ),
}


@pytest.fixture(scope='module')
def world(aiida_profile, tmp_path_factory):
    """Nodes the cases refer to: structures A and B, a Dict, a group of A and B, an empty group; and files."""
    folder = tmp_path_factory.mktemp('hostile-files')
    files = {}
    for name, content in FILES.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding='utf-8')
        files[name] = path
    (folder / 'a-directory').mkdir()
    files['a-directory'] = folder / 'a-directory'
    # Files that are no regular files: opening a FIFO blocks until a writer comes, a device is read forever.
    os.mkfifo(folder / 'fifo.cif')
    files['fifo.cif'] = folder / 'fifo.cif'
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(folder / 'socket.cif'))  # the socket file stays after the socket is closed
    files['socket.cif'] = folder / 'socket.cif'
    a = orm.StructureData(cell=[[3, 0, 0], [0, 3, 0], [0, 0, 3]])
    a.append_atom(position=(0, 0, 0), symbols='Si')
    a.label = 'with space'
    a.store()
    b = orm.StructureData(cell=[[4, 0, 0], [0, 4, 0], [0, 0, 4]])
    b.append_atom(position=(0, 0, 0), symbols='Fe')
    b.label = 'with space'
    b.store()
    group = orm.Group(label=f'hostile-{secrets.token_hex(3)}').store()
    group.add_nodes([a, b])
    empty = orm.Group(label=f'hostile-empty-{secrets.token_hex(3)}').store()
    return {'a': a, 'b': b, 'dict': orm.Dict({'x': 1}).store(), 'group': group, 'empty': empty, 'files': files}


@pytest.fixture
def store(convex_backend, world):
    """The local Convex server, holding A's record under the id ``owned``."""
    key = StructureKey.of(T, 'w', 'owned')
    if convex_backend.structures.find(key) is None:
        content = StructureContent(key=key, source=Source.of('aiida'), cif='data_a\n', node_uuid=world['a'].uuid)
        convex_backend.structures.put(content)
    return convex_backend


def counts(store) -> tuple:
    records = sum(1 for _ in store.structures.iter_workspace(T, 'w')) + sum(
        1 for _ in store.structures.iter_workspace(T, 'other')
    )
    executions = sum(1 for _ in store.executions.iter(T, 'w'))
    nodes, groups = orm.QueryBuilder().append(orm.Node).count(), orm.QueryBuilder().append(orm.Group).count()
    return records, executions, nodes, groups


def settings_file(tmp_path, mode: int, text: str) -> str:
    path = tmp_path / 'settings.env'
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


# (case id, arguments (callables get the world), environment, expected text in the one error line)
CASES = [
    # identifiers
    ('id-path', ['show', '../etc/passwd', *SCOPE], {}, "character '/' is not allowed"),
    ('id-space', ['show', 'a b', *SCOPE], {}, "character ' ' is not allowed"),
    ('id-dot-first', ['show', '.hidden', *SCOPE], {}, 'must start with an ASCII letter or digit'),
    ('id-too-long', ['show', 'x' * 129, *SCOPE], {}, 'is 129 characters long; the limit is 128'),
    ('id-non-ascii', ['show', 'caf\u00e9', *SCOPE], {}, "character 'é' is not allowed"),
    ('id-nul', ['show', 'a\x00b', *SCOPE], {}, "character '\\x00' is not allowed"),
    ('id-bidi', ['show', 'ab\u202ecd', *SCOPE], {}, "character '\\u202e' is not allowed"),
    ('id-newline', ['show', 'a\nb', *SCOPE], {}, "character '\\n' is not allowed"),
    ('id-dash-option', ['show', '--', '-rf', *SCOPE], {}, 'must start with an ASCII letter or digit'),
    ('tenant-empty', ['list', '-t', '', '-w', 'w'], {}, 'tenant_id must not be empty'),
    ('tenant-slash', ['list', '-t', 'a/b', '-w', 'w'], {}, "character '/' is not allowed"),
    ('tenant-long', ['list', '-t', 't' * 200, '-w', 'w'], {}, 'is 200 characters long'),
    ('tenant-sql', ['list', '-t', "x' OR '1'='1", '-w', 'w'], {}, 'character "\'" is not allowed'),
    ('workspace-bidi', ['list', '-t', T, '-w', 'w\u202e'], {}, "character '\\u202e' is not allowed"),
    ('workspace-missing', ['list', '-t', T], {}, "Missing option '-w' / '--workspace'"),
    ('delete-one-bad-of-two', ['delete', 'owned', 'a/b', *SCOPE, '--force'], {}, "character '/' is not allowed"),
    ('missing-record', ['show', 'nope', *SCOPE], {}, f'no structure {T}/w/nope'),
    ('no-raw', ['show', 'owned', *SCOPE, '-F', 'raw'], {}, f'{T}/w/owned has no raw input'),
    # options
    ('format-unknown', ['show', 'owned', *SCOPE, '-F', 'xml'], {}, "'xml' is not one of"),
    ('limit-zero', ['list', *SCOPE, '--limit', '0'], {}, '0 is not in the range 1<=x<=200'),
    ('limit-huge', ['list', *SCOPE, '--limit', '100000'], {}, 'is not in the range 1<=x<=200'),
    ('limit-text', ['list', *SCOPE, '--limit', 'many'], {}, "'many' is not a valid integer"),
    ('gc-negative', ['gc', *SCOPE, '--older-than', '-1'], {}, '-1.0 is not in the range x>=0'),
    ('gc-nan', ['gc', *SCOPE, '--older-than', 'nan'], {}, 'older_than_seconds must be >= 0, got nan'),
    ('batch-zero', ['sync', *SCOPE, '--batch-size', '0'], {}, '0 is not in the range 1<=x<=5000'),
    ('batch-huge', ['sync', *SCOPE, '--batch-size', '99999'], {}, 'is not in the range 1<=x<=5000'),
    ('template-unknown', ['sync', *SCOPE, '--id-template', '{nope}'], {}, "invalid structure id template '{nope}'"),
    ('template-attr', ['sync', *SCOPE, '--id-template', '{uuid.__class__}'], {}, 'unknown field {uuid.__class__}'),
    ('template-index', ['sync', *SCOPE, '--id-template', '{label[0]}'], {}, 'unknown field {label[0]}'),
    ('template-format', ['sync', *SCOPE, '--id-template', '{pk:x<500}'], {}, 'is 500 characters long'),
    ('template-brace', ['sync', *SCOPE, '--id-template', '{uuid'], {}, 'invalid structure id template'),
    # JSON filters
    ('filters-not-json', ['sync', *SCOPE, '--filters', '{nope'], {}, 'not valid JSON'),
    ('filters-list', ['sync', *SCOPE, '--filters', '[1, 2]'], {}, 'must be a JSON object'),
    ('filters-string', ['sync', *SCOPE, '--filters', '"id"'], {}, 'must be a JSON object'),
    ('filters-operator', ['sync', *SCOPE, '--filters', '{"id": {"nope": 1}}'], {}, 'invalid filters'),
    ('filters-column', ['sync', *SCOPE, '--filters', '{"no_such_column": 1}'], {}, 'invalid filters'),
    ('filters-type', ['sync', *SCOPE, '--filters', '{"uuid": {"like": 5}}'], {}, 'invalid filters'),
    ('filters-nothing', ['sync', *SCOPE, '--filters', '{"id": -1}'], {}, 'no structures selected'),
    ('parts-zero', ['sync', *SCOPE, '--parts', '0'], {}, '0 is not in the range 1<=x<=1000'),
    ('parts-dry-run', ['sync', *SCOPE, '--parts', '2', '--dry-run'], {}, 'cannot be combined with --parts'),
    ('parts-nodes', lambda w: ['sync', *SCOPE, '--parts', '2', '-N', w['a'].pk], {}, 'not on a list of nodes'),
    ('parts-no-daemon', ['sync', *SCOPE, '--parts', '2'], {}, '--parts needs the daemon'),
    # files and file names (import)
    ('file-missing', ['import', '/nonexistent/x.cif'], {}, "File '/nonexistent/x.cif' does not exist"),
    ('file-directory', lambda w: ['import', w['files']['a-directory']], {}, 'is a directory'),
    ('file-empty', lambda w: ['import', w['files']['empty.cif']], {}, 'empty.cif'),
    ('file-garbage', lambda w: ['import', w['files']['garbage.cif']], {}, 'garbage.cif'),
    ('file-not-utf8', lambda w: ['import', w['files']['latin1.cif']], {}, 'not valid UTF-8'),
    ('file-no-atoms', lambda w: ['import', w['files']['no-atoms.cif']], {}, 'no-atoms.cif'),
    ('file-unknown-group', lambda w: ['import', w['files']['unknown-group.cif']], {}, 'unknown-group.cif'),
    ('file-wrong-nat', lambda w: ['import', w['files']['wrong-nat.in']], {}, 'wrong-nat.in'),
    ('file-name-tab', lambda w: ['import', w['files']['tab\tname.cif']], {}, 'U+0009'),
    ('file-name-bidi', lambda w: ['import', w['files']['evil\u202ename.cif']], {}, 'U+202E'),
    ('file-unknown-kind', lambda w: ['import', w['files']['notes.txt']], {}, 'cannot tell whether'),
    ('file-fifo', lambda w: ['import', w['files']['fifo.cif']], {}, 'fifo.cif: is a FIFO (named pipe), not a regular'),
    ('file-socket', lambda w: ['import', w['files']['socket.cif']], {}, 'socket.cif: is a socket, not a regular file'),
    ('file-device', ['import', '/dev/zero', '--format', 'cif'], {}, 'zero: is a character device, not a regular file'),
    ('file-unreadable', ['import', '/proc/self/mem', '--format', 'cif'], {}, 'mem: cannot read the file: Input/output'),
    ('file-many-blocks', lambda w: ['import', w['files']['many-blocks.cif']], {}, '1001 data blocks; an import takes'),
    ('file-format', lambda w: ['import', w['files']['notes.txt'], '--format', 'xyz'], {}, "'xyz' is not one of"),
    ('import-project-no-target', lambda w: ['import', w['files']['empty.cif'], '--project'], {}, '--project needs'),
    ('import-group-failed', lambda w: ['import', w['files']['empty.cif'], '-G', 'never-made'], {}, 'empty.cif'),
    # nodes and groups
    ('sync-dict-node', lambda w: ['sync', *SCOPE, '-N', w['dict'].pk], {}, 'no StructureData found'),
    ('sync-missing-pk', ['sync', *SCOPE, '-N', '99999999'], {}, 'no StructureData found'),
    ('sync-missing-group', ['sync', *SCOPE, '-G', 'no-such-group-anywhere'], {}, 'no Group found with LABEL'),
    ('sync-empty-group', lambda w: ['sync', *SCOPE, '-G', w['empty'].label], {}, 'no structures selected'),
    ('project-dict', lambda w: ['project', w['dict'].pk, *SCOPE], {}, 'no StructureData found'),
    ('project-nothing', ['project', *SCOPE], {}, "Missing argument 'STRUCTURES...'"),
    ('project-two-one-id', lambda w: ['project', w['a'].pk, w['b'].pk, *SCOPE, '--structure-id', 'x'], {}, 'single'),
    ('project-bad-id', lambda w: ['project', w['a'].pk, *SCOPE, '--structure-id', 'a b'], {}, 'is not allowed'),
    ('project-owned', lambda w: ['project', w['b'].pk, *SCOPE, '--structure-id', 'owned'], {}, 'holds the record'),
    (
        'sync-bad-labels',
        lambda w: ['sync', '-t', T, '-w', 'other', '-G', w['group'].label, '--id-template', '{label}'],
        {},
        None,
    ),
    # execution records
    ('exec-show-not-uuid', ['executions', 'show', 'not-a-uuid', *SCOPE], {}, "process_uuid 'not-a-uuid' is not a UUID"),
    ('exec-show-missing', ['executions', 'show', '00000000-0000-4000-8000-000000000000', *SCOPE], {}, 'no execution'),
    ('exec-list-bad-structure', ['executions', 'list', *SCOPE, '-s', 'a/b'], {}, "character '/' is not allowed"),
    ('exec-list-limit', ['executions', 'list', *SCOPE, '-l', '0'], {}, '0 is not in the range 1<=x<=200'),
    ('exec-sync-nothing', ['executions', 'sync', *SCOPE, '--no-linked'], {}, 'select processes'),
    ('exec-sync-structure', lambda w: ['executions', 'sync', *SCOPE, '-N', w['a'].pk], {}, 'no ProcessNode found'),
    ('exec-sync-group', ['executions', 'sync', *SCOPE, '-G', 'no-such-group-anywhere'], {}, 'no Group found'),
    ('exec-sync-batch', ['executions', 'sync', *SCOPE, '--batch-size', '0'], {}, '0 is not in the range 1<=x<=5000'),
    ('exec-watch-tenant', ['executions', 'watch', '-t', '../x', '-w', 'w'], {}, "character '/' is not allowed"),
    # settings
    ('backend-unknown', ['list', *SCOPE], {'STRUCTURE_STORE_BACKEND': 'sqlite'}, "'sqlite' is not a known backend"),
    ('url-missing', ['list', *SCOPE], {'CONVEX_URL': None}, 'requires CONVEX_URL to be set'),
    ('key-missing', ['list', *SCOPE], {'CONVEX_DEPLOY_KEY': None}, 'requires CONVEX_DEPLOY_KEY to be set'),
    ('key-space', ['list', *SCOPE], {'CONVEX_DEPLOY_KEY': 'prod:abc def'}, 'has a space, control or non-ASCII'),
    ('swapped', ['list', *SCOPE], {'CONVEX_URL': 'prod:key|abc', 'CONVEX_DEPLOY_KEY': 'http://127.0.0.1:1'}, 'swapped'),
    ('url-credentials', ['list', *SCOPE], {'CONVEX_URL': 'http://u:p@127.0.0.1:1'}, 'must not contain a user name'),
    ('url-remote-http', ['list', *SCOPE], {'CONVEX_URL': 'http://convex.example.org'}, 'unencrypted'),
    ('url-ftp', ['list', *SCOPE], {'CONVEX_URL': 'ftp://x'}, 'must start with https:// or http://'),
    ('timeout-text', ['list', *SCOPE], {'STRUCTURE_STORE_TIMEOUT': 'soon'}, 'STRUCTURE_STORE_TIMEOUT'),
    ('retries-zero', ['list', *SCOPE], {'STRUCTURE_STORE_RETRIES': '0'}, 'STRUCTURE_STORE_RETRIES'),
    ('settings-missing', ['list', *SCOPE], {'STRUCTURE_STORE_SETTINGS_FILE': '/nonexistent/x.env'}, 'does not exist'),
    ('settings-readable', ['list', *SCOPE], {'STRUCTURE_STORE_SETTINGS_FILE': ('file', 0o644)}, 'chmod 600'),
    ('key-wrong', ['list', *SCOPE], {'CONVEX_DEPLOY_KEY': 'wrong-key-000'}, 'rejected the deploy key'),
]


@pytest.mark.parametrize(('args', 'environment', 'expected'), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input(no_daemon, store, world, monkeypatch, tmp_path, args, environment, expected):
    """No daemon runs (the session's may have been started by an earlier test): `--parts` without one is a case
    here, and nothing submitted may write behind the test's back."""
    from aiida.common import AttributeDict
    from aiida.manage.configuration import get_config, get_profile

    arguments = [str(a) for a in (args(world) if callable(args) else args)]
    for name, value in environment.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        elif isinstance(value, tuple):
            monkeypatch.setenv(name, settings_file(tmp_path, value[1], 'STRUCTURE_STORE_BACKEND=memory\n'))
        else:
            monkeypatch.setenv(name, value)
    before = counts(store)
    obj = AttributeDict({'config': get_config(), 'profile': get_profile()})
    result = CliRunner().invoke(cmd_structstore, arguments, obj=obj)

    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert 'Traceback' not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith(('Error:', 'Critical:'))]
    # A command over many items (sync, import) ends with a summary line after one line per failed item.
    summaries = [line for line in errors if re.match(r'Critical: \d+ (of \d+ )?\w+ failed', line)]
    problems = [line for line in errors if line not in summaries]
    assert len(summaries) <= 1, result.output
    if expected is None:  # per-node failures: one line per failed node, and the summary
        assert summaries and problems, result.output
    else:
        assert len(problems) == 1, result.output
        assert expected in problems[0], result.output
    assert counts(store) == before


def test_import_refuses_to_start_after_an_interrupted_import(no_daemon, store, world):
    """An import process an earlier version left Running, with an output in no group (no runner recorded: it was
    run before runs were marked): the next import names it and stores nothing until it is deleted."""
    from aiida.common import AttributeDict
    from aiida.common.links import LinkType
    from aiida.manage.configuration import get_config, get_profile
    from aiida.tools import delete_nodes
    from plumpy import ProcessState

    process = orm.CalcFunctionNode()
    process.set_process_type('aiida.calculations:structstore.import_cif')
    process.set_process_state(ProcessState.RUNNING)
    process.store()
    output = orm.StructureData(cell=[[3, 0, 0], [0, 3, 0], [0, 0, 3]])
    output.append_atom(position=(0, 0, 0), symbols='Si')
    output.base.links.add_incoming(process, LinkType.CREATE, 'structures__a')
    output.store()
    try:
        before = counts(store)
        obj = AttributeDict({'config': get_config(), 'profile': get_profile()})
        result = CliRunner().invoke(cmd_structstore, ['import', str(world['files']['tab\tname.cif'])], obj=obj)
        assert result.exit_code not in (0, None) and isinstance(result.exception, SystemExit), result.output
        assert 'Traceback' not in result.output
        errors = [line for line in result.output.splitlines() if line.startswith(('Error:', 'Critical:'))]
        assert len(errors) == 1, result.output
        # (other tests of the session leave none; if they did, their pks would be named too)
        assert re.search(rf'interrupted and left unfinished processes \(pks [\d ]*\b{process.pk}\b', errors[0])
        assert re.search(rf'verdi node delete [\d ]*\b{process.pk}\b', errors[0]), errors[0]
        assert counts(store) == before
    finally:
        delete_nodes([process.pk], dry_run=False)
