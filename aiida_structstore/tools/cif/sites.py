"""Atom sites of a CIF data block: the rows of the atom-site loop, and their expansion to the unit cell.

Rows
    Coordinates are fractional (``_atom_site_fract_*``) or Cartesian (``_atom_site_Cartn_*``, in the frame of
    ``_atom_sites_fract_tran_matrix_*`` if given, else *a* along *x* and *b* in the *xy* plane). Occupancy-0 rows and
    dummy sites (``_atom_site_calc_flag dum``) hold no atom and are dropped; a missing occupancy is 1; a negative one,
    or one above 1 + ``OCCUPANCY_TOLERANCE``, is an error. Hydrogen atoms the file counts in
    ``_atom_site_attached_hydrogens`` but does not place are an error. A fractional coordinate that is a multiple of
    1/12 rounded to the decimals it is written with (``0.3333``, ``0.16667``) is set to that multiple, so that
    symmetry-equivalent images coincide exactly; a coordinate written with more decimals is kept as written
    (``0.08366`` stays, it is no rounded 1/12). A fractional coordinate beyond ``MAX_FRACTIONAL`` (Cartesian: beyond
    ``MAX_CARTESIAN`` Å) is an error: it cannot place an atom.

Elements
    From ``_atom_site_type_symbol`` (``Fe3+`` is Fe, ``O2-(H2O)`` is O: a note in parentheses after the charge is
    ignored; ``Wat`` or ``OH-`` is an error), else from the label's leading
    letters (``Fe1a`` is Fe); an all-capitals label whose first two letters could be one or two elements (``CA1``:
    C or Ca) is an error.

Expansion
    Every row is expanded by the operations; images closer than ``SITE_TOLERANCE`` (fractional, per axis) are one
    site, and rows that land on the same site share it (an alloy, or a vacancy if the occupancies sum below 1). A row
    that coincides with another at some but not all of its images is an error. gemmi's ``get_all_unit_cell_sites``
    is not used: it merges images up to 0.4 Å apart, which halves a disordered atom split across a mirror.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
from gemmi import cif

from ..overlap import OCCUPANCY_TOLERANCE
from .symmetry import Symmetry, cell_matrix, wrap
from .syntax import Block, to_float

__all__ = ('OCCUPANCY_SNAP', 'SITE_TOLERANCE', 'Expansion', 'Row', 'duplicate_labels', 'expand', 'read_rows')

OCCUPANCY_SNAP = 0.002
"""A site whose occupancies sum to within this below 1 is taken as fully occupied (rounding, e.g. 3 x 0.333)."""
SITE_TOLERANCE = 1e-3
"""Fractional distance (per axis) below which two positions are the same site, as ASE's ``symprec``."""
MAX_FRACTIONAL = 1e6
"""The largest fractional coordinate (in magnitude) read: beyond, a double cannot place the atom within
``SITE_TOLERANCE`` in the cell (``1e20`` would wrap to 0)."""
MAX_CARTESIAN = 1e7
"""Å, the largest Cartesian coordinate (in magnitude) read."""
COORDINATE_SNAP = 5e-4
"""The largest change of a fractional coordinate by snapping to a multiple of 1/12 (``0.333`` → 1/3)."""

_TINY = 1e-6
_UNKNOWN = object()
_NOT_ELEMENTS = ('wat', 'dum', 'du', 'q', 'qq', 'xx', 'lp')
_ATOM_SITE = 'atom_site'
MARKERS = ('fract_x', 'fract_y', 'fract_z', 'Cartn_x', 'Cartn_y', 'Cartn_z', 'label', 'type_symbol')
_COLUMNS = (
    *MARKERS,
    'occupancy',
    'symmetry_multiplicity',
    'site_symmetry_multiplicity',  # the DDLm name, _atom_site.site_symmetry_multiplicity
    'Wyckoff_symbol',
    'site_symmetry_order',
    'calc_flag',
    'attached_hydrogens',
)


@dataclass
class Row:
    """One row of the atom-site loop that holds an atom."""

    number: int  # 1-based row of the atom-site loop
    label: str | None
    symbol: str
    frac: np.ndarray
    occupancy: float
    multiplicity: int | None = None
    wyckoff_multiplicity: int | None = None
    site_symmetry_order: int | None = None

    @property
    def name(self) -> str:
        return f'site {self.label}' if self.label else f'atom-site row {self.number}'


