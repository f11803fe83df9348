"""File conventions the ecosystem writes (issue 19), each read from a file written by someone else.

The files and their origins are in ``files/conventions/README.md``; where no public file with a convention was found,
the file is a minimal edit of a real one, and the test checks that it reads like the unedited original.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aiida_structstore.core.exceptions import ParseError
from aiida_structstore.tools.cif import parse_cif
from aiida_structstore.tools.pw import BOHR_TO_ANGSTROM, parse_pw_input
from aiida_structstore.tools.pw.namelists import MAX_ASSIGNMENTS, MAX_WARNINGS, Where

FILES = Path(__file__).parent / 'files' / 'conventions'


def read(name: str) -> str:
    return (FILES / name).read_text()


def parse(name: str, text: str | None = None):
    return parse_pw_input(read(name) if text is None else text, filename=name)


def nearest_distance(result) -> float:
    """The shortest distance between two atoms, periodic images included (Å)."""
    cell = np.array(result.structure.cell)
    positions = np.array([site.position for site in result.structure.sites])
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)]) @ cell
    best = math.inf
    for first in range(len(positions)):
        for second in range(len(positions)):
            distances = np.linalg.norm(positions[second] + shifts - positions[first], axis=1)
            if first == second:
                distances = distances[distances > 1e-8]
            best = min(best, float(distances.min()))
    return best


# ------------------------------------------------------------------------------------------------ pw.x


def test_species_line_with_a_fourth_column_reads_as_pw_x():
    """QE's own test-suite (pw_vdw/rVV10.in) writes ``C 12. C.pbe-van_bm.UPF 1``: pw.x reads three values."""
    result = parse('qe_rVV10_species_fourth_column.in')
    assert result.pseudopotentials == (('C', 'C.pbe-van_bm.UPF'),)
    assert len(result.structure.sites) == 4
    assert result.structure.get_kind_names() == ['C']
    assert any("the column(s) '1' after the pseudopotential file are ignored" in w for w in result.warnings)
    assert nearest_distance(result) == pytest.approx(4.66 * BOHR_TO_ANGSTROM / math.sqrt(3), rel=1e-3)  # graphite


def test_kpoints_alat_reads_as_tpiba_yambo_tests():
    """yambo's test-suite writes ``K_POINTS {alat}``: read as the same file with no option (pw.x's tpiba)."""
    name = 'yambo_tests_Si_03nscf_shift1_kpoints_alat.in'
    edited = parse(name)
    original = parse(name, read(name).replace('K_POINTS {alat}', 'K_POINTS'))
    assert edited.kpoints_type == original.kpoints_type == 'tpiba'
    points = edited.kpoints.get_kpoints(cartesian=True)
    np.testing.assert_allclose(points, original.kpoints.get_kpoints(cartesian=True))
    alat = 10.183 * BOHR_TO_ANGSTROM
    np.testing.assert_allclose(points[0], np.array([-0.1249190, 0.125, 0.125]) * 2 * math.pi / alat)
    assert [w for w in edited.warnings if 'K_POINTS alat: read as tpiba' in w]


def test_kpoints_alat_reads_as_tpiba():
    original, edited = parse('qe_scf-2.in'), parse('qe_scf-2_kpoints_alat.in')
    assert edited.kpoints_type == original.kpoints_type == 'tpiba'
    np.testing.assert_allclose(edited.kpoints.get_kpoints(cartesian=True), original.kpoints.get_kpoints(cartesian=True))
    np.testing.assert_allclose(
        edited.kpoints.get_kpoints(also_weights=True)[1], original.kpoints.get_kpoints(also_weights=True)[1]
    )
    assert [w for w in edited.warnings if 'K_POINTS alat: read as tpiba' in w]
    assert not original.warnings


