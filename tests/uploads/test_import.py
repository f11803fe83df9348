"""``verdi data structstore uploads import`` against the local Convex server and the test profile's database.

Real files (the examples, the COD and pw.x corpora) are uploaded through the store, imported, and checked from both
ends: the upload record (imported, structure id, node), the AiiDA provenance (the import calcfunction's input is a
file node holding exactly the uploaded bytes), the group, and the projected record (source, raw bytes).
"""

from __future__ import annotations

import pathlib
import secrets

import pytest
from aiida import orm

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.core.structures import StructureKey
from aiida_structstore.uploads.importer import UPLOAD_EXTRA, UploadImporter, find_import, upload_ident

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = [
    ('cif', ROOT / 'examples' / 'cif' / 'fe2o3.cif'),
    ('cif', ROOT / 'examples' / 'cif' / 'si.cif'),
    ('pw', ROOT / 'examples' / 'pw' / 'si_scf.in'),
    ('pw', ROOT / 'examples' / 'pw' / 'fe2o3_bands.in'),
    ('cif', ROOT / 'tests' / 'cli' / 'files' / 'cod' / 'cod_9004112.cif'),
    ('cif', ROOT / 'tests' / 'cli' / 'files' / 'cod' / 'cod_1010930.cif'),
    ('pw', ROOT / 'tests' / 'tools' / 'files' / 'pw' / 'zno_wurtzite_ibrav4_abc.in'),
    ('pw', ROOT / 'tests' / 'tools' / 'files' / 'pw' / 'sio2_quartz_ibrav0_angstrom.in'),
]


@pytest.fixture(params=['memory', 'convex'])
def store(request):
    """The store under test, selected through the environment as the commands and calcfunctions read it."""
    backend = request.getfixturevalue(f'{request.param}_backend')
    if not hasattr(backend, 'uploads'):
        pytest.skip(f'the {request.param} backend has no uploads yet')
    return backend


def workspace() -> tuple[str, str, str]:
    """A fresh tenant, workspace and group label (the session's Convex server and database are shared)."""
    suffix = secrets.token_hex(4)
    return 'acme', f'up-{suffix}', f'uploads/{suffix}'


def import_process(structure: orm.StructureData) -> orm.CalcFunctionNode:
    return structure.base.links.get_incoming(node_class=orm.CalcFunctionNode).one().node


def count(cls, **filters) -> int:
    return orm.QueryBuilder().append(cls, filters=filters).count()


def test_real_files_are_imported_with_provenance(store, run_cli_command):
    tenant, space, group = workspace()
    uploads = []
    for index, (kind, path) in enumerate(FILES):
        structure_id = 'first-upload' if index == 0 else None
        record, created = store.uploads.create(
            tenant,
            space,
            filename=path.name,
            kind=kind,
            content=path.read_bytes(),
            uploaded_by='alice@example.org',
            structure_id=structure_id,
        )
        assert created
        uploads.append((record, path))

    result = run_cli_command(cmd_structstore, ['uploads', 'import', '-t', tenant, '-w', space, '--group', group])
    assert f'{len(FILES)} imported' in result.output

    members = {node.uuid for node in orm.load_group(group).nodes}
    assert len(members) == len(FILES)
    for record, path in uploads:
        done = store.uploads.get(record.key)
        assert done.status == 'imported', done
        assert done.node_uuid in members
        structure = orm.load_node(done.node_uuid)
        process = import_process(structure)
        file = process.inputs.file
        assert file.get_content(mode='rb') == path.read_bytes()  # provenance starts at the uploaded bytes
        assert file.filename == path.name
        assert isinstance(file, orm.CifData if record.kind == 'cif' else orm.SinglefileData)
        assert file.base.extras.get(UPLOAD_EXTRA)['uploaded_by'] == 'alice@example.org'
        expected_id = 'first-upload' if record.structure_id else structure.uuid
        assert done.result_structure_id == expected_id
        projected = store.structures.get(StructureKey.of(tenant, space, expected_id))
        assert projected.node_uuid == structure.uuid
        assert projected.source.kind == ('upload.cif' if record.kind == 'cif' else 'upload.pw-input')
        assert projected.source.filename == path.name
        assert projected.source.uploaded_by == 'alice@example.org'
        assert store.structures.get_raw(projected.key) == path.read_text()

    # The records are what AiiDA gives for these nodes (the source from the file node's upload extra included).
    run_cli_command(cmd_structstore, ['verify', '-t', tenant, '-w', space])

    # Nothing is left to claim: a second run imports nothing.
    result = run_cli_command(cmd_structstore, ['uploads', 'import', '-t', tenant, '-w', space, '--group', group])
    assert 'no pending uploads' in result.output
    assert len(orm.load_group(group).nodes) == len(FILES)


