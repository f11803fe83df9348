"""The ``K_POINTS`` card of a pw.x input → ``KpointsData`` and its kind.

Kinds (:data:`KINDS`): ``automatic`` (mesh and offset, 0 or 0.5), ``gamma`` (mesh 1 x 1 x 1; pw.x then uses
Γ-point tricks, so the kind must be kept apart from an automatic 1 x 1 x 1 mesh), ``list`` (``tpiba``, also when no
option is given, or ``crystal``: points and weights) and ``band_path`` (``tpiba_b``/``crystal_b``: the vertices as
listed, with the number of points of each segment as weight, and their labels; the path is not expanded).
``tpiba`` points are Cartesian ``x 2 pi / alat`` (1/Å, AiiDA's convention; qe-tools uses ``|a1|`` instead of alat,
which is √2 too large for fcc).

Letters in band paths: for ``ibrav > 0`` pw.x resolves a vertex given by letter (``gG 20``, ``L 20``) with QE's
Brillouin-zone tables (``Modules/bz_form.f90``). This module knows the points of the lattices whose points do not
depend on the cell parameters (:data:`LETTERS`: ibrav 1, 2, 3, 4, 6), checked against pw.x 6.7, and the extra points
of ``point_label_type = 'BI'`` in &CONTROL (:data:`LETTERS_BI`, e.g. ``H1`` for ibrav 3; any other value reads as
pw.x's default ``'SC'``); a letter of another lattice, or one pw.x does not know, is an error naming the letter
(pw.x itself refuses letters with ibrav 0, -3, -5, 13, 14, 91, -13). ``K_POINTS alat`` reads as ``tpiba``, with a
warning, as pw.x reads it; lines after the data pw.x reads (a trailing ``~`` of an editor) are ignored with a
warning; ``tpiba_c``/``crystal_c`` and other unknown options are errors.
"""

from __future__ import annotations

import math
import re

import numpy as np
from aiida import orm

from .namelists import INT_RE, Card, Where, ignore_extra_lines
from .structure import real

__all__ = ('KINDS', 'LETTERS', 'LETTERS_BI', 'read_kpoints')

KINDS = ('automatic', 'gamma', 'list', 'band_path')
_OPTIONS = {
    'automatic': 'automatic',
    'gamma': 'gamma',
    'tpiba': 'list',
    'crystal': 'list',
    'tpiba_b': 'band_path',
    'crystal_b': 'band_path',
}
#: Special points by letter, in crystal coordinates of QE's reciprocal vectors, per ibrav (QE's 'SC' labels).
LETTERS: dict[int, dict[str, tuple[float, float, float]]] = {
    1: {'M': (1 / 2, 1 / 2, 0), 'X': (0, 1 / 2, 0), 'R': (1 / 2, 1 / 2, 1 / 2)},
    2: {
        'K': (-3 / 8, 3 / 8, 0),
        'W': (-1 / 4, 1 / 2, 1 / 4),
        'U': (0, 5 / 8, 3 / 8),
        'X': (0, 1 / 2, 1 / 2),
        'L': (0, 1 / 2, 0),
    },
    3: {'N': (1 / 2, 0, -1 / 2), 'P': (3 / 4, 1 / 4, -1 / 4), 'H': (1 / 2, 1 / 2, -1 / 2)},
    4: {
        'K': (2 / 3, -1 / 3, 0),
        'M': (1 / 2, 0, 0),
        'A': (0, 0, 1 / 2),
        'L': (1 / 2, 0, 1 / 2),
        'H': (2 / 3, -1 / 3, 1 / 2),
    },
    6: {
        'M': (1 / 2, 1 / 2, 0),
        'X': (0, 1 / 2, 0),
        'Z': (0, 0, 1 / 2),
        'A': (1 / 2, 1 / 2, 1 / 2),
        'R': (0, 1 / 2, 1 / 2),
    },
}
#: The points ``point_label_type = 'BI'`` (&CONTROL; the Bilbao server's labels) adds to :data:`LETTERS`, from
#: ``Modules/bz_form.f90`` (vertices computed as ``compute_vertices`` does; they reproduce the SC table above).
LETTERS_BI: dict[int, dict[str, tuple[float, float, float]]] = {
    1: {'X1': (1 / 2, 0, 0)},
    2: {
        'X1': (-1 / 2, 0, -1 / 2),
        'W1': (-1 / 2, 1 / 4, -1 / 4),
        'U1': (-3 / 8, 1 / 4, -3 / 8),
        'X3': (1 / 2, 1 / 2, 0),
        'W3': (1 / 4, 1 / 2, -1 / 4),
        'L1': (-1 / 2, 0, 0),
        'M': (-1 / 2, 1 / 2, 0),
    },
    3: {'H1': (1 / 2, -1 / 2, -1 / 2)},
}
_GAMMA = 'gG'
_REFUSED_BY_PWX = (0, -3, -5, 13, 14, 91, -13)
_LETTER_LINE = re.compile(r'\s*([A-Za-z][A-Za-z0-9]?)\s+(\S+)\s*$')


