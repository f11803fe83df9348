"""Mistakes of the libraries the readers stand on, one test each: why the readers keep some code of their own.

Every test asserts what the library *should* do and is an expected failure while the library does not: an
upstream fix turns it into an unexpected pass (``strict=False``: reported, not a failure), and the code named in
the reason can then go. The readers' own behaviour on the same input is tested in ``test_cif.py``,
``test_pwinput.py`` and ``test_reported_cases.py``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

upstream = pytest.mark.xfail(strict=False, reason='upstream mistake, see the docstring')

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
_atom_site_occupancy
{sites}
"""


def gemmi_sites(text: str) -> list:
    import gemmi

    block = gemmi.cif.read_string(text).sole_block()
    return gemmi.make_small_structure_from_block(block).get_all_unit_cell_sites()


def pymatgen_structures(text: str) -> list:
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return CifParser.from_str(text).parse_structures(primitive=False)


# --------------------------------------------------------------------------------------------------------------------
# gemmi (tools/cif/)


@upstream
def test_gemmi_reads_a_block_with_only_h_m_ref_as_p1():
    """gemmi ignores ``_space_group_name_H-M_ref`` and uses P 1: 1 atom of fcc Cu instead of 4.
    Kept: ``symmetry.py`` reads every space-group item and refuses the ones it does not understand."""
    text = FCC_CU.format(symmetry="_space_group_name_H-M_ref 'F m -3 m'", sites='Cu1 Cu 0 0 0 1')
    assert len(gemmi_sites(text)) == 4


@upstream
def test_gemmi_operation_parser_accepts_a_change_of_basis():
    """``gemmi.Op('a,b,c')`` is accepted (a change of basis), so a broken symmetry loop would not be noticed.
    Kept: ``symmetry._parse_operation`` allows only x, y, z."""
    import gemmi

    with pytest.raises(RuntimeError):
        gemmi.Op('a,b,c')


@upstream
@pytest.mark.parametrize('symbol', ['P 2(1)/c', 'P43m'])
def test_gemmi_does_not_know_old_spellings(symbol):
    """Pre-1983 spellings are common in old CIFs. Kept: ``symmetry._OLD_SPELLINGS``."""
    import gemmi

    assert gemmi.find_spacegroup_by_name(symbol) is not None


@upstream
def test_gemmi_does_not_know_full_symbols():
    """``_space_group_name_H-M_full`` holds full symbols. Kept: ``symmetry._full_symbols`` (spglib's table)."""
    import gemmi

    assert gemmi.find_spacegroup_by_name('F 4/m -3 2/m') is not None


@upstream
def test_gemmi_takes_origin_choice_1_without_a_word():
    """Magnetite's O at 32e in origin choice 2, symbol 'F d -3 m' without ':2': gemmi expands in origin choice 1
    and gives the wrong cell content. Kept: ``block.choose`` tries both origins and refuses if nothing tells."""
    sites = 'O1 O 0.2549 0.2549 0.2549 1'
    text = FCC_CU.replace('3.615', '8.396').format(symmetry="_symmetry_space_group_name_H-M 'F d -3 m'", sites=sites)
    # Without a declaration both readings are possible; gemmi should at least not pick one silently.
    with pytest.raises(RuntimeError):
        gemmi_sites(text)


@upstream
def test_gemmi_unit_cell_expansion_merges_split_positions():
    """Two half-occupied images of a disordered atom 0.3 Å apart (across a mirror) are two sites; gemmi merges images
    closer than 0.4 Å and keeps one, with occupancy 0.5: half the atom is lost. Kept: ``sites.expand``."""
    text = FCC_CU.replace('3.615', '5.0').format(
        symmetry="_symmetry_space_group_name_H-M 'P m m m'", sites='Cu1 Cu 0.25 0.25 0.03 0.5'
    )
    assert math.isclose(sum(site.occ for site in gemmi_sites(text)), 4.0)


# --------------------------------------------------------------------------------------------------------------------
# pymatgen and ASE (why the CIF reader is not theirs)