@dataclass
class Expansion:
    """The unit cell: one position per site, the rows on each site, and the orbit size of each row."""

    frac: np.ndarray  # (N, 3)
    site_rows: list[list[int]]
    orbit_sizes: list[int]  # per row
    species: list[dict[str, float]]  # per site, occupancies summed (not rescaled)
    problem: str | None = None

    def rescaled_species(self) -> list[dict[str, float]]:
        """Species per site with totals above 1 (within tolerance) or just below 1 (rounding) scaled to 1."""
        result = []
        for species in self.species:
            total = sum(species.values())
            if total > 1.0 or 1.0 - OCCUPANCY_SNAP <= total < 1.0:
                species = {symbol: value / total for symbol, value in species.items()}
            result.append(species)
        return result

    def composition(self) -> dict[str, float]:
        amounts: dict[str, float] = defaultdict(float)
        for species in self.rescaled_species():
            for symbol, value in species.items():
                amounts[symbol] += value
        return dict(amounts)


def has_atom_sites(block: Block) -> bool:
    return any(block.has(_ATOM_SITE, name) for name in MARKERS)


def read_rows(block: Block, cell: tuple[float, ...]) -> list[Row]:
    """The rows of the atom-site loop that hold an atom, checked."""
    error = block.where.error
    items = {name: block.item(_ATOM_SITE, name) for name in _COLUMNS}
    present = {name: item for name, item in items.items() if item is not None}
    lengths = {len(item.values) for item in present.values()}
    if len(lengths) > 1:
        summary = ', '.join(f'{item.tag} ({len(item.values)})' for item in present.values())
        raise error(f'the atom-site data names have different numbers of values: {summary}')
    count = lengths.pop()
    if count == 0:  # pragma: no cover - gemmi refuses a loop without values
        raise error('the atom-site loop has no rows')
    if all(name in present for name in MARKERS[:3]):
        coordinate_names, to_fractional = MARKERS[:3], None
    elif all(name in present for name in MARKERS[3:6]):
        coordinate_names, to_fractional = MARKERS[3:6], _cartesian_transform(block, cell)
    else:
        raise error(
            'the atom sites have no complete coordinates: need _atom_site_fract_x/y/z or _atom_site_Cartn_x/y/z'
        )
    if 'label' not in present and 'type_symbol' not in present:
        raise error('the atom sites have neither _atom_site_type_symbol nor _atom_site_label')

    def column(name: str) -> tuple[str | None, ...]:
        item = present.get(name)
        return item.values if item is not None else (None,) * count

    labels, types, occupancies = column('label'), column('type_symbol'), column('occupancy')
    calc_flags, hydrogens = column('calc_flag'), column('attached_hydrogens')
    multiplicities = [
        a or b for a, b in zip(column('symmetry_multiplicity'), column('site_symmetry_multiplicity'), strict=True)
    ]
    wyckoff, orders = column('Wyckoff_symbol'), column('site_symmetry_order')

    coordinates = _coordinates([present[name].values for name in coordinate_names], snap=to_fractional is None)
    limit, unit = (MAX_FRACTIONAL, 'in cell units') if to_fractional is None else (MAX_CARTESIAN, 'Å')
    too_large = (np.abs(coordinates) > limit).any(axis=1).tolist()
    symbols: dict[tuple[str | None, bool], str] = {}  # one reading per distinct type symbol or label
    rows = []
    for index in range(count):
        label = labels[index]
        name = f'site {label}' if label else f'atom-site row {index + 1}'
        if (calc_flags[index] or '').lower() == 'dum':
            continue  # a dummy site, not an atom
        occupancy = _number(occupancies[index], 1.0, f'{name}: occupancy', error)
        if occupancy < 0:
            raise error(f'{name}: occupancy {occupancy:g} is negative')
        if occupancy > 1 + OCCUPANCY_TOLERANCE:
            raise error(f'{name}: occupancy {occupancy:g} is larger than 1')
        if occupancy <= _TINY:
            continue  # occupancy 0: no atom
        attached = _number(hydrogens[index], 0.0, f'{name}: _atom_site_attached_hydrogens', error)
        if attached > 0:
            raise error(f'{name} has {attached:g} attached hydrogen atom(s) whose positions the file does not give')

        symbol_text, from_type = (types[index], True) if types[index] is not None else (label, False)
        symbol = symbols.get((symbol_text, from_type), _UNKNOWN)
        if symbol is _UNKNOWN:
            symbol = symbols[symbol_text, from_type] = _element(symbol_text, from_type, name, error)

        frac = coordinates[index]
        if not np.isfinite(frac).all():
            _coordinate_problem(present, coordinate_names, index, name, error)
        if too_large[index]:
            tag, raw = next(
                (present[c].tag, present[c].values[index])
                for axis, c in enumerate(coordinate_names)
                if abs(frac[axis]) > limit
            )
            raise error(f'{name}: {tag} = {raw} is too large for a coordinate (at most {limit:g} {unit})')
        if to_fractional is not None:
            frac = to_fractional(frac.copy())
        rows.append(
            Row(
                number=index + 1,
                label=label,
                symbol=symbol,
                frac=frac,
                occupancy=occupancy,
                multiplicity=_positive_integer(multiplicities[index], name, error),
                wyckoff_multiplicity=_wyckoff_multiplicity(wyckoff[index]),
                site_symmetry_order=_positive_integer(orders[index], name, error),
            )
        )
    if not rows:
        raise error('no atoms: every atom site has occupancy 0 (or is a dummy site)')
    return rows