def test_lines_after_the_kpoints_data_are_ignored_as_pw_x_does():
    """yambopy's MoS2 tutorial input ends with an editor's ``~`` after the k-point mesh; pw.x ignores the line."""
    result = parse('yambopy_1L_MoS2_mos2.nscf')
    assert result.kpoints.get_kpoints_mesh() == ([6, 6, 1], [0.0, 0.0, 0.0])
    assert any("K_POINTS automatic: 1 line(s) after its data ('~') are ignored" in w for w in result.warnings)
    text = read('qe_scf-2.in').replace(
        '   0.3750000  0.3750000  0.6250000   3.00\n', '   0.3750000  0.3750000  0.6250000   3.00\n 1 1 1 1\n'
    )
    result = parse('qe_scf-2.in', text)
    assert len(result.kpoints.get_kpoints()) == 10
    assert any('K_POINTS tpiba: 1 line(s) after its data' in w for w in result.warnings)


def test_a_fourth_cell_parameters_line_is_ignored_as_pw_x_does():
    """QMCPACK's NiO performance inputs have a fourth line under CELL_PARAMETERS (a twist); pw.x reads three."""
    result = parse('qmcpack_NiO_S2_cell_fourth_line.in')
    bohr = 3.94055 * BOHR_TO_ANGSTROM
    np.testing.assert_allclose(np.array(result.structure.cell), bohr * np.array([[1, 1, 2], [1, 1, -2], [-1, 1, 0]]))
    assert any(
        "CELL_PARAMETERS: 1 line(s) after its data ('0.50 0.00 -0.50') are ignored" in w for w in result.warnings
    )
    assert nearest_distance(result) == pytest.approx(bohr, rel=1e-6)  # Ni-O in rock salt: a/2


def test_other_unknown_kpoints_options_stay_errors():
    with pytest.raises(ParseError, match="K_POINTS: unsupported type 'bohr'"):
        parse('qe_scf-2.in', read('qe_scf-2.in').replace('K_POINTS\n', 'K_POINTS bohr\n'))


def test_namelist_closed_by_slash_then_end_reads_as_the_original():
    original, edited = parse('qe_scf-2.in'), parse('qe_scf-2_slash_end.in')
    assert edited.parameters == original.parameters
    assert edited.structure.get_ase() == original.structure.get_ase()
    assert not edited.warnings


def test_text_after_a_slash_is_ignored_with_a_warning():
    text = read('qe_scf-2.in').replace("calculation = 'nscf'\n /", "calculation = 'nscf'\n / ignored text", 1)
    result = parse('qe_scf-2.in', text)
    assert result.parameters == parse('qe_scf-2.in').parameters
    assert any("the text 'ignored text' after the end of namelist &CONTROL is ignored" in w for w in result.warnings)


def test_a_stray_end_elsewhere_is_still_an_error():
    text = read('qe_scf-2_slash_end.in').replace(' &END\n', ' &END\n &END\n', 1)
    with pytest.raises(ParseError, match="unexpected '&END' outside a namelist"):
        parse('qe_scf-2_slash_end.in', text)


def test_cell_parameters_cubic_reads_as_no_units_wannier90_graphite():
    """wannier90's tutorial 10: ``celldm(1)`` is 1 Å in Bohr and the vectors are in Å, given as ``cubic``."""
    result = parse('w90_tutorial10_graphite.scf')
    cell = np.array(result.structure.cell)
    alat = 1.8897261249935 * BOHR_TO_ANGSTROM
    np.testing.assert_allclose(
        cell, alat * np.array([[2.1304215583, -1.2299994602, 0], [0, 2.4599989204, 0], [0, 0, 6.8]]), rtol=1e-9
    )
    assert nearest_distance(result) == pytest.approx(1.42, abs=0.01)  # the C-C bond of graphite
    assert [w for w in result.warnings if 'CELL_PARAMETERS cubic: an option of old QE versions' in w]


