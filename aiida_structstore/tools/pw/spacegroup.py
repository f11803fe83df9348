"""``space_group`` and ``ATOMIC_POSITIONS crystal_sg``: the inequivalent atoms expanded as pw.x expands them.

With ``space_group = N`` in &SYSTEM, pw.x (``Modules/wyckoff.f90``, ``sup_spacegroup``) reads the positions of the
inequivalent atoms (``nat`` counts them) in crystal coordinates of the conventional cell of N, applies the
operations of N, converts the images to crystal coordinates of its primitive cell for the lattice of N (``ccord``),
brings them into [0, 1) and drops images that coincide within 1e-6 (``esclusion``). ``ibrav`` follows from N
(``sym_brav``); an ``ibrav`` given in the input must be that one.

The setting is pw.x's, chosen by one flag: ``uniqueb = .true.``, ``rhombohedral = .false.`` or
``origin_choice = 2`` (any of them) selects the second setting of every group that has two: unique axis b instead of
c for monoclinic groups, hexagonal instead of rhombohedral axes for R groups, origin choice 2. The operations come
from gemmi; :data:`QE_SETTINGS` names the groups whose pw.x setting is not gemmi's reference setting. That table was
derived by matching, for all 230 groups and both values of the flag, the orbit of a general point under the
operations of QE's ``find_equiv_N`` (``Modules/space_group.f90``, QE commit ddbec46) with the orbit under each of
gemmi's settings of group N, both in pw.x's primitive cell; every group matched exactly one setting family.

Wyckoff positions (``Si 3a 0.4697``: multiplicity and letter, then the free parameters in the order they first
appear in the position, as pw.x's ``wypos`` reads them) are resolved with the Wyckoff tables that pymatgen ships
(its magnetic space-group database, type-I groups in the BNS settings). :data:`WYCKOFF_GROUPS` lists the groups
(per flag) where that is pw.x's reading: for every special position of every listed group, the orbit of pymatgen's
representative equals the orbit of pw.x's ``wypos`` position (``Modules/wypos.f90``) in pw.x's setting, at random
parameters (the same derivation as above). Elsewhere (monoclinic groups with unique axis c, origin choice 1, R groups
on rhombohedral axes: pymatgen tabulates other settings; groups with only the general position, where pw.x reads no
letter) a letter is refused with a clear error, and the coordinates can be given instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .namelists import Where

__all__ = (
    'QE_SETTINGS',
    'TO_PRIMITIVE',
    'WYCKOFF_GROUPS',
    'expand',
    'is_wyckoff_letter',
    'space_group_ibrav',
    'wyckoff_position',
)

#: (space group, pw.x's flag) → Hall symbol, where pw.x's setting is not gemmi's reference setting.
QE_SETTINGS: dict[tuple[int, str], str] = {
    (3, '1'): 'P 2',
    (4, '1'): 'P 2c',
    (5, '1'): 'B 2',
    (6, '1'): 'P -2',
    (7, '1'): 'P -2b',
    (8, '1'): 'B -2',
    (9, '1'): 'B -2b',
    (10, '1'): '-P 2',
    (11, '1'): '-P 2c',
    (12, '1'): '-B 2',
    (13, '1'): '-P 2b',
    (14, '1'): '-P 2bc',
    (15, '1'): '-B 2b',
    (48, '2'): '-P 2ab 2bc',
    (50, '2'): '-P 2ab 2b',
    (59, '2'): '-P 2ab 2a',
    (68, '2'): '-C 2a 2ac',
    (70, '2'): '-F 2uv 2vw',
    (85, '2'): '-P 4a',
    (86, '2'): '-P 4bc',
    (88, '2'): '-I 4ad',
    (125, '2'): '-P 4a 2b',
    (126, '2'): '-P 4a 2bc',
    (129, '2'): '-P 4a 2a',
    (130, '2'): '-P 4a 2ac',
    (133, '2'): '-P 4ac 2b',
    (134, '2'): '-P 4ac 2bc',
    (137, '2'): '-P 4ac 2a',
    (138, '2'): '-P 4ac 2ac',
    (141, '2'): '-I 4bd 2',
    (142, '2'): '-I 4bd 2c',
    (146, '1'): 'P 3*',
    (148, '1'): '-P 3*',
    (155, '1'): 'P 3* 2',
    (160, '1'): 'P 3* -2',
    (161, '1'): 'P 3* -2n',
    (166, '1'): '-P 3* 2',
    (167, '1'): '-P 3* 2n',
    (201, '2'): '-P 2ab 2bc 3',
    (203, '2'): '-F 2uv 2vw 3',
    (222, '2'): '-P 4a 2bc 3',
    (224, '2'): '-P 4bc 2bc 3',
    (227, '2'): '-F 4vw 2vw 3',
    (228, '2'): '-F 4ud 2vw 3',
}

#: Conventional → primitive crystal coordinates of pw.x's cell (``ccord``): ``primitive = T @ conventional``.
#: Lattices not listed (and ibrav 5 with rhombohedral axes) use the conventional cell itself.
TO_PRIMITIVE: dict[int, tuple[tuple[int, int, int], ...]] = {
    2: ((-1, -1, 1), (1, 1, 1), (-1, 1, -1)),
    3: ((1, 0, 1), (-1, 1, 0), (0, -1, 1)),
    5: ((1, -1, -1), (0, 1, -1), (-1, 0, -1)),  # hexagonal axes of an R group (pw.x's obverse setting)
    7: ((1, -1, 0), (0, 1, 1), (-1, 0, 1)),
    9: ((1, 1, 0), (-1, 1, 0), (0, 0, 1)),
    91: ((1, 0, 0), (0, 1, 1), (0, 1, -1)),
    10: ((1, -1, 1), (1, 1, -1), (-1, 1, 1)),
    11: ((1, 0, 1), (-1, 1, 0), (0, -1, 1)),
    13: ((1, 0, -1), (0, 1, 0), (1, 0, 1)),
    -13: ((1, 1, 0), (-1, 1, 0), (0, 0, 1)),
}
_DUPLICATE = 1e-6  # pw.x's esclusion: images closer than this (crystal coordinates, per axis) are one atom


def _numbers(text: str) -> frozenset[int]:
    numbers: set[int] = set()
    for part in text.split():
        first, _, last = part.partition('-')
        numbers.update(range(int(first), int(last or first) + 1))
    return frozenset(numbers)


#: Per pw.x's flag, the groups whose Wyckoff letters are read (see the module documentation).
WYCKOFF_GROUPS: dict[str, frozenset[int]] = {
    '1': _numbers(
        '2 16-18 20-28 30-32 34-45 47 49 52-58 60-67 69 71-75 77 79-84 87 90-96 98-107 109-124 127-128 131-132 '
        '135-136 139 143 147 149 151-154 156-159 162-165 168 171-200 202 204-221 223 225-226 229-230'
    ),
    '2': _numbers(
        '2-3 5-6 8 10-18 20-28 30-32 34-45 47-50 52-75 77 79-88 90-96 98-107 109-139 141-143 147-149 151-168 171-230'
    ),
}
_R_GROUPS = frozenset({146, 148, 155, 160, 161, 166, 167})
_TERM = re.compile(r'([+-]?)(?:(\d*)([xyz])|(\d+)(?:/(\d+))?)')


def space_group_ibrav(system: dict[str, Any], where: Where) -> int | None:
    """The ``ibrav`` pw.x uses with ``space_group`` (``None`` without one); a contradicting ``ibrav`` is an error."""
    number = system.get('space_group', 0)
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 230:
        where.fail(f'&SYSTEM: space_group must be an integer from 1 to 230, got {number!r}')
    if number == 0:
        return None
    centring = _reference(number).centring_type()
    if number <= 2:
        ibrav = 14
    elif number <= 15:
        ibrav = 12 if centring == 'P' else 13
        ibrav = -ibrav if _flag(system, where) == '2' else ibrav
    elif number <= 74:
        ibrav = {'P': 8, 'C': 9, 'A': 91, 'F': 10, 'I': 11}[centring]
    elif number <= 142:
        ibrav = 6 if centring == 'P' else 7
    elif number <= 194:
        ibrav = 5 if centring == 'R' else 4
    else:
        ibrav = {'P': 1, 'F': 2, 'I': 3}[centring]
    given = system.get('ibrav', -1)
    if given not in (-1, ibrav):
        where.fail(
            f'&SYSTEM: ibrav = {given} is not the lattice of space_group = {number} (ibrav = {ibrav} in this setting); '
            'pw.x stops with "Input ibrav not compatible with space group number"'
        )
    return ibrav


def is_wyckoff_letter(field: str) -> bool:
    """pw.x's test: a second column of at most 3 characters that ends in a letter (``3a``, ``12d``) is a Wyckoff one."""
    return len(field) < 4 and field[-1].isalpha()