def duplicate_labels(rows: list[Row], expansion: Expansion, operations: int) -> str | None:
    """A warning naming atom-site labels that more than one row uses where that is no known writer's convention.

    ``_atom_site_label`` identifies a row. Rows that share a label and a site are one disordered site (pymatgen writes
    an alloy so); in a P 1 block, rows of the same species that share a label are the convention of writers whose
    labels are kind names (pymatgen's ``CifWriter``, this project's writer). Otherwise (a label on rows of different
    species, or on several sites of a block with symmetry) the rows are still read as separate sites, with a warning
    naming the first few labels. ``None`` if there is nothing to say.
    """
    site_of_row: dict[int, int] = {}
    for site, members in enumerate(expansion.site_rows):
        for member in members:
            site_of_row.setdefault(member, site)
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        if row.label:
            by_label[row.label].append(index)
    repeated = []
    for label, members in by_label.items():
        if len(members) < 2 or len({site_of_row[member] for member in members}) == 1:
            continue
        if operations > 1 or len({_species_key(expansion.species[site_of_row[member]]) for member in members}) > 1:
            repeated.append((label, [rows[member].number for member in members]))
    if not repeated:
        return None
    shown = ', '.join(
        f'{label!r} (rows {", ".join(map(str, found[:3]))}{", ..." if len(found) > 3 else ""})'
        for label, found in repeated[:3]
    )
    more = f' and {len(repeated) - 3} more' if len(repeated) > 3 else ''
    return f'atom-site labels used by more than one row: {shown}{more}; each row is read as its own site'


def _species_key(amounts: dict[str, float]) -> tuple:
    return tuple(sorted((symbol, round(value, 6)) for symbol, value in amounts.items()))