def test_cell_parameters_cubic_reads_as_no_units_qmcpack_nexus():
    """QMCPACK's Nexus writes ``celldm(1) = 1.0`` and a cubic 8-atom diamond cell in Bohr as ``cubic``."""
    result = parse('qmcpack_diamond_vmc_scf.in')
    np.testing.assert_allclose(np.array(result.structure.cell), 6.74632229 * BOHR_TO_ANGSTROM * np.eye(3), rtol=1e-9)
    assert len(result.structure.sites) == 8
    assert nearest_distance(result) == pytest.approx(1.545, abs=0.005)  # the C-C bond of diamond


def test_band_path_letter_h1_of_the_bilbao_labels():
    """Fe (bcc) of QE's example 12 with its path ``1 0 0 → 0 0 0 → 0 0 1`` written as letters ``H1 gG H``."""
    original = parse_pw_input(
        read('qe_example12_Fe_bands_H1.in')
        .replace("    point_label_type = 'BI'\n", '')
        .replace('H1 40\ngG 40\nH 1\n', '1.0 0.0 0.0 40\n0.0 0.0 0.0 40\n0.0 0.0 1.0 1\n')
    )
    edited = parse('qe_example12_Fe_bands_H1.in')
    assert edited.kpoints_kind == 'band_path'
    points = edited.kpoints.get_kpoints(cartesian=True)
    expected = original.kpoints.get_kpoints(cartesian=True)
    np.testing.assert_allclose(points[:2], expected[:2], atol=1e-12)  # H1 = (1, 0, 0) 2 pi / a, then Gamma
    np.testing.assert_allclose(points[2], [0, 2 * math.pi / (5.42 * BOHR_TO_ANGSTROM), 0], atol=1e-12)  # H
    assert edited.kpoints.labels == [(0, 'H1'), (1, 'GAMMA'), (2, 'H')]


def test_band_path_letter_h1_needs_the_bilbao_labels():
    text = read('qe_example12_Fe_bands_H1.in').replace("    point_label_type = 'BI'\n", '')
    with pytest.raises(ParseError, match=r"pw.x knows no point 'H1' for ibrav = 3 .*needs point_label_type = 'BI'"):
        parse('qe_example12_Fe_bands_H1.in', text)


# ------------------------------------------------------------------------------------------------ CIF


def cif(name: str):
    (block,) = parse_cif(read(name), filename=name)
    return block


def elements(block) -> dict[str, float]:
    amounts: dict[str, float] = {}
    for site in block.structure.sites:
        kind = block.structure.get_kind(site.kind_name)
        for symbol, weight in zip(kind.symbols, kind.weights, strict=True):
            amounts[symbol] = amounts.get(symbol, 0.0) + weight
    return {symbol: round(value, 4) for symbol, value in amounts.items()}


def test_hydrate_without_hydrogen_positions_is_read_with_a_warning():
    """COD 1010246, Li2SO4 . H2O: the formula counts the water's hydrogen atoms, no site holds them."""
    block = cif('cod_1010246.cif')
    assert elements(block) == {'S': 2, 'O': 10, 'Li': 4}
    (warning,) = block.warnings
    assert "_chemical_formula_sum 'H2 Li2 O5 S' x _cell_formula_units_Z 2 = H4 Li4 O10 S2 but the sites give" in warning
    assert 'they differ only in H (hydrogen positions are often not given), and Li, O, S agree' in warning


def test_sites_with_more_hydrogen_than_the_formula_are_read_with_a_warning():
    """COD 2001826: the sites hold 24 hydrogen atoms per formula unit, the formula says 22."""
    block = cif('cod_2001826.cif')
    assert elements(block) == {'C': 176, 'H': 192, 'O': 8}
    assert 'they differ only in H, and C, O agree' in block.warnings[0]


def test_disorder_on_partially_occupied_sites_is_read_with_a_warning():
    """COD 1000023 (no Z; Cu on a partially occupied site) and 1557929 (Ca and U share sites, Z = 2)."""
    block = cif('cod_1000023.cif')
    assert elements(block)['Cu'] == pytest.approx(2.9376)
    assert 'they differ only in Cu (on partially occupied sites), and Fe, O, P agree' in block.warnings[0]
    block = cif('cod_1557929.cif')
    assert elements(block) == {'Ca': 1.5, 'U': 1.5, 'O': 8}
    assert 'Ca (on partially occupied sites), U (on partially occupied sites), and O agree' in block.warnings[0]


