"""The import calcfunctions and ``verdi data structstore import``: files → nodes with provenance."""

from __future__ import annotations

import io
import pathlib
import re
import uuid

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import CalculationFactory

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.core.structures import StructureKey

from .cli.test_commands import rows

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / 'examples'
import_pw_input = CalculationFactory('structstore.import_pw_input')
import_cif = CalculationFactory('structstore.import_cif')


def test_pw_input_import_keeps_the_file_and_is_reproducible():
    file = orm.SinglefileData(EXAMPLES / 'pw' / 'si_scf.in').store()
    results, node = import_pw_input.run_get_node(file=file)
    assert node.is_finished_ok
    structure = results['structure']
    assert structure.get_formula() == 'Si2'
    assert results['parameters']['SYSTEM']['ibrav'] == 2
    assert 'celldm(1)' in results['parameters']['SYSTEM']
    assert results['kpoints'].get_kpoints_mesh() == ([4, 4, 4], [0.5, 0.5, 0.5])
    inputs = node.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()
    assert [(link.link_label, link.node.uuid) for link in inputs] == [('file', file.uuid)]
    # Reproducible from the stored file alone.
    again, _ = import_pw_input.run_get_node(file=orm.load_node(file.pk))
    assert again['structure'].base.attributes.all == structure.base.attributes.all


def test_fe1_fe2_kinds_from_pw_input():
    file = orm.SinglefileData(EXAMPLES / 'pw' / 'fe2o3_bands.in').store()
    results = import_pw_input(file=file)
    kinds = sorted(kind.name for kind in results['structure'].kinds)
    assert 'Fe1' in kinds and 'Fe2' in kinds
    system = results['parameters']['SYSTEM']
    assert (system['starting_magnetization(1)'], system['starting_magnetization(2)']) == (0.5, -0.5)
    assert system['hubbard_u(1)'] == 4.3
    assert results['kpoints'].get_kpoints().shape[0] > 1000


def test_import_cli_reports_bad_files_and_stores_nothing_for_them(run_cli_command, tmp_path):
    bad = tmp_path / 'broken.in'
    bad.write_text(
        '&CONTROL\n/\n&SYSTEM\n nat=2, ntyp=1, ibrav=2, celldm(1)=10.2\n/\nATOMIC_SPECIES\nSi 28 Si.UPF\n'
        'ATOMIC_POSITIONS alat\nSi 0 0 0\n'
    )
    binary = tmp_path / 'garbage.cif'
    binary.write_bytes(b'\xff\xfe\x00garbage')
    before = orm.QueryBuilder().append(orm.SinglefileData).count()
    result = run_cli_command(
        cmd_structstore, ['import', str(EXAMPLES / 'pw' / 'si_scf.in'), str(bad), str(binary)], raises=True
    )
    assert 'broken.in' in result.output and 'nat' in result.output
    assert 'garbage.cif' in result.output and 'UTF-8' in result.output
    assert '2 of 3 files failed to import' in result.output
    assert orm.QueryBuilder().append(orm.SinglefileData).count() == before + 1


def test_import_table_gives_the_reduced_formula_as_list_does(run_cli_command, convex_backend):
    scope = ['-t', 'imports', '-w', f'formula-{uuid.uuid4().hex[:6]}']
    imported = rows(run_cli_command(cmd_structstore, ['import', str(EXAMPLES / 'cif' / 'fe2o3.cif')]).output)
    assert [(row['formula'], row['sites']) for row in imported] == [('Fe2O3', '30')]  # the cell holds Fe12O18
    structure = orm.load_node(int(imported[0]['pk']))
    run_cli_command(cmd_structstore, ['project', structure.pk, *scope])
    (listed,) = rows(run_cli_command(cmd_structstore, ['list', *scope]).output)
    assert listed['formula'] == imported[0]['formula']


