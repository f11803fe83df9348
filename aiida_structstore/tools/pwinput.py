"""Read a Quantum ESPRESSO ``pw.x`` input file into unstored AiiDA nodes.

:func:`parse_pw_input` turns the text of a pw.x input into a :class:`PwInput`: a ``StructureData``, the namelists
as a plain dictionary and a ``KpointsData``. Nothing is stored. Every problem raises
:class:`~aiida_structstore.exceptions.ParseError` with a message that names the file (if given), the line, the
namelist or card, and what is wrong; no ``KeyError``/``IndexError`` or exception of the underlying libraries escapes.

How it works
------------
The text is read twice and the two readings must agree, so the import is never silently wrong:

1. Our own line-level reader splits the text into namelists and cards, strips ``!`` and ``#`` comments (outside
   quoted strings), reads Fortran numbers (``1.0E+01``, ``1.0d0``, ``1.0D+01``, ``.5``; in ``ATOMIC_POSITIONS`` also
   QE's simple algebraic expressions such as ``1/3``), accepts the old ``&end`` namelist terminator, and checks
   everything the file declares (see *Checks* below).
2. From that reading it writes a *normalised* input (plain decimal numbers, ``/`` terminators, no comments, safe
   aliases ``Qa``, ``Qb``, ... for the species labels, explicit units) and hands it to aiida-quantumespresso's
   ``PwInputFile`` (qe-tools 2.3), which computes the cell from ``ibrav`` + ``celldm(i)`` or ``A, B, C, cosAB, ...``
   and the Cartesian positions. This module computes both independently as well (a port of QE's ``latgen``); the
   atoms read, their raw coordinates, the cell and the positions must agree (to 1e-8 relative), otherwise the import
   fails. The nodes are built from the agreeing values.

qe-tools is not trusted where it is known to be wrong on real files: it stops reading ``ATOMIC_POSITIONS`` at a
line with a trailing comment (and returns fewer atoms), rejects ``-1.0E-02``-style numbers and labels like ``C_h``,
does not know ``&end``, guesses each element from the pseudopotential file name (``pbe-Si.UPF`` becomes Be), drops
namelist strings that contain blanks (``title = 'my run'``), swaps ``v1``/``v2`` for ``ibrav = -9``, and converts
``K_POINTS tpiba`` with ``|a1|`` instead of ``alat``. Hence the namelists, elements, k-points and the ``ibrav=-9``
cell are computed here.

Rules
-----
* ``parameters``: every namelist as written, nothing stripped (``ibrav``, ``celldm(1)``, ``nat``, ... stay).
  Namelist names are upper case (``'CONTROL'``, ``'SYSTEM'``, ...); keys are **lower-cased** with blanks removed
  (``Hubbard_U(1)`` -> ``'hubbard_u(1)'``, ``celldm (1)`` -> ``'celldm(1)'``). Values are ``bool``, ``int``,
  ``float`` or ``str`` as written (``ecutwfc = 30`` stays the int ``30``). A list assignment is expanded the Fortran
  way: ``celldm = 10.2, 1.0, 1.6`` gives ``celldm(1)``, ``celldm(2)``, ``celldm(3)``; ``n*value`` repeats.
  Duplicate keys, null values (``a = 1,,2``) and unquoted strings are errors.
* Species: each ``ATOMIC_SPECIES`` label becomes one kind named exactly like the label (``Fe1`` and ``Fe2`` stay two
  kinds), with the mass of the card (a mass <= 0 means "default" in QE, so AiiDA's default mass is used then). The
  element is taken from the label as QE does (``upflib/atomic_number.f90``): if the second character is a digit,
  ``_`` or ``-`` (or the label has one character) the element is the first letter (``C1``, ``C_h`` -> C), otherwise
  the first two letters (``Co``, ``Fe1``, ``CO`` -> Co); if those two letters are no element, the first letter is used
  (``Ch`` -> C, where QE itself would not recognise the label). If the pseudopotential file name names an element
  unambiguously and it disagrees with the label, that is an error. The file name names an element if its first
  token is one (``Fe.pbe-...UPF``, ``fe_pbe_v1.5.uspp.F.UPF``) and no other two-letter element token contradicts it
  (``no_soc_Si.upf`` names none), or else if exactly one capitalised element token occurs (``pbe-Si.UPF``: Si;
  ``my_pseudo.UPF``: none). Labels are matched case-sensitively, as QE does, and may be longer than QE's 3
  characters (``Fe_up``); they are kept as written.
* Cell: ``ibrav = 0`` needs ``CELL_PARAMETERS`` (``alat``, ``bohr``, ``angstrom`` or no unit: ``alat`` if
  ``celldm(1)``/``A`` is given, else ``bohr``, as QE). ``celldm(1)``/``A`` together with ``bohr``/``angstrom`` units,
  ``CELL_PARAMETERS`` with ``ibrav != 0``, ``celldm`` together with ``A``, an unknown ``ibrav`` and lattice parameters
  that QE's ``latgen`` rejects are errors. Missing ``celldm(4..6)``/``cosAB``... default to 0 as in QE. ``ibrav=-13``
  follows QE >= 6.5 (``v1 = (a/2, b/2, 0)``). Lengths use qe-tools' Bohr radius (0.52917720859 Angstrom).
* Positions: units ``alat`` (also when no unit is given, QE's default for pw.x), ``bohr``, ``angstrom`` or
  ``crystal``; ``crystal_sg`` and anything else are errors. ``if_pos`` flags are checked (0 or 1) but not imported.
* ``alat`` (for ``alat`` positions and ``tpiba`` k-points) is ``celldm(1)`` (Bohr) or ``A`` (Angstrom); for
  ``ibrav = 0`` without either it is the length of the first cell vector, as QE does.
* ``kpoints`` (cell set from the structure): ``automatic`` -> mesh and offset (0 or 0.5); ``gamma`` -> mesh
  ``[1, 1, 1]`` (``PwInput.kpoints_type == 'gamma'`` tells it apart from an automatic 1x1x1 mesh, e.g. to set
  ``gamma_only``); ``crystal`` -> points and weights; ``tpiba`` (also when no type is given) -> Cartesian points
  ``x 2*pi/alat`` (1/Angstrom, AiiDA's convention); ``crystal_b``/``tpiba_b`` -> **the band-path vertices** as listed,
  with the number of points of each segment as weight (the path is not expanded). ``tpiba_c``/``crystal_c`` and
  unknown types are errors. ``kpoints`` is ``None`` only if there is no ``K_POINTS`` card.

Checks (each failure is a ``ParseError``)
-----------------------------------------
Empty or binary text, text that is no pw.x input (e.g. a CIF), text outside namelists and cards, unknown or
duplicate namelists and cards, unterminated namelists (truncated files), a missing ``&SYSTEM``/``ibrav``/``nat``/
``ntyp``, missing ``ATOMIC_SPECIES``/``ATOMIC_POSITIONS`` (or ``CELL_PARAMETERS`` when ``ibrav = 0``), number of
``ATOMIC_SPECIES`` lines != ``ntyp``, number of ``ATOMIC_POSITIONS`` lines != ``nat``, undeclared or unused species,
malformed lines, missing, unreadable or non-finite numbers, a singular cell or one with vectors shorter than 1e-4 or
longer than 1e7 (card units and Angstrom), and any disagreement between the two readings. Other cards
(``OCCUPATIONS``, ``CONSTRAINTS``, ``HUBBARD``, ``ADDITIONAL_K_POINTS``, ...) are recognised but not imported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
from aiida import orm
from aiida.common.constants import elements as aiida_elements

from aiida_structstore.exceptions import ParseError

__all__ = ('PwInput', 'parse_pw_input')

#: Bohr radius in Angstrom, the value qe-tools and aiida-quantumespresso use.
BOHR_TO_ANGSTROM = 0.52917720859

_NAMELISTS = ('CONTROL', 'SYSTEM', 'ELECTRONS', 'IONS', 'CELL', 'FCP', 'RISM')
_CARDS = frozenset(
    {
        'ATOMIC_SPECIES',
        'ATOMIC_POSITIONS',
        'K_POINTS',
        'ADDITIONAL_K_POINTS',
        'CELL_PARAMETERS',
        'CONSTRAINTS',
        'OCCUPATIONS',
        'ATOMIC_VELOCITIES',
        'ATOMIC_FORCES',
        'SOLVENTS',
        'HUBBARD',
    }
)
_POSITION_UNITS = ('alat', 'bohr', 'angstrom', 'crystal')
_CELL_UNITS = ('alat', 'bohr', 'angstrom')
_KPOINT_TYPES = ('tpiba', 'automatic', 'crystal', 'gamma', 'tpiba_b', 'crystal_b')
_VALID_IBRAV = (0, 1, 2, 3, -3, 4, 5, -5, 6, 7, 8, 9, -9, 91, 10, 11, 12, -12, 13, -13, 14)
_ABC_KEYS = ('a', 'b', 'c', 'cosab', 'cosac', 'cosbc')
_ELEMENTS = frozenset(value['symbol'] for value in aiida_elements.values()) - {'X'}

_REAL_RE = re.compile(r'[+-]?(?:\d+\.?\d*|\.\d+)(?:[eEdDqQ][+-]?\d+)?')
_INT_RE = re.compile(r'[+-]?\d+')
_LOGICAL_RE = re.compile(r'\.?(t|f|true|false)\.?', re.IGNORECASE)
_KEY_RE = re.compile(r'([a-z][a-z0-9_%]*)(?:\((\d+(?:,\d+)*)\))?')
_LABEL_RE = re.compile(r'[A-Za-z][A-Za-z0-9_-]*')
_CARD_HEADER_RE = re.compile(r'\s*([A-Za-z_]+)\s*(.*)')
_CARD_OPTION_RE = re.compile(r'\{\s*([\w-]*)\s*\}|\(\s*([\w-]*)\s*\)|([\w-]+)')
_NAMELIST_TOKEN_RE = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<comma>,)
    | (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<eq>=)
    | (?P<name>[A-Za-z][A-Za-z0-9_%]*\s*\([^()=]*\))
    | (?P<word>[^\s,='"()]+)
    """,
    re.VERBOSE,
)
_EXPR_TOKEN_RE = re.compile(r'\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eEdD][+-]?\d+)?)|(?P<op>[-+*/^()]))')
_MAX_EXPRESSION_LENGTH = 100
_MIN_LENGTH, _MAX_LENGTH = 1e-4, 1e7  # sanity bounds of cell vector lengths, in the card's units and in Angstrom
_EXPR_OPERATORS = frozenset('+-*/^()')
_BINARY_RE = re.compile(r'[\x00-\x08\x0e-\x1f\x7f]')


