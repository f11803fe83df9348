"""Parse CIF text into unstored AiiDA ``StructureData`` nodes, one per data block, and refuse to be silently wrong.

:func:`parse_cif` returns one :class:`CifBlock` per data block that describes a crystal structure, in file order. Every
problem raises :class:`~aiida_structstore.exceptions.ParseError` whose message names the file (if given), the data block
(and line, where it helps) and what is wrong. No library exception or warning escapes: pymatgen's warnings are
recorded and the dangerous ones become errors. Parsing is all or nothing: one bad structure block fails the whole file.

How a data block is read
------------------------
1. **Syntax.** The text is read by a strict CIF 1.1 reader of this module (quoted strings, ``;`` text fields,
   ``loop_``, ``save_`` frames, ``global_`` blocks), because the CIF readers of pymatgen and ASE drop or misassign
   values on broken input (a truncated ``loop_`` fails with an unrelated error or loses a row with a warning, a
   stray value is skipped with a warning, a repeated block name overwrites the earlier block). Data names are
   compared case-insensitively and DDLm names (``_atom_site.fract_x``) are read as their DDL1 equivalents
   (``_atom_site_fract_x``). One leniency, as in ASE: an unquoted value that runs on to the end of its line
   (``_symmetry_space_group_name_H-M P 21/c``) is taken whole.
2. **Blocks.** A block with atom sites (``_atom_site_fract_*``, ``_atom_site_Cartn_*``, ``_atom_site_label`` or
   ``_atom_site_type_symbol``) gives one structure; a block without them (a ``data_global`` with publication details)
   is skipped; a file where no block has atom sites is an error. Blocks with the same name stay separate structures.
   The number of structures returned is checked against the number of blocks with atom sites.
3. **Symmetry.** Explicit operations (``_space_group_symop_operation_xyz`` or ``_symmetry_equiv_pos_as_xyz``; magCIF
   operations with time reversal dropped) are used as given, after a strict parse of every operation (pymatgen's
   parser accepts ``'a,b,c'`` as the zero operation), a check that they form a group, that they are compatible with
   the cell metric and that they are the space group the block declares (if it declares one). Without operations,
   the Hall symbol, Hermann-Mauguin symbol (with ``:1``/``:2``/``:H``/``:R`` or
   ``_space_group_IT_coordinate_system_code``) and International Tables number are resolved against spglib's table
   of the 530 ITA settings; they must agree with each other. A symbol that cannot be resolved is an error (pymatgen
   falls back to P1 and only warns), unless the declared number has a single setting compatible with the cell. If
   several settings remain, they are narrowed by the cell metric (hexagonal versus rhombohedral axes, monoclinic
   unique axis) and by what the block declares (site multiplicities, Wyckoff letters, ``_cell_formula_units_Z`` x
   ``_chemical_formula_sum``); a short monoclinic symbol means unique axis *b* and a bare number the standard
   setting, as in the International Tables, but two origin choices that give different structures and that nothing
   in the block tells apart are an error. A block that declares no symmetry at all is taken as P 1.
4. **Declared versus parsed.** The symmetry expansion of every site must give the declared
   ``_atom_site_symmetry_multiplicity``, the multiplicity of ``_atom_site_Wyckoff_symbol`` and
   ``_atom_site_site_symmetry_order``; the parsed composition must equal ``_cell_formula_units_Z`` x
   ``_chemical_formula_sum`` (within ``COMPOSITION_TOLERANCE``), or be proportional to the formula if Z is not given.
   Hydrogen atoms listed only in the formula, or as ``_atom_site_attached_hydrogens``, are an error, not a silently
   hydrogen-free structure.
5. **Occupancy.** Sites with occupancy 0 hold no atom and are dropped before anything else (pymatgen and ASE disagree
   on them), as are dummy sites (``_atom_site_calc_flag dum``); a missing or unknown occupancy is 1. Rows at the same
   position (or at symmetry-equivalent positions, within ``SITE_TOLERANCE`` in fractional coordinates) are one site:
   several elements make an alloy kind, a total below 1 a vacancy kind. A total between 1 and
   1 + ``OCCUPANCY_TOLERANCE`` is rescaled to 1, a total within ``OCCUPANCY_SNAP`` below 1 (three ``0.333`` rows)
   is taken as 1, anything larger is an error, and so is a negative occupancy. Two sites closer than
   ``MIN_DISTANCE`` whose occupancies sum to more than 1 overlap and are an error (split positions of a disordered
   atom, each half occupied, are fine).
6. **Cross-check.** The validated block (cell, resolved operations, element symbols, coordinates, occupancies) is
   handed to pymatgen's ``CifParser``, which builds the structure; the result must agree site by site with the
   expansion done here, or the block is refused. The cell is then oriented as in ASE and VESTA (*a* along *x*, *b*
   in the *xy* plane), which is also the frame of Cartesian coordinates (``_atom_site_Cartn_*``) when the block gives
   no ``_atom_sites_fract_tran_matrix``. The ``StructureData`` gets the ``kinds`` and ``sites`` attributes that
   ``StructureData(pymatgen=...)`` would write, in one pass (``set_pymatgen`` is quadratic in the number of kinds).

Kind names
----------
A site takes the label of its CIF row as kind name (``Fe1``, ``O1``), so symmetry-inequivalent sites with distinct
labels stay distinct kinds. Labels are sanitised: characters other than letters, digits and ``_`` become ``_``
(``Fe(1)`` → ``Fe_1``), and a label that does not then start with a letter is not used. A label is not used where
it would be inconsistent: when the same name would cover sites with different elements or occupancies, when two
different labels sanitise to the same name, or for a site merged from rows with different labels (a site-split
alloy). Those sites get AiiDA's automatic kind name (``AuCu``, ``FeX``), made unique with a number if needed.
As a consequence a molecular crystal whose rows all have their own label (``C1``, ``C2``, ``H1A``, ...) has one kind
per atom of the asymmetric unit.

Element symbols come from ``_atom_site_type_symbol`` (``Fe3+`` → Fe; anything beyond the element and a charge, as in
``Wat`` or ``OH-``, is an error), else from the label (``Fe1a`` → Fe); an all-capitals label whose first two letters
could be either one or two elements (``CA1``: C or Ca) is an error.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache, lru_cache
from typing import TYPE_CHECKING

import numpy as np
from aiida import orm

from aiida_structstore.exceptions import ParseError

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = ('CifBlock', 'parse_cif')

OCCUPANCY_TOLERANCE = 0.02
"""A site whose occupancies sum to at most 1 + this is accepted (and rescaled to 1); above, it is an error."""
OCCUPANCY_SNAP = 0.002
"""A site whose occupancies sum to within this below 1 is taken as fully occupied (rounding, e.g. 3 x 0.333)."""
SITE_TOLERANCE = 1e-3
"""Fractional distance (per axis) below which two positions are the same site, as ASE's ``symprec``."""
COORDINATE_SNAP = 5e-4
"""Fractional coordinates within this of a multiple of 1/12 (1/3, 1/6, ...) are set to it (``0.3333`` → 1/3)."""
MIN_DISTANCE = 0.5
"""Ångström; two sites closer than this whose occupancies sum to more than 1 overlap."""
COMPOSITION_TOLERANCE = 0.02
"""Relative tolerance of the comparison of the parsed composition with the declared formula."""
METRIC_TOLERANCE = 0.02
"""Relative tolerance of the check that the symmetry operations leave the cell metric unchanged."""

_TINY = 1e-6


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