def test_import_and_project_pw_input_with_raw(run_cli_command, convex_backend):
    path = EXAMPLES / 'pw' / 'fe2o3_bands.in'
    result = run_cli_command(cmd_structstore, ['import', str(path), '--project', '-t', 'imports', '-w', 'pw'])
    assert 'created' in result.output
    records = list(convex_backend.structures.iter_workspace('imports', 'pw'))
    record = next(r for r in records if r.source.filename == 'fe2o3_bands.in')
    assert record.source.kind == 'pw-input'
    assert convex_backend.structures.get_raw(record.key).encode() == path.read_bytes()
    full = convex_backend.structures.get(StructureKey.of('imports', 'pw', record.key.structure_id))
    assert full.params['SYSTEM']['hubbard_u(1)'] == 4.3
    assert {'Fe1', 'Fe2'} <= {s['name'] for s in full.structure['species']}


@pytest.mark.parametrize('name', ['si_scf.in'])
def test_format_override(run_cli_command, tmp_path, name):
    renamed = tmp_path / 'input.txt'
    renamed.write_bytes((EXAMPLES / 'pw' / name).read_bytes())
    for args in (['import', str(renamed)], ['import', '--format', 'pw', str(renamed)]):
        (row,) = rows(run_cli_command(cmd_structstore, args).output)
        assert (row['formula'], row['sites']) == ('Si', '2')  # read as the pw.x input it is


CIF_FILES = pathlib.Path(__file__).resolve().parent / 'tools' / 'files' / 'cif'


def test_cif_import_one_block():
    file = orm.CifData(file=EXAMPLES / 'cif' / 'fe2o3.cif').store()
    results, node = import_cif.run_get_node(file=file)
    assert node.is_finished_ok
    structure = results['structure']
    assert len(structure.sites) == 30
    assert structure.get_formula(mode='hill') == 'Fe12O18'
    assert {kind.name for kind in structure.kinds} == {'Fe1', 'O1'}


def test_cif_import_several_blocks_gives_a_namespace():
    file = orm.CifData(file=CIF_FILES / 'two_blocks.cif').store()
    results, node = import_cif.run_get_node(file=file)
    assert node.is_finished_ok
    assert 'structure' not in results
    assert len(results['structures']) == 2
    labels = {link.link_label for link in node.base.links.get_outgoing(link_type=LinkType.CREATE).all()}
    assert all(label.startswith('structures__') for label in labels)


def test_cif_alloy_and_vacancy_kinds_project(memory_backend):
    from aiida_structstore.calculations.functions.project_structure import project_structure

    for name, feature in (('cuau_site_split_alloy.cif', 'alloy'), ('feo_wustite_vacancy.cif', 'vacancy')):
        structure = import_cif(file=orm.CifData(file=CIF_FILES / name).store())['structure']
        assert structure.is_alloy if feature == 'alloy' else structure.has_vacancies
        receipt = project_structure(structure=structure, tenant_id=orm.Str('cif'), workspace_id=orm.Str('w'))['receipt']
        record = memory_backend.structures.get(StructureKey.of('cif', 'w', receipt['structure_id']))
        assert record.structure['structure_features'] == ['disorder']
        assert record.source.kind == 'cif'


def test_a_broken_cif_fails_the_calcfunction_with_a_parse_error(tmp_path):
    from aiida_structstore.core.exceptions import ParseError

    path = tmp_path / 'broken.cif'
    path.write_text('data_x\n_cell_length_a 5\nloop_\n_atom_site_label\n_atom_site_fract_x\nSi1 0.0\n')
    with pytest.raises(ParseError, match=r'broken\.cif'):
        import_cif(file=orm.CifData(file=path).store())


# --------------------------------------------------------------------------------------------------------------------
# AiiDA data types (#12): CifData in, the k-points kind out, a PwCalculation builder


def test_a_cif_already_in_the_graph_imports():
    cif, _created = orm.CifData.get_or_create(str(EXAMPLES / 'cif' / 'si.cif'), use_first=True)
    cif.store()
    results, node = import_cif.run_get_node(file=cif)
    assert node.is_finished_ok
    assert len(results['structure'].sites) == 8
    assert [link.node.uuid for link in node.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()] == [cif.uuid]


