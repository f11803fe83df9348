"""A fast, kind-preserving CIF writer for ``StructureData`` attributes.

AiiDA's ``StructureData.get_cif()`` goes through ``CifData`` and an external converter, which costs a process or an
ASE round trip per node and drops kind names. This writer produces a P1 CIF 1.1 block directly from the attributes:

* ``_atom_site_label`` is the AiiDA kind name (``Fe1`` and ``Fe2`` stay apart), ``_atom_site_type_symbol`` the
  element; an alloy kind gives one row per element at the same position, each with its weight as
  ``_atom_site_occupancy`` (so vacancies show as occupancies below one);
* cell lengths and angles come from the cell vectors, fractional coordinates from the Cartesian positions;
* numbers are written with 10 decimals, so the text (and the record's content hash) is deterministic.

A cell with zero volume (a molecule without a cell) has no CIF: :func:`write_cif` returns ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ('write_cif',)

_UNSAFE = re.compile(r'[^A-Za-z0-9_.\-]')


def _cif_string(value: str) -> str:
    return (
        value if value and not re.search(r"[\s'\"#$_;\[\]]", value[0] + value) else "'" + value.replace("'", '') + "'"
    )


def _det(m: list[list[float]]) -> float:
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )


def _inverse(m: list[list[float]], det: float) -> list[list[float]]:
    return [
        [
            (m[1][1] * m[2][2] - m[1][2] * m[2][1]) / det,
            (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det,
            (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det,
        ],
        [
            (m[1][2] * m[2][0] - m[1][0] * m[2][2]) / det,
            (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det,
            (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det,
        ],
        [
            (m[1][0] * m[2][1] - m[1][1] * m[2][0]) / det,
            (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det,
            (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det,
        ],
    ]


def _norm(v: list[float]) -> float:
    return math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])


def _angle(u: list[float], v: list[float]) -> float:
    cosine = (u[0] * v[0] + u[1] * v[1] + u[2] * v[2]) / (_norm(u) * _norm(v))
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def write_cif(attributes: Mapping[str, Any], *, data_name: str = 'structure', comment: str | None = None) -> str | None:
    """Return a P1 CIF of the structure described by ``attributes``, or ``None`` if its cell has no volume."""
    # Plain Python rather than numpy: for the small cells a sync projects by the thousand, numpy's per-call overhead
    # costs more than the arithmetic.
    cell = [[float(x) for x in vector] for vector in attributes['cell']]
    if len(cell) != 3 or any(len(vector) != 3 for vector in cell):
        return None
    volume = _det(cell)
    if abs(volume) < 1e-8:
        return None
    a, b, c = cell
    inverse = _inverse(cell, volume)
    sites = attributes.get('sites', [])
    kinds = {kind['name']: kind for kind in attributes.get('kinds', [])}

    counts: dict[str, float] = {}
    for site in sites:
        kind = kinds[site['kind_name']]
        for symbol, weight in zip(kind['symbols'], kind['weights'], strict=True):
            counts[symbol] = counts.get(symbol, 0.0) + float(weight)
    formula_sum = ' '.join(f'{element}{count:g}' for element, count in sorted(counts.items()))

    lines = []
    if comment:
        lines.extend(f'# {line}' for line in comment.splitlines())
    lines += [
        f'data_{_UNSAFE.sub("_", data_name) or "structure"}',
        f'_cell_length_a    {_norm(a):.10f}',
        f'_cell_length_b    {_norm(b):.10f}',
        f'_cell_length_c    {_norm(c):.10f}',
        f'_cell_angle_alpha {_angle(b, c):.10f}',
        f'_cell_angle_beta  {_angle(a, c):.10f}',
        f'_cell_angle_gamma {_angle(a, b):.10f}',
        f'_cell_volume      {abs(volume):.10f}',
        f"_chemical_formula_sum '{formula_sum}'",
        "_symmetry_space_group_name_H-M 'P 1'",
        '_symmetry_Int_Tables_number 1',
        'loop_',
        '_symmetry_equiv_pos_as_xyz',
        "  'x, y, z'",
        'loop_',
        '_atom_site_label',
        '_atom_site_type_symbol',
        '_atom_site_fract_x',
        '_atom_site_fract_y',
        '_atom_site_fract_z',
        '_atom_site_occupancy',
    ]
    for site in sites:
        px, py, pz = (float(v) for v in site['position'])
        # Fractional = position · inverse(cell); rounded first so that -1e-17 and -0.0 print as 0.0000000000.
        x, y, z = (round(px * inverse[0][j] + py * inverse[1][j] + pz * inverse[2][j], 10) + 0.0 for j in range(3))
        kind = kinds[site['kind_name']]
        label = _cif_string(site['kind_name'])
        for symbol, weight in zip(kind['symbols'], kind['weights'], strict=True):
            lines.append(f'  {label} {symbol} {x:.10f} {y:.10f} {z:.10f} {float(weight):.6f}')
    return '\n'.join(lines) + '\n'
