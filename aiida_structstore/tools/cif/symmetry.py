"""The symmetry of a CIF data block: its operations, or its space group by symbol, Hall symbol or number.

gemmi does the crystallography: it parses operations (``Op``), finds space groups by any Hermann-Mauguin spelling
(``P 21/c``, ``P 1 21/c 1``, ``Fm3m``, ``Cmca``, ``F d -3 m:2``), Hall symbol (``symops_from_hall``) or number,
and knows the settings of each group (``spacegroup_table``). spglib identifies the group of operations in any
setting. This module keeps the project's rules:

* **Every space-group item is read** (DDL1 and DDLm/DDL2 spellings): operations
  (``_space_group_symop_operation_xyz``, ``_symmetry_equiv_pos_as_xyz``, magCIF operations without time reversal,
  combined with the centring translations), Hall symbols, Hermann-Mauguin symbols (``_alt``, ``_ref``, ``_full``,
  ``_symmetry_space_group_name_H-M``), numbers, Schoenflies symbols and ``_space_group_IT_coordinate_system_code``.
  Several declarations must agree.
* **Never P 1 by accident.** A block with no operations and a space-group item that the reader does not understand
  (an unknown symbol, a superspace group, generators only) is refused: gemmi, pymatgen and ASE read it as P 1. A
  block with no symmetry item at all is P 1.
* **Operations are checked**: each is a valid Jones-faithful operation of x, y, z (gemmi also accepts ``a,b,c``, a
  change of basis), the list is a group, leaves the cell metric unchanged, and is the group the block declares.
* **Settings.** A symbol's settings are narrowed by the cell metric (hexagonal or rhombohedral axes; monoclinic
  unique axis) and by what the block declares (site multiplicities, Wyckoff letters, ``Z`` x formula), in the reader.
  A bare symbol with two origin choices (``F d -3 m``) is ambiguous unless one of those settles it: gemmi silently
  takes origin choice 1.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache

import gemmi
import numpy as np

from .syntax import Block, to_float

__all__ = ('CELL_LENGTH_RANGE', 'METRIC_TOLERANCE', 'Symmetry', 'block_symmetry', 'cell_matrix', 'wrap')

METRIC_TOLERANCE = 0.02
"""Relative tolerance of the check that the symmetry operations leave the cell metric unchanged."""
CELL_LENGTH_RANGE = (1e-4, 1e7)
"""Å: a cell length outside is no crystal (and would overflow or divide by zero in the cell's matrices)."""

_DEN = gemmi.Op.DEN
_OPERATIONS = (('space_group_symop', 'operation_xyz'), ('symmetry_equiv', 'pos_as_xyz'))
_MAGNETIC_OPERATIONS = ('space_group_symop_magn_operation', 'xyz')
_MAGNETIC_CENTERING = ('space_group_symop_magn_centering', 'xyz')
_HALL = (('space_group', 'name_Hall'), ('symmetry', 'space_group_name_Hall'))
_HM = (
    ('space_group', 'name_H-M_alt'),
    ('space_group', 'name_H-M_ref'),
    ('space_group', 'name_H-M_full'),
    ('space_group', 'name_H-M'),  # not in the dictionaries, but unambiguous and written by some programs
    ('symmetry', 'space_group_name_H-M'),
)
_NUMBER = (('space_group', 'IT_number'), ('symmetry', 'Int_Tables_number'))
_SCHOENFLIES = (('space_group', 'name_Schoenflies'),)
_SETTING = ('space_group', 'IT_coordinate_system_code')
_UNDERSTOOD = {f'_{c}_{i}'.lower() for c, i in (*_OPERATIONS, *_HALL, *_HM, *_NUMBER, *_SCHOENFLIES, _SETTING)}
#: Items that describe the symmetry without defining it (ids, crystal system, Wyckoff tables, ...).
_DESCRIPTIVE = {
    f'_{name}'
    for name in (
        'space_group_id',
        'space_group_crystal_system',
        'space_group_centring_type',
        'space_group_laue_class',
        'space_group_point_group_h-m',
        'space_group_patterson_name_h-m',
        'space_group_reference_setting',
        'space_group_multiplicity',
        'space_group_name_h-m_alt_description',
        'space_group_symop_id',
        'space_group_symop_sg_id',
        'space_group_symop_operation_description',
        'space_group_wyckoff_id',
        'space_group_wyckoff_letter',
        'space_group_wyckoff_multiplicity',
        'space_group_wyckoff_site_symmetry',
        'space_group_wyckoff_coords_xyz',
        'space_group_wyckoff_sg_id',
        'symmetry_cell_setting',
        'symmetry_equiv_pos_site_id',
    )
}
_SYMMETRY_TAG = re.compile(r'^_(space_group|symmetry)[._]', re.IGNORECASE)
_OPERATION_TEXT = re.compile(r'^[\sxyzXYZ0-9.+\-/*]+$')
_OLD_SPELLINGS = (
    (re.compile(r'\((\d)\)'), r'\1'),  # 'P 2(1)/c'
    (re.compile(r'^([PFI])\s*4\s*3\s*([MNACDmnacd])$', re.IGNORECASE), r'\1 -4 3 \2'),  # 'P43m' (pre-1983)
)


@dataclass(frozen=True)
class Symmetry:
    """A set of symmetry operations acting on fractional coordinates (``x' = R x + t``)."""

    ops: tuple[gemmi.Op, ...]
    rotations: np.ndarray  # (n, 3, 3) integers
    translations: np.ndarray  # (n, 3) in [0, 1)
    description: str
    origin: str = ''  # '1' or '2' for a setting of a group with two origin choices

    def __len__(self) -> int:
        return len(self.rotations)


def wrap(delta: np.ndarray) -> np.ndarray:
    """Fractional differences wrapped into [-0.5, 0.5)."""
    return delta - np.round(delta)


def block_symmetry(block: Block, cell: tuple[float, ...]) -> tuple[list[Symmetry], str | None]:
    """The candidate symmetries of the block (one, or several settings to be told apart by the reader).

    Also returns, when a symbol could not be read but a number could, the unreadable declaration: then only a number
    with a single setting (for this cell) pins the operations down.
    """
    return _Reader(block, cell).candidates()


class _Reader:
    def __init__(self, block: Block, cell: tuple[float, ...]) -> None:
        self.block = block
        self.where = block.where
        self.cell = cell
        matrix = cell_matrix(cell)
        self.metric = matrix @ matrix.T

    def error(self, message: str, line: int | None = None):
        return self.where.error(message, line)

    def candidates(self) -> tuple[list[Symmetry], str | None]:
        declared, hints = self.declarations()
        explicit = self.explicit_operations()
        if explicit is not None:
            ops, tag = explicit
            symmetry = _symmetry(ops, f'{len(ops)} operations of {tag}')
            self.check_operations(symmetry, tag)
            self.check_matches_declaration(symmetry, declared, tag)
            return [symmetry], None

        unknown = [tag for tag in self.block.all_tags() if self.not_understood(tag)]
        if unknown:
            found = self.block.block.find_values(unknown[0])
            shown = f' {found.str(0)!r}' if found and len(found) == 1 else ''
            raise self.error(
                f'the block declares its symmetry with {unknown[0]}{shown}, which this reader does not understand, '
                'and gives no symmetry operations (other CIF readers would silently use P 1)'
            )
        if not declared:
            return [_symmetry([gemmi.Op('x,y,z')], 'no symmetry given: P 1')], None
        unresolved = [(tag, text) for tag, text, settings in declared if settings is None]
        for tag, text in unresolved:
            if 'hall' in tag.lower():
                raise self.error(
                    f'cannot interpret the Hall symbol {tag} {text!r} and no symmetry operations are given'
                )
        resolved = [settings for _, _, settings in declared if settings is not None]
        if not resolved:
            tag, text = unresolved[0]
            raise self.error(
                f'cannot interpret the space group {tag} {text!r} and the block gives no symmetry operations '
                '(a CIF reader would silently fall back to P 1)'
            )
        settings = resolved[0]
        for other in resolved[1:]:
            settings = [s for s in settings if any(_key(s.ops) == _key(o.ops) for o in other)]
        if not settings:
            summary = '; '.join(f'{tag} {text!r} is No. {found[0].number}' for tag, text, found in declared if found)
            raise self.error(f'the space-group declarations disagree: {summary}')
        for tag, hint in hints:
            matching = [s for s in settings if _setting_matches(s, hint)]
            if not matching and hint.strip() in ('1', '2') and not any(s.origin for s in settings):
                continue  # an origin choice (':1') for a group that has only one origin
            if not matching:
                raise self.error(f'{tag}: setting {hint!r} does not exist for this space group')
            settings = matching

        description = ' / '.join(f'{tag} {text!r}' for tag, text, _ in declared)
        candidates = []
        for setting in settings:
            symmetry = _symmetry(setting.ops, f'space group {setting.name} from {description}', setting.origin)
            candidates.append((self.metric_deviation(symmetry), symmetry))
        compatible = [symmetry for deviation, symmetry in candidates if deviation <= METRIC_TOLERANCE]
        if not compatible:
            raise self.error(f'the cell parameters are not compatible with {candidates[0][1].description}')
        strict = [symmetry for deviation, symmetry in candidates if deviation <= 1e-3]
        unreadable = ', '.join(f'{tag} {text!r}' for tag, text in unresolved) or None
        return strict or compatible, unreadable

    # -- declarations ------------------------------------------------------------------------------------------------

    def not_understood(self, tag: str) -> bool:
        flat = tag.lower().replace('.', '_')
        return bool(_SYMMETRY_TAG.match(tag)) and flat not in _UNDERSTOOD and flat not in _DESCRIPTIVE

    def declarations(self) -> tuple[list[tuple[str, str, list[_Setting] | None]], list[tuple[str, str]]]:
        declared: list[tuple[str, str, list[_Setting] | None]] = []
        hints: list[tuple[str, str]] = []
        for spelling in _HALL:
            found = self.block.single(*spelling)
            if found:
                declared.append((found[0].tag, found[1], _hall_settings(found[1])))
        for spelling in _HM:
            found = self.block.single(*spelling)
            if found:
                symbol, hint = _split_hm(found[1])
                declared.append((found[0].tag, found[1], _hm_settings(symbol)))
                if hint:
                    hints.append((found[0].tag, hint))
        for spelling in _NUMBER:
            found = self.block.single(*spelling)
            if found:
                number = to_float(found[1])
                if number is None or number != int(number) or not 1 <= number <= 230:
                    raise self.error(f'{found[0].tag} = {found[1]!r} is not a space-group number (1-230)')
                declared.append((found[0].tag, found[1], _number_settings(int(number))))
        for spelling in _SCHOENFLIES:
            found = self.block.single(*spelling)
            if found:
                number = _schoenflies_numbers().get(_norm(found[1]))
                declared.append((found[0].tag, found[1], _number_settings(number) if number else None))
        found = self.block.single(*_SETTING)
        if found:
            hints.append((found[0].tag, found[1].strip()))
        return declared, hints

    def explicit_operations(self) -> tuple[list[gemmi.Op], str] | None:
        sources = []
        for spelling in _OPERATIONS:
            item = self.block.item(*spelling)
            if item is not None and any(item.values):
                sources.append((item.tag, self.parse_operations(item.tag, item.values, item.line, 3)))
        if sources:
            (tag, ops), *others = sources
            for other_tag, other_ops in others:
                if _key(other_ops) != _key(ops):
                    raise self.error(f'{tag} and {other_tag} list different operations')
            return ops, tag
        item = self.block.item(*_MAGNETIC_OPERATIONS)
        if item is None or not any(item.values):
            return None
        # magCIF: the operations without their time reversal, combined with every centring translation.
        ops = self.parse_operations(item.tag, item.values, item.line, 4)
        centering = self.block.item(*_MAGNETIC_CENTERING)
        if centering is not None and any(centering.values):
            shifts = self.parse_operations(centering.tag, centering.values, centering.line, 4)
            if any(shift.rot != gemmi.Op('x,y,z').rot for shift in shifts):
                raise self.error(f'{centering.tag} lists operations that are not pure translations', centering.line)
            ops = [op.translated(shift.tran).wrap() for shift in shifts for op in ops]
        return _unique(ops), item.tag

    def parse_operations(self, tag: str, texts: Iterable[str | None], line: int, components: int) -> list[gemmi.Op]:
        ops = []
        for text in texts:
            if text is None:
                continue
            op = _parse_operation(text, components)
            if op is None:
                raise self.error(f'{tag}: cannot read the symmetry operation {text!r}', line)
            ops.append(op)
        return _unique(ops)

    # -- checks ------------------------------------------------------------------------------------------------------

    def metric_deviation(self, symmetry: Symmetry) -> float:
        """Largest relative change of the metric tensor under the rotations (0 if they are symmetries of the cell)."""
        rotations = symmetry.rotations
        transformed = np.einsum('nji,jk,nkl->nil', rotations, self.metric, rotations)
        return float(np.max(np.abs(transformed - self.metric)) / np.max(np.abs(self.metric)))

    def check_operations(self, symmetry: Symmetry, tag: str) -> None:
        problem = _group_problem(symmetry)
        if problem:
            raise self.error(f'{tag}: {problem}')
        deviation = self.metric_deviation(symmetry)
        if deviation > METRIC_TOLERANCE:
            raise self.error(
                f'{tag}: the symmetry operations are not compatible with the cell parameters '
                f'(they change the metric by {deviation:.1%})'
            )

    def check_matches_declaration(self, symmetry: Symmetry, declared, tag: str) -> None:
        numbers = {found[0].number: f'{name} {text!r}' for name, text, found in declared if found}
        if not numbers:
            return
        if len(numbers) > 1:
            summary = '; '.join(f'{what} is No. {number}' for number, what in numbers.items())
            raise self.error(f'the space-group declarations disagree: {summary}')
        import spglib

        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', DeprecationWarning)
                found = spglib.get_spacegroup_type_from_symmetry(
                    np.ascontiguousarray(symmetry.rotations, dtype='intc'),
                    np.ascontiguousarray(symmetry.translations, dtype='double'),
                )
        except Exception:  # identification is only a cross-check
            found = None
        ((number, what),) = numbers.items()
        if found is not None and found.number != number:
            raise self.error(
                f'{tag}: the symmetry operations are space group {found.international_short} (No. {found.number}) '
                f'but {what} is No. {number}'
            )


# --------------------------------------------------------------------------------------------------------------------
# Operations


def _parse_operation(text: str, components: int) -> gemmi.Op | None:
    """A Jones-faithful operation of x, y, z, or ``None``; magCIF operations carry a fourth part, ``+1`` or ``-1``."""
    parts = text.split(',')
    if len(parts) != components or (components == 4 and parts[3].strip() not in ('1', '+1', '-1')):
        return None
    triplet = ','.join(parts[:3])
    if not _OPERATION_TEXT.match(triplet.replace(',', '')):
        return None  # gemmi also reads 'a,b,c' and 'h,k,l' (changes of basis, reflections)
    try:
        op = gemmi.Op(triplet)
    except (RuntimeError, ValueError):
        return None
    rotation = np.array(op.rot)
    if np.any(rotation % _DEN) or abs(round(np.linalg.det(rotation / _DEN))) != 1:
        return None
    return op.wrap()


def _unique(ops: Iterable[gemmi.Op]) -> list[gemmi.Op]:
    seen, result = set(), []
    for op in ops:
        key = op.wrap().triplet()
        if key not in seen:
            seen.add(key)
            result.append(op.wrap())
    return result


def _key(ops: Iterable[gemmi.Op]) -> frozenset[str]:
    return frozenset(op.wrap().triplet() for op in ops)


def _symmetry(ops: Iterable[gemmi.Op], description: str, origin: str = '') -> Symmetry:
    ops = tuple(op.wrap() for op in ops)
    rotations = np.array([op.rot for op in ops], dtype=int) // _DEN
    translations = np.mod(np.array([op.tran for op in ops], dtype=float) / _DEN, 1.0)
    return Symmetry(ops, rotations, translations, description, origin)


def _group_problem(symmetry: Symmetry) -> str | None:
    """``None`` if the operations are closed under composition (modulo lattice translations), else what is missing.

    Every product is checked (n² for n operations, in numpy, a block of rows at a time): gemmi's
    ``GroupOps.add_missing_elements`` does not complete pure translations (``x,y,z`` and ``x+1/3,y,z`` pass it, yet
    the group has ``x+2/3,y,z`` too).
    """
    ops = symmetry.ops
    rotations = np.array([op.rot for op in ops], dtype=np.int64) // _DEN  # integers (x, y, z only)
    translations = np.mod(np.array([op.tran for op in ops], dtype=np.int64), _DEN)  # in units of 1/DEN

    packed = np.abs(rotations).max() <= 1  # then a product's entries are within -3 .. 3: one integer per operation

    def table(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
        if packed:
            digits = (rotation.reshape(-1, 9) + 3) @ (7 ** np.arange(9, dtype=np.int64))
            return digits * _DEN**3 + translation.reshape(-1, 3) @ (_DEN ** np.arange(3, dtype=np.int64))
        return np.concatenate([rotation.reshape(-1, 9), translation.reshape(-1, 3)], axis=1)

    present = table(rotations, translations)
    count = len(ops)
    block = max(1, 100_000 // count)
    for start in range(0, count, block):
        first = slice(start, start + block)
        products = table(
            np.einsum('aij,bjk->abik', rotations[first], rotations),
            np.mod(np.einsum('aij,bj->abi', rotations[first], translations) + translations[first, None], _DEN),
        )
        if packed:
            missing = np.flatnonzero(~np.isin(products, present))
        else:  # rows to ids, then membership
            ids = np.unique(np.concatenate([present, products]), axis=0, return_inverse=True)[1].reshape(-1)
            missing = np.flatnonzero(~np.isin(ids[count:], ids[:count]))
        if len(missing):
            a, b = divmod(int(missing[0]), count)
            one, other = ops[start + a], ops[b]
            return (
                f'the symmetry operations do not form a group: ({_pretty(one)}) after ({_pretty(other)}) '
                f'gives ({_pretty((one * other).wrap())}), which is not in the list (give every operation of the '
                'group, or its space-group symbol instead of the operations)'
            )
    return None


def _pretty(op: gemmi.Op) -> str:
    return op.triplet().replace(',', ', ')


# --------------------------------------------------------------------------------------------------------------------
# Space groups


@dataclass(frozen=True)
class _Setting:
    number: int
    name: str
    ops: tuple[gemmi.Op, ...]
    ext: str = ''  # '1', '2', 'H', 'R' or ''
    qualifier: str = ''  # monoclinic/orthorhombic axes: 'b1', 'ba-c', ...

    @property
    def origin(self) -> str:
        return self.ext if self.ext in ('1', '2') else ''


@lru_cache(maxsize=1)
def _table() -> tuple[gemmi.SpaceGroup, ...]:
    return tuple(gemmi.spacegroup_table())


@cache
def _from_table(xhm: str) -> _Setting:
    group = gemmi.find_spacegroup_by_name(xhm)
    ext = group.ext.strip('\x00')
    return _Setting(group.number, group.xhm(), tuple(group.operations()), ext, group.qualifier)


def _hm_settings(symbol: str) -> list[_Setting] | None:
    """The settings a Hermann-Mauguin symbol can mean: its origin choices and hexagonal/rhombohedral axes."""
    for pattern, replacement in _OLD_SPELLINGS:
        symbol = pattern.sub(replacement, symbol.strip())
    group = gemmi.find_spacegroup_by_name(symbol)
    if group is None:  # gemmi knows full symbols only for monoclinic groups: 'F 4/m -3 2/m' is not found
        return _full_symbols().get(_norm(symbol))
    if 3 <= group.number <= 15 and _norm(symbol) == _norm(_short(group.hm)):
        # A short monoclinic symbol names a setting of each unique axis ('P 21/a': P 1 21/a 1 and P 1 1 21/a); the
        # International Tables read it as unique axis b, which comes first; the cell metric may say otherwise.
        same = [entry for entry in _table() if entry.number == group.number and _short(entry.hm) == _short(group.hm)]
    else:
        same = [entry for entry in _table() if entry.number == group.number and entry.hm == group.hm]
    return [_from_table(entry.xhm()) for entry in same]


def _number_settings(number: int) -> list[_Setting]:
    """Every setting of a space-group number, the standard one first (as in the International Tables)."""
    return [_from_table(entry.xhm()) for entry in _table() if entry.number == number]


def _hall_settings(hall: str) -> list[_Setting] | None:
    try:
        ops = gemmi.symops_from_hall(hall.strip())
    except (RuntimeError, ValueError):
        return None
    group = gemmi.find_spacegroup_by_ops(ops)
    number = group.number if group is not None else _identify(ops)
    return [_Setting(number, f'Hall {hall.strip()!r}', tuple(ops), '', '')]


def _identify(ops: gemmi.GroupOps) -> int:
    import spglib

    symmetry = _symmetry(ops, '')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        found = spglib.get_spacegroup_type_from_symmetry(
            np.ascontiguousarray(symmetry.rotations, dtype='intc'),
            np.ascontiguousarray(symmetry.translations, dtype='double'),
        )
    return found.number if found is not None else 0


@lru_cache(maxsize=1)
def _full_symbols() -> dict[str, list[_Setting]]:
    """Full Hermann-Mauguin symbols (spglib's table) → settings of gemmi's table."""
    import spglib

    table: dict[str, list[_Setting]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        for hall in range(1, 531):
            found = spglib.get_spacegroup_type(hall)
            group = gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(found.hall_symbol))
            if group is not None:
                settings = table.setdefault(_norm(found.international_full), [])
                if all(setting.name != group.xhm() for setting in settings):
                    settings.append(_from_table(group.xhm()))
    return table


@lru_cache(maxsize=1)
def _schoenflies_numbers() -> dict[str, int]:
    import spglib

    table = {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        for hall in range(1, 531):
            found = spglib.get_spacegroup_type(hall)
            table[_norm(found.schoenflies)] = found.number
    return table


def _norm(text: str) -> str:
    return re.sub(r'[\s_^]', '', text).lower()


def _short(hm: str) -> str:
    """A monoclinic Hermann-Mauguin symbol without its '1' axes: 'P 1 21/c 1' -> 'P 21/c'."""
    return ' '.join(part for part in hm.split() if part != '1')


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


def _setting_matches(setting: _Setting, hint: str) -> bool:
    """Whether a setting fits a setting code of the file (``'2'``, ``'H'``, ``'b1'``, ``'ba-c'``, ``'2ba-c'``)."""
    hint = hint.strip().lower()
    if hint in ('h', 'r'):
        return setting.ext.lower() == hint
    origin = None
    if hint[:1] in ('1', '2') and not hint[1:2].isdigit():
        origin, hint = hint[:1], hint[1:]
    if origin is not None and origin != setting.origin:
        return False
    if origin is not None and not hint:
        return True  # ':2' says the origin and nothing about the axes
    axes = setting.qualifier.lower()
    if hint in ('a', 'b', 'c', '-a', '-b', '-c') and axes[:-1] == hint and axes[-1:].isdigit():
        return True  # monoclinic unique axis without cell choice: 'b' fits 'b1'
    return (axes or 'abc') == (hint or 'abc')


def cell_matrix(cell: tuple[float, ...]) -> np.ndarray:
    """Cell vectors as rows from (a, b, c, alpha, beta, gamma): *a* along *x*, *b* in the *xy* plane (PDB, ASE)."""
    matrix = np.array(gemmi.UnitCell(*cell).orth.mat).T
    return np.where(np.abs(matrix) < 1e-12, 0.0, matrix)
