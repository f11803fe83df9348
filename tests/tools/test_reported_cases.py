"""The cases reported in issue #8 ("What was seen") and #10 (item 8), each reproduced as it was seen.

#8: files that users have by the thousand were refused, and one kind was read as P 1 without a word.
#10, item 8: the pw.x reader accepted overlapping atoms that the CIF reader refuses.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from aiida_structstore.core.exceptions import ParseError
from aiida_structstore.tools.cif import parse_cif
from aiida_structstore.tools.pw import BOHR_TO_ANGSTROM, parse_pw_input
from aiida_structstore.tools.pw.kpoints import LETTERS

FILES = Path(__file__).parent / 'files'
SI_SCF = (Path(__file__).parents[2] / 'examples' / 'pw' / 'si_scf.in').read_text()


def pw(system: str, positions: str, kpoints: str = 'K_POINTS gamma', nat: int = 2) -> str:
    """A small pw.x input with one species, Si."""
    return (
        f"&CONTROL\n calculation = 'scf'\n/\n&SYSTEM\n {system}, nat = {nat}, ntyp = 1, ecutwfc = 20\n/\n"
        f'ATOMIC_SPECIES\nSi 28.086 Si.pz-vbc.UPF\n{positions}\n{kpoints}\n'
    )


# --------------------------------------------------------------------------------------------------------------------
# CIF


def test_pymatgen_cif_with_z_above_one_is_read_with_a_warning():
    """``_chemical_formula_sum Si8`` with ``_cell_formula_units_Z 8``: pymatgen writes the cell content."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    text = str(CifWriter(Structure.from_spacegroup('Fd-3m', Lattice.cubic(5.43), ['Si'], [[0, 0, 0]])))
    assert '_chemical_formula_sum   Si8' in text and '_cell_formula_units_Z   8' in text
    (block,) = parse_cif(text, filename='si.cif')
    assert len(block.structure.sites) == 8
    assert block.formula == 'Si'
    assert block.warnings == (
        "CIF file 'si.cif', data block 'Si': _chemical_formula_sum 'Si8' is the content of the cell, not of one "
        "formula unit (_cell_formula_units_Z = 8), as pymatgen's CifWriter writes it; read as the cell content",
    )


def test_a_formula_that_no_convention_explains_is_still_an_error():
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    text = str(CifWriter(Structure.from_spacegroup('Fd-3m', Lattice.cubic(5.43), ['Si'], [[0, 0, 0]])))
    with pytest.raises(ParseError, match=r"'Si6' x _cell_formula_units_Z 8 = Si48 but the sites give Si8"):
        parse_cif(text.replace('_chemical_formula_sum   Si8', '_chemical_formula_sum   Si6'))


def test_shelxl97_site_symmetry_orders_as_multiplicity_are_read_with_a_warning():
    (block,) = parse_cif((FILES / 'cif' / 'urea_shelxl97.cif').read_text(), filename='urea.cif')
    assert len(block.structure.sites) == 16
    assert block.formula == 'CH4N2O'
    (warning,) = block.warnings
    assert 'as SHELXL up to 2013 wrote it' in warning and 'site C1: 4, multiplicity 2' in warning


SHELXL97_GENERAL_POSITION = """data_general
_symmetry_space_group_name_H-M 'P 21/c'
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
'-x, y+1/2, -z+1/2'
'-x, -y, -z'
'x, -y-1/2, z-1/2'
_cell_length_a 7.1
_cell_length_b 8.2
_cell_length_c 9.3
_cell_angle_alpha 90
_cell_angle_beta 101.5
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_symmetry_multiplicity
_atom_site_calc_flag
C1 C 0.1234 0.2345 0.3456 1 d
O1 O 0.2234 0.3345 0.1456 1 d
"""


def test_shelxl97_general_positions_have_multiplicity_one():
    (block,) = parse_cif(SHELXL97_GENERAL_POSITION)
    assert len(block.structure.sites) == 8
    assert 'site-symmetry orders' in block.warnings[0]