@pytest.mark.parametrize(
    ('name', 'message'),
    [
        # every element at 2/3 of formula x Z: a wrong Z or a misread symmetry, not a formula of something else
        ('cod_2103867.cif', r'Cu9 O54 Pt5.976 Ru3.024 Sr27 but the sites give Cu6 O36 Pt3.982 Ru2.018 Sr18$'),
        # no site holds O, one Co of four: rows are missing
        ('cod_7051132.cif', r'but the sites give C100 Co H80 N20 S4 \(no site holds O; the file may be incomplete\)'),
        # I on a general position with occupancy 1 where the formula has one I per formula unit: 18 instead of 3
        ('cod_2009228.cif', r'Al3 Ca6 H30 I3 O24 but the sites give Al3 Ca6 H30.006 I18 O24$'),
    ],
)
def test_formula_differences_that_are_not_explained_stay_errors(name, message):
    with pytest.raises(ParseError, match=message):
        parse_cif(read(name), filename=name)


def test_type_symbol_with_a_note_reads_the_element():
    """``O2-(H2O)``: an element, a charge, then a note (COD 1010246 with the water oxygen so written)."""
    original, edited = cif('cod_1010246.cif'), cif('cod_1010246_water_type_symbol.cif')
    assert edited.structure.get_ase() == original.structure.get_ase()
    assert elements(edited) == {'S': 2, 'O': 10, 'Li': 4}


@pytest.mark.parametrize('symbol', ['OH-', 'Wat', 'O2-(H2O', 'O(H2O)x'])
def test_other_type_symbols_stay_errors(symbol):
    text = read('cod_1010246.cif').replace('  O5    O2-    2 a', f'  O5    {symbol} 2 a')
    with pytest.raises(ParseError, match='cannot tell the element from its _atom_site_type_symbol'):
        parse_cif(text, filename='cod_1010246.cif')


# ------------------------------------------------------------------------------------------------ repeated keys


def repeated(name: str, key_line: str, times: int) -> str:
    text = read(name)
    return text.replace(' &electrons\n', ' &electrons\n' + key_line * times, 1)


def test_a_key_assigned_many_times_gives_one_warning():
    result = parse('qe_scf-2.in', repeated('qe_scf-2.in', '    mixing_beta = 0.3\n', MAX_ASSIGNMENTS))
    assert result.parameters['ELECTRONS']['mixing_beta'] == 0.3
    messages = [w for w in result.warnings if 'mixing_beta' in w]
    assert len(messages) == 1
    expected = f'mixing_beta is assigned {MAX_ASSIGNMENTS} times (first at line 11); the last value, 0.3, is used'
    assert expected in messages[0]


def test_a_key_assigned_beyond_the_cap_is_an_error():
    text = repeated('qe_scf-2.in', '    mixing_beta = 0.3\n', MAX_ASSIGNMENTS + 1)
    with pytest.raises(ParseError, match=f'mixing_beta is assigned more than {MAX_ASSIGNMENTS} times'):
        parse('qe_scf-2.in', text)


def test_warnings_are_deduplicated_and_capped():
    where = Where('x.in')
    for index in range(200):
        where.warn(f'warning {index}', line=index + 1)
        where.warn(f'warning {index}', line=index + 2)  # the same message on another line is not repeated
    assert len(where.warnings) == MAX_WARNINGS + 1
    assert where.warnings[0] == 'x.in: line 1: warning 0'
    assert where.warnings[-1] == f'x.in: {200 - MAX_WARNINGS} more warning(s) not shown'


# ------------------------------------------------------------------------------------------------ space groups