@pytest.mark.parametrize(
    ('card', 'kind'),
    [
        ('K_POINTS automatic\n4 4 4 1 1 1', 'automatic'),
        ('K_POINTS gamma', 'gamma'),
        ('K_POINTS crystal\n1\n0 0 0 1', 'list'),
        ('K_POINTS tpiba_b\n2\ngG 10\nL 10', 'band_path'),
    ],
)
def test_pw_import_keeps_the_kpoints_kind(tmp_path, card, kind):
    path = tmp_path / 'si.in'
    path.write_text((EXAMPLES / 'pw' / 'si_scf.in').read_text().split('K_POINTS')[0] + card + '\n')
    results = import_pw_input(file=orm.SinglefileData(path).store())
    assert results['kpoints_kind'].value == kind
    if kind == 'gamma':
        assert results['kpoints'].get_kpoints_mesh() == ([1, 1, 1], [0.0, 0.0, 0.0])
    if kind == 'band_path':
        assert results['kpoints'].labels == [(0, 'GAMMA'), (1, 'L')]


@pytest.fixture
def db_logging(monkeypatch):
    """Process logs stored in the database, as in a real ``verdi`` call.

    A ``verdi`` option callback reconfigures logging without the database handler the first time a command runs in
    this process; in a real call the profile is loaded afterwards and adds it back. Here the profile is loaded first.
    """
    from aiida.common import log

    monkeypatch.setattr(log, 'CLI_ACTIVE', True)
    log.configure_logging(with_orm=True)


@pytest.mark.usefixtures('db_logging')
def test_known_writer_conventions_are_reported_in_the_process_log():
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    text = str(CifWriter(Structure.from_spacegroup('Fd-3m', Lattice.cubic(5.43), ['Si'], [[0, 0, 0]])))
    results, node = import_cif.run_get_node(file=orm.CifData(file=io.BytesIO(text.encode()), filename='si.cif'))
    assert len(results['structure'].sites) == 8
    messages = [log.message for log in orm.Log.collection.get_logs_for(node)]
    assert any("as pymatgen's CifWriter writes it" in message for message in messages), messages


@pytest.mark.usefixtures('db_logging')
def test_known_writer_conventions_are_shown_by_the_cli(run_cli_command, tmp_path):
    path = tmp_path / 'urea.cif'
    path.write_text((CIF_FILES / 'urea_shelxl97.cif').read_text())
    result = run_cli_command(cmd_structstore, ['import', str(path)])
    assert 'Warning:' in result.output
    assert 'as SHELXL up to 2013 wrote it' in result.output
    process = orm.QueryBuilder().append(orm.CalcFunctionNode, tag='p').order_by({'p': {'id': 'desc'}}).first()[0]
    assert any('SHELXL' in log.message for log in orm.Log.collection.get_logs_for(process))


FAKE_UPF = '<UPF version="2.0.1">\n<PP_HEADER element="Si" z_valence="4.0" pseudo_type="NC"/>\n</UPF>\n'


@pytest.fixture
def pw_code(aiida_code_installed):
    return aiida_code_installed(default_calc_job_plugin='quantumespresso.pw', filepath_executable='/usr/bin/pw.x')


@pytest.fixture
def pseudo_dir(tmp_path):
    folder = tmp_path / 'pseudo'
    folder.mkdir()
    (folder / 'Si.pz-vbc.UPF').write_text(FAKE_UPF)
    return folder


