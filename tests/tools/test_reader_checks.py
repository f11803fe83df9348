"""Inputs the readers must refuse or flag (issue 19): symmetry operations that are no group, duplicate labels,
species indices past ``ntyp``, numbers too large for a cell or a coordinate."""

from __future__ import annotations

import gemmi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiida_structstore.core.exceptions import ParseError
from aiida_structstore.tools.cif import parse_cif

#: Space groups whose operations (and those of their subgroups) keep a cubic cell: all but trigonal and hexagonal.
CUBIC_CELL_GROUPS = [group.xhm() for group in gemmi.spacegroup_table() if not 143 <= group.number <= 194]


def cif_text(symmetry: list[str], columns: list[str], rows: list[str], length: float = 20.0) -> str:
    """A cubic cell with the symmetry lines and an atom-site loop of the columns (``label``, ``fract_x``, ...)."""
    lines = [
        'data_test',
        *(f'_cell_length_{axis} {length}' for axis in 'abc'),
        *(f'_cell_angle_{angle} 90' for angle in ('alpha', 'beta', 'gamma')),
        *symmetry,
        'loop_',
        *(f'_atom_site_{column}' for column in columns),
        *rows,
    ]
    return '\n'.join(lines) + '\n'


def cif_with_operations(operations: list[str], frac: str = '0.1234 0.2345 0.3456') -> str:
    symmetry = ['loop_', '_symmetry_equiv_pos_as_xyz', *(f"'{operation}'" for operation in operations)]
    return cif_text(symmetry, ['label', 'fract_x', 'fract_y', 'fract_z'], [f'Na1 {frac}'])


def is_closed(ops: list[gemmi.Op]) -> bool:
    """Whether every product of two operations is in the set (modulo lattice translations): then it is a group."""
    triplets = {op.wrap().triplet() for op in ops}
    return all((first * second).wrap().triplet() in triplets for first in ops for second in ops)


def test_a_pure_translation_that_is_not_closed_is_refused():
    """'x,y,z' and 'x+1/3,y,z' were stored as 2 sites (gemmi's add_missing_elements does not complete translations).

    The closure has 3 operations. Like ASE (which refuses the block) and unlike pymatgen's CifParser and gemmi's
    small-structure reader (which both apply the two operations as given and give 2 sites), the reader refuses it:
    completing the group would guess what the file meant.
    """
    with pytest.raises(ParseError) as error:
        parse_cif(cif_with_operations(['x,y,z', 'x+1/3,y,z'], '0 0 0'))
    message = str(error.value)
    assert '\n' not in message
    assert 'do not form a group: (x+1/3, y, z) after (x+1/3, y, z) gives (x+2/3, y, z)' in message


def test_the_closed_translation_group_is_read():
    (block,) = parse_cif(cif_with_operations(['x,y,z', 'x+1/3,y,z', 'x+2/3,y,z'], '0 0 0'))
    assert len(block.structure.sites) == 3


@st.composite
def operation_sets(draw):
    """A random subset of a real space group's operations, sometimes with random translations added."""
    group = gemmi.SpaceGroup(draw(st.sampled_from(CUBIC_CELL_GROUPS)))
    ops = list(group.operations())
    chosen = draw(
        st.lists(st.sampled_from(ops), min_size=1, max_size=min(len(ops), 12), unique_by=lambda op: op.triplet())
    )
    for _ in range(draw(st.integers(0, 2))):
        shift = [draw(st.sampled_from((0, 3, 4, 6, 8, 12, 16, 18))) for _ in range(3)]
        chosen.append(draw(st.sampled_from(chosen)).translated(shift).wrap())
    return [op.wrap() for op in chosen]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operation_sets())