#: pw.x's positions of the 9 atoms of lattice-wyckoff-sio2.in (alat units), from the reference output of QE's
#: test-suite, ``test-suite/pw_lattice-ibrav/benchmark.out.git.inp=lattice-wyckoff-sio2.in`` (pw.x 6.3).
SIO2_TAU = [
    (-0.2348500, 0.4067721, 0.3666667),
    (0.4697000, 0.0000000, 0.7333333),
    (0.2651500, 0.4592533, 0.0000000),
    (0.2794000, 0.2305360, 0.8640500),
    (0.6606500, 0.1266995, 0.4973833),
    (0.5599500, 0.5087899, 0.1307167),
    (0.0599500, 0.3572355, 0.2359500),
    (-0.2206000, 0.6354894, 0.6026167),
    (0.1606500, 0.7393259, 0.9692833),
]


def _sio2_matches_pw_x(result) -> None:
    assert result.parameters['SYSTEM']['nat'] == 2  # as written: the inequivalent atoms
    assert [site.kind_name for site in result.structure.sites] == ['Si'] * 3 + ['O'] * 6
    cell = np.array(result.structure.cell)
    alat = 9.284 * BOHR_TO_ANGSTROM
    np.testing.assert_allclose(cell, alat * np.array([[1, 0, 0], [-0.5, math.sqrt(3) / 2, 0], [0, 0, 1.1]]), atol=1e-9)
    ours = np.array([site.position for site in result.structure.sites]) @ np.linalg.inv(cell)
    theirs = np.array(SIO2_TAU) * alat @ np.linalg.inv(cell)
    for position in theirs:  # each of pw.x's atoms is one of ours (pw.x prints 7 digits)
        distance = np.abs((ours - position + 0.5) % 1 - 0.5).max(axis=1)
        assert distance.min() < 1e-6


def test_space_group_crystal_sg_with_a_wyckoff_letter_expands_as_pw_x():
    """QE's test-suite SiO2 (space group 154, ``Si 3a 0.4697``): the 9 atoms of pw.x's own output."""
    _sio2_matches_pw_x(parse('qe_lattice-wyckoff-sio2.in'))


def test_space_group_crystal_sg_with_coordinates_expands_as_pw_x():
    """The same file with the Wyckoff letter written as its coordinates."""
    _sio2_matches_pw_x(parse('qe_lattice-wyckoff-sio2_coordinates.in'))


@pytest.mark.parametrize(
    ('line', 'message'),
    [
        ('Si 3c 0.4697', r"space group 154 has no special position '3c' \(it has 3b, 3a\)"),
        ('Si 6c 0.4697', r"no special position '6c'"),  # the general position is given by coordinates
        ('Si 3a', r"Wyckoff position '3a' \(x,0,2/3\): expected 1 parameter\(s\)"),
        ('Si 3a 0.4697 0.1', r'expected 1 parameter'),
    ],
)
def test_bad_wyckoff_positions(line, message):
    text = read('qe_lattice-wyckoff-sio2.in').replace('Si 3a 0.4697', line)
    with pytest.raises(ParseError, match=message):
        parse('qe_lattice-wyckoff-sio2.in', text)


def test_wyckoff_letters_in_a_setting_without_a_verified_table_are_refused():
    """Group 227 with origin choice 1 (pw.x's default): pymatgen tabulates origin choice 2, so the letter is refused."""
    text = (
        '&SYSTEM\n space_group = 227, celldm(1) = 10.26, nat = 1, ntyp = 1\n/\n'
        'ATOMIC_SPECIES\nSi 28.086 Si.UPF\nATOMIC_POSITIONS crystal_sg\nSi 8a\n'
    )
    with pytest.raises(ParseError, match=r'does not resolve Wyckoff letters of space group 227 in this setting'):
        parse_pw_input(text)
    diamond = parse_pw_input(text.replace('space_group = 227,', 'space_group = 227, origin_choice = 2,'))
    assert len(diamond.structure.sites) == 2
    assert nearest_distance(diamond) == pytest.approx(10.26 * BOHR_TO_ANGSTROM * math.sqrt(3) / 4)