def expand(rows: list[Row], symmetry: Symmetry) -> Expansion:
    """Expand the rows to the unit cell by the symmetry operations.

    Linear in the number of rows: the images of each row are told apart with the row's own images (operations x
    operations per row), and images of different rows are matched through a grid of cells (:func:`_first_sites`),
    never all pairs. The result is that of the plain reading: images taken in row order and operation order, each one
    the site of the first earlier site within ``SITE_TOLERANCE``, or a new site.
    """
    frac = np.array([row.frac for row in rows], dtype=float).reshape(-1, 3)
    images = np.mod(np.einsum('oij,rj->roi', symmetry.rotations, frac) + symmetry.translations, 1.0)  # rows, ops, 3
    kept = _orbit_representatives(images)
    orbit_sizes = kept.sum(axis=1).tolist()
    point_rows, point_ops = np.nonzero(kept)  # row-major: rows in order, operations in order
    points = images[point_rows, point_ops]
    point_sites = _first_sites(points)
    is_new = point_sites == np.arange(len(points))
    numbers = np.cumsum(is_new) - 1  # site number of each point that starts a site
    site_of_point = numbers[point_sites]
    count = int(is_new.sum())

    # Rows of each site in the order they reach it (the row that starts it first), without repeats.
    if count == len(points):  # no two images share a site (P 1 without duplicates): one row per site
        site_rows = [[row] for row in point_rows.tolist()]
    else:
        pairs = np.unique(np.stack([site_of_point, point_rows], axis=1), axis=0, return_index=True)[1]
        pairs.sort()
        site_rows = [[] for _ in range(count)]
        for site, row in zip(site_of_point[pairs].tolist(), point_rows[pairs].tolist(), strict=True):
            site_rows[site].append(row)

    problem = None
    shared = {row for members in site_rows if len(members) > 1 for row in members}
    row_sites = np.split(site_of_point, np.cumsum(orbit_sizes)[:-1])
    member_keys: dict[tuple[int, ...], int] = {}  # each site's rows hashed once (a site may hold many rows)
    site_keys = [member_keys.setdefault(tuple(members), len(member_keys)) for members in site_rows]
    for index in sorted(shared):
        if len({site_keys[site] for site in row_sites[index].tolist()}) > 1:
            problem = (
                f'{rows[index].name} coincides with other sites at some but not all of its symmetry-equivalent '
                'positions: the coordinates or the symmetry operations are inconsistent'
            )
            break

    species = []
    for members in site_rows:
        if len(members) == 1:
            species.append({rows[members[0]].symbol: rows[members[0]].occupancy})
            continue
        amounts: dict[str, float] = defaultdict(float)
        for member in members:
            amounts[rows[member].symbol] += rows[member].occupancy
        species.append(dict(amounts))
    return Expansion(points[is_new].copy(), site_rows, orbit_sizes, species, problem)


