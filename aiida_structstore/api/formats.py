"""Text representations of a record's structure payload that the store does not hold as such (XYZ).

The payload carries OPTIMADE's structure fields (``species``, ``species_at_sites``, ``cartesian_site_positions``,
``lattice_vectors``, ``dimension_types``). XYZ is written as extended XYZ (the comment line carries ``Lattice``,
``pbc`` and ``Properties``, as ASE and OVITO read it), with one element symbol per site and the AiiDA kind name as an
extra column, so ``Fe1`` and ``Fe2`` stay apart. A disordered site (an alloy or a vacancy) has no single element:
XYZ cannot say it, so the site gets the element with the largest concentration and its kind keeps the name; CIF and
JSON keep the occupancies.

This module imports no AiiDA module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.exceptions import InvalidInputError

__all__ = ('write_xyz',)


def _element(species: Mapping[str, Any]) -> str:
    pairs = [
        (concentration, symbol)
        for symbol, concentration in zip(species['chemical_symbols'], species['concentration'], strict=True)
        if symbol not in ('vacancy', 'X')
    ]
    if not pairs:
        return 'X'
    return max(pairs, key=lambda pair: pair[0])[1]


def _number(value: float) -> str:
    return f'{value:.10f}'


def write_xyz(structure: Mapping[str, Any], comment: str = '') -> str:
    """Return the extended XYZ text of an OPTIMADE structure payload."""
    try:
        positions = structure['cartesian_site_positions']
        kinds = structure['species_at_sites']
        elements = {species['name']: _element(species) for species in structure['species']}
    except (KeyError, TypeError) as exc:
        raise InvalidInputError(f'the structure payload lacks the fields XYZ needs: {exc}') from None
    header = []
    lattice = structure.get('lattice_vectors')
    if lattice and all(v is not None for vector in lattice for v in vector):
        header.append('Lattice="' + ' '.join(_number(v) for vector in lattice for v in vector) + '"')
    dimension_types = structure.get('dimension_types') or [0, 0, 0]
    header.append('pbc="' + ' '.join('T' if d else 'F' for d in dimension_types) + '"')
    header.append('Properties=species:S:1:pos:R:3:kind:S:1')
    if comment:
        header.append('comment="' + comment.replace('"', "'").replace('\n', ' ') + '"')
    lines = [str(len(positions)), ' '.join(header)]
    for kind, position in zip(kinds, positions, strict=True):
        lines.append(f'{elements[kind]:<3} ' + ' '.join(f'{_number(x):>16}' for x in position) + f' {kind}')
    return '\n'.join(lines) + '\n'
