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


def cif_with_operations(operations: list[str], frac: str = '0.1234 0.2345 0.3456', length: float = 20.0) -> str:
    lines = [
        'data_ops',
        *(f'_cell_length_{axis} {length}' for axis in 'abc'),
        *(f'_cell_angle_{angle} 90' for angle in ('alpha', 'beta', 'gamma')),
        'loop_',
        '_symmetry_equiv_pos_as_xyz',
        *(f"'{operation}'" for operation in operations),
        'loop_',
        '_atom_site_label',
        '_atom_site_fract_x',
        '_atom_site_fract_y',
        '_atom_site_fract_z',
        f'Na1 {frac}',
    ]
    return '\n'.join(lines) + '\n'


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