def expand(
    system: dict[str, Any],
    ibrav: int,
    labels: list[str],
    positions: np.ndarray,
    fixed: tuple[tuple[bool, bool, bool], ...],
    where: Where,
) -> tuple[list[str], np.ndarray, tuple[tuple[bool, bool, bool], ...]]:
    """All atoms of the primitive cell from the inequivalent ones, in crystal coordinates of pw.x's cell.

    The images of each atom follow it (pw.x's order of atoms by input line); ``if_pos`` flags are copied.
    """
    import gemmi

    number = system['space_group']
    flag = _flag(system, where)
    hall = QE_SETTINGS.get((number, flag))
    operations = gemmi.symops_from_hall(hall) if hall else _reference(number).operations()
    rotations = np.array([op.rot for op in operations], dtype=float) / gemmi.Op.DEN
    translations = np.array([op.tran for op in operations], dtype=float) / gemmi.Op.DEN
    convert = TO_PRIMITIVE.get(ibrav) if not (ibrav == 5 and flag == '1') else None
    matrix = np.array(convert, dtype=float) if convert is not None else np.eye(3)

    out_labels: list[str] = []
    out_positions: list[np.ndarray] = []
    out_fixed: list[tuple[bool, bool, bool]] = []
    for label, position, flags in zip(labels, positions, fixed, strict=True):
        images = (np.einsum('nij,j->ni', rotations, position) + translations) @ matrix.T
        images = images - np.round(images)
        images[images < 0] += 1.0
        difference = images[:, None, :] - images[None, :, :]
        same = np.all(np.abs(difference - np.round(difference)) < _DUPLICATE, axis=2)
        kept = images[~np.any(np.tril(same, k=-1), axis=1)]  # an image equal to an earlier one goes
        out_labels.extend([label] * len(kept))
        out_positions.extend(kept)
        out_fixed.extend([flags] * len(kept))
    return out_labels, np.array(out_positions), tuple(out_fixed)