def parse_cif(text: str, *, filename: str | None = None) -> list[CifBlock]:
    """Parse CIF text into one :class:`CifBlock` per data block that contains a structure, in file order.

    :param text: the content of the CIF file.
    :param filename: used in error messages only.
    :raises ParseError: for every problem (see the module docstring for the rules).
    """
    where = _Where(filename)
    if not isinstance(text, str):
        raise where.error(f'expected the CIF content as str, got {type(text).__name__}')
    if text.startswith('\ufeff'):
        text = text[1:]
    if not text.strip():
        raise where.error('the text is empty')
    control = _CONTROL_CHARS.search(text)
    if control:
        line = text.count('\n', 0, control.start()) + 1
        raise where.error(
            f'contains binary data (control character {control.group()!r} on line {line}); a CIF file is text'
        )

    try:
        tokens = _tokenize(text, where)
        if not any(token.kind == 'data' for token in tokens):
            hint = ' (this looks like a Quantum ESPRESSO pw.x input, not a CIF file)' if _PWX_HINT.search(text) else ''
            raise where.error(f'no data_ block header found: this is not a CIF file{hint}')
        where.block = None
        blocks = _read_blocks(tokens, where)
    except ParseError:
        raise
    except Exception as exc:  # pragma: no cover - the reader raises ParseError itself; this keeps the promise
        raise where.error(f'could not be read: {type(exc).__name__}: {exc}') from exc

    with_sites = [block for block in blocks if block.has_atom_sites()]
    if not with_sites:
        names = ', '.join(repr(block.name) for block in blocks)
        raise where.error(f'no data block contains atom sites (blocks: {names}): there is no structure to read')

    results = []
    for block in with_sites:
        block_where = _Where(filename, block.name)
        try:
            results.append(_BlockParser(block, block_where).parse())
        except ParseError:
            raise
        except Exception as exc:
            raise block_where.error(f'could not be parsed: {type(exc).__name__}: {exc}') from exc

    if len(results) != len(with_sites):  # pragma: no cover - guards the one-structure-per-block rule
        raise where.error(f'{len(with_sites)} data blocks have atom sites but {len(results)} structures were built')
    return results


# --------------------------------------------------------------------------------------------------------------------
# Error context


@dataclass
class _Where:
    filename: str | None
    block: str | None = None

    def error(self, message: str, line: int | None = None) -> ParseError:
        parts = [f'CIF file {self.filename!r}' if self.filename else 'CIF text']
        if self.block is not None:
            parts.append(f'data block {self.block!r}')
        if line is not None:
            parts.append(f'line {line}')
        return ParseError(f'{", ".join(parts)}: {message}')


# --------------------------------------------------------------------------------------------------------------------
# CIF 1.1 syntax

