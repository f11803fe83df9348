"""The import calcfunctions and ``verdi data structstore import``: files → nodes with provenance."""

from __future__ import annotations

import pathlib

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import CalculationFactory

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.models import StructureKey

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


def test_import_and_project_pw_input_with_raw(run_cli_command, convex_backend):
    path = EXAMPLES / 'pw' / 'fe2o3_bands.in'
    result = run_cli_command(cmd_structstore, ['import', str(path), '--project', '-t', 'imports', '-w', 'pw'])
    assert 'created' in result.output
    records = list(convex_backend.iter_workspace('imports', 'pw'))
    record = next(r for r in records if r.source.filename == 'fe2o3_bands.in')
    assert record.source.kind == 'pw-input'
    assert convex_backend.get_raw(record.key).encode() == path.read_bytes()
    full = convex_backend.get(StructureKey.of('imports', 'pw', record.key.structure_id))
    assert full.params['SYSTEM']['hubbard_u(1)'] == 4.3
    assert {'Fe1', 'Fe2'} <= {s['name'] for s in full.structure['species']}


@pytest.mark.parametrize('name', ['si_scf.in'])
def test_format_override(run_cli_command, tmp_path, name):
    renamed = tmp_path / 'input.txt'
    renamed.write_bytes((EXAMPLES / 'pw' / name).read_bytes())
    assert 'Si2' in run_cli_command(cmd_structstore, ['import', str(renamed)]).output
    assert 'Si2' in run_cli_command(cmd_structstore, ['import', '--format', 'pw', str(renamed)]).output


CIF_FILES = pathlib.Path(__file__).resolve().parent / 'tools' / 'files' / 'cif'


def test_cif_import_one_block():
    file = orm.SinglefileData(EXAMPLES / 'cif' / 'fe2o3.cif').store()
    results, node = import_cif.run_get_node(file=file)
    assert node.is_finished_ok
    structure = results['structure']
    assert len(structure.sites) == 30
    assert structure.get_formula(mode='hill') == 'Fe12O18'
    assert {kind.name for kind in structure.kinds} == {'Fe1', 'O1'}


def test_cif_import_several_blocks_gives_a_namespace():
    file = orm.SinglefileData(CIF_FILES / 'two_blocks.cif').store()
    results, node = import_cif.run_get_node(file=file)
    assert node.is_finished_ok
    assert 'structure' not in results
    assert len(results['structures']) == 2
    labels = {link.link_label for link in node.base.links.get_outgoing(link_type=LinkType.CREATE).all()}
    assert all(label.startswith('structures__') for label in labels)


def test_cif_alloy_and_vacancy_kinds_project(memory_backend):
    from aiida_structstore.calculations.functions.project_structure import project_structure

    for name, feature in (('cuau_site_split_alloy.cif', 'alloy'), ('feo_wustite_vacancy.cif', 'vacancy')):
        structure = import_cif(file=orm.SinglefileData(CIF_FILES / name).store())['structure']
        assert structure.is_alloy if feature == 'alloy' else structure.has_vacancies
        receipt = project_structure(structure=structure, tenant_id=orm.Str('cif'), workspace_id=orm.Str('w'))['receipt']
        record = memory_backend.get(StructureKey.of('cif', 'w', receipt['structure_id']))
        assert record.structure['structure_features'] == ['disorder']
        assert record.source.kind == 'cif'


def test_a_broken_cif_fails_the_calcfunction_with_a_parse_error(tmp_path):
    from aiida_structstore.exceptions import ParseError

    path = tmp_path / 'broken.cif'
    path.write_text('data_x\n_cell_length_a 5\nloop_\n_atom_site_label\n_atom_site_fract_x\nSi1 0.0\n')
    with pytest.raises(ParseError, match=r'broken\.cif'):
        import_cif(file=orm.SinglefileData(path).store())