def wyckoff_position(
    system: dict[str, Any], fields: list[str], line: int, where: Where, number_of: Callable[[str, str], float]
) -> tuple[np.ndarray, int]:
    """The position of an atom line ``label letter [parameters] [if_pos x 3]`` and the number of fields it uses."""
    label, letter = fields[0], fields[1]
    number, flag = system['space_group'], _flag(system, where)
    what = f'ATOMIC_POSITIONS crystal_sg: {label!r} at Wyckoff position {letter!r}'
    if _reading_flag(system, number) not in (None, flag):
        where.fail(
            f'{what}: uniqueb, rhombohedral and origin_choice select different settings for reading the letter and '
            'for expanding it (pw.x would mix them); give the coordinates x y z instead',
            line,
        )
    if number not in WYCKOFF_GROUPS[flag]:
        where.fail(
            f'{what}: this reader does not resolve Wyckoff letters of space group {number} in this setting; give the '
            'coordinates x y z instead',
            line,
        )
    positions = _wyckoff_table(number)
    special = list(positions)[1:]  # the first entry is the general position, which pw.x reads by coordinates
    if letter not in special:
        known = ', '.join(special)
        where.fail(f'{what}: space group {number} has no special position {letter!r} (it has {known})', line)
    representative = positions[letter]
    names = list(dict.fromkeys(char for char in representative if char in 'xyz'))
    free = len(names)
    if len(fields) not in (2 + free, 5 + free):
        where.fail(f'{what} ({representative}): expected {free} parameter(s), then optionally 3 if_pos flags', line)
    values = {name: number_of(fields[2 + index], f'{what}: {name}') for index, name in enumerate(names)}
    return np.array([_evaluate(part, values) for part in representative.split(',')]), 2 + free