def test_pw_input_as_pwcalculation_builder_passes_a_dry_run(
    pw_code, pseudo_dir, aiida_localhost, tmp_path, monkeypatch
):
    from aiida.engine import run_get_node

    monkeypatch.chdir(tmp_path)  # a dry run writes its files under ./submit_test

    from aiida_structstore.tools.pw import parse_pw_input
    from aiida_structstore.tools.pw.builder import create_builder

    parsed = parse_pw_input((EXAMPLES / 'pw' / 'si_scf.in').read_text(), filename='si_scf.in')
    builder = create_builder(parsed, pw_code, pseudo_folder=pseudo_dir)
    assert 'celldm(1)' not in builder.parameters['SYSTEM'] and builder.parameters['SYSTEM']['ibrav'] == 2
    builder.metadata.options.resources = {'num_machines': 1}
    builder.metadata.dry_run = True
    builder.metadata.store_provenance = False
    _, node = run_get_node(builder)
    written = pathlib.Path(node.dry_run_info['folder'], 'aiida.in').read_text()
    assert 'ibrav = 2' in written and 'K_POINTS automatic\n4 4 4 1 1 1' in written
    assert 'Si     28.086 Si.pz-vbc.UPF' in written


def test_import_cli_builds_and_dry_runs_a_pwcalculation(run_cli_command, pw_code, pseudo_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a dry run writes its files under ./submit_test
    path = EXAMPLES / 'pw' / 'si_scf.in'
    result = run_cli_command(
        cmd_structstore, ['import', str(path), '-X', pw_code.full_label, '--pseudo-dir', str(pseudo_dir), '--dry-run']
    )
    assert 'si_scf.in: PwCalculation dry run, input files in' in result.output
    folder = result.output.split('input files in ')[1].split()[0]
    assert 'ATOMIC_SPECIES' in pathlib.Path(folder, 'aiida.in').read_text()


# --------------------------------------------------------------------------------------------------------------------
# Reliability (#10): bad file names, oversize files and failed group imports store nothing


def counts() -> tuple[int, int, int]:
    return (
        orm.QueryBuilder().append(orm.SinglefileData).count(),
        orm.QueryBuilder().append(orm.ProcessNode).count(),
        orm.QueryBuilder().append(orm.Group).count(),
    )


@pytest.mark.parametrize(
    'name',
    [
        b'bad\xff\xfe.in',  # not UTF-8
        'evil\u202ecod.in'.encode(),  # right-to-left override: shows as 'evilni.doc'
        b'tab\tname.in',
        b'bell\x07.in',
    ],
    ids=['non-utf8', 'bidi-override', 'tab', 'control'],
)
def test_bad_file_names_are_refused_before_anything_is_stored(run_cli_command, tmp_path, name):
    import os

    path = os.path.join(os.fsencode(tmp_path), name)
    with open(path, 'wb') as handle:
        handle.write((EXAMPLES / 'pw' / 'si_scf.in').read_bytes())
    before = counts()
    result = run_cli_command(cmd_structstore, ['import', os.fsdecode(path)], raises=True)
    assert 'the file name' in result.output and 'rename the file' in result.output
    assert '1 of 1 files failed to import' in result.output
    assert counts() == before


def test_an_oversize_file_is_refused_before_anything_is_stored(run_cli_command, tmp_path, monkeypatch):
    import aiida_structstore.store.structures as base

    monkeypatch.setattr(base, 'MAX_RAW_BYTES', 200)
    path = tmp_path / 'big.in'
    path.write_bytes((EXAMPLES / 'pw' / 'si_scf.in').read_bytes())
    before = counts()
    result = run_cli_command(cmd_structstore, ['import', str(path)], raises=True)
    assert 'the store takes raw inputs up to 200' in result.output
    assert counts() == before


def test_a_failed_import_with_a_group_creates_no_group(run_cli_command, tmp_path):
    bad = tmp_path / 'bad.cif'
    bad.write_text('data_x\n_cell_length_a 5\n')
    result = run_cli_command(cmd_structstore, ['import', str(bad), '-G', 'never-created'], raises=True)
    assert 'bad.cif' in result.output
    assert not orm.QueryBuilder().append(orm.Group, filters={'label': 'never-created'}).count()


def test_a_cif_imported_as_cifdata_is_synced_with_its_raw_file(run_cli_command, memory_backend):
    """The raw file of an import is found by a query: CifData must count as a file (it is no SinglefileData by type)."""
    path = EXAMPLES / 'cif' / 'si.cif'
    label = f'raw-cif-{uuid.uuid4().hex[:8]}'
    run_cli_command(cmd_structstore, ['import', str(path), '-G', label])
    run_cli_command(cmd_structstore, ['sync', '-G', label, '-t', 'cif', '-w', label])
    (record,) = memory_backend.structures.iter_workspace('cif', label)
    assert record.source.kind == 'cif' and record.source.filename == 'si.cif'
    assert memory_backend.structures.get_raw(record.key) == path.read_text()


# --------------------------------------------------------------------------------------------------------------------
# Big and hostile inputs (#19): outputs stored in bulk as the engine stores them, a byte-order mark, capped warnings


def test_outputs_stored_in_bulk_are_what_the_engine_stores(run_cli_command):
    """The CLI stores a multi-block CIF's structures in bulk; the calcfunction called alone lets the engine store them.
    Both give the same link labels, attributes, node types and caching hashes."""
    path = CIF_FILES / 'two_blocks.cif'
    alone, engine_node = import_cif.run_get_node(file=orm.CifData(file=path).store())
    label = f'bulk-{uuid.uuid4().hex[:8]}'
    run_cli_command(cmd_structstore, ['import', str(path), '-G', label])
    bulk_node = orm.QueryBuilder().append(orm.CalcFunctionNode, tag='p').order_by({'p': {'id': 'desc'}}).first()[0]
    assert bulk_node.is_finished_ok and bulk_node.pk != engine_node.pk

    def outputs(process):
        links = process.base.links.get_outgoing(link_type=LinkType.CREATE).all()
        return {link.link_label: link.node for link in links}

    engine, bulk = outputs(engine_node), outputs(bulk_node)
    assert set(engine) == set(bulk) and len(bulk) == 2
    for name, node in bulk.items():
        assert node.node_type == engine[name].node_type
        assert node.base.attributes.all == engine[name].base.attributes.all
        assert node.base.caching.get_hash() == node.base.caching.compute_hash() == engine[name].base.caching.get_hash()
        assert node.user.pk == engine[name].user.pk and node.ctime is not None
    assert {node.pk for node in orm.load_group(label).nodes} == {node.pk for node in bulk.values()}
    assert set(alone['structures']) == {name.split('__')[1] for name in bulk}


def test_a_cif_with_a_byte_order_mark_imports(run_cli_command, tmp_path):
    """AiiDA's CifData parsed eagerly with PyCifRW, which fails on a UTF-8 byte-order mark (a 62-line traceback)."""
    path = tmp_path / 'bom.cif'
    path.write_bytes(b'\xef\xbb\xbf' + (EXAMPLES / 'cif' / 'si.cif').read_bytes())
    result = run_cli_command(cmd_structstore, ['import', str(path)])
    assert 'imported 1 structures from 1 files' in result.output
    assert 'Traceback' not in result.output


def test_repeated_warnings_are_shown_once_and_counted(run_cli_command, tmp_path):
    """A CIF with 30 items whose values hold blanks without quotes (a warning each, as careful readers give): the
    CLI shows the distinct warnings (at most 20) and counts the rest."""
    from aiida_structstore.tools.files import MAX_REPORTED_WARNINGS

    text = (EXAMPLES / 'cif' / 'fe2o3.cif').read_text()
    extra = ''.join(f'_journal_coden_{index:02d} Some Journal {index}\n' for index in range(30))
    path = tmp_path / 'repeated.cif'
    path.write_text(text.replace('\n_cell_length_a', '\n' + extra + '_cell_length_a', 1))
    result = run_cli_command(cmd_structstore, ['import', str(path)])
    warnings = [line for line in result.output.splitlines() if line.startswith('Warning:')]
    assert 2 <= len(warnings) <= MAX_REPORTED_WARNINGS + 1, result.output
    assert re.search(r'\d+ more warnings not shown', warnings[-1]), warnings[-1]