@upstream
@pytest.mark.parametrize('symbol', ['P 21/c', 'P2(1)/c', 'F m -3 q', 'F d -3 m :2'])
def test_pymatgen_reads_unknown_spellings_as_p1(symbol):
    text = FCC_CU.format(symmetry=f"_symmetry_space_group_name_H-M '{symbol}'", sites='Cu1 Cu 0.1 0.2 0.3 1')
    assert len(pymatgen_structures(text)[0]) > 1


@upstream
def test_pymatgen_and_ase_read_a_block_with_only_h_m_ref_as_p1():
    import io

    import ase.io

    text = FCC_CU.format(symmetry="_space_group_name_H-M_ref 'F m -3 m'", sites='Cu1 Cu 0 0 0 1')
    assert len(pymatgen_structures(text)[0]) == 4
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert len(ase.io.read(io.StringIO(text), format='cif')) == 4


@upstream
def test_pymatgen_merges_blocks_of_the_same_name():
    text = FCC_CU.format(symmetry='', sites='Cu1 Cu 0 0 0 1')
    assert len(pymatgen_structures(text + text.replace('Cu1 Cu', 'Ag1 Ag'))) == 2


@upstream
def test_pymatgen_and_ase_do_not_read_ddlm_names():
    import io

    import ase.io

    text = (
        FCC_CU.format(symmetry="_space_group.name_H-M_alt 'F m -3 m'", sites='Cu1 Cu 0 0 0 1')
        .replace('_atom_site_', '_atom_site.')
        .replace('_cell_', '_cell.')
    )
    assert len(pymatgen_structures(text)[0]) == 4
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert len(ase.io.read(io.StringIO(text), format='cif')) == 4


# --------------------------------------------------------------------------------------------------------------------
# qe-tools 2.3 through aiida-quantumespresso's PwInputFile (tools/pw/)

SI = (
    "&CONTROL\n  calculation = 'scf'\n/\n&SYSTEM\n  {system}\n  nat = {nat}, ntyp = 1, ecutwfc = 30.0\n/\n"
    'ATOMIC_SPECIES\n{species}\n{positions}\n{kpoints}\n'
)


def pw(
    system='ibrav = 2, celldm(1) = 10.2',
    species='Si 28.086 Si.pz-vbc.UPF',
    positions='ATOMIC_POSITIONS alat\nSi 0.00 0.00 0.00\nSi 0.25 0.25 0.25',
    kpoints='K_POINTS automatic\n4 4 4 0 0 0',
    nat=2,
) -> str:
    return SI.format(system=system, species=species, positions=positions, kpoints=kpoints, nat=nat)


def qe_tools(text: str, **kwargs):
    from aiida_quantumespresso.tools.pwinputparser import PwInputFile

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return PwInputFile(text, **kwargs)


@upstream
def test_qe_tools_loses_an_atom_after_a_trailing_comment():
    """Kept: ``namelists._strip_comment`` and the card reader."""
    text = pw(positions='ATOMIC_POSITIONS alat\nSi 0.00 0.00 0.00\nSi 0.25 0.25 0.25 ! the second atom')
    assert len(qe_tools(text).structure['positions']) == 2


@upstream
def test_qe_tools_loses_an_atom_written_with_an_exponent():
    """``-2.5E-01`` in ATOMIC_POSITIONS: qe-tools reads one atom of two, silently. Kept: the card reader."""
    text = pw(positions='ATOMIC_POSITIONS alat\nSi 0.0d0 0.0D+00 0.0E+00\nSi -2.5E-01 2.5d-1 .25')
    assert len(qe_tools(text).atomic_positions['positions']) == 2


@upstream
def test_qe_tools_loses_an_atom_given_by_an_expression():
    """pw.x evaluates ``1/4`` or ``(1+1)/8`` in ATOMIC_POSITIONS; qe-tools reads one atom of two, silently.
    Kept: ``structure._evaluate``."""
    text = pw(positions='ATOMIC_POSITIONS crystal\nSi 0 0 0\nSi 1/4 0.5/2 (1+1)/8')
    assert len(qe_tools(text).atomic_positions['positions']) == 2