@pytest.mark.parametrize(
    ('edit', 'message'),
    [
        (('    space_group=154,\n', '    space_group=154, ibrav=6\n'), r'ibrav = 6 is not the lattice of space_group'),
        (('ATOMIC_POSITIONS crystal_sg', 'ATOMIC_POSITIONS crystal'), r'space_group = 154 needs ATOMIC_POSITIONS'),
        (('    space_group=154,\n', '    ibrav=4\n'), r'crystal_sg needs space_group in &SYSTEM'),
        (('    space_group=154,\n', '    space_group=231,\n'), r'space_group must be an integer from 1 to 230'),
        (('    space_group=154,\n', '    space_group=154, origin_choice=3\n'), r'origin_choice must be 1 or 2'),
    ],
)
def test_space_group_errors(edit, message):
    text = read('qe_lattice-wyckoff-sio2_coordinates.in').replace(*edit)
    with pytest.raises(ParseError, match=message):
        parse('qe_lattice-wyckoff-sio2_coordinates.in', text)


def _celldm(ibrav: int) -> str:
    values = {1: 50.0, 2: 1.3, 3: 1.7}
    if ibrav in (1, 2, 3):
        values = {1: 50.0}
    elif ibrav in (4, 6, 7):
        values = {1: 50.0, 3: 1.7}
    elif ibrav == 5:
        values = {1: 50.0, 4: 0.3}
    elif ibrav in (12, 13):
        values[4] = -0.2
    elif ibrav in (-12, -13):
        values[5] = -0.2
    elif ibrav == 14:
        values.update({4: 0.1, 5: -0.2, 6: 0.15})
    return ', '.join(f'celldm({index}) = {value}' for index, value in values.items())


@pytest.mark.slow
@pytest.mark.parametrize('flag', ['', 'uniqueb = .true., rhombohedral = .false., origin_choice = 2'])
def test_every_space_group_expands_to_a_structure_of_that_group(flag, monkeypatch):
    """A general position of each of the 230 groups, in both of pw.x's settings: spglib finds the group again.

    With the count of atoms (operations modulo centring) this checks gemmi's settings in :data:`QE_SETTINGS` and the
    conversion to pw.x's primitive cells (``TO_PRIMITIVE``); the SiO2 test checks the positions against pw.x itself.
    """
    import spglib

    monkeypatch.setattr(spglib.error, 'OLD_ERROR_HANDLING', False)  # errors raise; no deprecation warning per call

    from aiida_structstore.tools.pw.spacegroup import space_group_ibrav

    for number in range(1, 231):
        system = {
            'space_group': number,
            **({'uniqueb': True, 'rhombohedral': False, 'origin_choice': 2} if flag else {}),
        }
        ibrav = space_group_ibrav(system, Where(None))
        text = (
            f'&SYSTEM\n space_group = {number}, {flag + ", " if flag else ""}{_celldm(ibrav)}, nat = 2, ntyp = 2\n/\n'
            'ATOMIC_SPECIES\nSi 28.086 Si.UPF\nO 16.0 O.UPF\nATOMIC_POSITIONS crystal_sg\n'
            'Si 0.4282 0.5237 0.8728\nO 0.3442 0.5903 0.6837\n'
        )
        result = parse_pw_input(text)
        cell = np.array(result.structure.cell)
        frac = np.array([site.position for site in result.structure.sites]) @ np.linalg.inv(cell)
        numbers = [14 if site.kind_name == 'Si' else 8 for site in result.structure.sites]
        dataset = spglib.get_symmetry_dataset((cell, frac, numbers), symprec=1e-4)
        assert dataset.number == number, (number, flag)
        primitive_operations = len(gemmi_operations(number)) // len(list(gemmi_centrings(number)))
        assert len(frac) == 2 * primitive_operations, (number, flag)


def gemmi_operations(number: int):
    import gemmi

    return list(gemmi.find_spacegroup_by_number(number).operations())


def gemmi_centrings(number: int):
    import gemmi

    return gemmi.find_spacegroup_by_number(number).operations().cen_ops