def _reading_flag(system: dict[str, Any], number: int) -> str | None:
    """The setting pw.x's ``wypos`` reads a letter in: it looks at one variable per kind of group, not the flag."""
    if 3 <= number <= 15:
        return '2' if system.get('uniqueb', False) else '1'
    if number in _R_GROUPS:
        return '1' if system.get('rhombohedral', True) else '2'
    if (number, '2') in QE_SETTINGS:
        return '2' if system.get('origin_choice', 1) == 2 else '1'
    return None


@functools.lru_cache(maxsize=32)
def _wyckoff_table(number: int) -> dict[str, str]:
    """Wyckoff label → representative triplet (``'x,0,2/3'``) of a space group, the general position first."""
    import sqlite3
    from pathlib import Path

    import pymatgen.symmetry
    from pymatgen.symmetry.maggroups import MagneticSpaceGroup

    database = Path(pymatgen.symmetry.__file__).parent / 'symm_data_magnetic.sqlite'
    with sqlite3.connect(f'file:{database}?mode=ro', uri=True) as connection:
        (second,) = connection.execute(
            'SELECT BNS2 FROM space_groups WHERE magtype = 1 AND BNS1 = ?', (number,)
        ).fetchone()
    group = MagneticSpaceGroup([number, second])
    return {
        entry['label']: entry['str'].split(')')[0].lstrip('(').split(';')[0] for entry in group._data['bns_wyckoff']
    }


def _evaluate(expression: str, values: dict[str, float]) -> float:
    """``'-x+1/4'``, ``'2x'``, ``'2/3'`` at the given x, y, z."""
    total, position = 0.0, 0
    for match in _TERM.finditer(expression):
        if match.start() != position or not match.group(0):
            break
        sign = -1.0 if match.group(1) == '-' else 1.0
        if match.group(3):
            total += sign * int(match.group(2) or 1) * values.get(match.group(3), 0.0)
        else:
            total += sign * int(match.group(4)) / int(match.group(5) or 1)
        position = match.end()
    if position != len(expression):
        raise ValueError(f'cannot read the Wyckoff coordinate {expression!r}')
    return total


def _flag(system: dict[str, Any], where: Where) -> str:
    """pw.x's one setting flag ('unique' in ``sup_spacegroup``): '2' for the second setting, else '1'."""
    uniqueb, rhombohedral = system.get('uniqueb', False), system.get('rhombohedral', True)
    origin = system.get('origin_choice', 1)
    for key, value in (('uniqueb', uniqueb), ('rhombohedral', rhombohedral)):
        if not isinstance(value, bool):
            where.fail(f'&SYSTEM: {key} must be a logical (.true. or .false.), got {value!r}')
    if isinstance(origin, bool) or origin not in (1, 2):
        where.fail(f'&SYSTEM: origin_choice must be 1 or 2, got {origin!r}')
    return '2' if uniqueb or not rhombohedral or origin == 2 else '1'


def _reference(number: int):
    import gemmi

    return gemmi.find_spacegroup_by_number(number)