def test_multiplicities_read_partly_one_way_and_partly_the_other_are_an_error():
    text = SHELXL97_GENERAL_POSITION.replace('O1 O 0.2234 0.3345 0.1456 1 d', 'O1 O 0.2234 0.3345 0.1456 4 d')
    with pytest.raises(ParseError, match=r'multiplicity for site O1 but the site-symmetry order for site C1'):
        parse_cif(text)


def test_a_multiplicity_that_no_convention_explains_is_still_an_error():
    text = SHELXL97_GENERAL_POSITION.replace('C1 C 0.1234 0.2345 0.3456 1 d', 'C1 C 0.1234 0.2345 0.3456 3 d')
    with pytest.raises(ParseError, match=r'site C1: the symmetry operations give 4 positions but .* is 3'):
        parse_cif(text)


FCC_CU = """data_cu
_cell_length_a 3.615
_cell_length_b 3.615
_cell_length_c 3.615
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
{symmetry}
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Cu1 Cu 0 0 0
"""


@pytest.mark.parametrize(
    'symmetry',
    [
        "_space_group_name_H-M_ref 'F m -3 m'",
        "_space_group.name_H-M_ref 'F m -3 m'",
        "_space_group_name_H-M_full 'F 4/m -3 2/m'",
        "_space_group_name_Hall '-F 4 2 3'",
        '_space_group.IT_number 225',
        "_space_group_name_Schoenflies 'Oh^5'",
    ],
)
def test_every_space_group_item_is_read(symmetry):
    """Seen: ``_space_group_name_H-M_ref`` alone was read as P 1 (1 atom instead of 4), without an error."""
    (block,) = parse_cif(FCC_CU.format(symmetry=symmetry))
    assert len(block.structure.sites) == 4


@pytest.mark.parametrize(
    ('symmetry', 'tag'),
    [
        ("_space_group_ssg_name 'Pmmm(00g)0s0'", '_space_group_ssg_name'),
        ('loop_\n_space_group_symop_generator_xyz\n-x,-y,-z', '_space_group_symop_generator_xyz'),
        ("_space_group_magn.name_BNS 'F m -3 m'", '_space_group_magn.name_BNS'),
    ],
)
def test_a_space_group_item_the_reader_does_not_understand_without_operations_is_refused(symmetry, tag):
    with pytest.raises(ParseError, match=rf'declares its symmetry with {re.escape(tag)}.*other CIF readers would'):
        parse_cif(FCC_CU.format(symmetry=symmetry))


def test_ddl2_names_are_kept_apart():
    """Seen: ``_diffrn_radiation_wavelength.id`` and ``_diffrn_radiation.wavelength_id`` read as one name, twice."""
    text = FCC_CU.format(symmetry="_space_group_name_H-M_alt 'F m -3 m'") + (
        'loop_\n_diffrn_radiation_wavelength.id\n_diffrn_radiation_wavelength.value\n1 0.71073\n'
        '_diffrn_radiation.wavelength_id 1\n_diffrn_radiation.type MoKa\n'
    )
    (block,) = parse_cif(text)
    assert len(block.structure.sites) == 4


def test_one_item_under_both_spellings_must_agree():
    text = FCC_CU.format(symmetry="_space_group_name_H-M_alt 'F m -3 m'\n_cell.length_a 3.7")
    with pytest.raises(ParseError, match=r'_cell_length_a and _cell.length_a are the same item with different values'):
        parse_cif(text)


# --------------------------------------------------------------------------------------------------------------------
# pw.x


def test_a_title_line_before_the_first_namelist_is_skipped():
    with_title = parse_pw_input('Silicon, diamond structure (from the QE examples)\n' + SI_SCF)
    assert with_title.structure.base.attributes.all == parse_pw_input(SI_SCF).structure.base.attributes.all
    assert with_title.warnings == ()


def test_end_closes_a_namelist():
    text = SI_SCF.replace('/\n&SYSTEM', '&end\n&SYSTEM', 1)
    assert text != SI_SCF
    assert parse_pw_input(text).parameters == parse_pw_input(SI_SCF).parameters


