"""One CIF data block → one ``StructureData``: the project's rules on top of gemmi.

The steps: cell parameters; atom-site rows (:mod:`.sites`); candidate symmetries (:mod:`.symmetry`); the setting
that agrees with what the block declares; expansion; occupancy and overlap checks; kind names; the node.

Declared versus parsed
    The expansion must give the declared ``_atom_site_symmetry_multiplicity``, the multiplicity of
    ``_atom_site_Wyckoff_symbol`` and ``_atom_site_site_symmetry_order``, and the composition must be
    ``_cell_formula_units_Z`` x ``_chemical_formula_sum`` (within ``COMPOSITION_TOLERANCE``), or proportional to the
    formula if Z is not given. Three conventions explain a disagreement and are accepted, with a warning:

    * pymatgen's ``CifWriter`` (Materials Project, pyxtal, most Python tools) writes the **cell content** as
      ``_chemical_formula_sum`` (``Si8`` with ``Z = 8`` for diamond);
    * SHELXL up to 2013 wrote the **site-symmetry order** as ``_atom_site_symmetry_multiplicity`` (1 for a general
      position), the item later renamed ``_atom_site_site_symmetry_order``.

    * the formula describes the compound rather than the sites (hydrates, disorder, hydrogen atoms not located):
      accepted when the difference is only in hydrogen and in elements on partially occupied sites, while every other
      element agrees with the formula x Z (the rule, and why it keeps misread structures out, is in
      :func:`_explained_difference`); a setting that agrees exactly is preferred to one whose difference is explained.

    Any other disagreement is an error, and so is a block that reads some rows one way and some the other.

Kind names
    A site takes the label of its row as kind name (``Fe1``, ``O1``); characters other than letters, digits and
    ``_`` become ``_`` (``Fe(1)`` → ``Fe_1``). A label is not used where it would be inconsistent (the same name for
    different species, two labels that sanitise alike, a site merged from rows with different labels): those sites
    get AiiDA's automatic kind name (``AuCu``, ``FeX``), made unique with a number if needed.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from aiida import orm

from ..overlap import OCCUPANCY_TOLERANCE, find_overlap
from .sites import Expansion, Row, duplicate_labels, expand, read_rows, same_expansion
from .symmetry import CELL_LENGTH_RANGE, Symmetry, block_symmetry, cell_matrix
from .syntax import Block

__all__ = ('COMPOSITION_TOLERANCE', 'CifBlock', 'format_amounts', 'read_block', 'reduced_formula', 'structure_data')

COMPOSITION_TOLERANCE = 0.02
"""Relative tolerance of the comparison of the parsed composition with the declared formula."""
_HYDROGEN = frozenset({'H'})
_FRACTION = re.compile(r'(?<=[A-Za-z)\]])(\d+)/(\d+)')
_CELL = ('length_a', 'length_b', 'length_c', 'angle_alpha', 'angle_beta', 'angle_gamma')


@dataclass(frozen=True)
class CifBlock:
    """One structure read from a CIF data block."""

    name: str
    """The data block name (after ``data_``)."""
    structure: orm.StructureData
    """The structure (unstored)."""
    formula: str
    """Reduced formula of what was parsed: elements in alphabetical order, as OPTIMADE's ``chemical_formula_reduced``
    (``'Fe2O3'``, ``'ClNa'``); with partial occupancies the amounts may be fractional, per formula unit if
    ``_cell_formula_units_Z`` is given (``'Fe0.9O'``)."""
    warnings: tuple[str, ...] = ()
    """Conventions of known writers that the block was read by (see the module docstring), one message each."""


def read_block(block: Block) -> CifBlock:
    """Read one data block that has atom sites."""
    return _BlockReader(block).read()


class _BlockReader:
    def __init__(self, block: Block) -> None:
        self.block = block
        self.where = block.where
        self.notes: list[str] = []

    def error(self, message: str, line: int | None = None):
        return self.where.error(message, line)

    def read(self) -> CifBlock:
        cell = self.cell()
        rows = read_rows(self.block, cell)
        candidates, unreadable = block_symmetry(self.block, cell)
        symmetry, expansion = self.choose(candidates, rows, unreadable)
        if expansion.problem:
            raise self.error(expansion.problem)
        self.check_occupancies(rows, expansion)
        problem, notes = self.declared_problem(rows, expansion, symmetry)
        if problem:
            raise self.error(problem)
        duplicates = duplicate_labels(rows, expansion, len(symmetry))
        if duplicates:
            notes.append(duplicates)
        matrix = cell_matrix(cell)
        species = expansion.rescaled_species()
        positions = expansion.frac @ matrix
        names = [', '.join(rows[m].name for m in members) for members in expansion.site_rows]
        overlap = find_overlap(
            matrix,
            positions,
            names,
            [sum(amounts.values()) for amounts in species],
            same_name_note=' (symmetry-equivalent: an atom too close to a symmetry element?)',
        )
        if overlap:
            raise self.error(overlap)
        try:
            node = structure_data(matrix, positions, species, self.kind_names(rows, expansion, species))
        except Exception as exc:
            raise self.error(f'AiiDA refused the structure: {exc}') from exc
        formula = reduced_formula(expansion.composition(), self.block.number('cell', 'formula_units_Z'))
        return CifBlock(self.block.name, node, formula, tuple(self.where.note(note) for note in notes))

    def cell(self) -> tuple[float, ...]:
        missing = [f'_cell_{name}' for name in _CELL if self.block.single('cell', name) is None]
        if missing:
            raise self.error(f'missing cell parameter(s): {", ".join(missing)}')
        values = tuple(self.block.number('cell', name) for name in _CELL)
        a, b, c, alpha, beta, gamma = values  # type: ignore[misc]
        for name, value in zip(_CELL[:3], (a, b, c), strict=True):
            if value <= 0:
                raise self.error(f'_cell_{name} = {value:g} must be positive')
            if not CELL_LENGTH_RANGE[0] <= value <= CELL_LENGTH_RANGE[1]:
                low, high = CELL_LENGTH_RANGE
                raise self.error(f'_cell_{name} = {value:g} Å is not a cell length (from {low:g} to {high:g} Å)')
        for name, value in zip(_CELL[3:], (alpha, beta, gamma), strict=True):
            if not 0 < value < 180:
                raise self.error(f'_cell_{name} = {value:g} must be between 0 and 180 degrees')
        cosines = [math.cos(math.radians(angle)) for angle in (alpha, beta, gamma)]
        factor = 1 - sum(x * x for x in cosines) + 2 * cosines[0] * cosines[1] * cosines[2]
        if factor < 1e-8:
            raise self.error(
                f'the cell (a={a:g}, b={b:g}, c={c:g}, alpha={alpha:g}, beta={beta:g}, gamma={gamma:g}) '
                'has zero volume: the angles are impossible'
            )
        return values  # type: ignore[return-value]

    # -- settings ----------------------------------------------------------------------------------------------------

    def choose(self, candidates: list[Symmetry], rows: list[Row], unreadable: str | None) -> tuple[Symmetry, Expansion]:
        expanded = [(candidate, expand(rows, candidate)) for candidate in candidates]
        if len(expanded) == 1:
            return expanded[0]
        if self.has_declared_counts(rows):
            # A setting that agrees with the formula exactly is preferred to one whose difference is only explained.
            consistent = [(c, e) for c, e in expanded if not self.declared_problem(rows, e, c, lenient=False)[0]]
            consistent = consistent or [(c, e) for c, e in expanded if not self.declared_problem(rows, e, c)[0]]
            if not consistent:
                candidate, expansion = expanded[0]
                problem, _ = self.declared_problem(rows, expansion, candidate)
                raise self.error(
                    'no setting of the declared space group agrees with the file; '
                    f'with {candidate.description}: {problem}'
                )
            expanded = consistent
        first = expanded[0]
        if all(same_expansion(first[1], expansion) for _, expansion in expanded[1:]):
            return first
        if unreadable:
            raise self.error(
                f'cannot interpret {unreadable}, and the declared space-group number has several settings that '
                'give different structures; give the symmetry operations'
            )
        if len({candidate.origin for candidate, _ in expanded if candidate.origin}) > 1:
            raise self.error(
                f'{first[0].description.split(" from ")[0]} has two origin choices that give different structures, '
                'and the block does not say which one its coordinates use (append ":1" or ":2" to the symbol, '
                'give _space_group_IT_coordinate_system_code, site multiplicities, or the symmetry operations)'
            )
        return first  # the International Tables' reading: the standard setting comes first

    # -- declared versus parsed --------------------------------------------------------------------------------------

    def has_declared_counts(self, rows: list[Row]) -> bool:
        per_row = any(row.multiplicity or row.wyckoff_multiplicity or row.site_symmetry_order for row in rows)
        formula = self.block.single('chemical_formula', 'sum') is not None
        return per_row or (formula and self.block.single('cell', 'formula_units_Z') is not None)

    def declared_problem(
        self, rows: list[Row], expansion: Expansion, symmetry: Symmetry, *, lenient: bool = True
    ) -> tuple[str | None, list[str]]:
        """The first disagreement of the declared counts with the expansion, and the conventions read.

        ``lenient`` is passed to :meth:`formula_problem`.
        """
        notes: list[str] = []
        as_order = []
        for row, size in zip(rows, expansion.orbit_sizes, strict=True):
            if row.multiplicity and row.multiplicity != size:
                if row.multiplicity * size != len(symmetry):
                    return (
                        f'{row.name}: the symmetry operations give {size} positions but '
                        f'_atom_site_symmetry_multiplicity is {row.multiplicity}'
                    ), notes
                as_order.append(row)
            if row.wyckoff_multiplicity and row.wyckoff_multiplicity != size:
                return (
                    f'{row.name}: the symmetry operations give {size} positions but the Wyckoff symbol says '
                    f'{row.wyckoff_multiplicity}'
                ), notes
            if row.site_symmetry_order and row.site_symmetry_order * size != len(symmetry):
                return (
                    f'{row.name}: the symmetry operations give {size} positions, inconsistent with '
                    f'_atom_site_site_symmetry_order {row.site_symmetry_order} ({len(symmetry)} operations)'
                ), notes
        if as_order:
            as_multiplicity = [
                row
                for row, size in zip(rows, expansion.orbit_sizes, strict=True)
                if row.multiplicity == size and size * size != len(symmetry)
            ]
            if as_multiplicity:
                return (
                    f'_atom_site_symmetry_multiplicity is the multiplicity for {as_multiplicity[0].name} but the '
                    f'site-symmetry order for {as_order[0].name}: the block is inconsistent'
                ), notes
            notes.append(
                '_atom_site_symmetry_multiplicity holds site-symmetry orders (1 for a general position), as SHELXL '
                f'up to 2013 wrote it, not multiplicities (e.g. {as_order[0].name}: {as_order[0].multiplicity}, '
                f'multiplicity {expansion.orbit_sizes[rows.index(as_order[0])]}); read as site-symmetry orders'
            )
        problem, formula_notes = self.formula_problem(expansion, lenient=lenient)
        return problem, notes + formula_notes

    def formula_problem(self, expansion: Expansion, *, lenient: bool = True) -> tuple[str | None, list[str]]:
        """The disagreement of ``_chemical_formula_sum`` (x Z) with the sites, or the note of the convention read.

        ``lenient``: a disagreement that :func:`_explained_difference` explains is read as the sites give, with a note.
        """
        found = self.block.single('chemical_formula', 'sum')
        if found is None:
            return None, []
        item, text = found
        declared = read_formula(text)
        if not declared:
            raise self.error(f'cannot read {item.tag} {text!r}', item.line)
        parsed = expansion.composition()
        formula_units = self.block.number('cell', 'formula_units_Z')
        if formula_units is not None and formula_units <= 0:
            raise self.error(f'_cell_formula_units_Z = {formula_units:g} must be positive')
        missing = sorted(set(declared) - set(parsed))
        hint = ''
        if missing:
            reason = 'hydrogen positions are often omitted' if 'H' in missing else 'the file may be incomplete'
            hint = f' (no site holds {", ".join(missing)}; {reason})'
        if formula_units is not None:
            expected = {symbol: value * formula_units for symbol, value in declared.items()}
            if _same_amounts(expected, parsed):
                return None, []
            if _same_amounts(declared, parsed):
                return None, [
                    f'{item.tag} {text!r} is the content of the cell, not of one formula unit '
                    f"(_cell_formula_units_Z = {formula_units:g}), as pymatgen's CifWriter writes it; "
                    'read as the cell content'
                ]
            problem = (
                f'{item.tag} {text!r} x _cell_formula_units_Z {formula_units:g} = '
                f'{format_amounts(expected, " ")} but the sites give {format_amounts(parsed, " ")}'
            )
        elif set(declared) != set(parsed):
            problem = f'{item.tag} {text!r} has elements {sorted(declared)} but the sites give {sorted(parsed)}'
        else:
            ratios = [parsed[symbol] / declared[symbol] for symbol in declared]
            if max(ratios) - min(ratios) <= COMPOSITION_TOLERANCE * max(ratios):
                return None, []
            composition = format_amounts(parsed, ' ')
            problem = f'{item.tag} {text!r} is not proportional to the composition of the sites, {composition}'
        explained = _explained_difference(declared, parsed, expansion, formula_units) if lenient else None
        if explained is None:
            return problem + hint, []
        return None, [f'{problem}: {explained}; the sites are read as they are']

    def check_occupancies(self, rows: list[Row], expansion: Expansion) -> None:
        for members, species in zip(expansion.site_rows, expansion.species, strict=True):
            total = sum(species.values())
            if total > 1 + OCCUPANCY_TOLERANCE:
                if len(members) == 1:
                    raise self.error(f'{rows[members[0]].name} has occupancy {total:g}, larger than 1')
                names = ', '.join(rows[member].name for member in members[:5])
                names += f' and {len(members) - 5} more rows' if len(members) > 5 else ''
                raise self.error(f'{names} are at the same position with total occupancy {total:g}: the atoms overlap')

    # -- kind names --------------------------------------------------------------------------------------------------

    def kind_names(self, rows: list[Row], expansion: Expansion, species: list[dict[str, float]]) -> list[str]:
        from aiida.orm.nodes.data.structure import create_automatic_kind_name

        def key(amounts: dict[str, float]) -> tuple:
            return tuple(sorted((symbol, round(value, 6)) for symbol, value in amounts.items()))

        wanted: list[str | None] = []
        for members in expansion.site_rows:
            labels = {rows[member].label for member in members}
            label = labels.pop() if len(labels) == 1 else None
            wanted.append(_sanitise_label(label) if label else None)

        groups: dict[str, list[int]] = defaultdict(list)
        for index, name in enumerate(wanted):
            if name:
                groups[name].append(index)
        names: list[str | None] = [None] * len(wanted)
        for name, members in groups.items():
            originals = {rows[m].label for site in members for m in expansion.site_rows[site]}
            if len(originals) == 1 and len({key(species[site]) for site in members}) == 1:
                for site in members:
                    names[site] = name
        used = {name for name in names if name}
        automatic: dict[tuple, str] = {}
        for index, name in enumerate(names):
            if name:
                continue
            site_key = key(species[index])
            if site_key not in automatic:
                base = create_automatic_kind_name([s for s, _ in site_key], [w for _, w in site_key])
                candidate, counter = base, 1
                while candidate in used:
                    candidate = f'{base}{counter}'
                    counter += 1
                automatic[site_key] = candidate
                used.add(candidate)
            names[index] = automatic[site_key]
        return [name for name in names if name is not None]


def structure_data(
    cell: np.ndarray, positions: np.ndarray, species: list[dict[str, float]], kind_names: list[str]
) -> orm.StructureData:
    """The ``StructureData`` of sites with the given species and kind names, in one pass.

    ``set_pymatgen``/``append_atom`` rebuild the kinds for every atom, which is quadratic in the number of kinds
    (minutes for a few thousand uniquely labelled atoms); this writes the same ``kinds`` and ``sites`` attributes at
    once. The tests check that both give identical attributes.
    """
    node = orm.StructureData(cell=cell.tolist(), pbc=(True, True, True))
    kinds: dict[str, tuple[tuple, dict]] = {}  # name -> (species, raw kind)
    raw_kinds: dict[tuple, dict] = {}  # one Kind built per distinct species; names differ only in 'name'
    sites = []
    for position, amounts, name in zip(positions.tolist(), species, kind_names, strict=True):
        key = tuple(amounts.items())
        known = kinds.get(name)
        if known is None:
            raw = raw_kinds.get(key)
            if raw is None:
                raw = raw_kinds[key] = orm.Kind(symbols=list(amounts), weights=list(amounts.values())).get_raw()
            kinds[name] = (key, {**raw, 'name': name})
        elif known[0] != key:  # pragma: no cover - kind_names() prevents this
            kind = orm.Kind(symbols=list(amounts), weights=list(amounts.values()), name=name)
            if not orm.Kind(raw=known[1]).compare_with(kind)[0]:
                raise ValueError(f'kind {name!r} would stand for two different species')
        sites.append({'position': tuple(position), 'kind_name': name})  # what orm.Site(...).get_raw() gives
    node.base.attributes.set('kinds', [raw for _, raw in kinds.values()])
    node.base.attributes.set('sites', sites)
    return node


def reduced_formula(amounts: dict[str, float], formula_units: float | None) -> str:
    """Alphabetical reduced formula (pymatgen's reduction); fractional amounts per formula unit if Z is given."""
    from pymatgen.core import Composition

    if all(abs(value - round(value)) < 1e-4 and round(value) >= 1 for value in amounts.values()):
        reduced = Composition({symbol: round(value) for symbol, value in amounts.items()}).reduced_composition
        return format_amounts({str(element): amount for element, amount in reduced.items()})
    if formula_units:
        return format_amounts({symbol: value / formula_units for symbol, value in amounts.items()})
    return format_amounts(amounts)


def format_amounts(amounts: dict[str, float], separator: str = '') -> str:
    """``{'Fe': 2, 'O': 3}`` → ``'Fe2O3'``, elements in alphabetical order, amounts of 1 omitted."""
    from pymatgen.util.string import formula_double_format

    return separator.join(f'{symbol}{formula_double_format(round(amounts[symbol], 4))}' for symbol in sorted(amounts))


def read_formula(text: str) -> dict[str, float] | None:
    """The amounts of a ``_chemical_formula_sum``, or ``None`` if it cannot be read.

    Besides one formula (``'C2 H6 O'``, ``'Fe0.9 O'``), as the CIF dictionary defines it, COD files write moieties
    separated by commas, each with an optional leading multiplier (``'C12 H8 N2, C20 H14 O2'``,
    ``'C8 H22 B2 N2 S4 , 0.33C H2 Cl2'``), and fractions (``'Fe1/3 I2 Li O6'``): they are summed and read as numbers.
    """
    from pymatgen.core import Composition

    total: dict[str, float] = defaultdict(float)
    for moiety in text.split(','):
        if not moiety.strip() or any(int(match.group(2)) == 0 for match in _FRACTION.finditer(moiety)):
            return None
        moiety = _FRACTION.sub(lambda match: f'{int(match.group(1)) / int(match.group(2)):.6g}', moiety.strip())
        multiplier = re.match(r'(\d+(?:\.\d*)?|\.\d+)\s*(?=[A-Z(\[])', moiety)
        factor = float(multiplier.group(1)) if multiplier else 1.0
        try:
            amounts = Composition(moiety[multiplier.end() :] if multiplier else moiety)
        except Exception:
            return None
        for element, amount in amounts.items():
            if not re.fullmatch(r'[A-Z][a-z]?', str(element)):
                return None
            total[str(element)] += factor * float(amount)
    return dict(total) or None


def _explained_difference(
    declared: dict[str, float], parsed: dict[str, float], expansion: Expansion, formula_units: float | None
) -> str | None:
    """Why the formula and the sites differ, if the difference is one a correct structure can have; else ``None``.

    The formula of a hydrate, a disordered or a riding-hydrogen structure often describes the compound rather than the
    sites: hydrogen atoms not located (or located where the formula does not count them), and elements on partially
    occupied sites whose refined occupancies do not add up to the ideal formula. Such a difference is explained when
    the "firm" elements (neither hydrogen nor on a partially occupied site; if every element but hydrogen is on a
    partially occupied site, all of those) agree with the formula x Z (without Z: all at one common scale), every
    element of the sites is in the formula and every element of the formula other than hydrogen is on some site. A
    misread symmetry (a missing centring, a subgroup, a wrong Z) changes the firm elements too, and a file that lost
    atom rows misses an element or a firm count, so neither is accepted.
    """
    disordered = {
        symbol
        for species in expansion.rescaled_species()
        for symbol, value in species.items()
        if value < 1 - OCCUPANCY_TOLERANCE
    }
    if set(parsed) - set(declared) or set(declared) - set(parsed) - _HYDROGEN:
        return None
    heavy = [symbol for symbol in sorted(parsed) if symbol not in _HYDROGEN]
    firm = [symbol for symbol in heavy if symbol not in disordered] or heavy  # all disordered: all must agree
    if not firm:
        return None
    scale = formula_units if formula_units is not None else parsed[firm[0]] / declared[firm[0]]
    expected = {symbol: value * scale for symbol, value in declared.items()}
    if not _same_amounts({s: expected[s] for s in firm}, {s: parsed[s] for s in firm}):
        return None
    differing = [
        symbol
        for symbol in sorted(declared)
        if not _same_amounts({symbol: expected[symbol]}, {symbol: parsed.get(symbol, 0.0)})
    ]
    reasons = [
        'H (hydrogen positions are often not given)' if symbol in _HYDROGEN and symbol not in parsed else symbol
        for symbol in differing
        if symbol in _HYDROGEN
    ] + [f'{symbol} (on partially occupied sites)' for symbol in differing if symbol not in _HYDROGEN]
    firm_text = ', '.join(sorted(firm))
    return f'they differ only in {", ".join(reasons)}, and {firm_text} agree'


def _same_amounts(first: dict[str, float], second: dict[str, float]) -> bool:
    return all(
        abs(first.get(symbol, 0.0) - second.get(symbol, 0.0))
        <= COMPOSITION_TOLERANCE * max(first.get(symbol, 0.0), 1.0)
        for symbol in set(first) | set(second)
    )


def _sanitise_label(label: str) -> str | None:
    name = re.sub(r'[^A-Za-z0-9_]+', '_', label.strip()).strip('_')
    return name if name and name[0].isalpha() else None