_CONTROL_CHARS = re.compile(r'[\x00-\x08\x0b\x0e-\x1f\x7f]')
_PWX_HINT = re.compile(
    r'^\s*&(control|system|electrons|ions|cell)\b|^\s*(atomic_species|atomic_positions|cell_parameters|k_points)\b',
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # 'data', 'loop', 'global', 'save', 'stop', 'tag' or 'value'
    text: str
    line: int
    quoted: bool = False


def _tokenize(text: str, where: _Where) -> list[_Token]:
    tokens: list[_Token] = []
    lines = text.replace('\r\n', '\n').replace('\r', '\n').split('\n')  # CIF lines end in CR, LF or CR LF only
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith(';'):
            start = index
            body = [line[1:]]
            index += 1
            while index < len(lines) and not lines[index].startswith(';'):
                body.append(lines[index])
                index += 1
            if index == len(lines):
                raise where.error('a text field opened with ";" is never closed', start + 1)
            tokens.append(_Token('value', '\n'.join(body).strip(), start + 1, quoted=True))
            _tokenize_line(lines[index][1:], index + 1, tokens, where)
        else:
            _tokenize_line(line, index + 1, tokens, where)
        index += 1
    return tokens


def _tokenize_line(line: str, lineno: int, tokens: list[_Token], where: _Where) -> None:
    pos, end_of_line = 0, len(line)
    while pos < end_of_line:
        char = line[pos]
        if char.isspace():
            pos += 1
            continue
        if char == '#':
            return
        if char in '\'"':
            end = pos + 1
            while True:
                end = line.find(char, end)
                if end < 0:
                    raise where.error(f'the quoted string {line[pos : pos + 40]!r} is not closed on its line', lineno)
                if end + 1 == end_of_line or line[end + 1].isspace():
                    break
                end += 1
            tokens.append(_Token('value', line[pos + 1 : end], lineno, quoted=True))
            pos = end + 1
            continue
        end = pos
        while end < end_of_line and not line[end].isspace():
            end += 1
        word = line[pos:end]
        pos = end
        lower = word.lower()
        if lower.startswith('data_'):
            where.block = word[5:]
            tokens.append(_Token('data', word[5:], lineno))
        elif lower == 'loop_':
            tokens.append(_Token('loop', word, lineno))
        elif lower == 'global_':
            tokens.append(_Token('global', word, lineno))
        elif lower.startswith('save_'):
            tokens.append(_Token('save', word[5:], lineno))
        elif lower == 'stop_':
            tokens.append(_Token('stop', word, lineno))
        elif word.startswith('_'):
            tokens.append(_Token('tag', word, lineno))
        else:
            tokens.append(_Token('value', word, lineno))


def _norm_tag(tag: str) -> str:
    """Case-fold a data name and read a DDLm name (``_atom_site.fract_x``) as its DDL1 form."""
    return tag.lower().replace('.', '_')


def _token_value(token: _Token) -> str | None:
    """The value of a token; ``None`` for the unquoted CIF null values ``?`` (unknown) and ``.`` (inapplicable)."""
    if not token.quoted and token.text in ('?', '.'):
        return None
    return token.text


@dataclass
class _Item:
    tag: str
    values: list[str | None]
    line: int
    in_loop: bool


@dataclass
class _RawBlock:
    name: str
    line: int
    items: dict[str, _Item] = field(default_factory=dict)

    def add(self, item: _Item, where: _Where) -> None:
        key = _norm_tag(item.tag)
        existing = self.items.get(key)
        if existing is not None:
            if existing.values == item.values:
                return  # the same value given twice (e.g. under its DDL1 and DDLm name)
            raise where.error(f'data name {item.tag} appears twice (also line {existing.line})', item.line)
        self.items[key] = item

    def has_atom_sites(self) -> bool:
        return any(key in self.items for key in _ATOM_SITE_MARKERS)


def _describe(token: _Token) -> str:
    if token.kind == 'data':
        return f'data_{token.text}'
    if token.kind == 'value':
        return f'value {token.text[:40]!r}'
    return token.text if token.kind == 'tag' else f'{token.kind}_'


def _read_blocks(tokens: list[_Token], where: _Where) -> list[_RawBlock]:
    blocks: list[_RawBlock] = []
    block: _RawBlock | None = None
    count = len(tokens)
    index = 0
    while index < count:
        token = tokens[index]
        if token.kind == 'data':
            block = _RawBlock(token.text, token.line)
            where.block = token.text
            blocks.append(block)
            index += 1
            continue
        if token.kind == 'global':
            block = _RawBlock('global_', token.line)  # read for syntax, never used
            where.block = 'global_'
            index += 1
            continue
        if block is None:
            raise where.error(f'{_describe(token)} before the first data_ block header', token.line)
        if token.kind == 'save':
            if not token.text:
                raise where.error('save_ without an open save frame', token.line)
            end = index + 1
            while end < count and not (tokens[end].kind == 'save' and not tokens[end].text):
                if tokens[end].kind in ('data', 'global'):
                    break
                end += 1
            if end == count or tokens[end].kind != 'save':
                raise where.error(f'save frame save_{token.text} is never closed', token.line)
            index = end + 1
            continue
        if token.kind == 'stop':
            raise where.error('stop_ (nested loops) is not supported in CIF', token.line)
        if token.kind == 'tag':
            if index + 1 >= count or tokens[index + 1].kind != 'value':
                raise where.error(f'data name {token.text} has no value', token.line)
            value = tokens[index + 1]
            end = index + 2
            parts = [value.text]
            if not value.quoted:
                # Leniency as in ASE: an unquoted value followed by more unquoted words on its line is taken whole.
                while (end < count and tokens[end].kind == 'value' and tokens[end].line == value.line) and not tokens[
                    end
                ].quoted:
                    parts.append(tokens[end].text)
                    end += 1
            merged = _Token('value', ' '.join(parts), value.line, value.quoted)
            block.add(_Item(token.text, [_token_value(merged)], token.line, in_loop=False), where)
            index = end
            continue
        if token.kind == 'loop':
            tags: list[_Token] = []
            end = index + 1
            while end < count and tokens[end].kind == 'tag':
                tags.append(tokens[end])
                end += 1
            if not tags:
                raise where.error('loop_ without data names', token.line)
            values: list[_Token] = []
            while end < count and tokens[end].kind == 'value':
                values.append(tokens[end])
                end += 1
            if len(values) % len(tags):
                names = ', '.join(tag.text for tag in tags[:6]) + (', ...' if len(tags) > 6 else '')
                raise where.error(
                    f'the loop of {names} has {len(values)} values, not a multiple of its {len(tags)} columns '
                    '(truncated or broken loop)',
                    token.line,
                )
            for column, tag in enumerate(tags):
                column_values = [_token_value(value) for value in values[column :: len(tags)]]
                block.add(_Item(tag.text, column_values, tag.line, in_loop=True), where)
            index = end
            continue
        raise where.error(f'{_describe(token)} is not preceded by a data name', token.line)
    return blocks


_NUMBER = re.compile(r'[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?')
_UNCERTAINTY = re.compile(r'\(\d*\)?')


def _to_float(text: str) -> float | None:
    """A CIF number (``5.431(2)``: the standard uncertainty is dropped); ``None`` if it is not one."""
    text = text.strip()
    match = _NUMBER.match(text)
    if not match:
        return None
    rest = text[match.end() :]
    if rest and not _UNCERTAINTY.fullmatch(rest):
        return None
    value = float(match.group())
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------------------------------
# Elements and formulas

_ATOM_SITE_MARKERS = (
    '_atom_site_fract_x',
    '_atom_site_fract_y',
    '_atom_site_fract_z',
    '_atom_site_cartn_x',
    '_atom_site_cartn_y',
    '_atom_site_cartn_z',
    '_atom_site_label',
    '_atom_site_type_symbol',
)
_ATOM_SITE_COLUMNS = (
    *_ATOM_SITE_MARKERS,
    '_atom_site_occupancy',
    '_atom_site_symmetry_multiplicity',
    '_atom_site_site_symmetry_multiplicity',  # the DDLm name, _atom_site.site_symmetry_multiplicity
    '_atom_site_wyckoff_symbol',
    '_atom_site_site_symmetry_order',
    '_atom_site_calc_flag',
    '_atom_site_attached_hydrogens',
)
_NOT_ELEMENTS = ('wat', 'dum', 'du', 'q', 'qq', 'xx', 'lp')


def _is_element(symbol: str) -> bool:
    from aiida.orm.nodes.data.structure import is_valid_symbol

    return symbol != 'X' and is_valid_symbol(symbol)


def _element_symbol(text: str, *, type_symbol: bool) -> str | None:
    """The element of an ``_atom_site_type_symbol`` (strict) or of an ``_atom_site_label`` (its first letters)."""
    text = text.strip()
    match = re.match(r'[A-Za-z]+', text)
    if not match or match.group().lower() in _NOT_ELEMENTS:
        return None
    letters = match.group()
    if type_symbol:
        # An element symbol, in any case, followed at most by a charge: 'Fe', 'FE3+', 'O2-'; not 'Wat' or 'OH-'.
        symbol = letters.capitalize()
        if not _is_element(symbol) or not re.fullmatch(r'\d*(?:[+-]\d*)?', text[len(letters) :]):
            return None
        return symbol
    if letters[0].isupper() and (len(letters) == 1 or letters[1].islower()):
        # Proper case: 'Fe1', 'O1a', 'Ca', 'Ow1' (O).
        two = letters[:2] if len(letters) >= 2 else None
        return two if two and _is_element(two) else letters[0] if _is_element(letters[0]) else None
    # All capitals or lower case ('CA1', 'fe1'): refuse when both readings are elements.
    two = letters[:2].capitalize() if len(letters) >= 2 else None
    one = letters[0].upper()
    two_ok, one_ok = bool(two and _is_element(two)), _is_element(one)
    if two_ok and one_ok:
        raise _AmbiguousError(f'{one} or {two}')
    return two if two_ok else one if one_ok else None


class _AmbiguousError(Exception):
    pass


_FORMULA_TOKEN = re.compile(r'([A-Z][a-z]?)(\d+\.?\d*|\.\d+)?')


def _parse_formula(text: str) -> dict[str, float] | None:
    composition: dict[str, float] = defaultdict(float)
    for word in text.split():
        pos = 0
        while pos < len(word):
            match = _FORMULA_TOKEN.match(word, pos)
            if not match or not _is_element(match.group(1)):
                return None
            composition[match.group(1)] += float(match.group(2)) if match.group(2) else 1.0
            pos = match.end()
    return dict(composition) if composition else None


def _format_formula(amounts: dict[str, float], separator: str = '') -> str:
    parts = []
    for symbol in sorted(amounts):
        amount = amounts[symbol]
        if abs(amount - 1) < _TINY:
            parts.append(symbol)
        elif abs(amount - round(amount)) < _TINY:
            parts.append(f'{symbol}{round(amount)}')
        else:
            parts.append(f'{symbol}{amount:.4g}')
    return separator.join(parts)


def _reduced_formula(amounts: dict[str, float], formula_units: float | None) -> str:
    if all(round(value) >= 1 and abs(value - round(value)) < 1e-4 for value in amounts.values()):
        divisor = 0
        for value in amounts.values():
            divisor = math.gcd(divisor, round(value))
        return _format_formula({symbol: round(value) / divisor for symbol, value in amounts.items()})
    if formula_units:
        return _format_formula({symbol: value / formula_units for symbol, value in amounts.items()})
    return _format_formula(amounts)


# --------------------------------------------------------------------------------------------------------------------
# Symmetry


@dataclass
class _Symmetry:
    rotations: np.ndarray  # (n, 3, 3) integers, acting on fractional column vectors
    translations: np.ndarray  # (n, 3) in [0, 1)
    description: str
    hall: int | None = None
    choice: str = ''

    def __len__(self) -> int:
        return len(self.rotations)


_TERM = re.compile(r'([+-]?)(?:(\d+\.?\d*|\.\d+)(?:/(\d+\.?\d*))?)?\*?([xyz])?')


def _parse_operation(text: str, components: int = 3) -> tuple[np.ndarray, np.ndarray] | None:
    """Strictly parse a Jones-faithful operation (``'-x+1/2, y, z'``); ``None`` if it is not a valid one."""
    parts = text.replace(' ', '').replace('\t', '').lower().split(',')
    if len(parts) != components:
        return None
    if components == 4 and parts[3] not in ('1', '+1', '-1'):
        return None
    rotation = np.zeros((3, 3))
    translation = np.zeros(3)
    for row, part in enumerate(parts[:3]):
        if not part:
            return None
        pos = 0
        while pos < len(part):
            match = _TERM.match(part, pos)
            if not match or match.end() == pos:
                return None
            sign, number, denominator, variable = match.groups()
            if (number is None and variable is None) or (pos > 0 and not sign):
                return None
            value = float(number) if number is not None else 1.0
            if denominator is not None:
                if float(denominator) == 0:
                    return None
                value /= float(denominator)
            if sign == '-':
                value = -value
            if variable is not None:
                rotation[row, 'xyz'.index(variable)] += value
            else:
                translation[row] += value
            pos = match.end()
    if not np.allclose(rotation, np.round(rotation)) or np.abs(rotation).max() > 8:
        return None
    rotation = np.round(rotation).astype(int)
    if round(abs(np.linalg.det(rotation))) != 1:
        return None
    return rotation, _snap_translations(translation)


def _snap_translations(translations: np.ndarray) -> np.ndarray:
    translations = np.mod(translations, 1.0)
    snapped = np.round(translations * 24) / 24
    translations = np.where(np.abs(translations - snapped) < 1e-3, snapped, translations)
    return np.mod(translations, 1.0)


def _format_operation(rotation: np.ndarray, translation: np.ndarray) -> str:
    rows = []
    for row in range(3):
        terms = []
        for column, variable in enumerate('xyz'):
            coefficient = int(rotation[row, column])
            if coefficient:
                size = '' if abs(coefficient) == 1 else str(abs(coefficient))
                terms.append(f'{"-" if coefficient < 0 else "+"}{size}{variable}')
        value = float(translation[row])
        if abs(value) > 1e-12:
            fraction = Fraction(value).limit_denominator(96)
            if abs(float(fraction) - value) < 1e-10:
                terms.append(f'+{fraction}')
            else:
                terms.append(f'+{value:.12f}'.rstrip('0'))
        text = ''.join(terms) or '0'
        rows.append(text[1:] if text.startswith('+') else text)
    return ', '.join(rows)


def _rotation_codes(rotations: np.ndarray) -> np.ndarray:
    weights = (17 ** np.arange(9, dtype=np.int64)).reshape(3, 3)
    return np.sum((rotations.astype(np.int64) + 8) * weights, axis=(-2, -1))


def _wrap(delta: np.ndarray) -> np.ndarray:
    return delta - np.round(delta)


def _unique_operations(rotations: np.ndarray, translations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes = _rotation_codes(rotations)
    same = (codes[:, None] == codes[None, :]) & np.all(
        np.abs(_wrap(translations[:, None, :] - translations[None, :, :])) < 1e-3, axis=-1
    )
    keep = [index for index in range(len(rotations)) if not same[index, :index].any()]
    return rotations[keep], translations[keep]


def _group_problem(rotations: np.ndarray, translations: np.ndarray) -> str | None:
    """``None`` if the operations are closed under composition (modulo lattice translations), else what is missing."""
    codes = _rotation_codes(rotations)
    unique_codes, inverse = np.unique(codes, return_inverse=True)
    width = int(np.bincount(inverse).max())
    by_rotation = np.full((len(unique_codes), width, 3), np.nan)  # the translations that go with each rotation
    filled = np.zeros(len(unique_codes), dtype=int)
    for index, group in enumerate(inverse):
        by_rotation[group, filled[group]] = translations[index]
        filled[group] += 1

    # Product of operation i after operation j: (R_i R_j, R_i t_j + t_i), for all pairs at once.
    product_rotations = np.einsum('iab,jbc->ijac', rotations, rotations)
    product_translations = np.einsum('iab,jb->ija', rotations, translations) + translations[:, None, :]
    product_codes = _rotation_codes(product_rotations)
    position = np.clip(np.searchsorted(unique_codes, product_codes), 0, len(unique_codes) - 1)
    known_rotation = unique_codes[position] == product_codes
    with np.errstate(invalid='ignore'):
        delta = _wrap(by_rotation[position] - product_translations[:, :, None, :])
        found = known_rotation & np.any(np.all(np.abs(delta) < 2e-3, axis=-1), axis=-1)
    if found.all():
        return None
    first, second = (int(value) for value in np.argwhere(~found)[0])
    product = _format_operation(product_rotations[first, second], np.mod(product_translations[first, second], 1.0))
    first_text = _format_operation(rotations[first], translations[first])
    second_text = _format_operation(rotations[second], translations[second])
    return (
        f'the symmetry operations do not form a group: ({first_text}) after ({second_text}) gives '
        f'({product}), which is not in the list'
    )


def _metric_deviation(rotations: np.ndarray, metric: np.ndarray) -> float:
    """Largest relative change of the metric tensor under the rotations (0 if they are symmetries of the cell)."""
    transformed = np.einsum('nji,jk,nkl->nil', rotations, metric, rotations)
    return float(np.max(np.abs(transformed - metric)) / np.max(np.abs(metric)))


@lru_cache(maxsize=1)
def _spacegroup_tables() -> tuple[dict[str, frozenset[int]], dict[str, int], dict[int, tuple[int, ...]]]:
    """Index spglib's 530 Hall settings by normalised Hermann-Mauguin symbol, Hall symbol and number."""
    import spglib

    by_symbol: dict[str, set[int]] = defaultdict(set)
    by_hall: dict[str, int] = {}
    by_number: dict[int, list[int]] = defaultdict(list)
    for hall in range(1, 531):
        with _quiet_spglib():
            sg_type = spglib.get_spacegroup_type(hall)
        by_number[sg_type.number].append(hall)
        by_hall.setdefault(_norm_hall(sg_type.hall_symbol), hall)
        parts = [part.strip() for part in sg_type.international.split('=')]
        keys = {_norm_hm(sg_type.international_full), *(_norm_hm(part) for part in parts[1:])}
        if len(parts) == 1:
            keys.add(_norm_hm(parts[0]))
        if 3 <= sg_type.number <= 15:  # monoclinic: the short symbol of each setting ('P 1 1 21/a' -> 'P 21/a')
            full = sg_type.international_full.split()
            keys.add(_norm_hm(' '.join([full[0], *(part for part in full[1:] if part != '1')])))
        for key in keys:
            by_symbol[key].add(hall)
    return (
        {key: frozenset(value) for key, value in by_symbol.items()},
        by_hall,
        {key: tuple(value) for key, value in by_number.items()},
    )


@cache
def _hall_setting(hall: int) -> tuple[int, str, str, np.ndarray, np.ndarray]:
    import spglib

    with _quiet_spglib():
        sg_type = spglib.get_spacegroup_type(hall)
        data = spglib.get_symmetry_from_database(hall)
    rotations = np.array(data['rotations'], dtype=int)
    translations = _snap_translations(np.array(data['translations'], dtype=float))
    return sg_type.number, sg_type.international, sg_type.choice, rotations, translations


@contextmanager
def _quiet_spglib() -> Iterator[None]:
    """Silence spglib's per-call ``DeprecationWarning`` about its error handling (not a problem of the input)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        yield


def _norm_hm(symbol: str) -> str:
    symbol = re.sub(r'\((\d)\)', r'\1', symbol)  # old 'P 2(1)/c'
    return re.sub(r'\s+', '', symbol.replace('_', '')).lower()


def _norm_hall(symbol: str) -> str:
    return ' '.join(symbol.strip().lower().split())


_OLD_SYMBOLS = {
    'cmca': 'cmce',
    'cmcb': 'cmce',
    'cmma': 'cmme',
    'cmmb': 'cmme',
    'ccca': 'ccce',
    'cccb': 'ccce',
    'abm2': 'aem2',
    'acm2': 'aem2',
    'aba2': 'aea2',
    'aca2': 'aea2',
}


def _split_hm(symbol: str) -> tuple[str, str | None]:
    """Split a Hermann-Mauguin symbol into the symbol and a setting hint (``'F d -3 m :2'`` -> ('F d -3 m', '2'))."""
    symbol = symbol.strip()
    match = re.fullmatch(r'(.*?)\s*:\s*([A-Za-z0-9-]+)', symbol)
    if match:
        return match.group(1), match.group(2)
    match = re.fullmatch(r'(.*\S)\s+([HRSZhrsz])', symbol)
    if match:
        hint = match.group(2).upper()
        return match.group(1), {'S': '1', 'Z': '2'}.get(hint, hint)
    return symbol, None


def _resolve_hm(symbol: str) -> frozenset[int] | None:
    by_symbol, _, _ = _spacegroup_tables()
    key = _norm_hm(symbol)
    for candidate in (
        key,
        _OLD_SYMBOLS.get(key, key),
        re.sub(r'^([pfi][a-z])3', r'\1-3', key),  # pre-1983 cubic symbols without the bar: 'Fm3m', 'Ia3d'
        re.sub(r'^([pfi])43([mnacd])$', r'\1-43\2', key),  # 'P43m' -> 'P-43m'
    ):
        if candidate in by_symbol:
            return by_symbol[candidate]
    return None


def _split_choice(code: str) -> tuple[str | None, str]:
    """Split a setting code into (origin choice, axes): ``'2ba-c'`` -> ('2', 'ba-c'), ``'abc'`` -> (None, '')."""
    code = code.strip().lower()
    origin = None
    if code[:1] in ('1', '2') and not code[1:2].isdigit():
        origin, code = code[:1], code[1:]
    return origin, '' if code == 'abc' else code


def _choice_matches(choice: str, hint: str) -> bool:
    """Whether spglib's setting ``choice`` fits a setting code of the file (``'2'``, ``'H'``, ``'b1'``, ``'ba-c'``)."""
    origin, axes = _split_choice(choice)
    hint_origin, hint_axes = _split_choice(hint)
    if hint_origin is not None and hint_origin != origin:
        return False
    if hint_origin is not None and not hint_axes:
        return True  # ':2' says the origin and nothing about the axes
    if hint_axes in ('a', 'b', 'c', '-a', '-b', '-c') and axes[:-1] == hint_axes and axes[-1:].isdigit():
        return True  # monoclinic unique axis without cell choice: 'b' fits 'b1'
    return hint_axes == axes


# --------------------------------------------------------------------------------------------------------------------
# Sites


@dataclass
class _Row:
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
class _Expansion:
    frac: np.ndarray  # (N, 3)
    site_rows: list[list[int]]  # indices into the rows of each site
    orbit_sizes: list[int]  # per row
    species: list[dict[str, float]]  # per site, occupancies summed (not rescaled)
    problem: str | None = None

    def rescaled_species(self) -> list[dict[str, float]]:
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


def _expand(rows: list[_Row], symmetry: _Symmetry) -> _Expansion:
    capacity = max(16, len(rows) * len(symmetry))
    positions = np.empty((capacity, 3))
    count = 0
    site_rows: list[list[int]] = []
    orbit_sizes: list[int] = []
    row_sites: list[list[int]] = []
    for index, row in enumerate(rows):
        images = np.mod(symmetry.rotations @ row.frac + symmetry.translations, 1.0)
        close = np.all(np.abs(_wrap(images[:, None, :] - images[None, :, :])) < SITE_TOLERANCE, axis=-1)
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
            match = None
            if count:
                hits = np.nonzero(
                    np.all(np.abs(_wrap(positions[:count] - point)) < SITE_TOLERANCE, axis=-1),
                )[0]
                if len(hits):
                    match = int(hits[0])
            if match is None:
                positions[count] = point
                site_rows.append([index])
                match = count
                count += 1
            elif index not in site_rows[match]:
                site_rows[match].append(index)
            sites.append(match)
        row_sites.append(sites)

    problem = None
    for index, sites in enumerate(row_sites):
        partners = {tuple(site_rows[site]) for site in sites}
        if len(partners) > 1:
            problem = (
                f'{rows[index].name} coincides with other sites at some but not all of its symmetry-equivalent '
                'positions: the coordinates or the symmetry operations are inconsistent'
            )
            break

    species = []
    for members in site_rows:
        amounts: dict[str, float] = defaultdict(float)
        for member in members:
            amounts[rows[member].symbol] += rows[member].occupancy
        species.append(dict(amounts))
    return _Expansion(positions[:count].copy(), site_rows, orbit_sizes, species, problem)


def _same_expansion(first: _Expansion, second: _Expansion) -> bool:
    if len(first.frac) != len(second.frac):
        return False
    for index, point in enumerate(first.frac):
        hits = np.nonzero(np.all(np.abs(_wrap(second.frac - point)) < SITE_TOLERANCE, axis=-1))[0]
        if not any(_same_species(first.species[index], second.species[hit]) for hit in hits):
            return False
    return True


def _same_species(first: dict[str, float], second: dict[str, float], tolerance: float = 1e-6) -> bool:
    return first.keys() == second.keys() and all(abs(first[key] - second[key]) <= tolerance for key in first)


def _snap_coordinate(value: float) -> float:
    snapped = round(value * 12) / 12
    return snapped if abs(value - snapped) < COORDINATE_SNAP else value


def _cell_matrix(cell: tuple[float, ...]) -> np.ndarray:
    """Cell vectors as rows, *a* along *x* and *b* in the *xy* plane (the ASE and VESTA convention)."""
    from pymatgen.core import Lattice

    matrix = Lattice.from_parameters(*cell, vesta=True).matrix
    return np.where(np.abs(matrix) < 1e-12, 0.0, matrix)


# --------------------------------------------------------------------------------------------------------------------
# One data block

_OPERATION_KEYS = ('_space_group_symop_operation_xyz', '_symmetry_equiv_pos_as_xyz')
_MAGNETIC_OPERATION_KEY = '_space_group_symop_magn_operation_xyz'
_MAGNETIC_CENTERING_KEY = '_space_group_symop_magn_centering_xyz'
_HALL_KEYS = ('_space_group_name_hall', '_symmetry_space_group_name_hall')
_HM_KEYS = ('_space_group_name_h-m_alt', '_symmetry_space_group_name_h-m')
_NUMBER_KEYS = ('_space_group_it_number', '_symmetry_int_tables_number')
_CHOICE_KEYS = ('_space_group_it_coordinate_system_code',)
_CELL_KEYS = (
    '_cell_length_a',
    '_cell_length_b',
    '_cell_length_c',
    '_cell_angle_alpha',
    '_cell_angle_beta',
    '_cell_angle_gamma',
)
_HARMLESS_WARNINGS = (
    re.compile(r'^Some occupancies \(.*\) sum to > 1'),  # rescaled: totals above the tolerance are refused earlier
    re.compile(r'fractional coordinates rounded to ideal values'),
)


class _BlockParser:
    def __init__(self, block: _RawBlock, where: _Where) -> None:
        self.block = block
        self.where = where
        self.unique_setting_required: str | None = None  # set when a symbol could not be read but a number could

    # -- access ------------------------------------------------------------------------------------------------------

    def error(self, message: str, line: int | None = None) -> ParseError:
        return self.where.error(message, line)

    def single(self, key: str) -> tuple[_Item, str] | None:
        """The item and its one value, or ``None`` if absent or unknown (``?``)."""
        item = self.block.items.get(key)
        if item is None:
            return None
        values = {value for value in item.values if value is not None}
        if not values:
            return None
        if len(values) > 1:
            raise self.error(f'{item.tag} has {len(values)} different values where one is expected', item.line)
        return item, values.pop()

    def number(self, key: str) -> float | None:
        found = self.single(key)
        if found is None:
            return None
        item, value = found
        number = _to_float(value)
        if number is None:
            raise self.error(f'{item.tag} = {value!r} is not a number', item.line)
        return number

    def values(self, key: str) -> list[str]:
        item = self.block.items.get(key)
        return [] if item is None else [value for value in item.values if value is not None]

    # -- the pipeline ------------------------------------------------------------------------------------------------

    def parse(self) -> CifBlock:
        cell = self.cell()
        rows = self.rows(cell)
        candidates = self.symmetry(cell)
        symmetry, expansion = self.choose(candidates, rows)
        if expansion.problem:
            raise self.error(expansion.problem)
        self.check_occupancies(rows, expansion)
        problem = self.declared_problem(rows, expansion, symmetry)
        if problem:
            raise self.error(problem)
        reference = self.pymatgen_structure(cell, symmetry, rows)
        structure = self.final_structure(cell, rows, expansion, reference)
        self.check_overlaps(structure, rows, expansion)
        try:
            node = _structure_data(structure)
        except Exception as exc:
            raise self.error(f'AiiDA refused the structure: {exc}') from exc
        formula_units = self.number('_cell_formula_units_z')
        return CifBlock(self.block.name, node, _reduced_formula(expansion.composition(), formula_units))

    def cell(self) -> tuple[float, ...]:
        missing = [key for key in _CELL_KEYS if self.single(key) is None]
        if missing:
            raise self.error(f'missing cell parameter(s): {", ".join(missing)}')
        values = tuple(self.number(key) for key in _CELL_KEYS)
        a, b, c, alpha, beta, gamma = values  # type: ignore[misc]
        for key, value in zip(_CELL_KEYS[:3], (a, b, c), strict=True):
            if value <= 0:
                raise self.error(f'{key} = {value:g} must be positive')
        for key, value in zip(_CELL_KEYS[3:], (alpha, beta, gamma), strict=True):
            if not 0 < value < 180:
                raise self.error(f'{key} = {value:g} must be between 0 and 180 degrees')
        cosines = [math.cos(math.radians(angle)) for angle in (alpha, beta, gamma)]
        factor = 1 - sum(x * x for x in cosines) + 2 * cosines[0] * cosines[1] * cosines[2]
        if factor < 1e-8:
            raise self.error(
                f'the cell (a={a:g}, b={b:g}, c={c:g}, alpha={alpha:g}, beta={beta:g}, gamma={gamma:g}) '
                'has zero volume: the angles are impossible'
            )
        return values  # type: ignore[return-value]

    def rows(self, cell: tuple[float, ...]) -> list[_Row]:
        items = self.block.items
        present = {key: items[key] for key in _ATOM_SITE_COLUMNS if key in items}
        lengths = {len(item.values) for item in present.values()}
        if len(lengths) > 1:
            summary = ', '.join(f'{item.tag} ({len(item.values)})' for item in present.values())
            raise self.error(f'the atom-site data names have different numbers of values: {summary}')
        count = lengths.pop()
        if count == 0:
            raise self.error('the atom-site loop has no rows')

        fract = [key in items for key in _ATOM_SITE_MARKERS[:3]]
        cartesian = [key in items for key in _ATOM_SITE_MARKERS[3:6]]
        if all(fract):
            coordinate_keys, to_fractional = _ATOM_SITE_MARKERS[:3], None
        elif all(cartesian):
            coordinate_keys, to_fractional = _ATOM_SITE_MARKERS[3:6], self.cartesian_transform(cell)
        else:
            raise self.error(
                'the atom sites have no complete coordinates: need _atom_site_fract_x/y/z or _atom_site_Cartn_x/y/z'
            )
        if '_atom_site_label' not in items and '_atom_site_type_symbol' not in items:
            raise self.error('the atom sites have neither _atom_site_type_symbol nor _atom_site_label')

        def column(key: str) -> list[str | None]:
            return items[key].values if key in items else [None] * count

        labels = column('_atom_site_label')
        types = column('_atom_site_type_symbol')
        occupancies = column('_atom_site_occupancy')
        calc_flags = column('_atom_site_calc_flag')
        hydrogens = column('_atom_site_attached_hydrogens')
        coordinates = [column(key) for key in coordinate_keys]

        rows = []
        for index in range(count):
            label = labels[index]
            name = f'site {label}' if label else f'atom-site row {index + 1}'
            if (calc_flags[index] or '').lower() == 'dum':
                continue  # a dummy site, not an atom
            occupancy = 1.0
            if occupancies[index] is not None:
                occupancy = _to_float(occupancies[index])  # type: ignore[assignment]
                if occupancy is None:
                    raise self.error(f'{name}: occupancy {occupancies[index]!r} is not a number')
            if occupancy < 0:
                raise self.error(f'{name}: occupancy {occupancy:g} is negative')
            if occupancy > 1 + OCCUPANCY_TOLERANCE:
                raise self.error(f'{name}: occupancy {occupancy:g} is larger than 1')
            if occupancy <= _TINY:
                continue  # occupancy 0: no atom
            if hydrogens[index] is not None:
                attached = _to_float(hydrogens[index])  # type: ignore[arg-type]
                if attached is None:
                    raise self.error(f'{name}: _atom_site_attached_hydrogens {hydrogens[index]!r} is not a number')
                if attached > 0:
                    raise self.error(
                        f'{name} has {attached:g} attached hydrogen atom(s) whose positions the file does not give'
                    )

            symbol_text, from_type = (types[index], True) if types[index] is not None else (label, False)
            if symbol_text is None:
                raise self.error(f'{name} has neither a type symbol nor a label to tell its element')
            try:
                symbol = _element_symbol(symbol_text, type_symbol=from_type)
            except _AmbiguousError as exc:
                raise self.error(
                    f'{name}: the label {symbol_text!r} could mean {exc}; give _atom_site_type_symbol'
                ) from None
            if symbol is None:
                what = '_atom_site_type_symbol' if from_type else 'label'
                extra = ' (deuterium/tritium is not supported)' if symbol_text.strip()[:1] in 'DT' else ''
                raise self.error(f'{name}: cannot tell the element from its {what} {symbol_text!r}{extra}')

            values = []
            for key, values_column in zip(coordinate_keys, coordinates, strict=True):
                raw = values_column[index]
                if raw is None:
                    raise self.error(f'{name}: {items[key].tag} is unknown (?)')
                value = _to_float(raw)
                if value is None:
                    raise self.error(f'{name}: {items[key].tag} = {raw!r} is not a number')
                values.append(value)
            frac = np.array(values)
            if to_fractional is not None:
                frac = to_fractional(frac)
            frac = np.array([_snap_coordinate(value) for value in frac])

            rows.append(
                _Row(
                    number=index + 1,
                    label=label,
                    symbol=symbol,
                    frac=frac,
                    occupancy=occupancy,
                    multiplicity=self.integer(
                        column('_atom_site_symmetry_multiplicity')[index]
                        or column('_atom_site_site_symmetry_multiplicity')[index],
                        name,
                    ),
                    wyckoff_multiplicity=self.wyckoff_multiplicity(column('_atom_site_wyckoff_symbol')[index]),
                    site_symmetry_order=self.integer(column('_atom_site_site_symmetry_order')[index], name),
                )
            )
        if not rows:
            raise self.error('no atoms: every atom site has occupancy 0 (or is a dummy site)')
        return rows

    def integer(self, value: str | None, name: str) -> int | None:
        if value is None:
            return None
        number = _to_float(value)
        if number is None or number != int(number) or number < 1:
            raise self.error(f'{name}: {value!r} is not a positive integer')
        return int(number)

    @staticmethod
    def wyckoff_multiplicity(value: str | None) -> int | None:
        match = re.match(r'\s*(\d+)', value or '')
        return int(match.group(1)) if match else None

    def cartesian_transform(self, cell: tuple[float, ...]):
        keys = [f'_atom_sites_fract_tran_matrix_{i}{j}' for i in (1, 2, 3) for j in (1, 2, 3)]
        given = [self.number(key) for key in keys]
        if all(value is None for value in given):
            inverse = np.linalg.inv(_cell_matrix(cell))
            return lambda cartesian: cartesian @ inverse
        if any(value is None for value in given):
            raise self.error('_atom_sites_fract_tran_matrix_11 ... _33 is incomplete')
        matrix = np.array(given, dtype=float).reshape(3, 3)
        vector = np.array([self.number(f'_atom_sites_fract_tran_vector_{i}') or 0.0 for i in (1, 2, 3)])
        return lambda cartesian: matrix @ cartesian + vector

    # -- symmetry ----------------------------------------------------------------------------------------------------

    def explicit_operations(self) -> tuple[np.ndarray, np.ndarray, str] | None:
        sources = []
        for key in _OPERATION_KEYS:
            if self.values(key):
                sources.append((key, self.parse_operations(key, 3)))
        if sources:
            (key, (rotations, translations)), *others = sources
            for other_key, (other_rotations, other_translations) in others:
                if not _same_operation_sets(rotations, translations, other_rotations, other_translations):
                    raise self.error(
                        f'{self.block.items[key].tag} and {self.block.items[other_key].tag} list different operations'
                    )
            return rotations, translations, self.block.items[key].tag
        if self.values(_MAGNETIC_OPERATION_KEY):
            # magCIF: the operations without their time reversal, combined with every centring translation.
            rotations, translations = self.parse_operations(_MAGNETIC_OPERATION_KEY, 4)
            if self.values(_MAGNETIC_CENTERING_KEY):
                center_rotations, center_translations = self.parse_operations(_MAGNETIC_CENTERING_KEY, 4)
                if any(not np.array_equal(rotation, np.eye(3, dtype=int)) for rotation in center_rotations):
                    item = self.block.items[_MAGNETIC_CENTERING_KEY]
                    raise self.error(f'{item.tag} lists operations that are not pure translations', item.line)
                rotations = np.concatenate([rotations for _ in center_translations])
                translations = _snap_translations(
                    np.concatenate([translations + shift for shift in center_translations])
                )
                rotations, translations = _unique_operations(rotations, translations)
            return rotations, translations, self.block.items[_MAGNETIC_OPERATION_KEY].tag
        return None

    def parse_operations(self, key: str, components: int) -> tuple[np.ndarray, np.ndarray]:
        item = self.block.items[key]
        rotations, translations = [], []
        for text in self.values(key):
            parsed = _parse_operation(text, components)
            if parsed is None:
                raise self.error(f'{item.tag}: cannot read the symmetry operation {text!r}', item.line)
            rotations.append(parsed[0])
            translations.append(parsed[1])
        return _unique_operations(np.array(rotations), np.array(translations))

    def symmetry(self, cell: tuple[float, ...]) -> list[_Symmetry]:
        _, by_hall, by_number = _spacegroup_tables()
        metric = _cell_matrix(cell) @ _cell_matrix(cell).T

        declared: list[tuple[str, str, frozenset[int] | None]] = []  # (data name, value, settings or None)
        hints: list[tuple[str, str]] = []
        for key in _HALL_KEYS:
            found = self.single(key)
            if found:
                declared.append((found[0].tag, found[1], _hall_set(by_hall, found[1])))
        for key in _HM_KEYS:
            found = self.single(key)
            if found:
                symbol, hint = _split_hm(found[1])
                declared.append((found[0].tag, found[1], _resolve_hm(symbol)))
                if hint:
                    hints.append((found[0].tag, hint))
        for key in _NUMBER_KEYS:
            found = self.single(key)
            if found:
                value = _to_float(found[1])
                if value is None or value != int(value) or not 1 <= value <= 230:
                    raise self.error(f'{found[0].tag} = {found[1]!r} is not a space-group number (1-230)')
                declared.append((found[0].tag, found[1], frozenset(by_number[int(value)])))
        for key in _CHOICE_KEYS:
            found = self.single(key)
            if found:
                hints.append((found[0].tag, found[1].strip()))

        explicit = self.explicit_operations()
        if explicit is not None:
            rotations, translations, tag = explicit
            problem = _group_problem(rotations, translations)
            if problem:
                raise self.error(f'{tag}: {problem}')
            deviation = _metric_deviation(rotations, metric)
            if deviation > METRIC_TOLERANCE:
                raise self.error(
                    f'{tag}: the symmetry operations are not compatible with the cell parameters '
                    f'(they change the metric by {deviation:.1%})'
                )
            self.check_operations_match_declaration(rotations, translations, declared, tag)
            return [_Symmetry(rotations, translations, f'{len(rotations)} operations of {tag}')]

        if not declared:
            rotations, translations = np.eye(3, dtype=int)[None], np.zeros((1, 3))
            return [_Symmetry(rotations, translations, 'no symmetry given: P 1')]

        for tag, value, settings in declared:
            if settings is None and tag.lower().replace('.', '_') in _HALL_KEYS:
                raise self.error(
                    f'cannot interpret the Hall symbol {tag} {value!r} and no symmetry operations are given'
                )
        resolved = [settings for _, _, settings in declared if settings is not None]
        unresolved = [(tag, value) for tag, value, settings in declared if settings is None]
        if not resolved:
            tag, value = unresolved[0]
            raise self.error(
                f'cannot interpret the space group {tag} {value!r} and the block gives no symmetry operations '
                '(a CIF reader would silently fall back to P 1)'
            )
        settings = frozenset.intersection(*resolved)
        if not settings:
            summary = '; '.join(
                f'{tag} {value!r} is No. {_hall_setting(min(found))[0]}'
                for tag, value, found in declared
                if found is not None
            )
            raise self.error(f'the space-group declarations disagree: {summary}')
        for tag, hint in hints:
            matching = frozenset(hall for hall in settings if _choice_matches(_hall_setting(hall)[2], hint))
            if not matching and _split_choice(hint) == (hint.strip()[:1], ''):
                if not any(_split_choice(_hall_setting(hall)[2])[0] for hall in settings):
                    continue  # an origin choice (':1') for a group that has only one origin
            if not matching:
                raise self.error(f'{tag}: setting {hint!r} does not exist for this space group')
            settings = matching

        description = ' / '.join(f'{tag} {value!r}' for tag, value, _ in declared)
        candidates = []
        for hall in sorted(settings):
            number, symbol, choice, rotations, translations = _hall_setting(hall)
            text = f'space group {symbol} (No. {number}{", setting " + choice if choice else ""}) from {description}'
            candidates.append(
                (_metric_deviation(rotations, metric), _Symmetry(rotations, translations, text, hall, choice))
            )
        compatible = [candidate for deviation, candidate in candidates if deviation <= METRIC_TOLERANCE]
        if not compatible:
            raise self.error(f'the cell parameters are not compatible with {candidates[0][1].description}')
        strict = [candidate for deviation, candidate in candidates if deviation <= 1e-3]
        result = strict or compatible
        if unresolved:
            # The symbol could not be read: only a number with one setting (for this cell) pins the operations down.
            self.unique_setting_required = ', '.join(f'{tag} {value!r}' for tag, value in unresolved)
        return result

    def check_operations_match_declaration(self, rotations, translations, declared, tag) -> None:
        numbers = {
            _hall_setting(min(settings))[0]: f'{name} {value!r}'
            for name, value, settings in declared
            if settings is not None
        }
        if not numbers:
            return
        if len(numbers) > 1:
            raise self.error(
                f'the space-group declarations disagree: {"; ".join(f"{v} is No. {k}" for k, v in numbers.items())}'
            )
        import spglib

        try:
            with _quiet_spglib():
                sg_type = spglib.get_spacegroup_type_from_symmetry(
                    np.ascontiguousarray(rotations, dtype='intc'), np.ascontiguousarray(translations, dtype='double')
                )
        except Exception:  # identification is only a cross-check
            sg_type = None
        if sg_type is None:
            return
        ((number, what),) = numbers.items()
        if sg_type.number != number:
            raise self.error(
                f'{tag}: the symmetry operations are space group {sg_type.international_short} (No. {sg_type.number}) '
                f'but {what} is No. {number}'
            )

    def choose(self, candidates: list[_Symmetry], rows: list[_Row]) -> tuple[_Symmetry, _Expansion]:
        expanded = [(candidate, _expand(rows, candidate)) for candidate in candidates]
        if len(expanded) == 1:
            return expanded[0]
        if self.has_declared_counts(rows):
            consistent = [(c, e) for c, e in expanded if not self.declared_problem(rows, e, c)]
            if not consistent:
                candidate, expansion = expanded[0]
                problem = self.declared_problem(rows, expansion, candidate)
                raise self.error(
                    'no setting of the declared space group agrees with the file; '
                    f'with {candidate.description}: {problem}'
                )
            expanded = consistent
        first = expanded[0]
        if all(_same_expansion(first[1], expansion) for _, expansion in expanded[1:]):
            return first
        settings = ', '.join(candidate.choice or 'standard' for candidate, _ in expanded)
        if self.unique_setting_required:
            raise self.error(
                f'cannot interpret {self.unique_setting_required}, and the declared space-group number has several '
                f'settings that give different structures ({settings}); give the symmetry operations'
            )
        origins = {candidate.choice[:1] for candidate, _ in expanded if candidate.choice[:1] in ('1', '2')}
        if len(origins) > 1:
            raise self.error(
                f'{first[0].description.split(" from ")[0]} has two origin choices that give different structures, '
                'and the block does not say which one its coordinates use (append ":1" or ":2" to the symbol, '
                'give _space_group_IT_coordinate_system_code, site multiplicities, or the symmetry operations)'
            )
        # Conventional reading (International Tables): the lowest-numbered setting is the standard one, and for short
        # monoclinic symbols the unique axis b comes first.
        return min(expanded, key=lambda pair: pair[0].hall or 0)

    # -- declared versus parsed --------------------------------------------------------------------------------------

    def has_declared_counts(self, rows: list[_Row]) -> bool:
        per_row = any(row.multiplicity or row.wyckoff_multiplicity or row.site_symmetry_order for row in rows)
        return per_row or (
            self.single('_chemical_formula_sum') is not None and self.single('_cell_formula_units_z') is not None
        )

    def declared_problem(self, rows: list[_Row], expansion: _Expansion, symmetry: _Symmetry) -> str | None:
        for row, size in zip(rows, expansion.orbit_sizes, strict=True):
            if row.multiplicity and row.multiplicity != size:
                return (
                    f'{row.name}: the symmetry operations give {size} positions but '
                    f'_atom_site_symmetry_multiplicity is {row.multiplicity}'
                )
            if row.wyckoff_multiplicity and row.wyckoff_multiplicity != size:
                return (
                    f'{row.name}: the symmetry operations give {size} positions but the Wyckoff symbol says '
                    f'{row.wyckoff_multiplicity}'
                )
            if row.site_symmetry_order and row.site_symmetry_order * size != len(symmetry):
                return (
                    f'{row.name}: the symmetry operations give {size} positions, inconsistent with '
                    f'_atom_site_site_symmetry_order {row.site_symmetry_order} ({len(symmetry)} operations)'
                )

        found = self.single('_chemical_formula_sum')
        if found is None:
            return None
        item, text = found
        declared = _parse_formula(text)
        if declared is None:
            raise self.error(f'cannot read {item.tag} {text!r}', item.line)
        parsed = expansion.composition()
        formula_units = self.number('_cell_formula_units_z')
        if formula_units is not None and formula_units <= 0:
            raise self.error(f'_cell_formula_units_Z = {formula_units:g} must be positive')
        hint = ''
        missing = sorted(set(declared) - set(parsed))
        if missing:
            reason = 'hydrogen positions are often omitted' if 'H' in missing else 'the file may be incomplete'
            hint = f' (no site holds {", ".join(missing)}; {reason})'
        if formula_units is not None:
            expected = {symbol: value * formula_units for symbol, value in declared.items()}
            for symbol in set(expected) | set(parsed):
                want, got = expected.get(symbol, 0.0), parsed.get(symbol, 0.0)
                if abs(want - got) > COMPOSITION_TOLERANCE * max(want, 1.0):
                    return (
                        f'{item.tag} {text!r} x _cell_formula_units_Z {formula_units:g} = '
                        f'{_format_formula(expected, " ")} but the sites give {_format_formula(parsed, " ")}{hint}'
                    )
            return None
        if set(declared) != set(parsed):
            return f'{item.tag} {text!r} has elements {sorted(declared)} but the sites give {sorted(parsed)}{hint}'
        ratios = [parsed[symbol] / declared[symbol] for symbol in declared]
        if max(ratios) - min(ratios) > COMPOSITION_TOLERANCE * max(ratios):
            return (
                f'{item.tag} {text!r} is not proportional to the composition of the sites, '
                f'{_format_formula(parsed, " ")}{hint}'
            )
        return None

    def check_occupancies(self, rows: list[_Row], expansion: _Expansion) -> None:
        for members, species in zip(expansion.site_rows, expansion.species, strict=True):
            total = sum(species.values())
            if total > 1 + OCCUPANCY_TOLERANCE:
                if len(members) == 1:
                    raise self.error(f'{rows[members[0]].name} has occupancy {total:g}, larger than 1')
                names = ', '.join(rows[member].name for member in members)
                raise self.error(f'{names} are at the same position with total occupancy {total:g}: the atoms overlap')

    # -- building --------------------------------------------------------------------------------------------------

    def normalised_text(self, cell: tuple[float, ...], symmetry: _Symmetry, rows: list[_Row]) -> str:
        """The validated block as CIF text for pymatgen: cell, explicit operations, clean symbols, no labels."""
        lines = ['data_block']
        lines += [f'{key} {value!r}' for key, value in zip(_CELL_KEYS, map(float, cell), strict=True)]
        lines += ['loop_', '_space_group_symop_operation_xyz']
        lines += [
            f"'{_format_operation(r, t)}'" for r, t in zip(symmetry.rotations, symmetry.translations, strict=True)
        ]
        lines += [
            'loop_',
            '_atom_site_label',
            '_atom_site_type_symbol',
            '_atom_site_fract_x',
            '_atom_site_fract_y',
            '_atom_site_fract_z',
            '_atom_site_occupancy',
        ]
        for index, row in enumerate(rows):
            x, y, z = (format(float(value), '.15f') for value in row.frac)
            lines.append(f'r{index} {row.symbol} {x} {y} {z} {float(row.occupancy)!r}')
        return '\n'.join(lines) + '\n'

    def pymatgen_structure(self, cell: tuple[float, ...], symmetry: _Symmetry, rows: list[_Row]) -> Structure:
        from pymatgen.io.cif import CifParser

        text = self.normalised_text(cell, symmetry, rows)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                parser = CifParser.from_str(
                    text,
                    occupancy_tolerance=1 + OCCUPANCY_TOLERANCE,
                    site_tolerance=SITE_TOLERANCE,
                    frac_tolerance=0.0,
                    check_cif=False,
                )
                structures = parser.parse_structures(primitive=False, on_error='raise', check_occu=True)
            except Exception as exc:
                raise self.error(f'pymatgen could not build the structure: {exc}') from exc
        for warning in caught:
            if issubclass(warning.category, DeprecationWarning | PendingDeprecationWarning):
                continue
            message = str(warning.message)
            if not any(pattern.search(message) for pattern in _HARMLESS_WARNINGS):
                raise self.error(f'pymatgen reported a problem while building the structure: {message}')
        if len(structures) != 1:
            raise self.error(f'pymatgen built {len(structures)} structures from one data block')
        return structures[0]

    def final_structure(
        self, cell: tuple[float, ...], rows: list[_Row], expansion: _Expansion, reference: Structure
    ) -> Structure:
        """Cross-check pymatgen's structure site by site, then orient the cell and attach the kind names."""
        from pymatgen.core import Lattice, Structure

        if len(reference) != len(expansion.frac):
            raise self.error(
                f'cross-check failed: pymatgen built {len(reference)} sites but the symmetry expansion gives '
                f'{len(expansion.frac)}'
            )
        reference_frac = np.mod(reference.frac_coords, 1.0)
        used = np.zeros(len(reference), dtype=bool)
        species = expansion.rescaled_species()
        coordinates = []
        for index, point in enumerate(expansion.frac):
            hits = np.nonzero(np.all(np.abs(_wrap(reference_frac - point)) < 2 * SITE_TOLERANCE, axis=-1) & ~used)[0]
            match = None
            for hit in hits:
                theirs = {element.symbol: amount for element, amount in reference[int(hit)].species.items()}
                total = sum(theirs.values())
                if 1.0 - OCCUPANCY_SNAP <= total < 1.0:
                    theirs = {symbol: value / total for symbol, value in theirs.items()}
                if _same_species(theirs, species[index], 1e-5):
                    match = int(hit)
                    break
            if match is None:
                raise self.error(
                    f'cross-check failed: pymatgen has no site matching {_format_formula(species[index], " ")} at '
                    f'{np.round(point, 4).tolist()}'
                )
            used[match] = True
            coordinates.append(reference_frac[match])
        lattice = Lattice(_cell_matrix(cell))
        names = self.kind_names(rows, expansion, species)
        return Structure(lattice, species, coordinates, site_properties={'kind_name': names})

    def check_overlaps(self, structure: Structure, rows: list[_Row], expansion: _Expansion) -> None:
        centers, neighbors, _, distances = structure.get_neighbor_list(MIN_DISTANCE)
        totals = [sum(species.values()) for species in expansion.rescaled_species()]
        for center, neighbor, distance in zip(centers, neighbors, distances, strict=True):
            center, neighbor = int(center), int(neighbor)
            if center > neighbor:
                continue
            if totals[center] + totals[neighbor] > 1 + OCCUPANCY_TOLERANCE:
                first = ', '.join(rows[m].name for m in expansion.site_rows[center])
                second = ', '.join(rows[m].name for m in expansion.site_rows[neighbor])
                if center == neighbor:
                    what = f'{first} is {distance:.3f} Å from its own periodic image'
                elif first == second:
                    what = (
                        f'two symmetry-equivalent positions of {first} are {distance:.3f} Å apart '
                        '(an atom too close to a symmetry element?)'
                    )
                else:
                    what = f'{first} and {second} are {distance:.3f} Å apart'
                raise self.error(
                    f'atoms overlap: {what} (closer than {MIN_DISTANCE} Å with total occupancy '
                    f'{totals[center] + totals[neighbor]:g})'
                )

    def kind_names(self, rows: list[_Row], expansion: _Expansion, species: list[dict[str, float]]) -> list[str]:
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
                symbols = [symbol for symbol, _ in site_key]
                weights = [value for _, value in site_key]
                base = create_automatic_kind_name(symbols, weights)
                candidate, counter = base, 1
                while candidate in used:
                    candidate = f'{base}{counter}'
                    counter += 1
                automatic[site_key] = candidate
                used.add(candidate)
            names[index] = automatic[site_key]
        return [name for name in names if name is not None]


def _structure_data(structure: Structure) -> orm.StructureData:
    """The ``StructureData`` that ``StructureData(pymatgen=structure)`` builds, kind names from ``kind_name``.

    ``set_pymatgen`` adds the atoms one by one and rebuilds every kind for each atom, which is quadratic in the number
    of kinds (minutes for a few thousand uniquely labelled atoms); this writes the same ``kinds`` and ``sites``
    attributes in one go. The tests check that both give identical attributes.
    """
    node = orm.StructureData(cell=structure.lattice.matrix.tolist(), pbc=(True, True, True))
    kinds: dict[str, orm.Kind] = {}
    sites = []
    for site in structure:
        name = site.properties['kind_name']
        kind = orm.Kind(
            symbols=[element.symbol for element in site.species],
            weights=list(site.species.values()),
            name=name,
        )
        known = kinds.setdefault(name, kind)
        if known is not kind and not known.compare_with(kind)[0]:  # pragma: no cover - kind_names() prevents this
            raise ValueError(f'kind {name!r} would stand for two different species')
        sites.append(orm.Site(kind_name=name, position=site.coords.tolist()).get_raw())
    node.base.attributes.set('kinds', [kind.get_raw() for kind in kinds.values()])
    node.base.attributes.set('sites', sites)
    return node


def _sanitise_label(label: str) -> str | None:
    name = re.sub(r'[^A-Za-z0-9_]+', '_', label.strip()).strip('_')
    return name if name and name[0].isalpha() else None


def _hall_set(by_hall: dict[str, int], value: str) -> frozenset[int] | None:
    hall = by_hall.get(_norm_hall(value))
    return frozenset({hall}) if hall else None


def _same_operation_sets(
    rotations: np.ndarray, translations: np.ndarray, other_rotations: np.ndarray, other_translations: np.ndarray
) -> bool:
    if len(rotations) != len(other_rotations):
        return False
    codes, other_codes = _rotation_codes(rotations), _rotation_codes(other_rotations)
    for code, translation in zip(codes, translations, strict=True):
        same = (other_codes == code) & np.all(np.abs(_wrap(other_translations - translation)) < 1e-3, axis=-1)
        if not same.any():
            return False
    return True