@dataclass(frozen=True)
class PwInput:
    """What a pw.x input file contains, as unstored AiiDA nodes and plain data.

    :ivar structure: the structure; one kind per ``ATOMIC_SPECIES`` label, named like the label.
    :ivar parameters: the namelists, ``{'CONTROL': {...}, 'SYSTEM': {...}, ...}``, JSON-compatible, keys lower-case.
    :ivar kpoints: the ``K_POINTS`` card, or ``None`` if the file has none. For ``crystal_b``/``tpiba_b`` these are
        the band-path vertices with the number of points of each segment as weight.
    :ivar kpoints_type: the ``K_POINTS`` option as it applies (``'automatic'``, ``'gamma'``, ``'tpiba'``,
        ``'crystal'``, ``'tpiba_b'``, ``'crystal_b'``), ``None`` without a ``K_POINTS`` card.
    """

    structure: orm.StructureData
    parameters: dict[str, dict[str, Any]]
    kpoints: orm.KpointsData | None
    kpoints_type: str | None = None


def parse_pw_input(text: str, *, filename: str | None = None) -> PwInput:
    """Parse the text of a Quantum ESPRESSO pw.x input file.

    :param text: the file content (``bytes`` are decoded as UTF-8).
    :param filename: used in error messages only.
    :raises ParseError: for every problem (see the module documentation).
    """
    return _PwInputReader(filename).read(text)


@dataclass(frozen=True)
class _Line:
    number: int
    text: str


@dataclass
class _Card:
    name: str
    option: str | None
    number: int
    lines: list[_Line]


@dataclass(frozen=True)
class _Species:
    label: str
    mass: float
    pseudo: str
    element: str
    alias: str
    number: int