def test_a_set_of_operations_that_is_not_closed_is_never_stored_as_given(ops):
    triplets = {op.triplet() for op in ops}
    closed = is_closed(ops)
    text = cif_with_operations(sorted(triplets))
    if not closed:
        with pytest.raises(ParseError, match='do not form a group'):
            parse_cif(text)
        return
    try:
        (block,) = parse_cif(text)
    except ParseError as error:  # a group, but the atom may sit too close to its images: then only that is said
        assert 'do not form a group' not in str(error)
        return
    assert len(block.structure.sites) == len(triplets)  # a general position: one site per operation


# -- duplicate labels -------------------------------------------------------------------------------------------------


def nacl(group: str, rows: str, occupancy: bool = False) -> str:
    columns = ['label', 'type_symbol', 'fract_x', 'fract_y', 'fract_z', *(['occupancy'] if occupancy else [])]
    return cif_text([f"_symmetry_space_group_name_H-M '{group}'"], columns, rows.splitlines(), 5.64)


def test_a_label_on_two_rows_of_a_block_with_symmetry_is_warned_once():
    rows = 'Na1 Na 0 0 0\nCl1 Cl 0.5 0.5 0.5\nNa1 Na 0.25 0.25 0.25'
    (block,) = parse_cif(nacl('F m -3 m', rows))
    assert len(block.structure.sites) == 16  # 4 + 4 + 8
    (warning,) = block.warnings
    assert "atom-site labels used by more than one row: 'Na1' (rows 1, 3)" in warning
    assert '\n' not in warning


def test_a_label_on_two_species_is_warned_also_in_p1():
    rows = 'X1 Na 0 0 0\nX1 Cl 0.5 0.5 0.5'
    (block,) = parse_cif(nacl('P 1', rows))
    (warning,) = block.warnings
    assert "'X1' (rows 1, 2)" in warning


@pytest.mark.parametrize(
    'rows',
    [
        'Na Na 0 0 0\nNa Na 0.5 0.5 0\nCl Cl 0.5 0.5 0.5',  # labels are kind names (pymatgen's CifWriter, AiiDA)
        'M1 Na 0 0 0 0.5\nM1 K 0 0 0 0.5\nCl1 Cl 0.5 0.5 0.5 1',  # one disordered site, one row per species
    ],
)
def test_labels_repeated_by_writer_conventions_are_not_warned(rows):
    (block,) = parse_cif(nacl('P 1', rows, occupancy=rows.count(' ') > 12))
    assert block.warnings == ()


# -- pw.x species indices ---------------------------------------------------------------------------------------------

SILICON = """&CONTROL
  calculation = 'scf'
/
&SYSTEM
  ibrav = 2, celldm(1) = 10.26, nat = 2, ntyp = 1, ecutwfc = 18.0, nspin = 2
  {extra}
/
&ELECTRONS
/
ATOMIC_SPECIES
 Si  28.086  Si.pz-vbc.UPF
ATOMIC_POSITIONS alat
 Si 0.00 0.00 0.00
 Si 0.25 0.25 0.25
K_POINTS automatic
 4 4 4 1 1 1
"""


@pytest.mark.parametrize(
    ('extra', 'index'),
    [
        ('starting_magnetization(100000) = 0.5', '100000'),
        ('Hubbard_U(0) = 3.0', '0'),
        ('starting_ns_eigenvalue(1,1,11) = 0.0', '11'),
    ],
)
def test_a_species_index_pw_x_cannot_hold_is_refused(extra, index):
    from aiida_structstore.tools.pw import parse_pw_input

    with pytest.raises(ParseError) as error:
        parse_pw_input(SILICON.format(extra=extra))
    message = str(error.value)
    assert '\n' not in message
    assert f'species index {index} is outside 1 .. 10' in message


def test_a_species_index_past_ntyp_that_pw_x_ignores_is_warned():
    from aiida_structstore.tools.pw import parse_pw_input

    parsed = parse_pw_input(SILICON.format(extra='starting_magnetization(1) = 0.2, starting_magnetization(3) = 0.5'))
    (warning,) = parsed.warnings
    assert 'starting_magnetization(3): species index past ntyp = 1; pw.x ignores it' in warning