def test_builder_of_a_space_group_input_drops_the_space_group():
    from aiida_structstore.tools.pw.builder import create_builder

    builder = create_builder(parse('qe_lattice-wyckoff-sio2_coordinates.in'))
    assert 'space_group' not in builder.parameters.get_dict()['SYSTEM']
    assert len(builder.structure.sites) == 9


@pytest.mark.slow
@pytest.mark.parametrize('flag', ['1', '2'])
def test_every_special_position_expands_to_its_multiplicity(flag):
    """Each Wyckoff letter of each group whose letters are read gives as many atoms as its multiplicity says."""
    import gemmi

    from aiida_structstore.tools.pw.spacegroup import QE_SETTINGS, WYCKOFF_GROUPS, _wyckoff_table, space_group_ibrav

    second = {'origin_choice': 2, 'uniqueb': True, 'rhombohedral': False} if flag == '2' else {}
    settings = ''.join(
        f'{key} = {value!r}, '.replace('True', '.true.').replace('False', '.false.') for key, value in second.items()
    )
    # the second setting only where it differs from the first: monoclinic, R, origin-choice groups
    numbers = [
        n for n in sorted(WYCKOFF_GROUPS[flag]) if flag == '1' or (n, '1') in QE_SETTINGS or (n, '2') in QE_SETTINGS
    ]
    for number in numbers:
        ibrav = space_group_ibrav({'space_group': number, **second}, Where(None))
        centrings = len(list(gemmi.find_spacegroup_by_number(number).operations().cen_ops))
        for label, representative in list(_wyckoff_table(number).items())[1:]:
            free = len({char for char in representative if char in 'xyz'})
            parameters = ' '.join(['0.2837', '0.0691', '0.4413'][:free])
            text = (
                f'&SYSTEM\n space_group = {number}, {settings}{_celldm(ibrav)}, nat = 1, ntyp = 1\n/\n'
                f'ATOMIC_SPECIES\nSi 28.086 Si.UPF\nATOMIC_POSITIONS crystal_sg\nSi {label} {parameters}\n'
            )
            result = parse_pw_input(text)
            assert len(result.structure.sites) == int(label[:-1]) // centrings, (number, flag, label)


def test_cif_lenient_lines_give_one_warning_per_data_name():
    """Two blocks of COD 1010246, each with the space-group symbol unquoted: one warning naming both lines."""
    text = read('cod_1010246.cif')
    symbol = next(line for line in text.splitlines() if line.startswith('_symmetry_space_group_name_H-M'))
    unquoted = text.replace(symbol, symbol.replace("'", ''))
    assert unquoted != text
    blocks = parse_cif(unquoted + unquoted.replace('data_1010246', 'data_second'), filename='two.cif')
    lenient = [w for block in blocks for w in block.warnings if 'contains blanks' in w]
    assert len(lenient) == 1
    assert lenient[0].startswith("CIF file 'two.cif': lines ")


def test_formula_sum_of_comma_separated_moieties():
    """COD 2007325, a co-crystal: the two moieties are summed, and then agree with the sites."""
    block = cif('cod_2007325.cif')
    assert block.formula == 'C16H11NO'  # (C12 H8 N2 + C20 H14 O2) / 2
    assert not block.warnings


def test_formula_sum_with_a_fraction():
    """COD 1100062: ``Fe1/3`` is one third of an iron atom per formula unit."""
    block = cif('cod_1100062.cif')
    assert elements(block)['Fe'] == pytest.approx(1 / 3, abs=1e-3)  # Z = 1
    assert not block.warnings


@pytest.mark.parametrize('formula', ['Wat2 Na', 'C12 H8 N2,', 'Fe1/0 O', 'Na Cl ) ('])
def test_unreadable_formula_sums_stay_errors(formula):
    text = read('cod_1100062.cif').replace("'Fe1/3 I2 Li O6'", f"'{formula}'")
    with pytest.raises(ParseError, match='cannot read _chemical_formula_sum'):
        parse_cif(text, filename='cod_1100062.cif')
