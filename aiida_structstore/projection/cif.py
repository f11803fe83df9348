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

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ('write_cif',)

_UNSAFE = re.compile(r'[^A-Za-z0-9_.\-]')


def _cif_string(value: str) -> str:
    return (
        value if value and not re.search(r"[\s'\"#$_;\[\]]", value[0] + value) else "'" + value.replace("'", '') + "'"
    )


def write_cif(attributes: Mapping[str, Any], *, data_name: str = 'structure', comment: str | None = None) -> str | None:
    """Return a P1 CIF of the structure described by ``attributes``, or ``None`` if its cell has no volume."""
    cell = np.array(attributes['cell'], dtype=float)
    volume = float(np.linalg.det(cell)) if cell.shape == (3, 3) else 0.0
    if abs(volume) < 1e-8:
        return None
    lengths = np.linalg.norm(cell, axis=1)
    a, b, c = cell

    def angle(u: np.ndarray, v: np.ndarray) -> float:
        return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1))))

    sites = attributes.get('sites', [])
    kinds = {kind['name']: kind for kind in attributes.get('kinds', [])}
    positions = np.array([site['position'] for site in sites], dtype=float).reshape(-1, 3)
    # Round first so that -1e-17 and -0.0 print as 0.0000000000.
    fractional = np.round(positions @ np.linalg.inv(cell), 10) + 0.0

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
        f'_cell_length_a    {lengths[0]:.10f}',
        f'_cell_length_b    {lengths[1]:.10f}',
        f'_cell_length_c    {lengths[2]:.10f}',
        f'_cell_angle_alpha {angle(b, c):.10f}',
        f'_cell_angle_beta  {angle(a, c):.10f}',
        f'_cell_angle_gamma {angle(a, b):.10f}',
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
    for site, (x, y, z) in zip(sites, fractional, strict=True):
        kind = kinds[site['kind_name']]
        label = _cif_string(site['kind_name'])
        for symbol, weight in zip(kind['symbols'], kind['weights'], strict=True):
            lines.append(f'  {label} {symbol} {x:.10f} {y:.10f} {z:.10f} {float(weight):.6f}')
    return '\n'.join(lines) + '\n'