def read_kpoints(
    cards: dict[str, Card],
    structure: orm.StructureData,
    alat: float,
    ibrav: int,
    where: Where,
    label_type: object = 'SC',
) -> tuple[orm.KpointsData | None, str | None, str | None]:
    """The k-points, their kind (:data:`KINDS`) and the card option; ``None`` three times without a K_POINTS card.

    ``label_type`` is ``point_label_type`` of &CONTROL: ``'BI'`` adds the letters of :data:`LETTERS_BI`.
    """
    card = cards.get('K_POINTS')
    if card is None:
        return None, None, None
    option = card.option or 'tpiba'
    if option == 'alat':  # pw.x's read_cards reads every option it does not know as tpiba (2 pi / alat units)
        where.warn(
            'K_POINTS alat: read as tpiba (units of 2 pi / alat), as pw.x reads a K_POINTS option it does not know',
            card.number,
        )
        option = 'tpiba'
    if option not in _OPTIONS:
        where.fail(f'K_POINTS: unsupported type {option!r} (supported: {", ".join(_OPTIONS)})', card.number)
    kind = _OPTIONS[option]
    kpoints = orm.KpointsData()
    kpoints.set_cell_from_structure(structure)
    if kind == 'gamma':
        if card.lines:
            where.fail(f'K_POINTS gamma takes no data line, got {card.lines[0].text.strip()!r}', card.lines[0].number)
        kpoints.set_kpoints_mesh([1, 1, 1], offset=[0.0, 0.0, 0.0])
        return kpoints, kind, option
    if kind == 'automatic':
        kpoints.set_kpoints_mesh(*_mesh(card, where))
        return kpoints, kind, option

    if not card.lines:
        where.fail(f'K_POINTS {option}: the number of k-points is missing', card.number)
    count_line = card.lines[0]
    if not INT_RE.fullmatch(count_line.text.strip()) or int(count_line.text) < 1:
        where.fail(
            f'K_POINTS {option}: expected the number of k-points, got {count_line.text.strip()!r}', count_line.number
        )
    count = int(count_line.text)
    if len(card.lines) - 1 < count:
        where.fail(f'K_POINTS {option}: {count} k-points declared but {len(card.lines) - 1} line(s) given', card.number)
    ignore_extra_lines(card, 1 + count, where, f'K_POINTS {option}')
    points = np.empty((count, 3))
    weights = np.empty(count)
    labels: list[tuple[int, str]] = []
    reciprocal = 2 * math.pi * np.linalg.inv(np.array(structure.cell)).T  # rows, 1/Å
    for index, line in enumerate(card.lines[1 : 1 + count]):
        letter = _LETTER_LINE.match(line.text) if kind == 'band_path' else None
        if letter is not None:
            frac = _letter(letter.group(1), ibrav, option, line.number, where, label_type == 'BI')
            points[index] = frac if option == 'crystal_b' else frac @ reciprocal / (2 * math.pi / alat)
            weights[index] = real(
                letter.group(2), f'K_POINTS {option}: points after {letter.group(1)}', line.number, where
            )
            labels.append((index, 'GAMMA' if letter.group(1) == _GAMMA else letter.group(1)))
        else:
            fields = line.text.split()
            if len(fields) != 4:
                where.fail(f"K_POINTS {option}: expected 'kx ky kz weight', got {line.text.strip()!r}", line.number)
            for axis in range(3):
                points[index, axis] = real(fields[axis], f'K_POINTS {option}: k-point {index + 1}', line.number, where)
            weights[index] = real(fields[3], f'K_POINTS {option}: weight of k-point {index + 1}', line.number, where)
        if kind == 'band_path' and (weights[index] < 0 or weights[index] != round(weights[index])):
            where.fail(
                f'K_POINTS {option}: the weight of a band-path vertex is a number of points (a non-negative '
                f'integer), got {weights[index]:g}',
                line.number,
            )
    if option.startswith('tpiba'):
        kpoints.set_kpoints(points * (2 * math.pi / alat), cartesian=True, weights=weights)
    else:
        kpoints.set_kpoints(points, weights=weights)
    if labels:
        kpoints.labels = labels
    return kpoints, kind, option


