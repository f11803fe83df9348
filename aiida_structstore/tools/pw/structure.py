"""The structure of a pw.x input: ``&SYSTEM``, ``ATOMIC_SPECIES``, ``ATOMIC_POSITIONS`` and the cell.

Species
    Each ``ATOMIC_SPECIES`` label that atoms use becomes one kind named exactly like the label (``Fe1`` and ``Fe2``
    stay two kinds), with the mass of the card (a mass <= 0 means "default" in QE, so AiiDA's default mass is used).
    The element is taken from the label as QE does (``upflib/atomic_number.f90``): if the second character is a digit,
    ``_`` or ``-`` (or the label has one character) the element is the first letter (``C1``, ``C_h`` → C), otherwise
    the first two letters (``Co``, ``Fe1``, ``CO`` → Co); if those are no element, the first letter (``Ch`` → C). A
    pseudopotential file name that clearly names another element is an error (qe-tools takes the element from the
    file name: ``pbe-Si.UPF`` becomes Be). A species that no atom uses is accepted, as pw.x does, with a warning: it
    stays in the parameters (``ntyp``) but is no kind. Columns after the pseudopotential file are ignored with a
    warning (pw.x reads three values from the line).

Cell
    ``ibrav = 0`` needs ``CELL_PARAMETERS`` (``alat``, ``bohr``, ``angstrom``, or no unit: ``alat`` if
    ``celldm(1)``/``A`` is given, else ``bohr``; the old options ``cubic`` and ``hexagonal`` read as no unit, with a
    warning, as pw.x's ``read_cards`` reads every option it does not know). For ``ibrav != 0`` the lattice
    parameters are checked as QE's ``latgen`` checks them, missing ``celldm(4..6)``/``cosAB``... default to 0 as in
    QE, and qe-tools computes the cell, except for ``ibrav = -9``, where qe-tools swaps v1 and v2 (QE: v1 = (a/2,
    -b/2, 0)). ``ibrav = -13`` follows QE >= 6.5.
    Lengths use qe-tools' Bohr radius (0.52917720859 Å).

Positions
    Units ``alat`` (also when none is given, pw.x's default), ``bohr``, ``angstrom``, ``crystal``, or ``crystal_sg``
    with ``space_group`` (the inequivalent atoms, expanded as pw.x expands them: :mod:`.spacegroup`); coordinates may be
    QE's simple expressions (``1/3``). ``if_pos`` flags are checked (0 or 1); a position more than 1e7 Å from the
    origin (``1e308``) is an error. Atoms closer than 0.5 Å, also through
    periodic images, are refused by the overlap rule shared with the CIF reader.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiida import orm
from aiida.common.constants import elements as aiida_elements

from ..overlap import find_overlap
from .namelists import REAL_RE, Card, Where, ignore_extra_lines, to_float
from .spacegroup import expand, is_wyckoff_letter, space_group_ibrav, wyckoff_position

__all__ = ('BOHR_TO_ANGSTROM', 'NTYPX', 'SPECIES_INDEXED', 'SPECIES_LAST_INDEX', 'Species', 'read_structure')

BOHR_TO_ANGSTROM = 0.52917720859
"""Bohr radius in Å, the value qe-tools and aiida-quantumespresso use."""

POSITION_UNITS = ('alat', 'bohr', 'angstrom', 'crystal')
_CELL_UNITS = ('alat', 'bohr', 'angstrom')
_OLD_CELL_OPTIONS = ('cubic', 'hexagonal')  # QE <= 4 (and QMCPACK's Nexus still) write them; pw.x reads no units
_VALID_IBRAV = (0, 1, 2, 3, -3, 4, 5, -5, 6, 7, 8, 9, -9, 91, 10, 11, 12, -12, 13, -13, 14)
_ABC_KEYS = ('a', 'b', 'c', 'cosab', 'cosac', 'cosbc')
_ELEMENTS = frozenset(value['symbol'] for value in aiida_elements.values()) - {'X'}
_LABEL_RE = re.compile(r'[A-Za-z][A-Za-z0-9_-]*')
_EXPR_TOKEN_RE = re.compile(r'\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eEdD][+-]?\d+)?)|(?P<op>[-+*/^()]))')
_MAX_EXPRESSION_LENGTH = 100
_MIN_LENGTH, _MAX_LENGTH = 1e-4, 1e7  # sanity bounds of cell vector lengths, in the card's units and in Å
NTYPX = 10
"""The most species pw.x holds (``ntypx`` of QE's ``Modules/parameters.f90``: the size of its species arrays)."""
#: &SYSTEM variables with one index, the species: value(i) for species i.
SPECIES_INDEXED = frozenset(
    {
        'starting_charge',
        'starting_magnetization',
        'hubbard_u',
        'hubbard_j0',
        'hubbard_alpha',
        'hubbard_beta',
        'hubbard_u_back',
        'hubbard_alpha_back',
        'angle1',
        'angle2',
        'london_c6',
        'london_rvdw',
    }
)
#: &SYSTEM variables with several indices, the last one the species.
SPECIES_LAST_INDEX = frozenset({'starting_ns_eigenvalue', 'hubbard_j'})
INDEXED_KEY = re.compile(r'([a-z_0-9]+)\(([\d,]+)\)')


@dataclass(frozen=True)
class Species:
    """One line of ``ATOMIC_SPECIES``."""

    label: str
    mass: float
    pseudo: str
    element: str
    line: int


@dataclass(frozen=True)
class Structure:
    node: orm.StructureData
    species: tuple[Species, ...]  # as declared, unused ones included
    alat: float  # Å
    fixed: tuple[tuple[bool, bool, bool], ...]  # per atom, from the if_pos flags (0: fixed)
    ibrav: int  # as given, or the lattice of space_group


def read_structure(namelists: dict[str, dict[str, Any]], cards: dict[str, Card], where: Where) -> Structure:
    """The structure, the declared species and alat (Å) from the namelists and cards."""
    system = _system(namelists, where)
    ibrav = space_group_ibrav(system, where)
    if ibrav is not None:
        system = {**system, 'ibrav': ibrav}
    species = _atomic_species(cards, system, where)
    labels, raw, units, fixed = _atomic_positions(cards, system, species, where)
    if units == 'crystal_sg':
        labels, raw, fixed = expand(system, system['ibrav'], labels, raw, fixed, where)
        units = 'crystal'
    cell, alat = _cell(cards, system, where)
    if units == 'alat':
        positions = raw * alat
    elif units == 'bohr':
        positions = raw * BOHR_TO_ANGSTROM
    elif units == 'angstrom':
        positions = raw.copy()
    else:
        positions = raw @ cell
    _check_positions(positions, cards['ATOMIC_POSITIONS'], units, where)
    names = [f'atom {index + 1} ({label})' for index, label in enumerate(labels)]
    overlap = find_overlap(cell, positions, names)
    if overlap:
        where.fail(f'ATOMIC_POSITIONS: {overlap}', cards['ATOMIC_POSITIONS'].number)

    used = set(labels)
    unused = [item for item in species if item.label not in used]
    if unused:
        where.warn(
            'ATOMIC_SPECIES declares species that no atom uses: '
            f'{", ".join(item.label for item in unused)}; pw.x accepts this. They stay in the parameters (ntyp = '
            f'{system["ntyp"]}) but are not kinds of the structure',
            unused[0].line,
        )
    node = orm.StructureData(cell=cell.tolist(), pbc=(True, True, True))
    for item in species:
        if item.label not in used:
            continue
        if item.mass > 0:
            node.append_kind(orm.Kind(name=item.label, symbols=item.element, mass=item.mass))
        else:  # QE: a mass <= 0 means "use the default mass of the element"
            node.append_kind(orm.Kind(name=item.label, symbols=item.element))
    # Every label is a declared species, so each site's kind exists: the sites are written at once, as
    # orm.Site(...).get_raw() gives them (append_site reads all kinds back for every atom, about 0.1 ms each).
    pairs = zip(labels, positions.tolist(), strict=True)
    sites = [{'position': tuple(position), 'kind_name': label} for label, position in pairs]
    node.base.attributes.set('sites', sites)
    return Structure(node, tuple(species), alat, fixed, system['ibrav'])


def _check_positions(positions: np.ndarray, card: Card, units: str, where: Where) -> None:
    """Refuse a coordinate that is no position in a crystal: beyond ``_MAX_LENGTH`` Å, or not finite after the unit
    conversion (``1e308`` in ``crystal`` or ``alat`` units overflows), naming the atom and the value as written."""
    bad = ~(np.abs(positions) <= _MAX_LENGTH)  # NaN too
    if not bad.any():
        return
    index, axis = (int(value) for value in np.argwhere(bad)[0])
    if index >= len(card.lines):  # an atom of a crystal_sg expansion: the rows as written were all checked first
        where.fail(f'ATOMIC_POSITIONS: a position is more than {_MAX_LENGTH:g} Å from the origin', card.number)
    line = card.lines[index]
    label, token = line.text.split()[0], line.text.split()[1 + axis]
    where.fail(
        f'ATOMIC_POSITIONS: {"xyz"[axis]} of {label!r} = {token} ({units}) is too large for a position '
        f'(more than {_MAX_LENGTH:g} Å from the origin)',
        line.number,
    )


def _system(namelists: dict[str, dict[str, Any]], where: Where) -> dict[str, Any]:
    if 'SYSTEM' not in namelists:
        where.fail('namelist &SYSTEM is missing (it must define ibrav, nat and ntyp)')
    system = namelists['SYSTEM']
    for key in ('ibrav', 'nat', 'ntyp'):
        if key not in system:
            if key == 'ibrav' and system.get('space_group'):
                continue  # pw.x takes the lattice of the space group
            where.fail(f'&SYSTEM: {key} is missing')
        value = system[key]
        if isinstance(value, bool) or not isinstance(value, int):
            where.fail(f'&SYSTEM: {key} must be an integer, got {value!r}')
    if 'ibrav' in system and system['ibrav'] not in _VALID_IBRAV:
        where.fail(f'&SYSTEM: unknown ibrav = {system["ibrav"]} (valid: {", ".join(map(str, _VALID_IBRAV))})')
    for key in ('nat', 'ntyp'):
        if system[key] < 1:
            where.fail(f'&SYSTEM: {key} must be at least 1, got {system[key]}')
    _check_species_indices(system, where)
    for key, value in system.items():
        if (key.startswith('celldm') or key in _ABC_KEYS) and (
            isinstance(value, (bool, str)) or not math.isfinite(value)
        ):
            where.fail(f'&SYSTEM: {key} must be a number, got {value!r}')
        if (key.startswith('celldm') or key in _ABC_KEYS) and abs(value) > _MAX_LENGTH:
            where.fail(
                f'&SYSTEM: {key} = {value:g} is too large for a lattice parameter: not a physical cell '
                f'(at most {_MAX_LENGTH:g})'
            )
        if key.startswith('celldm') and key not in {f'celldm({i})' for i in range(1, 7)}:
            where.fail(f'&SYSTEM: {key}: celldm has the indices 1 to 6')
    return system


def _check_species_indices(system: dict[str, Any], where: Where) -> None:
    """Species indices of &SYSTEM arrays (``starting_magnetization(i)``, ``Hubbard_U(i)``, the last index of
    ``starting_ns_eigenvalue(m,s,i)``) as pw.x takes them: its arrays hold ``NTYPX`` species, and an index outside
    1 .. NTYPX stops pw.x's namelist read; an index past ``ntyp`` but within them is ignored by pw.x (warning)."""
    ntyp, ignored = system['ntyp'], []
    for key in system:
        match = INDEXED_KEY.fullmatch(key)
        if match is None or match.group(1) not in SPECIES_INDEXED | SPECIES_LAST_INDEX:
            continue
        species = int(match.group(2).split(',')[-1])
        if not 1 <= species <= NTYPX:
            where.fail(
                f'&SYSTEM: {key}: species index {species} is outside 1 .. {NTYPX} (pw.x holds at most {NTYPX} '
                f'species and stops reading the namelist; ntyp = {ntyp})'
            )
        if species > ntyp:
            ignored.append(key)
    if ignored:
        where.warn(
            f'&SYSTEM: {", ".join(ignored)}: species index past ntyp = {ntyp}; pw.x ignores '
            f'{"it" if len(ignored) == 1 else "them"}'
        )


def required_card(cards: dict[str, Card], name: str, where: Where, why: str = '') -> Card:
    if name not in cards:
        where.fail(f'the {name} card is missing{why}')
    return cards[name]


def _atomic_species(cards: dict[str, Card], system: dict[str, Any], where: Where) -> list[Species]:
    card = required_card(cards, 'ATOMIC_SPECIES', where)
    if card.option is not None:
        where.fail(f'ATOMIC_SPECIES takes no option, got {card.option!r}', card.number)
    species: list[Species] = []
    seen: dict[str, int] = {}
    for line in card.lines:
        fields = line.text.split()
        if len(fields) < 3:
            where.fail(
                f"ATOMIC_SPECIES: expected 'label mass pseudopotential_file', got {line.text.strip()!r}", line.number
            )
        label, mass_text, pseudo = fields[:3]
        if len(fields) > 3:  # pw.x reads three values from the line (list-directed READ) and ignores the rest
            where.warn(
                f'ATOMIC_SPECIES: species {label!r}: the column(s) {" ".join(fields[3:])!r} after the '
                'pseudopotential file are ignored, as pw.x does',
                line.number,
            )
        if not _LABEL_RE.fullmatch(label):
            where.fail(
                f'ATOMIC_SPECIES: invalid species label {label!r} (QE labels are an element symbol optionally '
                "followed by digits, letters, '_' or '-')",
                line.number,
            )
        if label in seen:
            where.fail(
                f'ATOMIC_SPECIES: species {label!r} is declared twice (first at line {seen[label]})', line.number
            )
        seen[label] = line.number
        mass = real(mass_text, f'ATOMIC_SPECIES: mass of {label!r}', line.number, where)
        element = _element_from_label(label)
        if element is None:
            where.fail(
                f'ATOMIC_SPECIES: cannot determine the chemical element of species {label!r} '
                '(the label must start with an element symbol, e.g. Fe, Fe1, C_h)',
                line.number,
            )
        named = _element_from_pseudo(pseudo)
        if named is not None and named != element:
            where.fail(
                f'ATOMIC_SPECIES: species {label!r} is {element} by its label, but its pseudopotential file '
                f'{pseudo!r} is named for {named}: rename the species or check the pseudopotential',
                line.number,
            )
        species.append(Species(label, mass, pseudo, element, line.number))
    if len(species) != system['ntyp']:
        where.fail(
            f'ATOMIC_SPECIES has {len(species)} species line(s) but &SYSTEM declares ntyp = {system["ntyp"]}',
            card.number,
        )
    return species


def _atomic_positions(
    cards: dict[str, Card], system: dict[str, Any], species: list[Species], where: Where
) -> tuple[list[str], np.ndarray, str, tuple[tuple[bool, bool, bool], ...]]:
    card = required_card(cards, 'ATOMIC_POSITIONS', where)
    units = card.option or 'alat'
    space_group = system.get('space_group', 0)
    if units == 'crystal_sg' and not space_group:
        where.fail('ATOMIC_POSITIONS crystal_sg needs space_group in &SYSTEM (pw.x stops without it)', card.number)
    if space_group and units != 'crystal_sg':
        where.fail(
            f'&SYSTEM: space_group = {space_group} needs ATOMIC_POSITIONS crystal_sg, got {units!r} (pw.x stops)',
            card.number,
        )
    if units not in (*POSITION_UNITS, 'crystal_sg'):
        where.fail(
            f'ATOMIC_POSITIONS: unsupported units {units!r} (supported: {", ".join(POSITION_UNITS)})', card.number
        )
    nat = system['nat']
    if len(card.lines) != nat:
        where.fail(f'ATOMIC_POSITIONS has {len(card.lines)} atom line(s) but &SYSTEM declares nat = {nat}', card.number)
    declared = {item.label for item in species}
    labels: list[str] = []
    fixed: list[tuple[bool, bool, bool]] = []
    positions = np.empty((nat, 3))
    for index, line in enumerate(card.lines):
        fields = line.text.split()
        label = fields[0]
        wyckoff = units == 'crystal_sg' and len(fields) > 1 and is_wyckoff_letter(fields[1])
        if not wyckoff and len(fields) not in (4, 7):
            where.fail(
                f"ATOMIC_POSITIONS: expected 'label x y z [if_pos(1) if_pos(2) if_pos(3)]', got {line.text.strip()!r}",
                line.number,
            )
        if label not in declared:
            where.fail(
                f'ATOMIC_POSITIONS: species {label!r} is not declared in ATOMIC_SPECIES '
                f'(declared: {", ".join(sorted(declared))})',
                line.number,
            )
        if wyckoff:  # 'Si 3a 0.4697': the position from the letter and its free parameters
            positions[index], used = wyckoff_position(
                system, fields, line.number, where, lambda token, what, line=line: _coordinate(token, what, line, where)
            )
        else:
            for axis, token in enumerate(fields[1:4]):
                what = f'ATOMIC_POSITIONS: {"xyz"[axis]} of {label!r}'
                positions[index, axis] = _coordinate(token, what, line, where)
            used = 4
        flags = fields[used:]
        for flag in flags:
            if flag not in ('0', '1'):
                where.fail(f'ATOMIC_POSITIONS: if_pos flags must be 0 or 1, got {flag!r}', line.number)
        labels.append(label)
        fixed.append(tuple(flag == '0' for flag in flags) if len(flags) == 3 else (False, False, False))
    return labels, positions, units, tuple(fixed)


# -- cell --------------------------------------------------------------------------------------------------------------


def _cell(cards: dict[str, Card], system: dict[str, Any], where: Where) -> tuple[np.ndarray, float]:
    """The cell (rows, Å) and alat (Å) as QE defines them."""
    ibrav = system['ibrav']
    if any(key.startswith('celldm') for key in system) and any(key in system for key in _ABC_KEYS):
        where.fail('&SYSTEM: give the lattice either as celldm(i) or as A, B, C, cosAB, cosAC, cosBC, not both')
    if ibrav == 0:
        card = required_card(cards, 'CELL_PARAMETERS', where, ' (required with ibrav = 0)')
        rows = _cell_rows(card, where)
        units = card.option
        if units in _OLD_CELL_OPTIONS:
            where.warn(
                f'CELL_PARAMETERS {units}: an option of old QE versions, read as no option (alat if celldm(1) or A '
                'is given, else bohr), as pw.x reads it',
                card.number,
            )
            units = None
        if units is not None and units not in _CELL_UNITS:
            where.fail(
                f'CELL_PARAMETERS: unsupported units {units!r} (supported: {", ".join(_CELL_UNITS)})', card.number
            )
        scale = _alat(system, where, required=False)
        if units in ('bohr', 'angstrom') and scale is not None:
            where.fail(
                f'CELL_PARAMETERS {units} together with celldm(1) or A in &SYSTEM: the lattice parameter is given '
                'twice (QE stops with this input)',
                card.number,
            )
        if units == 'alat' and scale is None:
            where.fail('CELL_PARAMETERS alat needs celldm(1) or A in &SYSTEM', card.number)
        units = units or ('alat' if scale is not None else 'bohr')
        cell = rows * {'alat': scale, 'bohr': BOHR_TO_ANGSTROM, 'angstrom': 1.0}[units]
        alat = scale if scale is not None else float(np.linalg.norm(cell[0]))
    else:
        if 'CELL_PARAMETERS' in cards:
            where.fail(
                f'CELL_PARAMETERS is given together with ibrav = {ibrav}: QE rejects this redundant cell; use '
                'ibrav = 0 with CELL_PARAMETERS, or ibrav with celldm(i)/A, B, C',
                cards['CELL_PARAMETERS'].number,
            )
        celldm = _celldm(system, where)
        cell = _bravais_cell(ibrav, celldm, where)
        alat = celldm[0] * BOHR_TO_ANGSTROM if 'a' not in system else float(system['a'])
    lengths = np.linalg.norm(cell, axis=1)
    if not np.all(np.isfinite(cell)) or not np.all((lengths >= _MIN_LENGTH) & (lengths <= _MAX_LENGTH)):
        where.fail(f'the cell vectors have the lengths {lengths.tolist()} Å: not a physical cell')
    if abs(np.linalg.det(cell)) < 1e-6 * float(np.prod(lengths)):
        where.fail(f'the cell is singular (its vectors are linearly dependent): {cell.tolist()}')
    return cell, alat


def _bravais_cell(ibrav: int, celldm: list[float], where: Where) -> np.ndarray:
    """The cell of QE's ``latgen`` for ``ibrav != 0`` (Å), computed by qe-tools."""
    import warnings

    from qe_tools.parsers import PwInputFile

    text = '\n'.join(
        [
            '&SYSTEM',
            f'  ibrav = {ibrav}, nat = 1, ntyp = 1',
            *(f'  celldm({index + 1}) = {_plain(value)}' for index, value in enumerate(celldm)),
            '/',
            'ATOMIC_SPECIES',
            'H 1.0 H.UPF',
            'ATOMIC_POSITIONS crystal',
            'H 0.0 0.0 0.0',
            'K_POINTS gamma',
            '',
        ]
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            cell = np.array(PwInputFile(text).structure['cell'], dtype=float)
    except Exception as exc:  # qe-tools raises ParsingError, InputValidationError, ValueError, KeyError, ...
        where.fail(f'qe-tools could not compute the cell of ibrav = {ibrav}: {type(exc).__name__}: {exc}', cause=exc)
    if ibrav == -9:
        cell = cell[[1, 0, 2]]  # qe-tools 2.3 swaps v1 and v2; QE's latgen has v1 = (a/2, -b/2, 0), v2 = (a/2, b/2, 0)
    return cell


def _cell_rows(card: Card, where: Where) -> np.ndarray:
    if len(card.lines) < 3:
        where.fail(f'CELL_PARAMETERS must have 3 lines (the cell vectors), found {len(card.lines)}', card.number)
    rows = np.empty((3, 3))
    for index, line in enumerate(ignore_extra_lines(card, 3, where)):
        fields = line.text.split()
        if len(fields) != 3:
            where.fail(f'CELL_PARAMETERS: expected 3 numbers, got {line.text.strip()!r}', line.number)
        for axis, token in enumerate(fields):
            rows[index, axis] = real(token, f'CELL_PARAMETERS: vector {index + 1}', line.number, where)
        length = math.hypot(*rows[index])  # np.linalg.norm overflows to inf for 1e308
        if not _MIN_LENGTH <= length <= _MAX_LENGTH:
            where.fail(
                f'CELL_PARAMETERS: vector {index + 1} has the length {length:g}: not a physical cell', line.number
            )
    return rows


def _alat(system: dict[str, Any], where: Where, *, required: bool) -> float | None:
    """alat in Å from celldm(1) or A, or None."""
    for key, factor in (('celldm(1)', BOHR_TO_ANGSTROM), ('a', 1.0)):
        if system.get(key, 0) != 0:
            value = float(system[key])
            if value < 0:
                where.fail(f'&SYSTEM: {"celldm(1)" if key != "a" else "A"} must be positive, got {value}')
            return value * factor
    if required:
        where.fail('&SYSTEM: celldm(1) or A is required with ibrav != 0')
    return None


def _celldm(system: dict[str, Any], where: Where) -> list[float]:
    """celldm(1..6) as QE's latgen sees them (from celldm(i) or A, B, C, cos...), checked as latgen checks them."""
    ibrav = system['ibrav']
    _alat(system, where, required=True)
    if 'a' in system:
        a = float(system['a'])
        celldm = [a / BOHR_TO_ANGSTROM, float(system.get('b', 0.0)) / a, float(system.get('c', 0.0)) / a, 0.0, 0.0, 0.0]
        cosab, cosac, cosbc = (float(system.get(key, 0.0)) for key in ('cosab', 'cosac', 'cosbc'))
        for key, value in (('cosAB', cosab), ('cosAC', cosac), ('cosBC', cosbc)):
            if abs(value) > 1:
                where.fail(f'&SYSTEM: {key} must be between -1 and 1, got {value}')
        if ibrav == 14:  # QE's abc2celldm: the cosines go to celldm(4..6) depending on ibrav
            celldm[3:6] = [cosbc, cosac, cosab]
        elif ibrav in (-12, -13):
            celldm[4] = cosac
        elif ibrav in (5, -5, 12, 13):
            celldm[3] = cosab
        names = {1: 'B', 2: 'C', 3: 'cosBC' if ibrav == 14 else 'cosAB', 4: 'cosAC', 5: 'cosAB'}
    else:
        celldm = [float(system.get(f'celldm({i})', 0.0)) for i in range(1, 7)]
        names = {i: f'celldm({i + 1})' for i in range(6)}

    def need(condition: bool, index: int, requirement: str) -> None:
        if not condition:
            where.fail(f'&SYSTEM: ibrav = {ibrav} needs {names[index]} {requirement} (got {celldm[index]})')

    if ibrav in (4, 6, 7):
        need(celldm[2] > 0, 2, '> 0')
    if abs(ibrav) == 5:
        need(-0.5 < celldm[3] < 1.0, 3, 'between -0.5 and 1')
    if ibrav in (8, 9, -9, 91, 10, 11, 12, -12, 13, -13, 14):
        need(celldm[1] > 0, 1, '> 0')
        need(celldm[2] > 0, 2, '> 0')
    if ibrav in (12, 13, 14):
        need(abs(celldm[3]) < 1, 3, 'between -1 and 1')
    if ibrav in (-12, -13, 14):
        need(abs(celldm[4]) < 1, 4, 'between -1 and 1')
    if ibrav == 14:
        need(abs(celldm[5]) < 1, 5, 'between -1 and 1')
        c4, c5, c6 = celldm[3:6]
        if 1 + 2 * c4 * c5 * c6 - c4**2 - c5**2 - c6**2 <= 0:
            where.fail(f'&SYSTEM: ibrav = 14: the cell angles are inconsistent (cosines {c4}, {c5}, {c6})')
    return celldm


# -- numbers and elements ----------------------------------------------------------------------------------------------


def real(token: str, what: str, line: int, where: Where) -> float:
    if not REAL_RE.fullmatch(token):
        where.fail(f'{what}: {token!r} is not a number', line)
    value = to_float(token)
    if not math.isfinite(value):
        where.fail(f'{what}: {token!r} is not a finite number', line)
    return value


def _coordinate(token: str, what: str, line, where: Where) -> float:
    if REAL_RE.fullmatch(token):
        return real(token, what, line.number, where)
    try:
        value = _evaluate(token)
    except OverflowError as exc:  # '10^400'
        where.fail(f'{what}: {token!r} is not finite', line.number, cause=exc)
    except (ValueError, ZeroDivisionError, RecursionError) as exc:
        where.fail(f'{what}: {token!r} is neither a number nor a valid expression ({exc})', line.number, cause=exc)
    if not math.isfinite(value):
        where.fail(f'{what}: {token!r} is not finite', line.number)
    return value


def _plain(value: float) -> str:
    """A float as a plain decimal that round-trips exactly (qe-tools rejects some exponent forms)."""
    return np.format_float_positional(float(value), unique=True, trim='0')


def _element_from_label(label: str) -> str | None:
    """The element of a QE species label (QE's ``atomic_number`` rule, see the module docstring)."""
    first = label[0].upper()
    second = label[1] if len(label) > 1 else ''
    if second.isalpha():
        two = first + second.lower()
        if two in _ELEMENTS:
            return two
    return first if first in _ELEMENTS else None


def _element_from_pseudo(filename: str) -> str | None:
    """The element a pseudopotential file name names unambiguously, or None."""
    base = filename.replace('\\', '/').rsplit('/', 1)[-1]
    tokens = [token for token in re.split(r'[^A-Za-z0-9]+', base) if token]
    if not tokens:
        return None
    others = {token for token in tokens[1:] if token in _ELEMENTS}  # canonical case only: 'Si', 'F', not 'si'
    first = tokens[0].capitalize()
    if first in _ELEMENTS:
        # 'Fe.pbe-...UPF', 'fe_pbe_v1.5.uspp.F.UPF' (GBRV's one-letter '.F.' flag is no element name here), but not
        # 'no_soc_Si.upf', where another two-letter element token makes the first token ambiguous.
        two_letter = {token for token in others if len(token) == 2}
        return first if not two_letter or two_letter == {first} else None
    return others.pop() if len(others) == 1 else None


def _evaluate(expression: str) -> float:
    """Evaluate QE's simple algebraic expressions (``+ - * / ^`` and parentheses) used in ATOMIC_POSITIONS."""
    if len(expression) > _MAX_EXPRESSION_LENGTH:
        raise ValueError('expression too long')
    tokens: list[str] = []
    position = 0
    while position < len(expression):
        match = _EXPR_TOKEN_RE.match(expression, position)
        if match is None or match.end() == position:
            raise ValueError(f'unexpected {expression[position:]!r}')
        tokens.append(match.group('num') or match.group('op'))
        position = match.end()
    index = 0

    def peek() -> str | None:
        return tokens[index] if index < len(tokens) else None

    def take() -> str:
        nonlocal index
        if index >= len(tokens):
            raise ValueError('incomplete expression')
        index += 1
        return tokens[index - 1]

    def expr() -> float:
        value = term()
        while peek() in ('+', '-'):
            value = value + term() if take() == '+' else value - term()
        return value

    def term() -> float:
        value = factor()
        while peek() in ('*', '/'):
            value = value * factor() if take() == '*' else value / factor()
        return value

    def factor() -> float:
        base = unary()
        if peek() == '^':
            take()
            result = base ** factor()
            if isinstance(result, complex):
                raise ValueError('complex result')
            return float(result)
        return base

    def unary() -> float:
        if peek() in ('+', '-'):
            return -unary() if take() == '-' else unary()
        item = take()
        if item == '(':
            value = expr()
            if take() != ')':
                raise ValueError("missing ')'")
            return value
        if item in '+-*/^()':
            raise ValueError(f'unexpected {item!r}')
        return to_float(item)

    value = expr()
    if index != len(tokens):
        raise ValueError(f'unexpected {tokens[index]!r}')
    return float(value)