# -- numbers too large for a cell or a coordinate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ('changed', 'named'),
    [
        ('_cell_length_a 1e308', '_cell_length_a = 1e+308 Å is not a cell length'),
        ('_cell_length_a 1e200', '_cell_length_a = 1e+200 Å is not a cell length'),
        ('_cell_length_a 1e-300', '_cell_length_a = 1e-300 Å is not a cell length'),
        ('Cl1 Cl 1e308 0.5 0.5', '_atom_site_fract_x = 1e308 is too large for a coordinate'),
        ('Cl1 Cl 0.5 1e20 0.5', '_atom_site_fract_y = 1e20 is too large for a coordinate'),
    ],
)
def test_a_cif_number_too_large_for_a_crystal_is_refused_in_one_line(changed, named):
    import warnings

    text = nacl('F m -3 m', 'Na1 Na 0 0 0\nCl1 Cl 0.5 0.5 0.5')
    original = '_cell_length_a 5.64' if changed.startswith('_cell') else 'Cl1 Cl 0.5 0.5 0.5'
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no numpy overflow warnings on the way
        with pytest.raises(ParseError) as error:
            parse_cif(text.replace(original, changed))
    assert named in str(error.value)
    assert '\n' not in str(error.value)


@pytest.mark.parametrize(
    ('system', 'cell', 'positions', 'named'),
    [
        ('', '1e308 0 0', 'crystal\n Si 0 0 0\n Si 0.25 0.25 0.25', 'vector 1 has the length 1e+308'),
        ('', '5 0 0', 'crystal\n Si 0 0 0\n Si 1e308 0.25 0.25', "x of 'Si' = 1e308 (crystal) is too large"),
        ('', '5 0 0', 'angstrom\n Si 0 0 0\n Si 1 1e308 1', "y of 'Si' = 1e308 (angstrom) is too large"),
        (', celldm(1) = 1e308', None, 'alat\n Si 0 0 0\n Si 0.25 0.25 0.25', 'celldm(1) = 1e+308 is too large'),
        ('', '5 0 0', 'angstrom\n Si 0 0 0\n Si 1 10^400 1', "'10^400' is not finite"),
    ],
)
def test_a_pw_number_too_large_for_a_crystal_is_refused_in_one_line(system, cell, positions, named):
    import warnings

    from aiida_structstore.tools.pw import parse_pw_input

    lines = ['&SYSTEM', f'  ibrav = {0 if cell else 2}, nat = 2, ntyp = 1, ecutwfc = 20{system}', '/']
    lines += ['ATOMIC_SPECIES', ' Si 28.086 Si.pz-vbc.UPF']
    if cell:
        lines += ['CELL_PARAMETERS angstrom', f' {cell}', ' 0 5 0', ' 0 0 5']
    lines += [f'ATOMIC_POSITIONS {positions}', 'K_POINTS gamma', '']
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(ParseError) as error:
            parse_pw_input('\n'.join(lines))
    assert named in str(error.value)
    assert '\n' not in str(error.value)


def test_many_rows_on_one_position_are_refused_in_one_short_line():
    from benchmarks.bench_readers import coincident_cif

    with pytest.raises(ParseError) as error:
        parse_cif(coincident_cif(2000).replace(' 0.00001\n', ' 1\n'))
    message = str(error.value)
    assert 'site O1, site O2, site O3, site O4, site O5 and 1995 more rows are at the same position' in message
    assert len(message) < 300


def test_a_shear_of_infinite_order_is_no_group():
    """'x+y,y,z' has an integer matrix of determinant 1 but powers without end: its products leave the list."""
    with pytest.raises(ParseError, match=r'\(x\+y, y, z\) after \(x\+y, y, z\) gives \(x\+2\*y, y, z\)'):
        parse_cif(cif_with_operations(['x,y,z', 'x+y,y,z']))