def test_a_variable_assigned_twice_takes_the_last_value_with_a_warning():
    text = SI_SCF.replace('ecutwfc', 'ecutwfc = 20.0\n  ecutwfc', 1)
    parsed = parse_pw_input(text, filename='si.in')
    assert parsed.parameters['SYSTEM']['ecutwfc'] == parse_pw_input(SI_SCF).parameters['SYSTEM']['ecutwfc']
    (warning,) = parsed.warnings
    assert re.match(r'si\.in: line \d+: &SYSTEM: ecutwfc is assigned twice \(also line \d+\); the last value', warning)


def test_letters_in_a_tpiba_b_path_are_resolved():
    """Seen: ``K_POINTS tpiba_b`` with ``gG 20`` / ``L 20`` lines, as in QE's band-structure examples (fcc Si)."""
    text = SI_SCF.split('K_POINTS')[0] + 'K_POINTS tpiba_b\n4\ngG 20\nX 10\nW 20\nL 0\n'
    parsed = parse_pw_input(text)
    assert parsed.kpoints_kind == 'band_path'
    assert parsed.kpoints.labels == [(0, 'GAMMA'), (1, 'X'), (2, 'W'), (3, 'L')]
    alat = 10.2 * BOHR_TO_ANGSTROM
    cartesian = parsed.kpoints.get_kpoints(cartesian=True) / (2 * math.pi / alat)
    np.testing.assert_allclose(cartesian, [[0, 0, 0], [0, 1, 0], [0.5, 1, 0], [0.5, 0.5, 0.5]], atol=1e-12)
    assert parsed.kpoints.get_kpoints(also_weights=True)[1].tolist() == [20, 10, 20, 0]


def test_letters_and_coordinates_mix_in_crystal_b():
    text = SI_SCF.split('K_POINTS')[0] + 'K_POINTS crystal_b\n3\ngG 10\n0.5 0.5 0.5 10\nX 1\n'
    points = parse_pw_input(text).kpoints.get_kpoints()
    np.testing.assert_allclose(points, [[0, 0, 0], [0.5, 0.5, 0.5], [0, 0.5, 0.5]], atol=1e-12)


@pytest.mark.parametrize(
    ('system', 'letter', 'message'),
    [
        ('ibrav = 2, celldm(1) = 10.2', 'Q', r"pw.x knows no point 'Q' for ibrav = 2 \(it knows gG, K, W, U, X, L\)"),
        ('ibrav = 2, celldm(1) = 10.2', 'G', r"pw.x knows no point 'G'"),
        ('ibrav = 7, celldm(1) = 10.2, celldm(3) = 1.5', 'Z', r'for ibrav = 7 its coordinates depend on the cell'),
    ],
)
def test_letters_that_cannot_be_resolved_are_errors(system, letter, message):
    text = pw(system, 'ATOMIC_POSITIONS crystal\nSi 0 0 0', f'K_POINTS tpiba_b\n2\ngG 10\n{letter} 10', nat=1)
    with pytest.raises(ParseError, match=message):
        parse_pw_input(text)


def test_an_unused_species_is_accepted_with_a_warning():
    text = SI_SCF.replace('ntyp = 1', 'ntyp = 2').replace(
        'Si  28.086  Si.pz-vbc.UPF', 'Si  28.086  Si.pz-vbc.UPF\n  Ge  72.630  Ge.pz-bhs.UPF'
    )
    assert text.count('Ge.pz') == 1
    parsed = parse_pw_input(text, filename='si.in')
    assert parsed.structure.get_kind_names() == ['Si']
    assert parsed.parameters['SYSTEM']['ntyp'] == 2
    assert [label for label, _ in parsed.pseudopotentials] == ['Si', 'Ge']
    (warning,) = parsed.warnings
    assert 'declares species that no atom uses: Ge; pw.x accepts this' in warning


PSEUDO = Path('/usr/share/espresso/pseudo/Si.pz-vbc.UPF')