def test_an_invalid_file_fails_with_its_parse_error_and_keeps_only_the_failed_process(store, run_cli_command):
    tenant, space, group = workspace()
    content = b'data_broken\n_cell_length_a 5.0\n_cell_length_b oops\n'
    record, _ = store.uploads.create(
        tenant, space, filename='broken.cif', kind='cif', content=content, uploaded_by='bob'
    )
    nodes_before = count(orm.Node)
    structures_before = count(orm.StructureData)

    result = run_cli_command(cmd_structstore, ['uploads', 'import', '-t', tenant, '-w', space, '--group', group])
    assert '1 failed' in result.output

    failed = store.uploads.get(record.key)
    assert failed.status == 'failed'
    found = find_import(record.key, record.sha256)
    assert found is not None and found.process is not None
    assert found.process.is_excepted
    assert failed.message == found.message
    assert failed.message and '\n' not in failed.message
    assert 'broken.cif' in failed.message or 'cell' in failed.message
    # Nothing but the file node and the failed process: no structure, nothing in the group.
    assert count(orm.Node) == nodes_before + 2
    assert count(orm.StructureData) == structures_before
    assert len(orm.load_group(group).nodes) == 0
    assert store.uploads.list(tenant, space, status='failed').items[0].key == record.key


def test_an_import_that_was_not_marked_is_found_and_completed_not_imported_again(store, run_cli_command):
    """An importer that stopped after its transaction committed, before it marked the upload: the next claim finds
    the import by the file node's extra and completes the upload from it."""
    tenant, space, group = workspace()
    path = ROOT / 'examples' / 'cif' / 'si.cif'
    record, _ = store.uploads.create(
        tenant, space, filename='si.cif', kind='cif', content=path.read_bytes(), uploaded_by='carol'
    )
    first = UploadImporter(store, claimer='crashing:1', lease_seconds=0, group_label=group, tenant_id=tenant)
    claimed = store.uploads.claim(claimer='crashing:1', lease_seconds=0, tenant_id=tenant, workspace_id=space)
    assert claimed is not None
    first._import(claimed.record, store.uploads.read(claimed.key))  # the transaction, then the "crash"
    processes_before = count(orm.CalcFunctionNode)

    result = run_cli_command(cmd_structstore, ['uploads', 'import', '-t', tenant, '-w', space, '--group', group])
    assert 'found imported earlier' in result.output

    done = store.uploads.get(record.key)
    assert done.status == 'imported'
    assert done.attempts == 2
    files = orm.QueryBuilder().append(
        (orm.SinglefileData, orm.CifData), filters={f'extras.{UPLOAD_EXTRA}.key': upload_ident(record.key)}
    )
    assert files.count() == 1
    # No process ran this time: the import was found, the projection is not a process.
    assert count(orm.CalcFunctionNode) == processes_before
    assert len(orm.load_group(group).nodes) == 1


def test_a_requested_structure_id_that_is_taken_fails_the_upload_before_any_import(
    store, run_cli_command, generate_structure
):
    tenant, space, group = workspace()
    other = generate_structure('silicon').store()
    run_cli_command(cmd_structstore, ['project', other.pk, '-t', tenant, '-w', space, '--structure-id', 'taken'])
    path = ROOT / 'examples' / 'cif' / 'fe2o3.cif'
    record, _ = store.uploads.create(
        tenant,
        space,
        filename=path.name,
        kind='cif',
        content=path.read_bytes(),
        uploaded_by='dan',
        structure_id='taken',
    )
    nodes_before = count(orm.Node)

    run_cli_command(cmd_structstore, ['uploads', 'import', '-t', tenant, '-w', space, '--group', group])

    failed = store.uploads.get(record.key)
    assert failed.status == 'failed'
    assert "structure id 'taken' is taken" in failed.message
    assert count(orm.Node) == nodes_before
    assert store.structures.get(StructureKey.of(tenant, space, 'taken')).node_uuid == other.uuid


def test_claims_stay_in_the_tenant_and_workspace_given(store, run_cli_command):
    tenant, space, group = workspace()
    _, other_space, _ = workspace()
    path = ROOT / 'examples' / 'pw' / 'si_scf.in'
    mine, _ = store.uploads.create(
        tenant, space, filename='si.in', kind='pw', content=path.read_bytes(), uploaded_by='e'
    )
    theirs, _ = store.uploads.create(
        tenant, other_space, filename='si.in', kind='pw', content=path.read_bytes(), uploaded_by='f'
    )
    run_cli_command(cmd_structstore, ['uploads', 'import', '-t', tenant, '-w', space, '--group', group])
    assert store.uploads.get(mine.key).status == 'imported'
    assert store.uploads.get(theirs.key).status == 'pending'
    run_cli_command(cmd_structstore, ['uploads', 'import', '-t', tenant, '-w', other_space, '--group', group])
    assert store.uploads.get(theirs.key).status == 'imported'


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        (['-w', 'space'], '-w/--workspace needs -t/--tenant'),
        (['--lease', '0'], '--lease'),
    ],
)
def test_bad_options_are_named(memory_backend, run_cli_command, args, message):
    result = run_cli_command(cmd_structstore, ['uploads', 'import', *args], raises=True)
    assert message in result.output