class _PwInputReader:
    """One parse: holds the file name for the error messages."""

    def __init__(self, filename: str | None) -> None:
        self.filename = filename

    def fail(self, message: str, line: int | None = None, *, cause: BaseException | None = None) -> NoReturn:
        prefix = f'{self.filename}: ' if self.filename else ''
        where = f'line {line}: ' if line is not None else ''
        raise ParseError(f'{prefix}{where}{message}') from cause

    # ------------------------------------------------------------------------------------------------ entry point

    def read(self, text: Any) -> PwInput:
        try:
            with np.errstate(all='ignore'):  # overflow and invalid values are checked for explicitly
                return self._read(text)
        except ParseError:
            raise
        except (ArithmeticError, IndexError, KeyError, TypeError, ValueError) as exc:  # a safety net, never expected
            self.fail(f'internal error of the pw.x reader: {type(exc).__name__}: {_short(exc)}', cause=exc)

    def _read(self, text: Any) -> PwInput:
        lines = self._lines(text)
        namelists, cards = self._sections(lines)
        system = self._system(namelists)
        species = self._atomic_species(cards, system)
        labels, raw_positions, position_units = self._atomic_positions(cards, system, species)
        cell, alat = self._cell(cards, system)
        positions = self._positions_in_angstrom(raw_positions, position_units, cell, alat)
        self._cross_check(system, species, labels, raw_positions, position_units, cards, cell, positions)
        structure = self._structure(cell, species, labels, positions)
        kpoints, kpoints_type = self._kpoints(cards, structure, alat)
        return PwInput(structure=structure, parameters=namelists, kpoints=kpoints, kpoints_type=kpoints_type)

    # ------------------------------------------------------------------------------------------------ text → lines

    def _lines(self, text: Any) -> list[_Line]:
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode('utf-8')
            except UnicodeDecodeError as exc:
                self.fail(
                    f'not a pw.x input: the content is not UTF-8 text ({exc.reason} at byte {exc.start})', cause=exc
                )
        if not isinstance(text, str):
            self.fail(f'expected the text of a pw.x input, got {type(text).__name__}')
        text = text.removeprefix('\ufeff')
        if not text.strip():
            self.fail('the pw.x input is empty')
        binary = _BINARY_RE.search(text)
        if binary is not None:
            number = len(text[: binary.start()].splitlines()) or 1
            self.fail(
                f'not a pw.x input: binary content (control character {ord(binary.group()):#04x}); '
                'is this a text file?',
                number,
            )
        lines = []
        for number, raw in enumerate(text.splitlines(), start=1):
            content, open_quote = _strip_comment(raw)
            if open_quote:
                self.fail(f'unterminated {open_quote}-quoted string: {raw.strip()!r}', number)
            lines.append(_Line(number, content.rstrip()))
        return lines

    # ------------------------------------------------------------------------------------------------ sections

    def _sections(self, lines: list[_Line]) -> tuple[dict[str, dict[str, Any]], dict[str, _Card]]:
        namelists: dict[str, dict[str, Any]] = {}
        cards: dict[str, _Card] = {}
        current_namelist: str | None = None
        namelist_start = 0
        namelist_lines: list[_Line] = []
        current_card: _Card | None = None

        for line in lines:
            stripped = line.text.strip()
            if current_namelist is not None:
                card = _card_keyword(stripped)
                if card is not None:
                    self.fail(
                        f'namelist &{current_namelist} (opened at line {namelist_start}) is not terminated with '
                        f"'/' before the {card} card",
                        line.number,
                    )
                if stripped.startswith('&') and not _is_end_marker(stripped):
                    self.fail(
                        f'namelist &{current_namelist} (opened at line {namelist_start}) is not terminated with '
                        f"'/' before {stripped.split()[0]}",
                        line.number,
                    )
                content, terminated, rest = _split_terminator(line.text)
                namelist_lines.append(_Line(line.number, content))
                if terminated:
                    if rest.strip():
                        self.fail(
                            f'unexpected text after the end of namelist &{current_namelist}: {rest.strip()!r}',
                            line.number,
                        )
                    namelists[current_namelist] = self._namelist(current_namelist, namelist_lines)
                    current_namelist = None
                continue
            if not stripped:
                continue
            if stripped.startswith('&'):
                match = re.match(r'&(\w+)(.*)', stripped)
                name = match.group(1).upper() if match else ''
                if current_card is not None:
                    self.fail(f'namelist {stripped.split()[0]} after the cards: namelists must come first', line.number)
                if not match or name == 'END':
                    self.fail(f'unexpected {stripped.split()[0]!r} outside a namelist', line.number)
                if name not in _NAMELISTS:
                    self.fail(
                        f'unknown namelist &{match.group(1)}: pw.x reads &{", &".join(_NAMELISTS)} '
                        '(is this an input of another QE program?)',
                        line.number,
                    )
                if name in namelists:
                    self.fail(f'namelist &{name} appears twice', line.number)
                current_namelist, namelist_start, namelist_lines = name, line.number, []
                content, terminated, rest = _split_terminator(match.group(2))
                namelist_lines.append(_Line(line.number, content))
                if terminated:
                    if rest.strip():
                        self.fail(f'unexpected text after the end of namelist &{name}: {rest.strip()!r}', line.number)
                    namelists[name] = self._namelist(name, namelist_lines)
                    current_namelist = None
                continue
            card = _card_keyword(stripped)
            if card is not None:
                if card in cards:
                    self.fail(f'card {card} appears twice (first at line {cards[card].number})', line.number)
                option = self._card_option(card, stripped, line.number)
                current_card = _Card(card, option, line.number, [])
                cards[card] = current_card
                continue
            if current_card is None:
                self.fail(self._unexpected_text_message(stripped, bool(namelists)), line.number)
            current_card.lines.append(line)

        if current_namelist is not None:
            self.fail(
                f"namelist &{current_namelist} (opened at line {namelist_start}) is not terminated with '/': "
                'the file is truncated or the terminator is missing'
            )
        if not namelists:
            self.fail('not a pw.x input: no namelist (&CONTROL, &SYSTEM, ...) found')
        return namelists, cards

    @staticmethod
    def _unexpected_text_message(stripped: str, after_namelists: bool) -> str:
        shown = stripped if len(stripped) <= 60 else stripped[:57] + '...'
        if not after_namelists:
            hint = ''
            if stripped.lower().startswith(('data_', '_cell_', 'loop_', '_atom_site', '_symmetry')):
                hint = ' (this looks like a CIF file)'
            return f'not a pw.x input{hint}: unexpected text before the first namelist: {shown!r}'
        return f'unexpected text outside namelists and cards: {shown!r}'

    def _card_option(self, card: str, stripped: str, number: int) -> str | None:
        match = _CARD_HEADER_RE.fullmatch(stripped)
        rest = match.group(2).strip() if match else ''
        if not rest:
            return None
        option_match = _CARD_OPTION_RE.fullmatch(rest)
        if option_match is None:
            self.fail(f'{card}: cannot read the card option {rest!r}', number)
        option = next(group for group in option_match.groups() if group is not None)
        return option.lower() or None

    # ------------------------------------------------------------------------------------------------ namelists

    def _namelist(self, name: str, lines: list[_Line]) -> dict[str, Any]:
        tokens: list[tuple[str, str, int]] = []
        for line in lines:
            position = 0
            while position < len(line.text):
                match = _NAMELIST_TOKEN_RE.match(line.text, position)
                if match is None:
                    self.fail(f'&{name}: cannot read {line.text[position:].strip()!r}', line.number)
                if match.lastgroup != 'ws':
                    tokens.append((match.lastgroup, match.group(), line.number))
                position = match.end()

        result: dict[str, Any] = {}
        index = 0
        while index < len(tokens):
            kind, value, number = tokens[index]
            if kind == 'comma':
                index += 1
                continue
            if kind not in ('name', 'word') or index + 1 >= len(tokens) or tokens[index + 1][0] != 'eq':
                self.fail(f"&{name}: expected 'key = value', got {value!r}", number)
            key = re.sub(r'\s+', '', value).lower()
            key_match = _KEY_RE.fullmatch(key)
            if key_match is None:
                self.fail(f'&{name}: invalid variable name {value!r}', number)
            index += 2
            values: list[Any] = []
            expect_value = True
            while index < len(tokens):
                t_kind, t_value, t_number = tokens[index]
                if t_kind in ('name', 'word') and index + 1 < len(tokens) and tokens[index + 1][0] == 'eq':
                    break
                if t_kind == 'comma':
                    if expect_value:
                        self.fail(f'&{name}: {key}: empty (null) values are not supported', t_number)
                    expect_value = True
                elif t_kind == 'eq':
                    self.fail(f"&{name}: {key}: unexpected '='", t_number)
                elif t_kind == 'name':
                    self.fail(f'&{name}: {key}: unexpected {t_value!r}', t_number)
                else:
                    repeat = re.fullmatch(r'(\d+)\*', t_value) if t_kind == 'word' else None
                    if repeat and index + 1 < len(tokens) and tokens[index + 1][0] == 'str':  # 3*'abc'
                        index += 1
                        t_value = t_value + tokens[index][1]
                    values.extend(self._namelist_values(name, key, t_kind, t_value, t_number))
                    expect_value = False
                index += 1
            if not values:
                self.fail(f'&{name}: {key}: no value given', number)
            for item_key, item_value in self._expand(name, key_match, values, number):
                if item_key in result:
                    self.fail(f'&{name}: {item_key} is given more than once', number)
                result[item_key] = item_value
        return result

    def _namelist_values(self, name: str, key: str, kind: str, token: str, number: int) -> list[Any]:
        if kind == 'str':
            quote = token[0]
            return [token[1:-1].replace(quote * 2, quote)]
        repeat = re.fullmatch(r'(\d+)\*(.*)', token)
        if repeat:
            count, rest = int(repeat.group(1)), repeat.group(2)
            if not rest:
                self.fail(f'&{name}: {key}: null repeat {token!r} is not supported', number)
            if count < 1 or count > 10000:
                self.fail(f'&{name}: {key}: invalid repeat count in {token!r}', number)
            kind = 'str' if rest[:1] in ('"', "'") else 'word'
            return self._namelist_values(name, key, kind, rest, number) * count
        if _INT_RE.fullmatch(token):
            return [int(token)]
        if _REAL_RE.fullmatch(token):
            value = _to_float(token)
            if not math.isfinite(value):
                self.fail(f'&{name}: {key}: the number {token!r} is not finite', number)
            return [value]
        if _LOGICAL_RE.fullmatch(token):
            return [token.strip('.').lower().startswith('t')]
        self.fail(
            f'&{name}: {key}: cannot read the value {token!r} (strings must be quoted, logicals are .true./.false.)',
            number,
        )

    def _expand(self, name: str, key_match: re.Match, values: list[Any], number: int) -> list[tuple[str, Any]]:
        key = key_match.group(0)
        if len(values) == 1:
            return [(key, values[0])]
        base, index = key_match.group(1), key_match.group(2)
        if index is None:
            start = 1
        elif ',' not in index:
            start = int(index)
        else:
            self.fail(f'&{name}: {key}: a list of values for a multi-dimensional index is not supported', number)
        return [(f'{base}({start + offset})', value) for offset, value in enumerate(values)]

    # ------------------------------------------------------------------------------------------------ &SYSTEM

    def _system(self, namelists: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if 'SYSTEM' not in namelists:
            self.fail('namelist &SYSTEM is missing (it must define ibrav, nat and ntyp)')
        system = namelists['SYSTEM']
        for key in ('ibrav', 'nat', 'ntyp'):
            if key not in system:
                self.fail(f'&SYSTEM: {key} is missing')
            value = system[key]
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(f'&SYSTEM: {key} must be an integer, got {value!r}')
        if system['ibrav'] not in _VALID_IBRAV:
            self.fail(f'&SYSTEM: unknown ibrav = {system["ibrav"]} (valid: {", ".join(map(str, _VALID_IBRAV))})')
        for key in ('nat', 'ntyp'):
            if system[key] < 1:
                self.fail(f'&SYSTEM: {key} must be at least 1, got {system[key]}')
        for key, value in system.items():
            if (key.startswith('celldm') or key in _ABC_KEYS) and (
                isinstance(value, (bool, str)) or not math.isfinite(value)
            ):
                self.fail(f'&SYSTEM: {key} must be a number, got {value!r}')
            if key.startswith('celldm') and key not in {f'celldm({i})' for i in range(1, 7)}:
                self.fail(f'&SYSTEM: {key}: celldm has the indices 1 to 6')
        return system

    # ------------------------------------------------------------------------------------------------ cards

    def _required_card(self, cards: dict[str, _Card], name: str, why: str = '') -> _Card:
        if name not in cards:
            self.fail(f'the {name} card is missing{why}')
        return cards[name]

    def _atomic_species(self, cards: dict[str, _Card], system: dict[str, Any]) -> list[_Species]:
        card = self._required_card(cards, 'ATOMIC_SPECIES')
        if card.option is not None:
            self.fail(f'ATOMIC_SPECIES takes no option, got {card.option!r}', card.number)
        species: list[_Species] = []
        seen: dict[str, int] = {}
        for line in card.lines:
            fields = line.text.split()
            if len(fields) != 3:
                self.fail(
                    f"ATOMIC_SPECIES: expected 'label mass pseudopotential_file', got {line.text.strip()!r}",
                    line.number,
                )
            label, mass_text, pseudo = fields
            if not _LABEL_RE.fullmatch(label):
                self.fail(
                    f'ATOMIC_SPECIES: invalid species label {label!r} (QE labels are an element symbol optionally '
                    "followed by digits, letters, '_' or '-')",
                    line.number,
                )
            if label in seen:
                self.fail(
                    f'ATOMIC_SPECIES: species {label!r} is declared twice (first at line {seen[label]})', line.number
                )
            seen[label] = line.number
            mass = self._real(mass_text, f'ATOMIC_SPECIES: mass of {label!r}', line.number)
            element = _element_from_label(label)
            if element is None:
                self.fail(
                    f'ATOMIC_SPECIES: cannot determine the chemical element of species {label!r} '
                    '(the label must start with an element symbol, e.g. Fe, Fe1, C_h)',
                    line.number,
                )
            pseudo_element = _element_from_pseudo(pseudo)
            if pseudo_element is not None and pseudo_element != element:
                self.fail(
                    f'ATOMIC_SPECIES: species {label!r} is {element} by its label, but its pseudopotential file '
                    f'{pseudo!r} is named for {pseudo_element}: rename the species or check the pseudopotential',
                    line.number,
                )
            species.append(_Species(label, mass, pseudo, element, _alias(len(species)), line.number))
        if len(species) != system['ntyp']:
            self.fail(
                f'ATOMIC_SPECIES has {len(species)} species line(s) but &SYSTEM declares ntyp = {system["ntyp"]}',
                card.number,
            )
        return species

    def _atomic_positions(
        self, cards: dict[str, _Card], system: dict[str, Any], species: list[_Species]
    ) -> tuple[list[str], np.ndarray, str]:
        card = self._required_card(cards, 'ATOMIC_POSITIONS')
        units = card.option or 'alat'
        if units == 'crystal_sg':
            self.fail('ATOMIC_POSITIONS crystal_sg (space-group positions) is not supported', card.number)
        if units not in _POSITION_UNITS:
            self.fail(
                f'ATOMIC_POSITIONS: unsupported units {units!r} (supported: {", ".join(_POSITION_UNITS)})', card.number
            )
        nat = system['nat']
        if len(card.lines) != nat:
            self.fail(
                f'ATOMIC_POSITIONS has {len(card.lines)} atom line(s) but &SYSTEM declares nat = {nat}', card.number
            )
        declared = {item.label for item in species}
        labels: list[str] = []
        positions = np.empty((nat, 3))
        for index, line in enumerate(card.lines):
            fields = line.text.split()
            if len(fields) not in (4, 7):
                self.fail(
                    "ATOMIC_POSITIONS: expected 'label x y z [if_pos(1) if_pos(2) if_pos(3)]', "
                    f'got {line.text.strip()!r}',
                    line.number,
                )
            label = fields[0]
            if label not in declared:
                self.fail(
                    f'ATOMIC_POSITIONS: species {label!r} is not declared in ATOMIC_SPECIES '
                    f'(declared: {", ".join(sorted(declared))})',
                    line.number,
                )
            for axis, token in enumerate(fields[1:4]):
                positions[index, axis] = self._coordinate(
                    token, f'ATOMIC_POSITIONS: {"xyz"[axis]} of {label!r}', line.number
                )
            for flag in fields[4:]:
                if flag not in ('0', '1'):
                    self.fail(f'ATOMIC_POSITIONS: if_pos flags must be 0 or 1, got {flag!r}', line.number)
            labels.append(label)
        used = set(labels)
        unused = [item.label for item in species if item.label not in used]
        if unused:
            self.fail(f'ATOMIC_SPECIES declares species without atoms in ATOMIC_POSITIONS: {", ".join(unused)}')
        return labels, positions, units

    # ------------------------------------------------------------------------------------------------ cell

    def _cell(self, cards: dict[str, _Card], system: dict[str, Any]) -> tuple[np.ndarray, float]:
        """Return the cell (rows, Angstrom) and alat (Angstrom) as QE defines them."""
        ibrav = system['ibrav']
        has_celldm = any(key.startswith('celldm') for key in system)
        has_abc = any(key in system for key in _ABC_KEYS)
        if has_celldm and has_abc:
            self.fail('&SYSTEM: give the lattice either as celldm(i) or as A, B, C, cosAB, cosAC, cosBC, not both')
        if ibrav == 0:
            card = self._required_card(cards, 'CELL_PARAMETERS', ' (required with ibrav = 0)')
            rows = self._cell_rows(card)
            units = card.option
            if units is not None and units not in _CELL_UNITS:
                self.fail(
                    f'CELL_PARAMETERS: unsupported units {units!r} (supported: {", ".join(_CELL_UNITS)})', card.number
                )
            scale = self._alat_from_system(system, required=False)
            if units in ('bohr', 'angstrom') and scale is not None:
                self.fail(
                    f'CELL_PARAMETERS {units} together with celldm(1) or A in &SYSTEM: the lattice parameter is '
                    'given twice (QE stops with this input)',
                    card.number,
                )
            if units == 'alat' and scale is None:
                self.fail('CELL_PARAMETERS alat needs celldm(1) or A in &SYSTEM', card.number)
            if units is None:
                units = 'alat' if scale is not None else 'bohr'
            factor = {'alat': scale, 'bohr': BOHR_TO_ANGSTROM, 'angstrom': 1.0}[units]
            cell = rows * factor
            alat = scale if scale is not None else float(np.linalg.norm(cell[0]))
        else:
            if 'CELL_PARAMETERS' in cards:
                self.fail(
                    f'CELL_PARAMETERS is given together with ibrav = {ibrav}: QE rejects this redundant cell; use '
                    'ibrav = 0 with CELL_PARAMETERS, or ibrav with celldm(i)/A, B, C',
                    cards['CELL_PARAMETERS'].number,
                )
            celldm = self._effective_celldm(system)
            cell = _latgen(ibrav, celldm) * BOHR_TO_ANGSTROM
            alat = celldm[0] * BOHR_TO_ANGSTROM if 'a' not in system else float(system['a'])
        lengths = np.linalg.norm(cell, axis=1)
        if not np.all(np.isfinite(cell)) or not np.all((lengths >= _MIN_LENGTH) & (lengths <= _MAX_LENGTH)):
            self.fail(f'the cell vectors have the lengths {lengths.tolist()} Angstrom: not a physical cell')
        if abs(np.linalg.det(cell)) < 1e-6 * float(np.prod(lengths)):
            self.fail(f'the cell is singular (its vectors are linearly dependent): {cell.tolist()}')
        if not (math.isfinite(alat) and alat > 0):
            self.fail(f'the lattice parameter alat must be positive, got {alat!r} Angstrom')
        return cell, alat

    def _cell_rows(self, card: _Card) -> np.ndarray:
        if len(card.lines) != 3:
            self.fail(f'CELL_PARAMETERS must have 3 lines (the cell vectors), found {len(card.lines)}', card.number)
        rows = np.empty((3, 3))
        for index, line in enumerate(card.lines):
            fields = line.text.split()
            if len(fields) != 3:
                self.fail(f'CELL_PARAMETERS: expected 3 numbers, got {line.text.strip()!r}', line.number)
            for axis, token in enumerate(fields):
                rows[index, axis] = self._real(token, f'CELL_PARAMETERS: vector {index + 1}', line.number)
            if not _MIN_LENGTH <= float(np.linalg.norm(rows[index])) <= _MAX_LENGTH:
                self.fail(
                    f'CELL_PARAMETERS: vector {index + 1} has the length {np.linalg.norm(rows[index]):g}: '
                    'not a physical cell',
                    line.number,
                )
        return rows

    def _alat_from_system(self, system: dict[str, Any], *, required: bool) -> float | None:
        """Return alat in Angstrom from celldm(1) or A, or None."""
        if 'celldm(1)' in system and system['celldm(1)'] != 0:
            value = float(system['celldm(1)'])
            if value < 0:
                self.fail(f'&SYSTEM: celldm(1) must be positive, got {value}')
            return value * BOHR_TO_ANGSTROM
        if 'a' in system and system['a'] != 0:
            value = float(system['a'])
            if value < 0:
                self.fail(f'&SYSTEM: A must be positive, got {value}')
            return value
        if required:
            self.fail('&SYSTEM: celldm(1) or A is required with ibrav != 0')
        return None

    def _effective_celldm(self, system: dict[str, Any]) -> list[float]:
        """Return celldm(1..6) as QE's latgen sees them (from celldm(i) or A, B, C, cos...), validated."""
        ibrav = system['ibrav']
        self._alat_from_system(system, required=True)
        if 'a' in system:
            a = float(system['a'])
            celldm = [a / BOHR_TO_ANGSTROM, float(system.get('b', 0.0)) / a, float(system.get('c', 0.0)) / a]
            celldm += [0.0, 0.0, 0.0]  # QE's abc2celldm: the cosines go to celldm(4..6) depending on ibrav
            cosab, cosac, cosbc = (float(system.get(key, 0.0)) for key in ('cosab', 'cosac', 'cosbc'))
            for key, value in (('cosAB', cosab), ('cosAC', cosac), ('cosBC', cosbc)):
                if abs(value) > 1:
                    self.fail(f'&SYSTEM: {key} must be between -1 and 1, got {value}')
            if ibrav == 14:
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
                self.fail(f'&SYSTEM: ibrav = {ibrav} needs {names[index]} {requirement} (got {celldm[index]})')

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
                self.fail(f'&SYSTEM: ibrav = 14: the cell angles are inconsistent (cosines {c4}, {c5}, {c6})')
        return celldm

    # ------------------------------------------------------------------------------------------------ positions

    def _positions_in_angstrom(self, raw: np.ndarray, units: str, cell: np.ndarray, alat: float) -> np.ndarray:
        if units == 'alat':
            positions = raw * alat
        elif units == 'bohr':
            positions = raw * BOHR_TO_ANGSTROM
        elif units == 'angstrom':
            positions = raw.copy()
        else:
            positions = raw @ cell
        if not np.all(np.isfinite(positions)):
            self.fail('ATOMIC_POSITIONS: the positions are not finite after unit conversion')
        return positions

    # ------------------------------------------------------------------------------------------------ qe-tools

    def _cross_check(
        self,
        system: dict[str, Any],
        species: list[_Species],
        labels: list[str],
        raw_positions: np.ndarray,
        position_units: str,
        cards: dict[str, _Card],
        cell: np.ndarray,
        positions: np.ndarray,
    ) -> None:
        """Run aiida-quantumespresso's PwInputFile on the normalised text; its result must agree with ours."""
        from aiida_quantumespresso.tools.pwinputparser import PwInputFile

        ibrav = system['ibrav']
        alias = {item.label: item.alias for item in species}
        out = ['&SYSTEM', f'  ibrav = {ibrav}', f'  nat = {system["nat"]}', f'  ntyp = {system["ntyp"]}']
        if system.get('celldm(1)', 0) != 0:
            for index in range(1, 7):
                out.append(f'  celldm({index}) = {float(system.get(f"celldm({index})", 0.0))!r}')
        elif system.get('a', 0) != 0:
            for key in _ABC_KEYS:
                out.append(f'  {key} = {float(system.get(key, 0.0))!r}')
        out += ['/', 'ATOMIC_SPECIES']
        out += [f'{item.alias} {_fmt(item.mass)} {item.pseudo}' for item in species]
        out.append(f'ATOMIC_POSITIONS {position_units}')
        out += [f'{alias[label]} ' + ' '.join(map(_fmt, row)) for label, row in zip(labels, raw_positions, strict=True)]
        if ibrav == 0:
            card = cards['CELL_PARAMETERS']
            units = card.option or ('alat' if self._alat_from_system(system, required=False) else 'bohr')
            out.append(f'CELL_PARAMETERS {units}')
            out += [' '.join(map(_fmt, row)) for row in self._cell_rows(card)]
        out += ['K_POINTS gamma', '']
        try:
            parsed = PwInputFile('\n'.join(out), validate_species_names=False)
            names = list(parsed.atomic_positions['names'])
            qe_raw = np.array(parsed.atomic_positions['positions'], dtype=float).reshape(-1, 3)
            qe_cell = np.array(parsed.structure['cell'], dtype=float)
            qe_positions = np.array(parsed.structure['positions'], dtype=float).reshape(-1, 3)
        except Exception as exc:  # qe-tools raises ParsingError, InputValidationError, ValueError, KeyError, ...
            self.fail(
                f'the qe-tools pw.x reader rejected the normalised input: {type(exc).__name__}: {_short(exc)}',
                cause=exc,
            )
        if names != [alias[label] for label in labels] or qe_raw.shape != raw_positions.shape:
            self.fail(f'internal check failed: qe-tools read {len(names)} atom(s), this reader {len(labels)}')
        if not np.array_equal(qe_raw, raw_positions):
            self.fail('internal check failed: qe-tools read different ATOMIC_POSITIONS numbers than this reader')
        scale = max(1.0, float(np.abs(cell).max()))
        if ibrav == -9:
            # qe-tools 2.3 swaps v1 and v2 for ibrav = -9; QE's latgen has v1 = (a/2, -b/2, 0), v2 = (a/2, b/2, 0).
            qe_cell = qe_cell[[1, 0, 2]]
            if position_units == 'crystal':  # qe-tools used its swapped cell for these
                qe_positions = qe_raw @ qe_cell
        if not np.allclose(qe_cell, cell, rtol=0, atol=1e-8 * scale):
            self.fail(
                f'internal check failed: qe-tools computed the cell {qe_cell.tolist()}, this reader {cell.tolist()}'
            )
        if not np.allclose(qe_positions, positions, rtol=0, atol=1e-8 * max(scale, float(np.abs(positions).max()))):
            self.fail('internal check failed: qe-tools computed different Cartesian positions than this reader')

    # ------------------------------------------------------------------------------------------------ nodes

    @staticmethod
    def _structure(
        cell: np.ndarray, species: list[_Species], labels: list[str], positions: np.ndarray
    ) -> orm.StructureData:
        structure = orm.StructureData(cell=cell.tolist(), pbc=(True, True, True))
        for item in species:
            if item.mass > 0:
                structure.append_kind(orm.Kind(name=item.label, symbols=item.element, mass=item.mass))
            else:  # QE: a mass <= 0 means "use the default mass of the element"
                structure.append_kind(orm.Kind(name=item.label, symbols=item.element))
        for label, position in zip(labels, positions, strict=True):
            structure.append_site(orm.Site(kind_name=label, position=[float(value) for value in position]))
        return structure

    def _kpoints(
        self, cards: dict[str, _Card], structure: orm.StructureData, alat: float
    ) -> tuple[orm.KpointsData | None, str | None]:
        card = cards.get('K_POINTS')
        if card is None:
            return None, None
        kind = card.option or 'tpiba'
        if kind not in _KPOINT_TYPES:
            self.fail(f'K_POINTS: unsupported type {kind!r} (supported: {", ".join(_KPOINT_TYPES)})', card.number)
        kpoints = orm.KpointsData()
        kpoints.set_cell_from_structure(structure)
        if kind == 'gamma':
            if card.lines:
                self.fail(
                    f'K_POINTS gamma takes no data line, got {card.lines[0].text.strip()!r}', card.lines[0].number
                )
            kpoints.set_kpoints_mesh([1, 1, 1], offset=[0.0, 0.0, 0.0])
            return kpoints, kind
        if kind == 'automatic':
            if len(card.lines) != 1:
                self.fail(
                    f"K_POINTS automatic takes exactly one line 'nk1 nk2 nk3 sk1 sk2 sk3', found {len(card.lines)}",
                    card.number,
                )
            line = card.lines[0]
            fields = line.text.split()
            if len(fields) != 6 or not all(_INT_RE.fullmatch(field) for field in fields):
                self.fail(
                    f"K_POINTS automatic: expected 6 integers 'nk1 nk2 nk3 sk1 sk2 sk3', got {line.text.strip()!r}",
                    line.number,
                )
            mesh, shifts = [int(f) for f in fields[:3]], [int(f) for f in fields[3:]]
            if any(n < 1 for n in mesh):
                self.fail(f'K_POINTS automatic: the mesh must be positive, got {mesh}', line.number)
            if any(s not in (0, 1) for s in shifts):
                self.fail(f'K_POINTS automatic: the offsets must be 0 or 1, got {shifts}', line.number)
            kpoints.set_kpoints_mesh(mesh, offset=[0.5 * s for s in shifts])
            return kpoints, kind

        if not card.lines:
            self.fail(f'K_POINTS {kind}: the number of k-points is missing', card.number)
        count_line = card.lines[0]
        if not _INT_RE.fullmatch(count_line.text.strip()) or int(count_line.text) < 1:
            self.fail(
                f'K_POINTS {kind}: expected the number of k-points, got {count_line.text.strip()!r}', count_line.number
            )
        count = int(count_line.text)
        if len(card.lines) - 1 != count:
            self.fail(
                f'K_POINTS {kind}: {count} k-points declared but {len(card.lines) - 1} line(s) given', card.number
            )
        points = np.empty((count, 3))
        weights = np.empty(count)
        for index, line in enumerate(card.lines[1:]):
            fields = line.text.split()
            if len(fields) != 4:
                self.fail(f"K_POINTS {kind}: expected 'kx ky kz weight', got {line.text.strip()!r}", line.number)
            for axis in range(3):
                points[index, axis] = self._real(fields[axis], f'K_POINTS {kind}: k-point {index + 1}', line.number)
            weights[index] = self._real(fields[3], f'K_POINTS {kind}: weight of k-point {index + 1}', line.number)
            if kind.endswith('_b') and (weights[index] < 0 or weights[index] != round(weights[index])):
                self.fail(
                    f'K_POINTS {kind}: the weight of a band-path vertex is a number of points (a non-negative '
                    f'integer), got {fields[3]!r}',
                    line.number,
                )
        if kind.startswith('tpiba'):
            kpoints.set_kpoints(points * (2 * math.pi / alat), cartesian=True, weights=weights)
        else:
            kpoints.set_kpoints(points, weights=weights)
        return kpoints, kind

    # ------------------------------------------------------------------------------------------------ numbers

    def _real(self, token: str, what: str, line: int) -> float:
        if not _REAL_RE.fullmatch(token):
            self.fail(f'{what}: {token!r} is not a number', line)
        value = _to_float(token)
        if not math.isfinite(value):
            self.fail(f'{what}: {token!r} is not a finite number', line)
        return value

    def _coordinate(self, token: str, what: str, line: int) -> float:
        if _REAL_RE.fullmatch(token):
            return self._real(token, what, line)
        try:
            value = _evaluate(token)
        except (ValueError, ZeroDivisionError, OverflowError, RecursionError) as exc:
            self.fail(f'{what}: {token!r} is neither a number nor a valid expression ({exc})', line, cause=exc)
        if not math.isfinite(value):
            self.fail(f'{what}: {token!r} is not finite', line)
        return value


# ---------------------------------------------------------------------------------------------------- helpers


def _strip_comment(line: str) -> tuple[str, str | None]:
    """Return the line without its ``!``/``#`` comment (quotes respected) and the unclosed quote character, if any."""
    if "'" not in line and '"' not in line:
        return re.split(r'[!#]', line, maxsplit=1)[0], None
    quote: str | None = None
    for index, char in enumerate(line):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in '\'"':
            quote = char
        elif char in '!#':
            return line[:index], None
    return line, quote


def _is_end_marker(text: str) -> bool:
    return re.fullmatch(r'&end\b.*', text, re.IGNORECASE) is not None


def _split_terminator(text: str) -> tuple[str, bool, str]:
    """Split a namelist line at its terminator (``/`` or ``&end``, outside quotes): (content, terminated, rest)."""
    quote: str | None = None
    for index, char in enumerate(text):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in '\'"':
            quote = char
        elif char == '/':
            return text[:index], True, text[index + 1 :]
        elif char == '&' and re.match(r'&end(?![\w])', text[index:], re.IGNORECASE):
            return text[:index], True, text[index + 4 :]
    return text, False, ''


def _card_keyword(stripped: str) -> str | None:
    """Return the card name if the line is a card header (``occupations = 'smearing'`` is not)."""
    match = re.match(r'([A-Za-z_]+)', stripped)
    if match and match.group(1).upper() in _CARDS and '=' not in stripped:
        return match.group(1).upper()
    return None


def _to_float(token: str) -> float:
    return float(re.sub(r'[dDqQ]', 'e', token))


def _fmt(value: float) -> str:
    """Format a float as a plain decimal that round-trips exactly (qe-tools rejects some exponent forms)."""
    return np.format_float_positional(float(value), unique=True, trim='0')


def _short(exc: BaseException, limit: int = 300) -> str:
    message = ' '.join(str(exc).split())
    return message if len(message) <= limit else message[: limit - 3] + '...'


def _alias(index: int) -> str:
    """Return a species label qe-tools accepts: Qa, Qb, ..., Qz, Qba, ..."""
    letters = ''
    while True:
        letters = chr(ord('a') + index % 26) + letters
        index //= 26
        if index == 0:
            return 'Q' + letters


def _element_from_label(label: str) -> str | None:
    """Return the element of a QE species label (QE's ``atomic_number`` rule, see the module docstring)."""
    first = label[0].upper()
    second = label[1] if len(label) > 1 else ''
    if second.isalpha():
        two = first + second.lower()
        if two in _ELEMENTS:
            return two
    return first if first in _ELEMENTS else None


def _element_from_pseudo(filename: str) -> str | None:
    """Return the element a pseudopotential file name names unambiguously, or None."""
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
        if item in _EXPR_OPERATORS:
            raise ValueError(f'unexpected {item!r}')
        return _to_float(item)

    value = expr()
    if index != len(tokens):
        raise ValueError(f'unexpected {tokens[index]!r}')
    return float(value)


def _latgen(ibrav: int, celldm: list[float]) -> np.ndarray:
    """Return the cell vectors (rows, Bohr) of QE's ``latgen`` (``Modules/latgen.f90``) for ``ibrav != 0``."""
    a = celldm[0]
    b, c = a * celldm[1], a * celldm[2]
    if ibrav == 1:
        return np.diag([a, a, a])
    if ibrav == 2:
        return a / 2 * np.array([[-1, 0, 1], [0, 1, 1], [-1, 1, 0]], dtype=float)
    if ibrav == 3:
        return a / 2 * np.array([[1, 1, 1], [-1, 1, 1], [-1, -1, 1]], dtype=float)
    if ibrav == -3:
        return a / 2 * np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]], dtype=float)
    if ibrav == 4:
        return np.array([[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]])
    if ibrav in (5, -5):
        term1, term2 = math.sqrt(1 + 2 * celldm[3]), math.sqrt(1 - celldm[3])
        if ibrav == 5:
            tx, ty, tz = term2 / math.sqrt(2), term2 / math.sqrt(6), term1 / math.sqrt(3)
            return a * np.array([[tx, -ty, tz], [0, 2 * ty, tz], [-tx, -ty, tz]])
        u, v = (term1 - 2 * term2) / 3, (term1 + term2) / 3
        return a * np.array([[u, v, v], [v, u, v], [v, v, u]])
    if ibrav == 6:
        return np.diag([a, a, c])
    if ibrav == 7:
        return np.array([[a / 2, -a / 2, c / 2], [a / 2, a / 2, c / 2], [-a / 2, -a / 2, c / 2]])
    if ibrav == 8:
        return np.diag([a, b, c])
    if ibrav == 9:
        return np.array([[a / 2, b / 2, 0], [-a / 2, b / 2, 0], [0, 0, c]])
    if ibrav == -9:
        return np.array([[a / 2, -b / 2, 0], [a / 2, b / 2, 0], [0, 0, c]])
    if ibrav == 91:
        return np.array([[a, 0, 0], [0, b / 2, -c / 2], [0, b / 2, c / 2]])
    if ibrav == 10:
        return np.array([[a / 2, 0, c / 2], [a / 2, b / 2, 0], [0, b / 2, c / 2]])
    if ibrav == 11:
        return np.array([[a / 2, b / 2, c / 2], [-a / 2, b / 2, c / 2], [-a / 2, -b / 2, c / 2]])
    if ibrav == 12:
        cos_ab = celldm[3]
        return np.array([[a, 0, 0], [b * cos_ab, b * math.sqrt(1 - cos_ab**2), 0], [0, 0, c]])
    if ibrav == -12:
        cos_ac = celldm[4]
        return np.array([[a, 0, 0], [0, b, 0], [c * cos_ac, 0, c * math.sqrt(1 - cos_ac**2)]])
    if ibrav == 13:
        cos_ab = celldm[3]
        return np.array([[a / 2, 0, -c / 2], [b * cos_ab, b * math.sqrt(1 - cos_ab**2), 0], [a / 2, 0, c / 2]])
    if ibrav == -13:  # QE >= 6.5
        cos_ac = celldm[4]
        return np.array([[a / 2, b / 2, 0], [-a / 2, b / 2, 0], [c * cos_ac, 0, c * math.sqrt(1 - cos_ac**2)]])
    if ibrav == 14:
        cos_bc, cos_ac, cos_ab = celldm[3], celldm[4], celldm[5]
        sin_ab = math.sqrt(1 - cos_ab**2)
        term = math.sqrt((1 + 2 * cos_bc * cos_ac * cos_ab - cos_bc**2 - cos_ac**2 - cos_ab**2) / (1 - cos_ab**2))
        return np.array(
            [[a, 0, 0], [b * cos_ab, b * sin_ab, 0], [c * cos_ac, c * (cos_bc - cos_ac * cos_ab) / sin_ab, c * term]]
        )
    raise ValueError(f'unknown ibrav {ibrav}')  # unreachable: ibrav is validated before