@pytest.mark.skipif(
    shutil.which('pw.x') is None or not PSEUDO.exists(),
    reason='pw.x and its pseudopotentials (Debian package quantum-espresso, installed by .ci/run) are not installed',
)
@pytest.mark.requires_pwx
@pytest.mark.parametrize('ibrav', sorted(LETTERS))
def test_letter_tables_agree_with_pwx(tmp_path, ibrav):
    """pw.x itself resolves every letter of the table; the crystal coordinates it prints must be ours."""
    letters = ['gG', *LETTERS[ibrav]]
    system = 'ibrav = {}, celldm(1) = 10.2{}'.format(ibrav, ', celldm(3) = 1.6' if ibrav in (4, 6) else '')
    text = (
        f"&control\n calculation = 'scf', verbosity = 'high', pseudo_dir = '{tmp_path}', outdir = '{tmp_path}'\n/\n"
        f'&system\n {system}, nat = 1, ntyp = 1, ecutwfc = 8\n/\n&electrons\n electron_maxstep = 0\n/\n'
        f'ATOMIC_SPECIES\nSi 28.086 Si.UPF\nATOMIC_POSITIONS crystal\nSi 0 0 0\n'
        f'K_POINTS crystal_b\n{len(letters)}\n' + ''.join(f'{letter} 1\n' for letter in letters)
    )
    (tmp_path / 'Si.UPF').write_text(PSEUDO.read_text())
    (tmp_path / 'in').write_text(text)
    run = subprocess.run(
        ['pw.x', '-in', str(tmp_path / 'in')],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={'OMPI_ALLOW_RUN_AS_ROOT': '1', 'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM': '1', 'PATH': '/usr/bin:/bin'},
        check=False,
    )
    block = run.stdout.split('cryst. coord.\n')[-1]
    printed = [
        [float(x) for x in match.groups()]
        for match in re.finditer(r'k\(\s*\d+\) = \(\s*(\S+)\s+(\S+)\s+(\S+)\), wk', block)
    ][: len(letters)]
    assert len(printed) == len(letters), run.stdout[-2000:]
    ours = parse_pw_input(text).kpoints.get_kpoints()
    np.testing.assert_allclose(ours, printed, atol=1e-6)


# --------------------------------------------------------------------------------------------------------------------
# #10, item 8: one overlap rule for both readers


@pytest.mark.parametrize(
    ('positions', 'message'),
    [
        ('Si 0.00 0.00 0.00\nSi 0.00 0.00 0.00', r'atom 1 \(Si\) and atom 2 \(Si\) are 0.000 Å apart'),
        ('Si 0.00 0.00 0.00\nSi 0.00093 0.00 0.00', r'atom 1 \(Si\) and atom 2 \(Si\) are 0.005 Å apart'),
        ('Si 0.00 0.00 0.00\nSi 1.00 1.00 0.00', r'atom 1 \(Si\) and atom 2 \(Si\) are 0.000 Å apart'),
    ],
    ids=['coincident', '0.005 Å apart', 'on a periodic image'],
)
def test_pw_reader_refuses_overlapping_atoms(positions, message):
    text = pw('ibrav = 1, celldm(1) = 10.2', f'ATOMIC_POSITIONS crystal\n{positions}')
    with pytest.raises(ParseError, match=rf'ATOMIC_POSITIONS: atoms overlap: {message}'):
        parse_pw_input(text)


def test_pw_reader_refuses_an_atom_on_its_own_periodic_image():
    text = pw('ibrav = 6, celldm(1) = 10.2, celldm(3) = 0.05', 'ATOMIC_POSITIONS crystal\nSi 0 0 0', nat=1)
    with pytest.raises(ParseError, match=r'atom 1 \(Si\) is 0.270 Å from its own periodic image'):
        parse_pw_input(text)


def test_cif_and_pw_readers_give_the_same_overlap_message():
    cif = FCC_CU.format(symmetry='').replace('Cu1 Cu 0 0 0', 'Cu1 Cu 0 0 0\nCu2 Cu 0.001 0 0')
    with pytest.raises(ParseError, match=r'atoms overlap: site Cu1 and site Cu2 are 0.004 Å apart \(closer than 0.5'):
        parse_cif(cif)