@upstream
def test_qe_tools_refuses_fortran_double_precision_k_points():
    """``1.0D+00`` raises a bare ValueError. Kept: ``namelists.REAL_RE`` and ``to_float``."""
    qe_tools(pw(kpoints='K_POINTS tpiba\n1\n1.0D+00 0.0E+00 0.0 1.0d0'))


@upstream
@pytest.mark.parametrize('label', ['C_h', 'Fe_up'])
def test_qe_tools_refuses_labels_that_pwx_reads(label):
    """Kept: ``structure._atomic_species`` (QE's ``atomic_number`` rule)."""
    symbol = label.split('_')[0]
    qe_tools(
        pw(
            species=f'{label} 12.0 {symbol}.pbe.UPF',
            positions=f'ATOMIC_POSITIONS alat\n{label} 0 0 0\n{label} 0.25 0.25 0.25',
        )
    )


@upstream
def test_qe_tools_does_not_know_end():
    """Kept: the namelist reader of ``namelists.py``."""
    qe_tools(pw().replace('/\n&SYSTEM', '&end\n&SYSTEM'))


@upstream
def test_qe_tools_drops_strings_with_blanks():
    """Kept: the namelist reader of ``namelists.py``."""
    assert qe_tools(pw().replace("calculation = 'scf'", "title = 'my run'")).namelists['CONTROL'] == {'title': 'my run'}


@upstream
def test_qe_tools_refuses_a_repeated_assignment():
    """Fortran namelist input takes the last value. Kept: the namelist reader of ``namelists.py``."""
    assert qe_tools(pw().replace('ecutwfc = 30.0', 'ecutwfc = 20.0, ecutwfc = 30.0')).namelists['SYSTEM'][
        'ecutwfc'
    ] == pytest.approx(30.0)


@upstream
def test_qe_tools_takes_the_element_from_the_pseudopotential_file_name():
    """With validation off, ``pbe-Si.UPF`` becomes Be. Kept: ``structure._element_from_label``."""
    structure = qe_tools(pw(species='Si 28.086 pbe-Si.UPF'), validate_species_names=False).get_structuredata()
    assert structure.kinds[0].symbol == 'Si'


@upstream
def test_qe_tools_converts_tpiba_with_the_first_cell_vector():
    """tpiba is 2 pi / alat; qe-tools divides by |a1| (a/sqrt(2) for fcc). Kept: ``kpoints.read_kpoints``."""
    kpoints = qe_tools(pw(kpoints='K_POINTS tpiba\n1\n1.0 0.0 0.0 1.0')).get_kpointsdata()
    alat = 10.2 * 0.52917720859
    np.testing.assert_allclose(kpoints.get_kpoints(cartesian=True)[0], [2 * math.pi / alat, 0, 0], atol=1e-10)


@upstream
def test_qe_tools_swaps_the_first_two_vectors_of_ibrav_minus_9():
    """QE's latgen: v1 = (a/2, -b/2, 0), v2 = (a/2, b/2, 0). Kept: the row swap in ``structure._bravais_cell``."""
    text = pw(system='ibrav = -9, A = 3.0, B = 4.0, C = 5.0', positions='ATOMIC_POSITIONS crystal\nSi 0 0 0', nat=1)
    np.testing.assert_allclose(qe_tools(text).structure['cell'], [[1.5, -2.0, 0], [1.5, 2.0, 0], [0, 0, 5.0]])


@upstream
def test_qe_tools_needs_cosines_that_qe_defaults_to_zero():
    """pw.x takes a missing celldm(4) of ibrav 12 as 0 (90 degrees). Kept: ``structure._celldm`` passes all six."""
    text = pw(
        system='ibrav = 12, celldm(1) = 10.0, celldm(2) = 1.2, celldm(3) = 1.4',
        positions='ATOMIC_POSITIONS crystal\nSi 0 0 0',
        nat=1,
    )
    qe_tools(text)


@upstream
def test_qe_tools_does_not_read_letters_in_band_paths():
    """pw.x reads ``gG 20`` / ``L 20`` for ibrav > 0. Kept: ``kpoints.LETTERS``."""
    qe_tools(pw(kpoints='K_POINTS tpiba_b\n2\ngG 20\nL 20'))
