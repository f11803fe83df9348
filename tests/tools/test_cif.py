"""Tests of :mod:`aiida_structstore.tools.cif`.

What other readers make of the same text (their mistakes that this reader avoids) is tested in ``test_upstream.py``.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiida_structstore.core.exceptions import InvalidInputError, ParseError
from aiida_structstore.tools.cif import CifBlock, parse_cif
from aiida_structstore.tools.cif.block import structure_data

FILES = Path(__file__).parent / 'files' / 'cif'
EXAMPLES = Path(__file__).parents[2] / 'examples' / 'cif'
PW_INPUT = Path(__file__).parents[2] / 'examples' / 'pw' / 'si_scf.in'

NACL = """data_nacl
_cell_length_a 5.6402
_cell_length_b 5.6402
_cell_length_c 5.6402
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Na1 Na 0 0 0 1
Cl1 Cl 0.5 0.5 0.5 1
"""

CUBIC_CELL = """data_test
_cell_length_a 5.4309
_cell_length_b 5.4309
_cell_length_c 5.4309
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
"""


def read(name: str) -> str:
    return (FILES / name).read_text()


def parse_one(text: str) -> CifBlock:
    blocks = parse_cif(text)
    assert len(blocks) == 1
    return blocks[0]


def kinds(block: CifBlock) -> dict[str, tuple[tuple[str, ...], tuple[float, ...]]]:
    return {
        kind.name: (tuple(kind.symbols), tuple(round(w, 6) for w in kind.weights)) for kind in block.structure.kinds
    }


def site_kinds(block: CifBlock) -> Counter:
    return Counter(site.kind_name for site in block.structure.sites)


def composition(block: CifBlock) -> dict[str, float]:
    amounts: Counter = Counter()
    for site in block.structure.sites:
        kind = block.structure.get_kind(site.kind_name)
        for symbol, weight in zip(kind.symbols, kind.weights, strict=True):
            amounts[symbol] += weight
    return {symbol: round(value, 6) for symbol, value in amounts.items()}


def site(symbol: str, x: float, y: float, z: float, occupancy: float = 1, label: str | None = None) -> str:
    return f'{label or symbol + "1"} {symbol} {x} {y} {z} {occupancy}'


def with_sites(header: str, *rows: str) -> str:
    loop = '\n'.join(
        [
            'loop_',
            '_atom_site_label',
            '_atom_site_type_symbol',
            '_atom_site_fract_x',
            '_atom_site_fract_y',
            '_atom_site_fract_z',
            '_atom_site_occupancy',
            *rows,
        ]
    )
    return f'{header}{loop}\n'


# --------------------------------------------------------------------------------------------------------------------
# Public API


def test_public_api_and_result_types():
    blocks = parse_cif(read('nacl_hm_only.cif'), filename='nacl_hm_only.cif')
    assert [type(block) for block in blocks] == [CifBlock]
    block = blocks[0]
    assert block.name == 'NaCl'
    assert block.formula == 'ClNa'
    assert not block.structure.is_stored
    assert block.structure.pbc == (True, True, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        block.name = 'other'  # type: ignore[misc]
    assert issubclass(ParseError, InvalidInputError)
    assert issubclass(ParseError, ValueError)


def test_examples_parse():
    si = parse_cif((EXAMPLES / 'si.cif').read_text(), filename='si.cif')
    assert [block.name for block in si] == ['Si_diamond']
    assert si[0].formula == 'Si'
    assert len(si[0].structure.sites) == 8
    assert kinds(si[0]) == {'Si1': (('Si',), (1.0,))}
    assert si[0].structure.cell_lengths == pytest.approx([5.43102] * 3)

    hematite = parse_cif((EXAMPLES / 'fe2o3.cif').read_text(), filename='fe2o3.cif')
    assert [block.name for block in hematite] == ['hematite']
    assert hematite[0].formula == 'Fe2O3'
    assert len(hematite[0].structure.sites) == 30
    assert site_kinds(hematite[0]) == {'Fe1': 12, 'O1': 18}
    assert hematite[0].structure.cell_angles == pytest.approx([90, 90, 120])


# --------------------------------------------------------------------------------------------------------------------
# Rule 1: every data block with atom sites is a structure


def test_two_data_blocks_give_two_structures_in_file_order():
    text = read('two_blocks.cif')
    blocks = parse_cif(text)
    assert [block.name for block in blocks] == ['si', 'nacl']  # data_global (no atom sites) is skipped
    assert [block.formula for block in blocks] == ['Si', 'ClNa']
    assert [len(block.structure.sites) for block in blocks] == [8, 8]


def test_blocks_with_the_same_name_are_not_merged():
    text = NACL + '\n' + NACL.replace('Na1 Na', 'K1 K')
    blocks = parse_cif(text)
    assert [block.name for block in blocks] == ['nacl', 'nacl']
    assert [block.formula for block in blocks] == ['ClNa', 'ClK']


def test_file_without_any_atom_sites_is_an_error():
    text = 'data_global\n_publ_section_title "No structure here"\n\ndata_other\n_journal_year 2024\n'
    with pytest.raises(ParseError, match=r"no data block contains atom sites \(blocks: 'global', 'other'\)"):
        parse_cif(text)


def test_one_broken_structure_block_fails_the_whole_file():
    text = read('two_blocks.cif').replace('Cl1 Cl 0.5 0.5 0.5', 'Cl1 Cl 0.5 0.5 half')
    with pytest.raises(ParseError, match=r"data block 'nacl'.*_atom_site_fract_z = 'half' is not a number"):
        parse_cif(text)


# --------------------------------------------------------------------------------------------------------------------
# Rule 2: symmetry


def test_explicit_operations_are_used():
    block = parse_one(read('si_diamond_symops.cif'))
    assert len(block.structure.sites) == 8
    assert block.formula == 'Si'
    positions = np.array([s.position for s in block.structure.sites]) / 5.4309
    assert any(np.allclose(p, [0.25, 0.25, 0.25]) for p in positions)


def test_symbol_with_origin_choice_suffix_is_resolved():
    text = read('fe3o4_magnetite_fe1fe2.cif')
    block = parse_one(text)
    assert len(block.structure.sites) == 56
    assert block.formula == 'Fe3O4'


def test_symbol_only_rock_salt():
    block = parse_one(read('nacl_hm_only.cif'))
    assert len(block.structure.sites) == 8
    assert site_kinds(block) == {'Na1': 4, 'Cl1': 4}


MONOCLINIC_CELL = """data_mono
_cell_length_a 5.1
_cell_length_b 6.2
_cell_length_c 7.3
_cell_angle_alpha 90
_cell_angle_beta 103.5
_cell_angle_gamma 90
"""
GENERAL_POSITION = (
    'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nC1 0.1 0.2 0.3\n'
)


def fractional_positions(block: CifBlock) -> set[tuple[float, ...]]:
    structure = block.structure
    frac = np.array([s.position for s in structure.sites]) @ np.linalg.inv(np.array(structure.cell))
    return {tuple(float(v) for v in np.round(np.mod(point + 1e-9, 1.0), 4)) for point in frac}


@pytest.mark.parametrize(
    ('symbol', 'expected'),
    [
        # P 1 21/c 1: x,y,z; -x,y+1/2,-z+1/2; -x,-y,-z; x,-y+1/2,z+1/2
        ('P 21/c', {(0.1, 0.2, 0.3), (0.9, 0.7, 0.2), (0.9, 0.8, 0.7), (0.1, 0.3, 0.8)}),
        ('P 1 21/c 1', {(0.1, 0.2, 0.3), (0.9, 0.7, 0.2), (0.9, 0.8, 0.7), (0.1, 0.3, 0.8)}),
        ('P2(1)/c', {(0.1, 0.2, 0.3), (0.9, 0.7, 0.2), (0.9, 0.8, 0.7), (0.1, 0.3, 0.8)}),
        # P 1 21/n 1: -x+1/2,y+1/2,-z+1/2 and x+1/2,-y+1/2,z+1/2
        ('P 21/n', {(0.1, 0.2, 0.3), (0.4, 0.7, 0.2), (0.9, 0.8, 0.7), (0.6, 0.3, 0.8)}),
        # P 1 21/a 1 (unique axis b, not P 1 1 21/a): -x+1/2,y+1/2,-z and x+1/2,-y+1/2,z
        ('P 21/a', {(0.1, 0.2, 0.3), (0.4, 0.7, 0.7), (0.9, 0.8, 0.7), (0.6, 0.3, 0.3)}),
    ],
)
def test_monoclinic_symbols_in_the_usual_spellings(symbol, expected):
    text = MONOCLINIC_CELL + f"_symmetry_space_group_name_H-M '{symbol}'\n" + GENERAL_POSITION
    assert fractional_positions(parse_one(text)) == expected


def test_short_monoclinic_symbol_on_a_unique_axis_c_cell():
    """'P 21/a' names a setting of each unique axis; a cell with gamma != 90 has unique axis c: P 1 1 21/a."""
    cell = MONOCLINIC_CELL.replace('_cell_angle_beta 103.5', '_cell_angle_beta 90').replace(
        '_cell_angle_gamma 90', '_cell_angle_gamma 103.5'
    )
    block = parse_one(cell + "_symmetry_space_group_name_H-M 'P 21/a'\n" + GENERAL_POSITION)
    # P 1 1 21/a: x,y,z; -x+1/2,-y,z+1/2; -x,-y,-z; x+1/2,y,-z+1/2
    assert fractional_positions(block) == {(0.1, 0.2, 0.3), (0.4, 0.8, 0.8), (0.9, 0.8, 0.7), (0.6, 0.2, 0.2)}


def test_space_group_number_alone_means_the_standard_setting():
    block = parse_one(MONOCLINIC_CELL + '_symmetry_Int_Tables_number 14\n' + GENERAL_POSITION)
    assert fractional_positions(block) == {(0.1, 0.2, 0.3), (0.9, 0.7, 0.2), (0.9, 0.8, 0.7), (0.1, 0.3, 0.8)}


def test_c_centred_monoclinic():
    block = parse_one(MONOCLINIC_CELL + "_symmetry_space_group_name_H-M 'C 2/c'\n" + GENERAL_POSITION)
    assert len(block.structure.sites) == 8


def test_coordinate_system_code_selects_the_origin():
    text = read('fe3o4_magnetite_fe1fe2.cif').replace("'F d -3 m :2'", "'F d -3 m'")
    text = text.replace('_atom_site_Wyckoff_symbol\n', '_atom_site_Wyckoff_symbol_unused\n')
    text = text.replace('_cell_formula_units_Z 8\n', '')
    with pytest.raises(ParseError, match=r'two origin choices'):
        parse_cif(text)
    text = text.replace("'F d -3 m'", "'F d -3 m'\n_space_group_IT_coordinate_system_code 2")
    assert len(parse_one(text).structure.sites) == 56


def test_redundant_or_impossible_setting_codes():
    assert len(parse_one(NACL.replace("'F m -3 m'", "'F m -3 m :1'")).structure.sites) == 8
    with pytest.raises(ParseError, match=r"setting 'H' does not exist for this space group"):
        parse_cif(NACL.replace("'F m -3 m'", "'F m -3 m :H'"))


def test_rhombohedral_axes_are_recognised_from_the_cell():
    hexagonal = parse_one(read('fe2o3_hematite_symbol_only.cif'))
    assert len(hexagonal.structure.sites) == 30
    assert hexagonal.formula == 'Fe2O3'

    text = read('fe2o3_hematite_rhombohedral.cif')
    rhombohedral = parse_one(text)
    assert len(rhombohedral.structure.sites) == 10
    assert rhombohedral.formula == 'Fe2O3'
    assert site_kinds(rhombohedral) == {'Fe1': 4, 'O1': 6}
    # Same crystal: the same volume per formula unit.
    volume_per_fu = [
        block.structure.get_cell_volume() / len(block.structure.sites) for block in (hexagonal, rhombohedral)
    ]
    assert volume_per_fu[0] == pytest.approx(volume_per_fu[1], rel=1e-4)


@pytest.mark.parametrize('position', ['0.125 0.125 0.125', '0 0 0'], ids=['origin choice 2', 'origin choice 1'])
def test_origin_choice_is_settled_by_the_declared_content(position):
    text = (
        CUBIC_CELL
        + "_symmetry_space_group_name_H-M 'F d -3 m'\n_chemical_formula_sum Si\n_cell_formula_units_Z 8\n"
        + f'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nSi1 {position}\n'
    )
    block = parse_one(text)
    assert len(block.structure.sites) == 8


def test_ambiguous_origin_choice_is_an_error():
    text = (
        CUBIC_CELL
        + "_symmetry_space_group_name_H-M 'F d -3 m'\n"
        + 'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nSi1 0 0 0\n'
    )
    with pytest.raises(ParseError, match=r'two origin choices .* does not say which'):
        parse_cif(text)
    assert parse_one(text.replace("'F d -3 m'", "'F d -3 m :1'")).structure.sites.__len__() == 8


def test_unknown_space_group_symbol_is_an_error():
    text = NACL.replace("'F m -3 m'", "'F m -3 q'")
    with pytest.raises(ParseError, match=r"cannot interpret the space group _symmetry_space_group_name_H-M 'F m -3 q'"):
        parse_cif(text)


def test_unreadable_symbol_with_a_single_setting_number_is_accepted():
    text = NACL.replace("'F m -3 m'", "'Fm-3m (225)'") + ''
    text = text.replace('loop_', '_symmetry_Int_Tables_number 225\nloop_', 1)
    assert len(parse_one(text).structure.sites) == 8


def test_unreadable_symbol_with_a_multi_setting_number_is_an_error():
    text = CUBIC_CELL + (
        "_symmetry_space_group_name_H-M 'F d -3 m (origin at -3m)'\n_space_group_IT_number 227\n"
        'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nSi1 0.3 0.3 0.3\n'
    )
    with pytest.raises(ParseError, match=r'cannot interpret .* several settings'):
        parse_cif(text)


def test_symbol_and_number_must_agree():
    text = NACL.replace('loop_', '_symmetry_Int_Tables_number 227\nloop_', 1)
    with pytest.raises(ParseError, match=r'space-group declarations disagree'):
        parse_cif(text)


def test_operations_must_be_the_declared_space_group():
    text = CUBIC_CELL + (
        '_symmetry_Int_Tables_number 14\nloop_\n_symmetry_equiv_pos_as_xyz\nx,y,z\n-x,-y,-z\n'
        'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nSi1 0.1 0.2 0.3\n'
    )
    with pytest.raises(ParseError, match=r'operations are space group P-1 \(No. 2\) but .* is No. 14'):
        parse_cif(text)


def test_operations_must_form_a_group():
    text = CUBIC_CELL + (
        'loop_\n_symmetry_equiv_pos_as_xyz\nx,y,z\n-y,x,z\n'
        'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nSi1 0.1 0.2 0.3\n'
    )
    with pytest.raises(ParseError, match=r'do not form a group: \(-y, x, z\) after \(-y, x, z\) gives \(-x, -y, z\)'):
        parse_cif(text)


@pytest.mark.parametrize('operation', ['a,b,c', 'x,y', 'x,y,z,1', '2x,y,z', 'x,y,z+', 'x y z', '1/0+x,y,z'])
def test_unreadable_operation_is_an_error(operation):
    text = CUBIC_CELL + (
        f"loop_\n_space_group_symop_operation_xyz\n'x,y,z'\n'{operation}'\n"
        'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nSi1 0.1 0.2 0.3\n'
    )
    with pytest.raises(ParseError, match=rf'cannot read the symmetry operation {re.escape(repr(operation))}'):
        parse_cif(text)


def test_operations_must_fit_the_cell():
    text = CUBIC_CELL + (
        'loop_\n_symmetry_equiv_pos_as_xyz\nx,y,z\n-y,x-y,z\n-x+y,-x,z\n'
        'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nSi1 0.1 0.2 0.3\n'
    )
    with pytest.raises(ParseError, match=r'not compatible with the cell parameters'):
        parse_cif(text)


@pytest.mark.parametrize(
    ('written', 'read'),
    [('0.3333', 1 / 3), ('0.16667', 1 / 6), ('0.66666667', 2 / 3), ('0.0833', 1 / 12), ('0.08366000', 0.08366)],
)
def test_coordinates_snap_to_twelfths_only_within_their_written_precision(written, read):
    """A coordinate that is 1/3 rounded to its decimals is 1/3; one written with more decimals is kept as written
    (snapping within a fixed 5e-4 moved atoms of 8-decimal CIFs by up to 6 mÅ, found by the writers matrix)."""
    text = CUBIC_CELL + 'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n'
    block = parse_one(text + f'Si1 {written} 0 0\n')
    assert block.structure.sites[0].position[0] == pytest.approx(read * 5.4309, abs=1e-12)


def test_no_symmetry_declared_is_p1():
    text = CUBIC_CELL + 'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n'
    text += 'Si1 0 0 0\nSi2 0.25 0.25 0.25\n'
    block = parse_one(text)
    assert len(block.structure.sites) == 2
    assert site_kinds(block) == {'Si1': 1, 'Si2': 1}


def test_magnetic_cif_operations_with_centring():
    text = (
        CUBIC_CELL.replace('5.4309', '2.8665')
        + "_space_group_magn.name_BNS 'I m -3 m'\n"
        + 'loop_\n_space_group_symop_magn_operation.id\n_space_group_symop_magn_operation.xyz\n'
        + "1 'x,y,z,+1'\n2 '-x,-y,-z,+1'\n"
        + 'loop_\n_space_group_symop_magn_centering.id\n_space_group_symop_magn_centering.xyz\n'
        + "1 'x,y,z,+1'\n2 'x+1/2,y+1/2,z+1/2,+1'\n"
        + 'loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n'
        + '_atom_site_fract_z\nFe1 Fe 0 0 0\n'
    )
    block = parse_one(text)
    assert len(block.structure.sites) == 2


# --------------------------------------------------------------------------------------------------------------------
# Rule 3: what was parsed agrees with what the file declares


def test_hematite_formula_and_site_count():
    block = parse_one(read('fe2o3_hematite_symbol_only.cif'))
    assert block.formula == 'Fe2O3'
    assert len(block.structure.sites) == 30  # Z = 6 formula units in the hexagonal cell
    assert composition(block) == {'Fe': 12.0, 'O': 18.0}


def test_formula_times_z_must_match():
    text = read('nacl_hm_only.cif').replace('_cell_formula_units_Z 4', '_cell_formula_units_Z 8')
    with pytest.raises(
        ParseError,
        match=r"_chemical_formula_sum 'Cl Na' x _cell_formula_units_Z 8 = Cl8 Na8 but the sites give Cl4 Na4",
    ):
        parse_cif(text)


def test_formula_without_z_must_be_proportional():
    text = NACL.replace('loop_', "_chemical_formula_sum 'Na Cl2'\nloop_", 1)
    with pytest.raises(ParseError, match=r"'Na Cl2' is not proportional"):
        parse_cif(text)
    assert parse_one(NACL.replace('loop_', "_chemical_formula_sum 'Na Cl'\nloop_", 1)).formula == 'ClNa'


def test_hydrogen_missing_from_the_sites_is_a_warning():
    """Issue 19: the formula may count hydrogen atoms no site holds (the other elements agree); see test_conventions."""
    text = NACL.replace('loop_', "_chemical_formula_sum 'H Cl Na'\n_cell_formula_units_Z 4\nloop_", 1)
    block = parse_one(text)
    assert composition(block) == {'Na': 4.0, 'Cl': 4.0}
    assert 'they differ only in H (hydrogen positions are often not given), and Cl, Na agree' in block.warnings[0]


def test_hydrogen_missing_and_another_element_wrong_is_an_error():
    text = NACL.replace('loop_', "_chemical_formula_sum 'H Cl2 Na'\n_cell_formula_units_Z 4\nloop_", 1)
    with pytest.raises(ParseError, match=r'no site holds H; hydrogen positions are often omitted'):
        parse_cif(text)


def test_multiplicity_must_match_the_expansion():
    text = read('nacl_hm_only.cif').replace('Na1 Na1+ 4 a', 'Na1 Na1+ 8 a')
    with pytest.raises(
        ParseError,
        match=r'site Na1: the symmetry operations give 4 positions but _atom_site_symmetry_multiplicity is 8',
    ):
        parse_cif(text)


def test_wyckoff_multiplicity_must_match_the_expansion():
    text = read('fe3o4_magnetite_fe1fe2.cif').replace('Fe2 Fe 16d', 'Fe2 Fe 8d')
    with pytest.raises(ParseError, match=r'site Fe2: the symmetry operations give 16 positions but the Wyckoff symbol'):
        parse_cif(text)


def test_site_symmetry_order_must_match():
    text = CUBIC_CELL + (
        "_symmetry_space_group_name_H-M 'F d -3 m :1'\n"
        'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n'
        '_atom_site_site_symmetry_order\nSi1 0 0 0 12\n'
    )
    with pytest.raises(ParseError, match=r'_atom_site_site_symmetry_order 12 \(192 operations\)'):
        parse_cif(text)
    assert len(parse_one(text.replace('0 0 0 12', '0 0 0 24')).structure.sites) == 8


# --------------------------------------------------------------------------------------------------------------------
# Rule 4: occupancies


def test_occupancy_zero_sites_are_dropped():
    block = parse_one(read('nacl_occupancy_zero.cif'))
    assert len(block.structure.sites) == 8
    assert block.formula == 'ClNa'
    assert 'Ag' not in {symbol for kind in block.structure.kinds for symbol in kind.symbols}
    assert set(kinds(block)) == {'Na1', 'Cl1'}


def test_all_sites_with_occupancy_zero_is_an_error():
    text = NACL.replace('Na1 Na 0 0 0 1', 'Na1 Na 0 0 0 0').replace('Cl1 Cl 0.5 0.5 0.5 1', 'Cl1 Cl 0.5 0.5 0.5 0.0')
    with pytest.raises(ParseError, match=r'no atoms: every atom site has occupancy 0'):
        parse_cif(text)


def test_site_split_alloy_is_one_alloy_site():
    block = parse_one(read('cuau_site_split_alloy.cif'))
    assert len(block.structure.sites) == 4
    assert block.structure.is_alloy
    assert not block.structure.has_vacancies
    (kind,) = block.structure.kinds
    assert kind.is_alloy
    assert dict(zip(kind.symbols, kind.weights, strict=True)) == pytest.approx({'Cu': 0.5, 'Au': 0.5})
    assert kind.name == 'AuCu'  # rows Cu1 and Au1 share the site: no single label, automatic name
    assert block.formula == 'AuCu'


def test_alloy_rows_at_nearly_the_same_position_are_one_site():
    text = read('cuau_site_split_alloy.cif').replace('Au1 Au 0 0 0 0.5', 'Au1 Au 0.0003 0 0.0002 0.5')
    block = parse_one(text)
    assert len(block.structure.sites) == 4
    assert block.structure.is_alloy


def test_vacancy_kind():
    block = parse_one(read('feo_wustite_vacancy.cif'))
    assert block.structure.has_vacancies
    assert not block.structure.is_alloy
    assert kinds(block) == {'Fe1': (('Fe',), (0.9,)), 'O1': (('O',), (1.0,))}
    fe1 = block.structure.get_kind('Fe1')
    assert not fe1.is_alloy
    assert fe1.has_vacancies
    assert block.formula == 'Fe0.9O'


def test_occupancy_above_one_is_an_error():
    text = NACL.replace('Na1 Na 0 0 0 1', 'Na1 Na 0 0 0 1.2')
    with pytest.raises(ParseError, match=r'site Na1: occupancy 1.2 is larger than 1'):
        parse_cif(text)


def test_occupancy_slightly_above_one_is_rescaled():
    block = parse_one(NACL.replace('Na1 Na 0 0 0 1', 'Na1 Na 0 0 0 1.01(2)'))
    assert kinds(block)['Na1'] == (('Na',), (1.0,))


def test_rounded_occupancies_summing_to_nearly_one_are_full():
    rows = [site('Fe', 0, 0, 0, 0.333), site('Co', 0, 0, 0, 0.333), site('Ni', 0, 0, 0, 0.333)]
    block = parse_one(
        with_sites(CUBIC_CELL.replace('5.4309', '3.55') + "_symmetry_space_group_name_H-M 'F m -3 m'\n", *rows)
    )
    assert not block.structure.has_vacancies
    (kind,) = block.structure.kinds
    assert sorted(kind.symbols) == ['Co', 'Fe', 'Ni']
    assert sum(kind.weights) == pytest.approx(1.0)


def test_negative_occupancy_is_an_error():
    with pytest.raises(ParseError, match=r'site Cl1: occupancy -0.5 is negative'):
        parse_cif(NACL.replace('Cl1 Cl 0.5 0.5 0.5 1', 'Cl1 Cl 0.5 0.5 0.5 -0.5'))


def test_full_atoms_at_the_same_position_are_an_error():
    text = NACL.replace('Cl1 Cl 0.5 0.5 0.5 1', 'Cl1 Cl 0 0 0 1')
    with pytest.raises(ParseError, match=r'site Na1, site Cl1 are at the same position with total occupancy 2'):
        parse_cif(text)


def test_half_occupied_split_positions_are_allowed():
    text = NACL.replace('Cl1 Cl 0.5 0.5 0.5 1', 'Cl1 Cl 0.5 0.5 0.5 0.5\nCl2 Cl 0.53 0.5 0.5 0.5')
    block = parse_one(text)
    assert block.structure.has_vacancies
    assert kinds(block)['Cl1'] == (('Cl',), (0.5,))


def test_overlapping_atoms_are_an_error():
    text = NACL.replace('Cl1 Cl 0.5 0.5 0.5 1', 'Cl1 Cl 0.5 0.5 0.5 1\nO1 O 0.52 0.5 0.5 1')
    with pytest.raises(ParseError, match=r'atoms overlap: site Cl1 and site O1 are 0.113 Å apart'):
        parse_cif(text)


# --------------------------------------------------------------------------------------------------------------------
# Rule 5: kind names


def test_inequivalent_sites_with_distinct_labels_are_distinct_kinds():
    block = parse_one(read('fe3o4_magnetite_fe1fe2.cif'))
    assert kinds(block) == {'Fe1': (('Fe',), (1.0,)), 'Fe2': (('Fe',), (1.0,)), 'O1': (('O',), (1.0,))}
    assert site_kinds(block) == {'Fe1': 8, 'Fe2': 16, 'O1': 32}


def test_hematite_labels_are_kind_names():
    block = parse_one((EXAMPLES / 'fe2o3.cif').read_text())
    assert kinds(block) == {'Fe1': (('Fe',), (1.0,)), 'O1': (('O',), (1.0,))}


def test_labels_are_sanitised():
    text = NACL.replace('Na1 Na', 'Na(1) Na').replace('Cl1 Cl', "Cl1' Cl")
    assert set(kinds(parse_one(text))) == {'Na_1', 'Cl1'}


def test_unusable_labels_fall_back_to_automatic_names():
    text = NACL.replace('Na1 Na', '1 Na').replace('Cl1 Cl', '? Cl')
    assert set(kinds(parse_one(text))) == {'Na', 'Cl'}


def test_conflicting_labels_fall_back_to_automatic_names():
    # The same label on a Na and a Cl site cannot be one kind.
    text = NACL.replace('Na1 Na', 'M1 Na').replace('Cl1 Cl', 'M1 Cl')
    assert set(kinds(parse_one(text))) == {'Na', 'Cl'}
    # Two labels that sanitise to the same name are not merged into one kind.
    text = NACL.replace('Na1 Na', 'A(1) Na').replace('Cl1 Cl', 'A-1 Cl')
    assert set(kinds(parse_one(text))) == {'Na', 'Cl'}


def test_automatic_names_do_not_collide_with_labels():
    text = NACL.replace('Na1 Na', 'Cl Na').replace(
        'Cl1 Cl 0.5 0.5 0.5 1', 'Cl1 Cl 0.5 0.5 0.5 0.5\nBr1 Br 0.5 0.5 0.5 0.5'
    )
    block = parse_one(text)
    assert kinds(block) == {'Cl': (('Na',), (1.0,)), 'BrCl': (('Cl', 'Br'), (0.5, 0.5))}


def test_structure_data_is_what_set_pymatgen_builds():
    from aiida import orm
    from pymatgen.core import Lattice, Structure

    structure = Structure(
        Lattice.from_parameters(5.03, 5.03, 13.7, 90, 90, 120, vesta=True),
        [{'Fe': 1}, {'Fe': 0.9}, {'Cu': 0.5, 'Au': 0.5}, {'O': 1}, {'O': 1}, {'Fe': 1}],
        [[0, 0, 0.35], [0, 0, 0.15], [0.5, 0.5, 0.5], [0.3, 0, 0.25], [0, 0.3, 0.25], [0, 0, 0.85]],
        site_properties={'kind_name': ['Fe1', 'Fe2', 'AuCu', 'O1', 'O1', 'Fe1']},
    )
    ours = structure_data(
        structure.lattice.matrix,
        structure.cart_coords,
        [{element.symbol: amount for element, amount in site.species.items()} for site in structure],
        structure.site_properties['kind_name'],
    )
    theirs = orm.StructureData(pymatgen=structure)
    assert ours.base.attributes.all == theirs.base.attributes.all
    assert [kind.name for kind in ours.kinds] == ['Fe1', 'Fe2', 'AuCu', 'O1']


def test_labels_used_for_elements_when_there_is_no_type_symbol():
    text = read('two_blocks.cif')
    assert kinds(parse_cif(text)[0]) == {'Si1': (('Si',), (1.0,))}


# --------------------------------------------------------------------------------------------------------------------
# Other CIF features


def test_case_insensitive_and_ddlm_data_names():
    text = read('tio2_rutile_ddlm_tags.cif')
    block = parse_one(text)
    assert block.formula == 'O2Ti'
    assert site_kinds(block) == {'Ti1': 2, 'O1': 4}


def test_unquoted_symbol_with_spaces_is_read_whole():
    block = parse_one(NACL.replace("'F m -3 m'", 'F m -3 m'))
    assert len(block.structure.sites) == 8
    assert block.warnings == (
        'CIF text: line 8: the value of _symmetry_space_group_name_H-M contains blanks but is not quoted; it is read '
        'to the end of the line (as ASE does)',
    )


def test_cartesian_coordinates():
    text = (
        CUBIC_CELL.replace('5.4309', '4.123')
        + "_symmetry_space_group_name_H-M 'P m -3 m'\n"
        + 'loop_\n_atom_site_label\n_atom_site_type_symbol\n'
        + '_atom_site_Cartn_x\n_atom_site_Cartn_y\n_atom_site_Cartn_z\n'
        + 'Cs1 Cs 0 0 0\nCl1 Cl 2.0615 2.0615 2.0615\n'
    )
    block = parse_one(text)
    assert block.formula == 'ClCs'
    positions = {site.kind_name: site.position for site in block.structure.sites}
    assert positions['Cl1'] == pytest.approx((2.0615, 2.0615, 2.0615))


def test_small_molecule_shelxl_style_file():
    block = parse_one(read('urea_shelxl_style.cif'))
    assert block.name == 'urea'
    assert block.formula == 'CH4N2O'
    assert len(block.structure.sites) == 16  # Z = 2 molecules of CO(NH2)2, hydrogen atoms included
    assert site_kinds(block) == {'C1': 2, 'O1': 2, 'N1': 4, 'H1': 4, 'H2': 4}


def test_ddlm_site_multiplicity_is_checked():
    text = read('tio2_rutile_ddlm_tags.cif').replace(
        '_atom_site.type_symbol\n', '_atom_site.type_symbol\n_atom_site.site_symmetry_multiplicity\n'
    )
    text = text.replace('Ti1 Ti 0', 'Ti1 Ti 2 0').replace('O1 O 0.3', 'O1 O 2 0.3')
    with pytest.raises(ParseError, match=r'site O1: the symmetry operations give 4 positions but .* is 2'):
        parse_cif(text)


def test_windows_and_old_mac_line_endings():
    assert parse_one(NACL.replace('\n', '\r\n')).formula == 'ClNa'
    assert parse_one(NACL.replace('\n', '\r')).formula == 'ClNa'
    assert parse_one('\ufeff' + NACL).formula == 'ClNa'  # byte-order mark


def test_non_ascii_text_fields_and_comments_are_fine():
    text = NACL.replace('data_nacl\n', "data_nacl\n# Müller & Ångström\n_publ_author_name 'Müller, J.'\n")
    assert parse_one(text).formula == 'ClNa'


def test_dummy_sites_are_dropped():
    text = NACL.replace('_atom_site_occupancy\n', '_atom_site_occupancy\n_atom_site_calc_flag\n')
    text = text.replace('Na1 Na 0 0 0 1', 'Na1 Na 0 0 0 1 d').replace('Cl1 Cl 0.5 0.5 0.5 1', 'Cl1 Cl 0.5 0.5 0.5 1 d')
    text += 'Q1 Na 0.25 0.25 0.25 1 dum\n'
    assert parse_one(text).formula == 'ClNa'


# --------------------------------------------------------------------------------------------------------------------
# Rule 6: broken and hostile input

TRUNCATED_LOOP = NACL.rsplit(' ', 1)[0] + '\n'  # the last value of the atom-site loop is missing

BROKEN = {
    'empty': ('', r'the text is empty'),
    'blank': (' \n\t\n', r'the text is empty'),
    'comment only': ('# nothing but a comment\n', r'no data_ block header found: this is not a CIF file$'),
    'binary': (bytes(range(256)).decode('latin-1'), r'contains binary data \(control character'),
    'pw.x input': (PW_INPUT.read_text(), r'looks like a Quantum ESPRESSO pw.x input'),
    'truncated loop': (
        TRUNCATED_LOOP,
        r'line 9: wrong number of values in loop _atom_site_\*: the loop is truncated or broken',
    ),
    'missing cell parameter': (
        NACL.replace('_cell_length_c 5.6402\n', ''),
        r'missing cell parameter\(s\): _cell_length_c',
    ),
    'unknown cell parameter': (NACL.replace('_cell_angle_beta 90', '_cell_angle_beta ?'), r'_cell_angle_beta'),
    'non-numeric cell': (NACL.replace('_cell_length_a 5.6402', '_cell_length_a five'), r"'five' is not a number"),
    'non-numeric coordinate': (NACL.replace('Na1 Na 0 0 0', 'Na1 Na 0 abc 0'), r"_atom_site_fract_y = 'abc' is not"),
    'unknown coordinate': (NACL.replace('Na1 Na 0 0 0', 'Na1 Na 0 0 ?'), r'site Na1: _atom_site_fract_z is unknown'),
    'zero-volume cell': (
        NACL.replace('_cell_angle_alpha 90', '_cell_angle_alpha 120')
        .replace('_cell_angle_beta 90', '_cell_angle_beta 120')
        .replace('_cell_angle_gamma 90', '_cell_angle_gamma 120'),
        r'has zero volume',
    ),
    'negative length': (NACL.replace('_cell_length_b 5.6402', '_cell_length_b -5.6402'), r'must be positive'),
    'flat angle': (NACL.replace('_cell_angle_gamma 90', '_cell_angle_gamma 180'), r'between 0 and 180'),
    'overlapping atoms': (
        NACL.replace('Cl1 Cl 0.5 0.5 0.5 1', 'Cl1 Cl 0.02 0 0 1'),
        r'atoms overlap: site Na1 and site Cl1 are 0.113 Å apart',
    ),
    'unclosed quote': (
        NACL.replace("'F m -3 m'", "'F m -3 m"),
        r'line 8: a quoted string is not closed on its line',
    ),
    'unclosed text field': (NACL + ';\nnever closed\n', r'line 20: text field is not closed'),
    'tag without value': (NACL.replace('_cell_angle_gamma 90', '_cell_angle_gamma'), r'_cell_angle_gamma has no value'),
    'stray value': (
        NACL.replace('_cell_angle_gamma 90\n', "_cell_angle_gamma 90\n'stray'\n"),
        r"line 8: CIF syntax error at \"'stray'\"",
    ),
    'content before data_': (
        '_cell_length_a 5\n' + NACL,
        r"line 1: '_cell_length_a 5' before the first data_ block header: this is not a CIF file",
    ),
    'unknown element': (
        NACL.replace('Na1 Na', 'Xx1 Xx'),
        r'site Xx1: cannot tell the element from its _atom_site_type',
    ),
    'water type symbol': (
        NACL.replace('Na1 Na', 'O1 Wat'),
        r"cannot tell the element from its _atom_site_type_symbol 'Wat'",
    ),
    'deuterium': (NACL.replace('Na1 Na', 'D1 D'), r'deuterium/tritium is not supported'),
    'ambiguous label': (
        CUBIC_CELL + 'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nCA1 0 0 0\n',
        r"the label 'CA1' could mean C or Ca",
    ),
    'no coordinates': (
        CUBIC_CELL + 'loop_\n_atom_site_label\n_atom_site_type_symbol\nNa1 Na\n',
        r'no complete coordinates',
    ),
    'duplicate data name': (
        NACL.replace('_cell_angle_gamma 90', '_cell_angle_gamma 90\n_cell_angle_gamma 60'),
        r'appears twice',
    ),
    'ragged atom site columns': (
        NACL.replace('_atom_site_occupancy\n', '').replace(' 1\n', '\n') + '_atom_site_occupancy 1\n',
        r'atom-site data names have different numbers of values',
    ),
    'attached hydrogens': (
        NACL.replace('_atom_site_occupancy\n', '_atom_site_occupancy\n_atom_site_attached_hydrogens\n')
        .replace('Na1 Na 0 0 0 1', 'Na1 Na 0 0 0 1 0')
        .replace('Cl1 Cl 0.5 0.5 0.5 1', 'Cl1 Cl 0.5 0.5 0.5 1 2'),
        r'site Cl1 has 2 attached hydrogen atom\(s\) whose positions the file does not give',
    ),
    'unreadable formula': (
        NACL.replace('loop_', "_chemical_formula_sum 'NaCl(H2O)2'\nloop_", 1),
        r"_chemical_formula_sum 'NaCl\(H2O\)2' has elements \['Cl', 'H', 'Na', 'O'\] but the sites give",
    ),
    'bad space-group number': (
        NACL.replace('loop_', '_space_group_IT_number 999\nloop_', 1),
        r'is not a space-group number',
    ),
    'bad hall symbol': (
        NACL.replace('loop_', "_space_group_name_Hall '-F 4 2 3 q'\nloop_", 1),
        r'Hall symbol',
    ),
    'values after stop_': (
        NACL.replace('Cl1 Cl 0.5 0.5 0.5 1', 'stop_\nCl1 Cl 0.5 0.5 0.5 1'),
        r'line 18: CIF syntax error',
    ),
    'empty atom-site loop': (
        CUBIC_CELL + 'loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n',
        r'the atom-site loop has no rows',
    ),
    'unclosed save frame': (
        NACL.replace('loop_', 'save_frame\n_a 1\nloop_', 1),
        r'CIF syntax error at the end of the text \(a save frame, loop or text field is not closed\?\)',
    ),
}


@pytest.mark.parametrize(('text', 'match'), list(BROKEN.values()), ids=list(BROKEN))
def test_broken_input_is_a_parse_error(text, match):
    with pytest.raises(ParseError, match=match):
        parse_cif(text)


def test_error_messages_name_the_file_and_the_block():
    text = NACL.replace('Na1 Na 0 0 0', 'Na1 Na 0 abc 0')
    with pytest.raises(ParseError, match=r"^CIF file 'bad.cif', data block 'nacl': site Na1: _atom_site_fract_y"):
        parse_cif(text, filename='bad.cif')
    with pytest.raises(ParseError, match=r'^CIF text, line 9: wrong number of values in loop _atom_site_\*'):
        parse_cif(TRUNCATED_LOOP)


def test_non_text_input_is_a_parse_error():
    with pytest.raises(ParseError, match=r'expected the CIF content as str, got bytes'):
        parse_cif(NACL.encode())  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=len(NACL)))
def test_truncated_files_never_raise_anything_but_parse_error(cut):
    try:
        parse_cif(NACL[:cut])
    except ParseError:
        pass


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(min_value=0, max_value=len(NACL) - 1), garbage=st.text(min_size=1, max_size=4))
def test_corrupted_files_never_raise_anything_but_parse_error(position, garbage):
    try:
        parse_cif(NACL[:position] + garbage + NACL[position + 1 :])
    except ParseError:
        pass


@settings(max_examples=60, deadline=None, database=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_raises_anything_but_parse_error(text):
    try:
        parse_cif('data_x\n' + text)
    except ParseError:
        pass


# --------------------------------------------------------------------------------------------------------------------
# Cross-check against ASE where both readers should agree

ASE_AGREES = [
    (EXAMPLES / 'si.cif', 0),
    (EXAMPLES / 'fe2o3.cif', 0),
    (FILES / 'si_diamond_symops.cif', 0),
    (FILES / 'nacl_hm_only.cif', 0),
    (FILES / 'fe2o3_hematite_symbol_only.cif', 0),
    (FILES / 'two_blocks.cif', 0),
    (FILES / 'two_blocks.cif', 1),
    (FILES / 'urea_shelxl_style.cif', 0),
]


@pytest.mark.parametrize(('path', 'index'), ASE_AGREES, ids=[f'{p.name}[{i}]' for p, i in ASE_AGREES])
def test_agrees_with_ase(path, index):
    import ase.io

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        atoms = ase.io.read(path, format='cif', index=':')[index]
    block = parse_cif(path.read_text())[index]
    structure = block.structure
    assert structure.cell_lengths == pytest.approx(atoms.cell.cellpar()[:3], rel=1e-6)
    assert structure.cell_angles == pytest.approx(atoms.cell.cellpar()[3:], rel=1e-6)
    assert np.allclose(structure.cell, atoms.cell[:], atol=1e-6)  # same orientation: a along x, b in the xy plane
    assert len(structure.sites) == len(atoms)
    assert Counter(structure.get_kind(s.kind_name).symbol for s in structure.sites) == Counter(
        atoms.get_chemical_symbols()
    )
    # Same positions, site by site (up to lattice translations).
    ours = np.array([s.position for s in structure.sites]) @ np.linalg.inv(np.array(structure.cell))
    theirs = atoms.get_scaled_positions()
    for point in ours:
        delta = theirs - point
        delta -= np.round(delta)
        assert np.min(np.max(np.abs(delta), axis=1)) < 1e-4