def expand_band_path(kpoints: orm.KpointsData) -> orm.KpointsData:
    """The explicit k-points pw.x generates from band-path vertices: ``n`` points from each vertex to the next.

    Labels stay on the vertices. The result is a plain list, for calculations (``PwCalculation``) that take one.
    """
    vertices, counts = kpoints.get_kpoints(also_weights=True)
    labels = dict(kpoints.labels or [])
    points, new_labels = [], []
    for index, (start, count) in enumerate(zip(vertices, counts, strict=True)):
        if index in labels:
            new_labels.append((len(points), labels[index]))
        if index == len(vertices) - 1:
            points.append(start)
            break
        steps = max(int(count), 1)
        end = vertices[index + 1]
        points.extend(start + (end - start) * step / steps for step in range(steps))
    expanded = orm.KpointsData()
    expanded.set_cell(kpoints.cell, kpoints.pbc)
    expanded.set_kpoints(np.array(points))
    if new_labels:
        expanded.labels = new_labels
    return expanded


def _mesh(card: Card, where: Where) -> tuple[list[int], list[float]]:
    if not card.lines:
        where.fail("K_POINTS automatic needs the line 'nk1 nk2 nk3 sk1 sk2 sk3'", card.number)
    ignore_extra_lines(card, 1, where, 'K_POINTS automatic')
    line = card.lines[0]
    fields = line.text.split()
    if len(fields) != 6 or not all(INT_RE.fullmatch(field) for field in fields):
        where.fail(
            f"K_POINTS automatic: expected 6 integers 'nk1 nk2 nk3 sk1 sk2 sk3', got {line.text.strip()!r}", line.number
        )
    mesh, shifts = [int(f) for f in fields[:3]], [int(f) for f in fields[3:]]
    if any(n < 1 for n in mesh):
        where.fail(f'K_POINTS automatic: the mesh must be positive, got {mesh}', line.number)
    if any(s not in (0, 1) for s in shifts):
        where.fail(f'K_POINTS automatic: the offsets must be 0 or 1, got {shifts}', line.number)
    return mesh, [0.5 * s for s in shifts]


def _letter(letter: str, ibrav: int, option: str, line: int, where: Where, bilbao: bool) -> np.ndarray:
    if ibrav in _REFUSED_BY_PWX:
        where.fail(
            f'K_POINTS {option}: the point {letter!r} is given by letter, which pw.x refuses with ibrav = {ibrav}', line
        )
    table = LETTERS.get(ibrav)
    if table is None:
        where.fail(
            f'K_POINTS {option}: the point {letter!r} is given by letter; for ibrav = {ibrav} its coordinates depend '
            'on the cell parameters and this reader does not resolve them: give the coordinates',
            line,
        )
    if letter == _GAMMA:
        return np.zeros(3)
    extra = LETTERS_BI.get(ibrav, {})
    if bilbao:
        table = {**table, **extra}
    if letter not in table:
        known = ', '.join([_GAMMA, *table])
        hint = f"; {letter!r} needs point_label_type = 'BI' in &CONTROL" if letter in extra and not bilbao else ''
        where.fail(
            f'K_POINTS {option}: pw.x knows no point {letter!r} for ibrav = {ibrav} (it knows {known}){hint}', line
        )
    return np.array(table[letter], dtype=float)