def _orbit_representatives(images: np.ndarray) -> np.ndarray:
    """Per row and operation, whether the image is kept: not within ``SITE_TOLERANCE`` of a kept image before it."""
    count, operations, _ = images.shape
    kept = np.ones((count, operations), dtype=bool)
    if operations == 1:
        return kept
    chunk = max(1, 2_000_000 // (operations * operations))
    for start in range(0, count, chunk):
        block = images[start : start + chunk]
        close = np.all(np.abs(wrap(block[:, :, None, :] - block[:, None, :, :])) < SITE_TOLERANCE, axis=-1)
        taken = np.zeros(close.shape[:2], dtype=bool)
        keep = kept[start : start + chunk]
        for image in range(operations):
            keep[:, image] = ~taken[:, image]
            taken |= close[:, image, :] & keep[:, image, None]
    return kept


def _close_pairs(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of fractional positions ``first[i]``, ``second[j]`` closer than ``SITE_TOLERANCE`` per axis
    (periodically), found with a KD-tree on the torus and checked exactly as :func:`wrap` measures. Meant for sites
    (at least ``SITE_TOLERANCE`` apart within each set), so the pairs are few."""
    from scipy.spatial import cKDTree

    if not len(first) or not len(second):
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    radius = SITE_TOLERANCE * (1 + 1e-6)  # the tree's distances may round the other way than wrap()'s
    trees = [cKDTree(np.where(points >= 1.0, 0.0, points), boxsize=1.0) for points in (first, second)]
    matrix = trees[0].sparse_distance_matrix(trees[1], radius, p=np.inf, output_type='ndarray')
    i, j = matrix['i'].astype(np.intp), matrix['j'].astype(np.intp)
    exact = np.all(np.abs(wrap(first[i] - second[j])) < SITE_TOLERANCE, axis=-1)
    return i[exact], j[exact]


def _first_sites(points: np.ndarray) -> np.ndarray:
    """For each point, the first earlier point that starts a site within ``SITE_TOLERANCE``, or the point itself.

    Points are hashed into a grid of cells at least ``SITE_TOLERANCE`` wide (a KD-tree degrades to all pairs when
    many points coincide): a point alone in its cell and the 26 around it starts its own site. The others are taken
    in order against the sites started so far in those cells; sites are at least ``SITE_TOLERANCE`` apart, so a cell
    holds a few at most, and a thousand rows on one spot cost a thousand look-ups, not a million pairs.
    """
    sites = np.arange(len(points))
    if len(points) < 2:
        return sites
    size = int(1.0 // SITE_TOLERANCE)  # cells per axis
    cells = np.floor(np.where(points >= 1.0, 0.0, points) * size).astype(np.int64) % size
    offsets = [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)]

    def key(cells: np.ndarray) -> np.ndarray:
        return (cells[:, 0] * size + cells[:, 1]) * size + cells[:, 2]

    occupied, counts = np.unique(key(cells), return_counts=True)
    around = np.zeros(len(points), dtype=np.int64)
    for offset in offsets:
        found = key((cells + offset) % size)
        at = np.minimum(np.searchsorted(occupied, found), len(occupied) - 1)
        around += np.where(occupied[at] == found, counts[at], 0)
    crowded = np.flatnonzero(around > 1)  # another point in the cell or around it
    grid: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    coordinates = points.tolist()
    for point, (x, y, z) in zip(crowded.tolist(), cells[crowded].tolist(), strict=True):
        here = coordinates[point]
        candidates = sorted(
            site for i, j, k in offsets for site in grid.get(((x + i) % size, (y + j) % size, (z + k) % size), ())
        )
        for site in candidates:
            if all(abs((a - b) - round(a - b)) < SITE_TOLERANCE for a, b in zip(coordinates[site], here, strict=True)):
                sites[point] = site
                break
        else:
            grid[x, y, z].append(point)
    return sites


def same_expansion(first: Expansion, second: Expansion) -> bool:
    """Whether two expansions give the same sites (positions and species)."""
    if len(first.frac) != len(second.frac):
        return False
    i, j = _close_pairs(first.frac, second.frac)
    matched = np.zeros(len(first.frac), dtype=bool)
    for index, hit in zip(i.tolist(), j.tolist(), strict=True):
        if not matched[index] and _same_species(first.species[index], second.species[hit]):
            matched[index] = True
    return bool(matched.all())


def _same_species(first: dict[str, float], second: dict[str, float], tolerance: float = 1e-6) -> bool:
    return first.keys() == second.keys() and all(abs(first[key] - second[key]) <= tolerance for key in first)


# --------------------------------------------------------------------------------------------------------------------
# Elements


class _AmbiguousError(Exception):
    pass


def is_element(symbol: str) -> bool:
    from aiida.orm.nodes.data.structure import is_valid_symbol

    return symbol != 'X' and is_valid_symbol(symbol)


def element_symbol(text: str, *, type_symbol: bool) -> str | None:
    """The element of an ``_atom_site_type_symbol`` (strict) or of an ``_atom_site_label`` (its first letters)."""
    text = text.strip()
    match = re.match(r'[A-Za-z]+', text)
    if not match or match.group().lower() in _NOT_ELEMENTS:
        return None
    letters = match.group()
    if type_symbol:
        # An element symbol, in any case, followed at most by a charge and a note in parentheses: 'Fe', 'FE3+',
        # 'O2-', 'O2-(H2O)' (a water oxygen); not 'Wat' or 'OH-'.
        symbol = letters.capitalize()
        if not is_element(symbol) or not re.fullmatch(r'\d*(?:[+-]\d*)?(?:\([^()]*\))?', text[len(letters) :]):
            return None
        return symbol
    if letters[0].isupper() and (len(letters) == 1 or letters[1].islower()):
        # Proper case: 'Fe1', 'O1a', 'Ca', 'Ow1' (O).
        two = letters[:2] if len(letters) >= 2 else None
        return two if two and is_element(two) else letters[0] if is_element(letters[0]) else None
    # All capitals or lower case ('CA1', 'fe1'): refuse when both readings are elements.
    two = letters[:2].capitalize() if len(letters) >= 2 else None
    one = letters[0].upper()
    two_ok, one_ok = bool(two and is_element(two)), is_element(one)
    if two_ok and one_ok:
        raise _AmbiguousError(f'{one} or {two}')
    return two if two_ok else one if one_ok else None


# --------------------------------------------------------------------------------------------------------------------
# Helpers


def _number(text: str | None, default: float, what: str, error) -> float:
    if text is None:
        return default
    number = to_float(text)
    if number is None:
        raise error(f'{what} {text!r} is not a number')
    return number


def _positive_integer(text: str | None, name: str, error) -> int | None:
    if text is None:
        return None
    number = to_float(text)
    if number is None or number != int(number) or number < 1:
        raise error(f'{name}: {text!r} is not a positive integer')
    return int(number)


def _wyckoff_multiplicity(text: str | None) -> int | None:
    match = re.match(r'\s*(\d+)', text or '')
    return int(match.group(1)) if match else None


def _element(text: str | None, from_type: bool, name: str, error) -> str:
    if text is None:
        raise error(f'{name} has neither a type symbol nor a label to tell its element')
    try:
        symbol = element_symbol(text, type_symbol=from_type)
    except _AmbiguousError as exc:
        raise error(f'{name}: the label {text!r} could mean {exc}; give _atom_site_type_symbol') from None
    if symbol is None:
        what = '_atom_site_type_symbol' if from_type else 'label'
        extra = ' (deuterium/tritium is not supported)' if text.strip()[:1] in 'DT' else ''
        raise error(f'{name}: cannot tell the element from its {what} {text!r}{extra}')
    return symbol


def _coordinates(columns: list[tuple[str | None, ...]], *, snap: bool) -> np.ndarray:
    """The coordinate columns as numbers, one row per atom site (NaN where a value is not a finite number);
    fractional ones snapped as :func:`_snap` does, for all rows at once."""
    as_number = cif.as_number
    values = np.array(
        [[as_number(text.strip()) if text is not None else math.nan for text in column] for column in columns],
        dtype=float,
    ).T
    values[~np.isfinite(values)] = math.nan
    if not snap:
        return values
    with np.errstate(over='ignore', invalid='ignore'):
        snapped = np.round(values * 12) / 12 + 0.0  # + 0.0: round(-0.0) is 0, as with Python's round()
        close = np.abs(values - snapped) <= COORDINATE_SNAP
    for row, axis in zip(*np.nonzero(close), strict=True):  # rare: only values near a multiple of 1/12 need the text
        values[row, axis] = _snap(values[row, axis], columns[axis][row])
    return values


def _coordinate_problem(present: dict, names: tuple[str, ...], index: int, name: str, error) -> NoReturn:
    for coordinate in names:
        raw = present[coordinate].values[index]
        if raw is None:
            raise error(f'{name}: {present[coordinate].tag} is unknown (?)')
        if to_float(raw) is None:
            raise error(f'{name}: {present[coordinate].tag} = {raw!r} is not a number')
    raise AssertionError('a coordinate is not finite but every value reads')  # pragma: no cover


def _snap(value: float, text: str) -> float:
    """``value`` set to the nearest multiple of 1/12 if ``text`` is that multiple rounded to its decimals."""
    snapped = round(value * 12) / 12
    match = re.match(r'\s*[+-]?\d*\.(\d+)', text)
    decimals = len(match.group(1)) if match and 'e' not in text.lower() else 0
    tolerance = min(COORDINATE_SNAP, 1.01 * 10.0**-decimals) if decimals else 0.0
    return snapped if abs(value - snapped) <= tolerance else value


def _cartesian_transform(block: Block, cell: tuple[float, ...]):
    given = [block.number('atom_sites_fract_tran', f'matrix_{i}{j}') for i in (1, 2, 3) for j in (1, 2, 3)]
    if all(value is None for value in given):
        inverse = np.linalg.inv(cell_matrix(cell))
        return lambda cartesian: cartesian @ inverse
    if any(value is None for value in given):
        raise block.where.error('_atom_sites_fract_tran_matrix_11 ... _33 is incomplete')
    matrix = np.array(given, dtype=float).reshape(3, 3)
    vector = np.array([block.number('atom_sites_fract_tran', f'vector_{i}') or 0.0 for i in (1, 2, 3)])
    return lambda cartesian: matrix @ cartesian + vector
