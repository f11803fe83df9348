"""The readers at scale: the linear-time expansion gives what the plain all-pairs reading gives.

Timings are not asserted here: ``benchmarks/bench_readers.py`` prints them (docs/parsing.md has the figures).
"""

from __future__ import annotations

from collections import defaultdict

import gemmi
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiida_structstore.tools.cif.sites import SITE_TOLERANCE, Expansion, Row, expand, same_expansion
from aiida_structstore.tools.cif.symmetry import _symmetry, wrap

GROUPS = [group.xhm() for group in gemmi.spacegroup_table() if group.number in (1, 2, 14, 62, 139, 166, 194, 225, 227)]
SPECIAL = (0.0, 0.5, 0.25, 0.75, 1 / 3, 2 / 3, 1 / 8)


def reference_expand(rows: list[Row], symmetry) -> Expansion:
    """The expansion as it was written before it was made linear: every image against every earlier site."""
    positions = np.empty((max(16, len(rows) * len(symmetry)), 3))
    count = 0
    site_rows: list[list[int]] = []
    orbit_sizes: list[int] = []
    row_sites: list[list[int]] = []
    for index, row in enumerate(rows):
        images = np.mod(symmetry.rotations @ row.frac + symmetry.translations, 1.0)
        close = np.all(np.abs(wrap(images[:, None, :] - images[None, :, :])) < SITE_TOLERANCE, axis=-1)
        taken = np.zeros(len(images), dtype=bool)
        orbit = []
        for image in range(len(images)):
            if not taken[image]:
                orbit.append(image)
                taken |= close[image]
        orbit_sizes.append(len(orbit))
        sites = []
        for image in orbit:
            point = images[image]
            hits = np.nonzero(np.all(np.abs(wrap(positions[:count] - point)) < SITE_TOLERANCE, axis=-1))[0]
            if len(hits):
                match = int(hits[0])
                if index not in site_rows[match]:
                    site_rows[match].append(index)
            else:
                positions[count] = point
                site_rows.append([index])
                match = count
                count += 1
            sites.append(match)
        row_sites.append(sites)
    problem = None
    for index, sites in enumerate(row_sites):
        if len({tuple(site_rows[site]) for site in sites}) > 1:
            problem = rows[index].name
            break
    species = []
    for members in site_rows:
        amounts: dict[str, float] = defaultdict(float)
        for member in members:
            amounts[rows[member].symbol] += rows[member].occupancy
        species.append(dict(amounts))
    return Expansion(positions[:count].copy(), site_rows, orbit_sizes, species, problem)


@st.composite
def row_sets(draw):
    """Rows in a real space group: general positions, special positions, rows on the same or almost the same spot."""
    group = draw(st.sampled_from(GROUPS))
    count = draw(st.integers(1, 12))
    rows: list[Row] = []
    for number in range(1, count + 1):
        how = draw(st.sampled_from(('general', 'special', 'same', 'near')))
        if how in ('same', 'near') and rows:
            frac = draw(st.sampled_from(rows)).frac.copy()
            if how == 'near':  # within or just outside the tolerance, on one axis
                frac[draw(st.integers(0, 2))] += draw(st.sampled_from((0.4, 0.9, 1.1, 2.0))) * SITE_TOLERANCE
        elif how == 'special':
            frac = np.array([draw(st.sampled_from(SPECIAL)) for _ in range(3)])
        else:
            frac = np.array([draw(st.floats(-1.0, 2.0)) for _ in range(3)])
        symbol = draw(st.sampled_from(('Fe', 'Ni', 'O')))
        rows.append(Row(number, f'{symbol}{number}', symbol, frac, draw(st.sampled_from((1.0, 0.5, 0.25)))))
    return rows, _symmetry(gemmi.SpaceGroup(group).operations(), group)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row_sets())
def test_the_expansion_is_the_all_pairs_reading(case):
    rows, symmetry = case
    ours, reference = expand(rows, symmetry), reference_expand(rows, symmetry)
    assert np.array_equal(ours.frac, reference.frac)
    assert ours.site_rows == reference.site_rows
    assert ours.orbit_sizes == reference.orbit_sizes
    assert ours.species == reference.species
    assert (ours.problem is None) == (reference.problem is None)
    if ours.problem:
        assert ours.problem.startswith(reference.problem)
    assert same_expansion(ours, reference)


def test_expansions_with_other_species_or_positions_differ():
    symmetry = _symmetry(gemmi.SpaceGroup('P m -3 m').operations(), 'P m -3 m')
    rows = [Row(1, 'Fe1', 'Fe', np.array([0.1, 0.2, 0.3]), 1.0), Row(2, 'O1', 'O', np.array([0.5, 0.5, 0.5]), 1.0)]
    first = expand(rows, symmetry)
    assert same_expansion(first, expand(rows, symmetry))
    other = [rows[0], Row(2, 'O1', 'Ni', np.array([0.5, 0.5, 0.5]), 1.0)]
    assert not same_expansion(first, expand(other, symmetry))
    moved = [rows[0], Row(2, 'O1', 'O', np.array([0.5, 0.5, 0.502]), 1.0)]
    assert not same_expansion(first, expand(moved, symmetry))


@pytest.mark.parametrize('count', [2000])
def test_a_large_p1_file_reads_every_atom(count):
    """A smoke size of the benchmark's P 1 file: every row is one site, in file order."""
    from aiida_structstore.tools.cif import parse_cif
    from benchmarks.bench_readers import p1_cif

    (block,) = parse_cif(p1_cif(count))
    assert len(block.structure.sites) == count
    assert [site.kind_name for site in block.structure.sites[:3]] == ['Si1', 'O2', 'O3']


def test_the_pw_sites_written_at_once_are_what_append_site_builds():
    from aiida import orm

    from aiida_structstore.tools.pw import parse_pw_input

    lines = ['&SYSTEM', '  ibrav = 0, nat = 4, ntyp = 2, ecutwfc = 20', '/', 'ATOMIC_SPECIES']
    lines += [' Fe1 55.845 Fe.UPF', ' O 0 O.UPF', 'CELL_PARAMETERS angstrom', ' 4 0 0', ' 0 4 0', ' 0 0 4']
    lines += [
        'ATOMIC_POSITIONS crystal',
        ' O 0 0 0',
        ' Fe1 0.5 0.5 0.5',
        ' O 0.5 0 0',
        ' O 1/3 0.25 0.75',
        'K_POINTS gamma',
    ]
    parsed = parse_pw_input('\n'.join(lines) + '\n').structure
    rebuilt = orm.StructureData(cell=parsed.cell)
    for kind in parsed.kinds:
        rebuilt.append_kind(kind)
    for site in parsed.sites:
        rebuilt.append_site(orm.Site(kind_name=site.kind_name, position=site.position))
    assert parsed.base.attributes.all == rebuilt.base.attributes.all


def test_many_rows_on_one_position_are_one_site():
    """Thousands of coincident rows (a hostile file) are one vacancy site, found without comparing all pairs."""
    from aiida_structstore.tools.cif import parse_cif
    from benchmarks.bench_readers import coincident_cif

    (block,) = parse_cif(coincident_cif(3000))
    assert len(block.structure.sites) == 1
    (kind,) = block.structure.kinds
    assert kind.symbols == ('O',) and kind.weights == pytest.approx((0.03,))
