"""Tests of :mod:`aiida_structstore.tools.pw`: the pw.x input importer.

Each known trap of the qe-tools / aiida-quantumespresso reader has a test here that ``parse_pw_input`` gets it right
(what the plain ``PwInputFile`` makes of it is in ``test_upstream.py``); cells are checked against hand-computed
values (QE's documented ``ibrav`` vectors) and, for ``ibrav = 0``, against ASE's reader.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aiida_structstore.core.exceptions import InvalidInputError, ParseError
from aiida_structstore.tools.overlap import find_overlap
from aiida_structstore.tools.pw import BOHR_TO_ANGSTROM, PwInput, parse_pw_input

FILES = Path(__file__).parent / 'files' / 'pw'
EXAMPLES = Path(__file__).resolve().parents[2] / 'examples' / 'pw'
BOHR = BOHR_TO_ANGSTROM
A_SI = 10.2 * BOHR  # the Si lattice parameter used by pw() below, in Angstrom
FCC = np.array([[-1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [-1.0, 1.0, 0.0]]) / 2  # QE ibrav = 2 in units of a


def pw(
    system: str = 'ibrav = 2, celldm(1) = 10.2',
    species: str = 'Si 28.086 Si.pz-vbc.UPF',
    positions: str = 'ATOMIC_POSITIONS alat\nSi 0.00 0.00 0.00\nSi 0.25 0.25 0.25',
    kpoints: str = 'K_POINTS automatic\n4 4 4 0 0 0',
    nat: int = 2,
    ntyp: int = 1,
    extra: str = '',
    control: str = "calculation = 'scf'",
) -> str:
    """Return a small pw.x input; by default silicon in the diamond structure (ibrav = 2)."""
    return (
        f'&CONTROL\n  {control}\n/\n'
        f'&SYSTEM\n  {system}\n  nat = {nat}, ntyp = {ntyp}, ecutwfc = 30.0\n/\n'
        '&ELECTRONS\n  conv_thr = 1.0d-8\n/\n'
        f'ATOMIC_SPECIES\n{species}\n{positions}\n{extra}\n{kpoints}\n'
    )


def cell_of(result: PwInput) -> np.ndarray:
    return np.array(result.structure.cell)


def positions_of(result: PwInput) -> np.ndarray:
    return np.array([site.position for site in result.structure.sites])


def angle_cosines(cell: np.ndarray) -> tuple[float, float, float]:
    """Return cos(bc), cos(ac), cos(ab) of the cell rows."""
    a, b, c = cell
    cos = lambda u, v: float(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))  # noqa: E731
    return cos(b, c), cos(a, c), cos(a, b)


# ------------------------------------------------------------------------------------------------ basic result


def test_result_is_unstored_nodes_and_json_parameters():
    result = parse_pw_input(pw())
    assert isinstance(result, PwInput)
    assert isinstance(result.structure, orm.StructureData) and not result.structure.is_stored
    assert isinstance(result.kpoints, orm.KpointsData) and not result.kpoints.is_stored
    assert json.loads(json.dumps(result.parameters)) == result.parameters
    orm.Dict(result.parameters)  # accepted by AiiDA as is
    assert result.structure.pbc == (True, True, True)


def test_parse_error_is_an_invalid_input_value_error():
    with pytest.raises(ValueError, match='empty'):
        parse_pw_input('')
    assert issubclass(ParseError, InvalidInputError)


# ------------------------------------------------------------------------------------------------ examples


def test_example_si_scf():
    result = parse_pw_input((EXAMPLES / 'si_scf.in').read_text(), filename='si_scf.in')
    np.testing.assert_allclose(cell_of(result), A_SI * FCC, atol=1e-10)
    np.testing.assert_allclose(positions_of(result), [[0, 0, 0], [A_SI / 4] * 3], atol=1e-10)
    assert result.structure.get_kind_names() == ['Si']
    assert result.structure.kinds[0].symbol == 'Si'
    assert result.parameters['SYSTEM']['celldm(1)'] == 10.2
    assert result.parameters['SYSTEM']['ibrav'] == 2
    assert result.parameters['CONTROL']['tprnfor'] is True
    assert result.parameters['ELECTRONS']['conv_thr'] == 1e-8
    mesh, offset = result.kpoints.get_kpoints_mesh()
    assert mesh == [4, 4, 4] and offset == [0.5, 0.5, 0.5]
    assert result.kpoints_type == 'automatic'


def test_example_fe2o3_bands():
    path = EXAMPLES / 'fe2o3_bands.in'
    assert 300_000 < path.stat().st_size < 2_200_000
    text = path.read_text()
    result = parse_pw_input(text, filename=path.name)
    structure = result.structure
    assert structure.get_kind_names() == ['Fe1', 'Fe2', 'O']
    assert [kind.symbol for kind in structure.kinds] == ['Fe', 'Fe', 'O']
    assert [kind.mass for kind in structure.kinds] == [55.845, 55.845, 15.999]
    assert [site.kind_name for site in structure.sites] == ['Fe1', 'Fe2', 'Fe1', 'Fe2'] + ['O'] * 6
    system = result.parameters['SYSTEM']
    assert system['starting_magnetization(1)'] == 0.5
    assert system['starting_magnetization(2)'] == -0.5
    assert system['hubbard_u(1)'] == 4.3
    assert system['u_projection_type'] == 'ortho-atomic'
    assert result.kpoints_type == 'crystal'
    points, weights = result.kpoints.get_kpoints(also_weights=True)
    assert points.shape == (27000, 3)
    assert math.isclose(weights.sum(), 1.0, rel_tol=1e-6)
    ase_atoms = ase_read(text)
    np.testing.assert_allclose(cell_of(result), ase_atoms.cell[:], atol=1e-6)
    np.testing.assert_allclose(positions_of(result), ase_atoms.positions, atol=1e-6)


# ------------------------------------------------------------------------------------------------ ASE cross-check


def ase_read(text: str):
    from io import StringIO

    from ase.io.espresso import read_espresso_in

    return read_espresso_in(StringIO(text))


@pytest.mark.parametrize('name', ['sio2_quartz_ibrav0_angstrom.in', 'al_fcc_ibrav0_bohr.in', 'mgo_ibrav0_alat.in'])
def test_ibrav0_files_agree_with_ase(name):
    text = (FILES / name).read_text()
    result = parse_pw_input(text, filename=name)
    atoms = ase_read(text)
    np.testing.assert_allclose(cell_of(result), atoms.cell[:], atol=1e-6)
    np.testing.assert_allclose(positions_of(result), atoms.positions, atol=1e-6)
    assert [site.kind_name for site in result.structure.sites] == atoms.get_chemical_symbols()


def test_ibrav0_cell_and_position_units_against_hand_values():
    al = parse_pw_input((FILES / 'al_fcc_ibrav0_bohr.in').read_text())
    np.testing.assert_allclose(cell_of(al), np.eye(3) * 7.65 * BOHR, atol=1e-12)
    np.testing.assert_allclose(positions_of(al)[1], [3.825 * BOHR, 3.825 * BOHR, 0], atol=1e-12)
    mgo = parse_pw_input((FILES / 'mgo_ibrav0_alat.in').read_text())
    np.testing.assert_allclose(cell_of(mgo), 7.96 * BOHR * FCC, atol=1e-12)
    np.testing.assert_allclose(positions_of(mgo)[1], [7.96 * BOHR / 2] * 3, atol=1e-12)
    quartz = parse_pw_input((FILES / 'sio2_quartz_ibrav0_angstrom.in').read_text())
    np.testing.assert_allclose(cell_of(quartz)[2], [0, 0, 5.4054], atol=1e-12)
    np.testing.assert_allclose(positions_of(quartz)[0], 0.4697 * np.array([4.916, 0, 0]), atol=1e-12)


def test_ibrav0_alat_is_first_vector_without_celldm():
    """ibrav = 0 with angstrom cell: alat (for alat positions and tpiba k-points) is |a1|, as in QE."""
    text = pw(
        system='ibrav = 0',
        nat=1,
        positions='CELL_PARAMETERS angstrom\n3.0 0 0\n0 4.0 0\n0 0 5.0\nATOMIC_POSITIONS alat\nSi 0.5 0.5 0.5',
        kpoints='K_POINTS tpiba\n1\n1.0 0.0 0.0 1.0',
    )
    result = parse_pw_input(text)
    np.testing.assert_allclose(positions_of(result), [[1.5, 1.5, 1.5]], atol=1e-12)
    np.testing.assert_allclose(result.kpoints.get_kpoints(cartesian=True), [[2 * math.pi / 3.0, 0, 0]], atol=1e-12)


def test_ibrav0_cell_without_units_is_bohr_or_alat():
    bohr = parse_pw_input(
        pw(
            system='ibrav = 0',
            nat=1,
            positions='CELL_PARAMETERS\n5 0 0\n0 5 0\n0 0 5\nATOMIC_POSITIONS crystal\nSi 0 0 0',
        )
    )
    np.testing.assert_allclose(cell_of(bohr), np.eye(3) * 5 * BOHR, atol=1e-12)
    alat = parse_pw_input(
        pw(
            system='ibrav = 0, A = 2.0',
            nat=1,
            positions='CELL_PARAMETERS\n1 0 0\n0 2 0\n0 0 3\nATOMIC_POSITIONS alat\nSi 1 1 1',
        )
    )
    np.testing.assert_allclose(cell_of(alat), np.diag([2.0, 4.0, 6.0]), atol=1e-12)
    np.testing.assert_allclose(positions_of(alat), [[2.0, 2.0, 2.0]], atol=1e-12)


# ------------------------------------------------------------------------------------------------ ibrav / celldm


def single_atom(system: str, position: str = 'ATOMIC_POSITIONS crystal\nSi 0.0 0.0 0.0') -> PwInput:
    return parse_pw_input(pw(system=system, nat=1, positions=position))


@pytest.mark.parametrize('system', ['ibrav = 1, celldm(1) = 10.0', f'ibrav = 1, A = {10.0 * BOHR!r}'])
def test_ibrav1(system):
    np.testing.assert_allclose(cell_of(single_atom(system)), np.eye(3) * 10.0 * BOHR, atol=1e-12)


@pytest.mark.parametrize('system', ['ibrav = 2, celldm(1) = 10.2', f'ibrav = 2, A = {A_SI!r}'])
def test_ibrav2_fcc(system):
    np.testing.assert_allclose(cell_of(single_atom(system)), A_SI * FCC, atol=1e-12)


def test_ibrav3_and_minus3_bcc():
    a = 5.42 * BOHR
    np.testing.assert_allclose(
        cell_of(single_atom('ibrav = 3, celldm(1) = 5.42')),
        a / 2 * np.array([[1, 1, 1], [-1, 1, 1], [-1, -1, 1]]),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        cell_of(single_atom('ibrav = -3, celldm(1) = 5.42')),
        a / 2 * np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]]),
        atol=1e-12,
    )


def test_ibrav4_hexagonal_celldm_and_abc():
    a, c = 3.2495, 5.2069
    expected = np.array([[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]])
    abc = parse_pw_input((FILES / 'zno_wurtzite_ibrav4_abc.in').read_text())
    np.testing.assert_allclose(cell_of(abc), expected, atol=1e-12)
    celldm = single_atom(f'ibrav = 4, celldm(1) = {a / BOHR!r}, celldm(3) = {c / a!r}')
    np.testing.assert_allclose(cell_of(celldm), expected, atol=1e-12)
    # crystal positions of wurtzite: Zn at (1/3, 2/3, 0)
    np.testing.assert_allclose(positions_of(abc)[0], np.array([1 / 3, 2 / 3, 0]) @ expected, atol=1e-8)


@pytest.mark.parametrize('ibrav', [5, -5])
def test_ibrav5_trigonal(ibrav):
    cell = cell_of(single_atom(f'ibrav = {ibrav}, celldm(1) = 10.0, celldm(4) = 0.3'))
    np.testing.assert_allclose(np.linalg.norm(cell, axis=1), [10.0 * BOHR] * 3, atol=1e-12)
    np.testing.assert_allclose(angle_cosines(cell), [0.3, 0.3, 0.3], atol=1e-12)
    if ibrav == 5:  # three-fold axis along z
        np.testing.assert_allclose(cell[:, 2], [cell[0, 2]] * 3, atol=1e-12)


def test_ibrav6_and_8_with_abc():
    np.testing.assert_allclose(
        cell_of(single_atom('ibrav = 6, A = 3.0, C = 5.0')), np.diag([3.0, 3.0, 5.0]), atol=1e-12
    )
    np.testing.assert_allclose(
        cell_of(single_atom('ibrav = 8, celldm(1) = 10.0, celldm(2) = 1.5, celldm(3) = 2.0')),
        np.diag([10.0, 15.0, 20.0]) * BOHR,
        atol=1e-12,
    )


def test_ibrav_minus9_follows_quantum_espresso_not_qe_tools():
    """QE latgen: v1 = (a/2, -b/2, 0), v2 = (a/2, b/2, 0); qe-tools 2.3 swaps v1 and v2."""
    a, b, c = 3.0, 4.0, 5.0
    expected = np.array([[a / 2, -b / 2, 0], [a / 2, b / 2, 0], [0, 0, c]])
    system = 'ibrav = -9, A = 3.0, B = 4.0, C = 5.0'
    text = pw(system=system, nat=1, positions='ATOMIC_POSITIONS crystal\nSi 0.1 0.2 0.3')
    result = parse_pw_input(text)
    np.testing.assert_allclose(cell_of(result), expected, atol=1e-12)
    np.testing.assert_allclose(positions_of(result), [np.array([0.1, 0.2, 0.3]) @ expected], atol=1e-12)


def test_ibrav9_and_minus13():
    a, b, c = 3.0, 4.0, 5.0
    np.testing.assert_allclose(
        cell_of(single_atom('ibrav = 9, A = 3.0, B = 4.0, C = 5.0')),
        [[a / 2, b / 2, 0], [-a / 2, b / 2, 0], [0, 0, c]],
        atol=1e-12,
    )
    cos_ac = 0.2
    np.testing.assert_allclose(
        cell_of(single_atom(f'ibrav = -13, A = 3.0, B = 4.0, C = 5.0, cosAC = {cos_ac}')),
        [[a / 2, b / 2, 0], [-a / 2, b / 2, 0], [c * cos_ac, 0, c * math.sqrt(1 - cos_ac**2)]],
        atol=1e-12,
    )


def test_ibrav12_missing_cosine_defaults_to_90_degrees_as_in_qe():
    cell = cell_of(single_atom('ibrav = 12, celldm(1) = 10.0, celldm(2) = 1.2, celldm(3) = 1.4'))
    np.testing.assert_allclose(cell, np.diag([10.0, 12.0, 14.0]) * BOHR, atol=1e-12)


def test_ibrav14_triclinic_abc():
    cell = cell_of(single_atom('ibrav = 14, A = 3.0, B = 4.0, C = 5.0, cosBC = 0.1, cosAC = -0.2, cosAB = 0.3'))
    np.testing.assert_allclose(np.linalg.norm(cell, axis=1), [3.0, 4.0, 5.0], atol=1e-12)
    np.testing.assert_allclose(angle_cosines(cell), [0.1, -0.2, 0.3], atol=1e-12)


def test_celldm_given_as_a_list_expands_like_fortran():
    result = single_atom('ibrav = 8, celldm = 10.0, 1.5, 2.0')
    np.testing.assert_allclose(cell_of(result), np.diag([10.0, 15.0, 20.0]) * BOHR, atol=1e-12)
    assert result.parameters['SYSTEM']['celldm(2)'] == 1.5


# ------------------------------------------------------------------------------------------------ position units


@pytest.mark.parametrize(
    'positions',
    [
        'ATOMIC_POSITIONS alat\nSi 0 0 0\nSi -0.25 0.25 0.25',
        'ATOMIC_POSITIONS {alat}\nSi 0 0 0\nSi -0.25 0.25 0.25',
        'ATOMIC_POSITIONS bohr\nSi 0 0 0\nSi -2.55 2.55 2.55',
        f'ATOMIC_POSITIONS angstrom\nSi 0 0 0\nSi {-2.55 * BOHR!r} {2.55 * BOHR!r} {2.55 * BOHR!r}',
        'ATOMIC_POSITIONS crystal\nSi 0 0 0\nSi 0.25 0.25 0.25',
        'ATOMIC_POSITIONS (crystal)\nSi 0 0 0\nSi 1/4 0.5/2 (1+1)/8',
        'ATOMIC_POSITIONS\nSi 0 0 0\nSi -0.25 0.25 0.25',  # no unit: alat, pw.x's default
    ],
)
def test_position_units(positions):
    result = parse_pw_input(pw(positions=positions))
    np.testing.assert_allclose(positions_of(result), [[0, 0, 0], [-A_SI / 4, A_SI / 4, A_SI / 4]], atol=1e-12)


def test_if_pos_flags_are_accepted_and_checked():
    result = parse_pw_input(pw(positions='ATOMIC_POSITIONS alat\nSi 0 0 0 0 0 0\nSi 0.25 0.25 0.25 1 1 1'))
    assert len(result.structure.sites) == 2
    with pytest.raises(ParseError, match='if_pos flags must be 0 or 1'):
        parse_pw_input(pw(positions='ATOMIC_POSITIONS alat\nSi 0 0 0 0 0 2\nSi 0.25 0.25 0.25'))


# ------------------------------------------------------------------------------------------------ trap 1: comments


def test_trap1_trailing_comment_on_atom_line():
    text = pw(positions='ATOMIC_POSITIONS alat\nSi 0.00 0.00 0.00\nSi 0.25 0.25 0.25 ! the second atom')
    result = parse_pw_input(text)
    np.testing.assert_allclose(positions_of(result), [[0, 0, 0], [A_SI / 4] * 3], atol=1e-12)


def test_trap1_hash_comments_and_comment_lines_everywhere():
    text = pw(
        positions=(
            'ATOMIC_POSITIONS alat # units\n# a comment line\nSi 0.00 0.00 0.00 # first\n\n'
            '! another comment\nSi 0.25 0.25 0.25 #second'
        ),
        control="calculation = 'scf' ! comment after a value\n  title = 'run #1 ! not a comment'",
    )
    result = parse_pw_input(text)
    assert len(result.structure.sites) == 2
    assert result.parameters['CONTROL']['title'] == 'run #1 ! not a comment'


# ------------------------------------------------------------------------------------------------ trap 2: numbers


def test_trap2_fortran_and_exponent_numbers():
    text = pw(
        system='ibrav = 2, celldm(1) = 1.02D+01',
        species='Si 2.8086d1 Si.pz-vbc.UPF',
        positions='ATOMIC_POSITIONS alat\nSi 0.0d0 0.0D+00 0.0E+00\nSi -2.5E-01 2.5d-1 .25',
        kpoints='K_POINTS tpiba\n1\n1.0D+00 0.0E+00 0.0 1.0d0',
    )
    result = parse_pw_input(text)
    np.testing.assert_allclose(positions_of(result), [[0, 0, 0], [-A_SI / 4, A_SI / 4, A_SI / 4]], atol=1e-12)
    assert result.parameters['SYSTEM']['celldm(1)'] == 10.2
    assert result.structure.kinds[0].mass == 28.086
    np.testing.assert_allclose(result.kpoints.get_kpoints(cartesian=True), [[2 * math.pi / A_SI, 0, 0]], atol=1e-12)


# ------------------------------------------------------------------------------------------------ trap 3: labels


def test_trap3_species_labels_with_underscore_and_dash():
    text = pw(
        system='ibrav = 1, A = 4.0',
        species='Fe_up 55.845 Fe.pbe-spn-kjpaw_psl.0.2.1.UPF\nFe_dn 55.845 Fe.pbe-spn-kjpaw_psl.0.2.1.UPF\n'
        'O-1 15.999 O.pbe-n-kjpaw_psl.0.1.UPF\nC_h 12.011 C.pbe-n-kjpaw_psl.1.0.0.UPF',
        positions='ATOMIC_POSITIONS crystal\nFe_up 0 0 0\nFe_dn 0.5 0.5 0.5\nO-1 0.5 0 0\nC_h 0 0.5 0',
        nat=4,
        ntyp=4,
    )
    result = parse_pw_input(text)
    assert result.structure.get_kind_names() == ['Fe_up', 'Fe_dn', 'O-1', 'C_h']
    assert [kind.symbol for kind in result.structure.kinds] == ['Fe', 'Fe', 'O', 'C']
    assert [site.kind_name for site in result.structure.sites] == ['Fe_up', 'Fe_dn', 'O-1', 'C_h']
    np.testing.assert_allclose(positions_of(result)[3], [0, 2.0, 0], atol=1e-12)


def test_trap3_c_h_label_alone():
    text = pw(species='C_h 12.011 C.pbe-rrkjus.UPF', positions='ATOMIC_POSITIONS alat\nC_h 0 0 0\nC_h 0.25 0.25 0.25')
    result = parse_pw_input(text)
    assert result.structure.get_kind_names() == ['C_h'] and result.structure.kinds[0].symbol == 'C'


# ------------------------------------------------------------------------------------------------ trap 4: &end


def test_trap4_end_terminators():
    text = (FILES / 'cu_ibrav2_legacy.in').read_text()
    result = parse_pw_input(text)
    a = 6.73 * BOHR
    np.testing.assert_allclose(cell_of(result), a * FCC, atol=1e-12)
    assert result.parameters['CONTROL']['title'] == 'Cu fcc, legacy syntax'
    assert result.parameters['CONTROL']['pseudo_dir'] == '../pseudo/'
    assert result.parameters['SYSTEM']['ecutwfc'] == 25.0
    assert result.parameters['SYSTEM']['degauss'] == 0.02
    assert result.structure.kinds[0].mass == 63.55
    assert result.kpoints_type == 'tpiba'  # K_POINTS without option
    np.testing.assert_allclose(
        result.kpoints.get_kpoints(cartesian=True), np.array([[0.125] * 3, [0.375, 0.375, 0.125]]) * 2 * math.pi / a
    )
    assert result.kpoints.get_kpoints(also_weights=True)[1].tolist() == [1.0, 3.0]


def test_trap4_terminator_on_the_value_line():
    text = "&CONTROL calculation='scf' /\n&SYSTEM ibrav=2, celldm(1)=10.2, nat=2, ntyp=1, ecutwfc=30 /\n"
    text += 'ATOMIC_SPECIES\nSi 28.086 Si.pz-vbc.UPF\nATOMIC_POSITIONS alat\nSi 0 0 0\nSi 0.25 0.25 0.25\n'
    result = parse_pw_input(text)
    assert result.parameters == {
        'CONTROL': {'calculation': 'scf'},
        'SYSTEM': {'ibrav': 2, 'celldm(1)': 10.2, 'nat': 2, 'ntyp': 1, 'ecutwfc': 30},
    }
    assert result.kpoints is None and result.kpoints_type is None


# ------------------------------------------------------------------------------------------------ trap 5: elements


@pytest.mark.parametrize('pseudo', ['pbe-Si.UPF', 'my_pseudo.UPF'])
def test_trap5_element_is_taken_from_the_label_not_the_pseudo_name(pseudo):
    text = pw(species=f'Si 28.086 {pseudo}')
    result = parse_pw_input(text)
    assert result.structure.kinds[0].symbol == 'Si'


@pytest.mark.parametrize(
    ('label', 'element'),
    [
        ('Fe1', 'Fe'),
        ('C_h', 'C'),
        ('Si', 'Si'),
        ('Co2', 'Co'),
        ('C1', 'C'),
        ('Co', 'Co'),
        ('CO', 'Co'),
        ('C', 'C'),
        ('Ch', 'C'),
        ('Ca', 'Ca'),
        ('O-1', 'O'),
        ('Sn1', 'Sn'),
        ('s', 'S'),
        ('fe', 'Fe'),
    ],
)
def test_trap5_element_from_label(label, element):
    text = pw(
        species=f'{label} 10.0 pseudo.UPF', positions=f'ATOMIC_POSITIONS alat\n{label} 0 0 0\n{label} 0.25 0.25 0.25'
    )
    result = parse_pw_input(text)
    assert result.structure.kinds[0].symbol == element
    assert result.structure.kinds[0].name == label


@pytest.mark.parametrize(
    ('label', 'pseudo', 'named'),
    [
        ('Fe1', 'O.pbe-n-kjpaw_psl.0.1.UPF', 'O'),
        ('Ca', 'C.pbe-rrkjus.UPF', 'C'),
        ('Si', 'ge_pbe_v1.4.uspp.F.UPF', 'Ge'),
        ('Si', 'pbe-Ge.UPF', 'Ge'),
    ],
)
def test_trap5_label_and_pseudo_disagree(label, pseudo, named):
    text = pw(
        species=f'{label} 10.0 {pseudo}', positions=f'ATOMIC_POSITIONS alat\n{label} 0 0 0\n{label} 0.25 0.25 0.25'
    )
    with pytest.raises(ParseError, match=rf"species '{label}' is \w+ by its label, but .*{pseudo}.* named for {named}"):
        parse_pw_input(text, filename='bad.in')


@pytest.mark.parametrize(
    'pseudo',
    [
        'Si.pz-vbc.UPF',
        'si_pbe_v1.uspp.F.UPF',
        'Si_ONCV_PBE-1.2.upf',
        'SI.UPF',
        'pseudos/Si.upf',
        'x.upf',
        'no_soc_Si.upf',  # 'no' (nobelium) is contradicted by 'Si': ambiguous, not an error
        'sg15_Si.upf',
    ],
)
def test_trap5_common_pseudo_names_are_accepted(pseudo):
    assert parse_pw_input(pw(species=f'Si 28.086 {pseudo}')).structure.kinds[0].symbol == 'Si'


def test_mass_zero_means_default_mass():
    result = parse_pw_input(pw(species='Si 0.0 Si.pz-vbc.UPF'))
    assert result.structure.kinds[0].mass == pytest.approx(28.0855, abs=1e-3)


# ------------------------------------------------------------------------------------------------ trap 6: k-points


def test_trap6_tpiba_fcc_equals_crystal():
    """X = (1,0,0) and L = (1/2,1/2,1/2) in 2pi/a are (-1/2,0,-1/2) and (0,1/2,0) in crystal units of fcc."""
    tpiba = pw(kpoints='K_POINTS tpiba\n2\n1.0 0.0 0.0 1.0\n0.5 0.5 0.5 2.0')
    crystal = pw(kpoints='K_POINTS crystal\n2\n-0.5 0.0 -0.5 1.0\n0.0 0.5 0.0 2.0')
    from_tpiba = parse_pw_input(tpiba).kpoints
    from_crystal = parse_pw_input(crystal).kpoints
    np.testing.assert_allclose(from_tpiba.get_kpoints(), from_crystal.get_kpoints(), atol=1e-12)
    np.testing.assert_allclose(from_tpiba.get_kpoints(cartesian=True), from_crystal.get_kpoints(cartesian=True))
    np.testing.assert_allclose(from_tpiba.get_kpoints(cartesian=True)[0], [2 * math.pi / A_SI, 0, 0], atol=1e-12)


def test_kpoints_automatic_with_offsets():
    kpoints = parse_pw_input(pw(kpoints='K_POINTS {automatic}\n 8 6 4 1 0 1')).kpoints
    assert kpoints.get_kpoints_mesh() == ([8, 6, 4], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(kpoints.cell, A_SI * FCC, atol=1e-12)


def test_kpoints_gamma():
    result = parse_pw_input((FILES / 'fe_afm_ibrav1_fe1fe2.in').read_text())
    assert result.kpoints.get_kpoints_mesh() == ([1, 1, 1], [0.0, 0.0, 0.0])
    assert result.kpoints_type == 'gamma'


def test_kpoints_crystal_list():
    result = parse_pw_input(pw(kpoints='K_POINTS crystal\n3\n0 0 0 1\n0.5 0 0 3\n0.5 0.5 0 3'))
    points, weights = result.kpoints.get_kpoints(also_weights=True)
    np.testing.assert_allclose(points, [[0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0]])
    assert weights.tolist() == [1.0, 3.0, 3.0]


def test_kpoints_tpiba_band_path_vertices():
    result = parse_pw_input((FILES / 'batio3_ibrav1_bands.in').read_text())
    assert result.kpoints_type == 'tpiba_b'
    points, weights = result.kpoints.get_kpoints(also_weights=True, cartesian=True)
    expected = np.array([[0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0.5, 0.5, 0.5]]) * 2 * math.pi / 4.0
    np.testing.assert_allclose(points, expected, atol=1e-12)
    assert weights.tolist() == [20, 20, 20, 1]
    np.testing.assert_allclose(result.kpoints.get_kpoints(), expected / (2 * math.pi / 4.0), atol=1e-12)


def test_kpoints_crystal_band_path_vertices():
    result = parse_pw_input(pw(kpoints='K_POINTS crystal_b\n3\n0 0 0 30\n0.5 0 0.5 30\n0.5 0.25 0.75 1'))
    assert result.kpoints_type == 'crystal_b'
    points, weights = result.kpoints.get_kpoints(also_weights=True)
    np.testing.assert_allclose(points, [[0, 0, 0], [0.5, 0, 0.5], [0.5, 0.25, 0.75]])
    assert weights.tolist() == [30, 30, 1]


def test_no_kpoints_card():
    text = pw(kpoints='')
    result = parse_pw_input(text)
    assert result.kpoints is None and result.kpoints_type is None


# ------------------------------------------------------------------------------------------------ trap 7: parameters


def test_trap7_parameters_keep_every_key():
    result = parse_pw_input((FILES / 'fe_afm_ibrav1_fe1fe2.in').read_text())
    system = result.parameters['SYSTEM']
    assert system['ibrav'] == 1
    assert system['celldm(1)'] == 5.42
    assert system['nat'] == 2 and system['ntyp'] == 2
    assert system['starting_magnetization(1)'] == 0.6
    assert system['starting_magnetization(2)'] == -0.6
    assert system['hubbard_u(1)'] == 2.0
    assert system['lda_plus_u'] is True
    assert system['nspin'] == 2 and isinstance(system['nspin'], int)
    assert system['smearing'] == 'mv'
    assert list(result.parameters) == ['CONTROL', 'SYSTEM', 'ELECTRONS']


def test_trap7_strings_with_blanks_are_kept():
    text = pw(control="calculation = 'scf'\n  title = 'my run, with blanks'")
    assert parse_pw_input(text).parameters['CONTROL']['title'] == 'my run, with blanks'


def test_namelist_values_forms():
    control = (
        'calculation = \'scf\', restart_mode = "from_scratch"\n  tstress = .TRUE., tprnfor = T, lkpoint_dir = .f.\n'
        "  prefix = 'it''s', nstep = +50, etot_conv_thr = 1.d-5\n"
        '  Hubbard_alpha(1) = 0.1, Hubbard_alpha(2)=0.2 Starting_Ns_Eigenvalue(1,2,1) = 0.5'
    )
    params = parse_pw_input(pw(control=control)).parameters['CONTROL']
    assert params['restart_mode'] == 'from_scratch'
    assert params['tstress'] is True and params['tprnfor'] is True and params['lkpoint_dir'] is False
    assert params['prefix'] == "it's"
    assert params['nstep'] == 50
    assert params['etot_conv_thr'] == 1e-5
    assert params['hubbard_alpha(1)'] == 0.1 and params['hubbard_alpha(2)'] == 0.2
    assert params['starting_ns_eigenvalue(1,2,1)'] == 0.5


def test_namelist_list_and_repeat_assignments():
    system = "ibrav = 2, celldm(1) = 10.2\n  starting_magnetization = 2*0.5\n  hubbard_u(2) = 1.0, 3.0\n  x = 2*'a b'"
    params = parse_pw_input(pw(system=system)).parameters['SYSTEM']
    assert params['starting_magnetization(1)'] == 0.5 and params['starting_magnetization(2)'] == 0.5
    assert params['hubbard_u(2)'] == 1.0 and params['hubbard_u(3)'] == 3.0
    assert params['x(1)'] == params['x(2)'] == 'a b'


# ------------------------------------------------------------------------------------------------ trap 8: checks


def test_trap8_nat_larger_than_lines_is_an_error_not_fewer_atoms():
    text = pw(nat=3)
    with pytest.raises(ParseError, match=r'ATOMIC_POSITIONS has 2 atom line\(s\) but &SYSTEM declares nat = 3'):
        parse_pw_input(text, filename='si.in')


def test_trap8_messages_name_file_and_line():
    text = pw(positions='ATOMIC_POSITIONS alat\nSi 0.00 0.00 0.00\nGe 0.25 0.25 0.25')
    with pytest.raises(ParseError, match=r"^si\.in: line 15: ATOMIC_POSITIONS: species 'Ge' is not declared"):
        parse_pw_input(text, filename='si.in')


# ------------------------------------------------------------------------------------------------ trap 9: kinds


def test_trap9_same_element_species_stay_distinct_kinds():
    result = parse_pw_input((FILES / 'fe_afm_ibrav1_fe1fe2.in').read_text())
    structure = result.structure
    assert structure.get_kind_names() == ['Fe1', 'Fe2']
    assert [kind.symbol for kind in structure.kinds] == ['Fe', 'Fe']
    assert [site.kind_name for site in structure.sites] == ['Fe1', 'Fe2']
    np.testing.assert_allclose(cell_of(result), np.eye(3) * 5.42 * BOHR, atol=1e-12)
    np.testing.assert_allclose(positions_of(result)[1], [5.42 * BOHR / 2] * 3, atol=1e-12)


# ------------------------------------------------------------------------------------------------ trap 10: bad input

CIF = """data_Si
_cell_length_a 5.43
_cell_length_b 5.43
_cell_length_c 5.43
loop_
_atom_site_label
_atom_site_fract_x
Si 0.0
"""

BAD_INPUTS = [
    ('empty', '', 'the pw.x input is empty'),
    ('blank', '  \n\n \t\n', 'the pw.x input is empty'),
    ('binary', '\x00\x01\x02ELF\x7f', 'binary content'),
    ('not utf-8', b'&CONTROL\n\xff\xfe\n/', 'not UTF-8 text'),
    ('not text', None, 'expected the text of a pw.x input, got NoneType'),
    ('cif', CIF, 'this looks like a CIF file'),
    ('truncated namelist', pw()[:60], r"namelist &SYSTEM \(opened at line 4\) is not terminated with '/'"),
    ('truncated positions', pw().split('Si 0.25')[0], r'ATOMIC_POSITIONS has 1 atom line\(s\) but .* nat = 2'),
    ('truncated atom line', pw().split('0.25 0.25')[0], "expected 'label x y z"),
    (
        'missing terminator',
        pw().replace('ecutwfc = 30.0\n/', 'ecutwfc = 30.0'),
        'not terminated with .* before &ELECTRONS',
    ),
    ('nat mismatch', pw(nat=1), r'has 2 atom line\(s\) but &SYSTEM declares nat = 1'),
    ('ntyp mismatch', pw(ntyp=2), r'has 1 species line\(s\) but &SYSTEM declares ntyp = 2'),
    (
        'undeclared species',
        pw(positions='ATOMIC_POSITIONS alat\nSi 0 0 0\nGe 0.25 0.25 0.25'),
        "species 'Ge' is not declared in ATOMIC_SPECIES",
    ),
    ('duplicate species', pw(species='Si 28.086 Si.UPF\nSi 28.086 Si.UPF', ntyp=2), "species 'Si' is declared twice"),
    ('unknown ibrav', pw(system='ibrav = 15, celldm(1) = 10.0'), 'unknown ibrav = 15'),
    ('ibrav not integer', pw(system='ibrav = 2.0, celldm(1) = 10.0'), 'ibrav must be an integer'),
    ('missing ibrav', pw(system='celldm(1) = 10.0'), '&SYSTEM: ibrav is missing'),
    ('missing system', pw().replace('&SYSTEM', '&IONS'), 'namelist &SYSTEM is missing'),
    ('missing alat', pw(system='ibrav = 2'), 'celldm\\(1\\) or A is required with ibrav != 0'),
    ('celldm and A', pw(system='ibrav = 2, celldm(1) = 10.2, A = 5.4'), 'either as celldm\\(i\\) or as A, B, C'),
    ('hexagonal without c', pw(system='ibrav = 4, celldm(1) = 10.0'), 'ibrav = 4 needs celldm\\(3\\) > 0'),
    ('orthorhombic without B', pw(system='ibrav = 8, A = 3.0, C = 4.0'), 'ibrav = 8 needs B > 0'),
    ('bad trigonal angle', pw(system='ibrav = 5, celldm(1) = 10.0, celldm(4) = -0.7'), 'needs celldm\\(4\\) between'),
    (
        'inconsistent triclinic',
        pw(system='ibrav = 14, A = 3, B = 3, C = 3, cosAB = 0.9, cosAC = -0.9, cosBC = 0.9'),
        'the cell angles are inconsistent',
    ),
    ('celldm index', pw(system='ibrav = 2, celldm(1) = 10.2, celldm(7) = 1.0'), 'celldm has the indices 1 to 6'),
    ('missing cell', pw(system='ibrav = 0'), 'the CELL_PARAMETERS card is missing \\(required with ibrav = 0\\)'),
    (
        'redundant cell',
        pw(extra='CELL_PARAMETERS alat\n1 0 0\n0 1 0\n0 0 1'),
        'CELL_PARAMETERS is given together with ibrav = 2',
    ),
    (
        'lattice parameter twice',
        pw(system='ibrav = 0, celldm(1) = 10.0', extra='CELL_PARAMETERS bohr\n10 0 0\n0 10 0\n0 0 10'),
        'the lattice parameter is given twice',
    ),
    (
        'alat cell without alat',
        pw(system='ibrav = 0', extra='CELL_PARAMETERS alat\n1 0 0\n0 1 0\n0 0 1'),
        'CELL_PARAMETERS alat needs celldm\\(1\\) or A',
    ),
    (
        'singular cell',
        pw(system='ibrav = 0', extra='CELL_PARAMETERS angstrom\n1 0 0\n0 1 0\n1 1 0'),
        'the cell is singular',
    ),
    (
        'short cell',
        pw(system='ibrav = 0', extra='CELL_PARAMETERS angstrom\n1 0 0\n0 1 0'),
        'CELL_PARAMETERS must have 3 lines',
    ),
    (
        'crystal_sg',
        pw(positions='ATOMIC_POSITIONS crystal_sg\nSi 0 0 0\nSi 0.25 0.25 0.25'),
        'ATOMIC_POSITIONS crystal_sg needs space_group in &SYSTEM',
    ),
    (
        'unknown position units',
        pw(positions='ATOMIC_POSITIONS nm\nSi 0 0 0\nSi 0.25 0.25 0.25'),
        "unsupported units 'nm'",
    ),
    (
        'non-finite number',
        pw(positions='ATOMIC_POSITIONS alat\nSi 0 0 0\nSi 1e999 0.25 0.25'),
        "'1e999' is not a finite number",
    ),
    ('nan', pw(positions='ATOMIC_POSITIONS alat\nSi 0 0 0\nSi nan 0.25 0.25'), "'nan' is neither a number nor"),
    ('division by zero', pw(positions='ATOMIC_POSITIONS alat\nSi 0 0 0\nSi 1/0 0.25 0.25'), "'1/0' is neither"),
    ('non-finite namelist value', pw(system='ibrav = 2, celldm(1) = 1d400'), "the number '1d400' is not finite"),
    ('missing mass', pw(species='Si Si.pz-vbc.UPF'), "expected 'label mass pseudopotential_file'"),
    ('bad mass', pw(species='Si heavy Si.pz-vbc.UPF'), "mass of 'Si': 'heavy' is not a number"),
    (
        'unknown element',
        pw(species='Xx 1.0 x.UPF', positions='ATOMIC_POSITIONS alat\nXx 0 0 0\nXx 0.2 0.2 0.2'),
        "chemical element of species 'Xx'",
    ),
    ('invalid label', pw(species='1Si 1.0 x.UPF'), "invalid species label '1Si'"),
    (
        'missing species card',
        pw().replace('ATOMIC_SPECIES\nSi 28.086 Si.pz-vbc.UPF\n', ''),
        'ATOMIC_SPECIES card is missing',
    ),
    ('missing positions card', pw(positions=''), 'the ATOMIC_POSITIONS card is missing'),
    ('duplicate card', pw(extra='ATOMIC_SPECIES\nSi 28.086 Si.UPF'), 'card ATOMIC_SPECIES appears twice'),
    ('unknown namelist', pw().replace('&ELECTRONS', '&INPUTPH'), 'unknown namelist &INPUTPH'),
    ('duplicate namelist', pw().replace('&ELECTRONS', '&CONTROL'), 'namelist &CONTROL appears twice'),
    ('unquoted string', pw(control='calculation = scf'), "cannot read the value 'scf' .*strings must be quoted"),
    ('null value', pw(control="calculation = , prefix = 'x'"), 'empty \\(null\\) values are not supported'),
    ('key without value', pw(control='calculation ='), 'calculation: no value given'),
    ('no key', pw(control="'scf'"), "expected 'key = value'"),
    ('unterminated string', pw(control="calculation = 'scf"), "unterminated '-quoted string"),
    ('text between', pw().replace('&ELECTRONS', 'garbage\n&ELECTRONS'), 'unexpected text outside namelists and cards'),
    ('namelist after cards', pw(extra='&IONS\n/'), 'namelist &IONS after the cards'),
    ('stray end', pw().replace('&ELECTRONS', '&end\n&end\n&ELECTRONS'), "unexpected '&end' outside a namelist"),
    ('kpoints count', pw(kpoints='K_POINTS crystal\n3\n0 0 0 1\n0.5 0 0 1'), '3 k-points declared but 2 line'),
    ('kpoints no count', pw(kpoints='K_POINTS crystal\n0 0 0 1'), 'expected the number of k-points'),
    ('kpoints offset', pw(kpoints='K_POINTS automatic\n4 4 4 2 0 0'), 'the offsets must be 0 or 1'),
    ('kpoints mesh', pw(kpoints='K_POINTS automatic\n4 0 4 0 0 0'), 'the mesh must be positive'),
    ('kpoints automatic float', pw(kpoints='K_POINTS automatic\n4 4 4.5 0 0 0'), 'expected 6 integers'),
    ('kpoints gamma data', pw(kpoints='K_POINTS gamma\n1 1 1 0 0 0'), 'K_POINTS gamma takes no data line'),
    ('kpoints type', pw(kpoints='K_POINTS tpiba_c\n3\n0 0 0 1\n1 0 0 1\n0 1 0 1'), "unsupported type 'tpiba_c'"),
    ('kpoints band weight', pw(kpoints='K_POINTS crystal_b\n2\n0 0 0 10.5\n0.5 0 0 1'), 'non-negative integer'),
    ('kpoints short line', pw(kpoints='K_POINTS crystal\n1\n0 0 0'), "expected 'kx ky kz weight'"),
    (
        'absurd cell',
        pw(system='ibrav = 0', extra='CELL_PARAMETERS angstrom\n1e200 0 0\n0 1 0\n0 0 1'),
        'vector 1 has the length .*: not a physical cell',
    ),
    ('absurd celldm', pw(system='ibrav = 2, celldm(1) = 1d300'), 'not a physical cell'),
]


@pytest.mark.parametrize(('text', 'message'), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_raises_parse_error(text, message):
    with pytest.raises(ParseError, match=message) as info:
        parse_pw_input(text, filename='bad.in')
    assert str(info.value).startswith('bad.in: ')


def test_wrapped_exceptions_are_chained():
    with pytest.raises(ParseError) as info:
        parse_pw_input(pw(positions='ATOMIC_POSITIONS alat\nSi 0 0 0\nSi 1/0 0.25 0.25'))
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_message_without_filename():
    with pytest.raises(ParseError, match=r'^line 15: ATOMIC_POSITIONS'):
        parse_pw_input(pw(positions='ATOMIC_POSITIONS alat\nSi 0 0 0\nGe 0.25 0.25 0.25'))


def test_bytes_input_is_decoded():
    assert len(parse_pw_input(pw().encode()).structure.sites) == 2


def test_windows_line_endings_and_bom():
    assert len(parse_pw_input('\ufeff' + pw().replace('\n', '\r\n')).structure.sites) == 2


def test_other_cards_are_recognised_and_ignored():
    extra = "OCCUPATIONS\n1.0 1.0 1.0 1.0\nHUBBARD {ortho-atomic}\nU Si-3p 1.0\nCONSTRAINTS\n1\n'distance' 1 2 4.0"
    result = parse_pw_input(pw(extra=extra))
    assert len(result.structure.sites) == 2


# ------------------------------------------------------------------------------------------------ property tests


def _number_styles(value: float) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            repr(value),
            f'{value:.17e}',
            f'{value:.17E}'.replace('E', 'D'),
            f'{value:.17e}'.replace('e', 'd'),
            np.format_float_positional(value, unique=True, trim='0'),
        ]
    )


@st.composite
def ibrav0_inputs(draw):
    cell = np.array(
        draw(st.lists(st.floats(-6, 6, allow_nan=False).map(lambda x: round(x, 6)), min_size=9, max_size=9))
    ).reshape(3, 3)
    cell += np.eye(3) * 8.0  # keep it far from singular
    nat = draw(st.integers(1, 4))
    frac = np.array(draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=3 * nat, max_size=3 * nat))).reshape(
        nat, 3
    )
    comment = draw(st.sampled_from(['', ' ! comment', ' # comment', '   !']))
    rows = [' '.join(draw(_number_styles(float(x))) for x in row) + comment for row in cell]
    atoms = [
        f'{draw(st.sampled_from(["Si", "Si1", "Si_a"]))} ' + ' '.join(draw(_number_styles(float(x))) for x in row)
        for row in frac
    ]
    labels = sorted({line.split()[0] for line in atoms})
    species = '\n'.join(f'{label} 28.0855 Si.pbe.UPF' for label in labels)
    text = pw(
        system='ibrav = 0',
        nat=nat,
        ntyp=len(labels),
        species=species,
        positions='CELL_PARAMETERS angstrom\n' + '\n'.join(rows) + '\nATOMIC_POSITIONS crystal\n' + '\n'.join(atoms),
    )
    return text, cell, frac, [line.split()[0] for line in atoms]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ibrav0_inputs())
def test_property_ibrav0_round_trip(case):
    text, cell, frac, labels = case
    assume(find_overlap(cell, frac @ cell, labels) is None)  # atoms closer than 0.5 Å are refused (tested apart)
    result = parse_pw_input(text)
    np.testing.assert_allclose(cell_of(result), cell, rtol=1e-15, atol=1e-12)
    np.testing.assert_allclose(positions_of(result), frac @ cell, atol=1e-9)
    assert [site.kind_name for site in result.structure.sites] == labels


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([pw(), (FILES / 'cu_ibrav2_legacy.in').read_text(), (FILES / 'mgo_ibrav0_alat.in').read_text()]),
    st.lists(
        st.tuples(st.floats(0, 1), st.sampled_from(['delete', 'truncate', 'insert', 'replace', 'swap'])),
        min_size=1,
        max_size=4,
    ),
    st.text(alphabet='&/!#\'"=,()0123456789.-+eEdD \nSiKXATOMIC_POSITIONSK_POINTS', min_size=1, max_size=6),
)
def test_property_mutated_input_never_escapes_parse_error(text, mutations, snippet):
    for where, how in mutations:
        at = int(where * len(text))
        if how == 'delete':
            text = text[:at] + text[at + len(snippet) :]
        elif how == 'truncate':
            text = text[:at]
        elif how == 'insert':
            text = text[:at] + snippet + text[at:]
        elif how == 'replace':
            text = text[:at] + snippet + text[at + len(snippet) :]
        else:
            lines = text.split('\n')
            index = min(int(where * len(lines)), len(lines) - 2)
            if index >= 0:
                lines[index], lines[index + 1] = lines[index + 1], lines[index]
            text = '\n'.join(lines)
    try:
        result = parse_pw_input(text)
    except ParseError:
        return
    assert len(result.structure.sites) == result.parameters['SYSTEM']['nat']
    assert len(result.structure.kinds) <= result.parameters['SYSTEM']['ntyp']
    assert np.all(np.isfinite(cell_of(result)))
