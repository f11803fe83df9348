"""OPTIMADE structure fields from ``StructureData`` attributes.

Rules (see the OPTIMADE specification, v1.1, "structures" entry):

* ``species`` are the AiiDA kinds: ``name`` is the kind name (``Fe1`` and ``Fe2`` stay apart), ``chemical_symbols``
  and ``concentration`` are the kind's symbols and weights, plus ``vacancy`` with the missing weight when the
  weights sum to less than one; ``mass`` is given for single-element kinds. ``species_at_sites`` are kind names.
* Element counts are the sums of the weights over the sites. ``elements_ratios`` are those counts over their total.
* ``chemical_formula_reduced``: elements in alphabetical order, counts divided by their greatest common divisor
  (Fe4O6 gives Fe2O3), a count of 1 omitted. Fractional counts (partial occupancy) are first scaled to the smallest
  integers with the same ratios (counts are read as fractions with denominators up to 10,000).
* ``chemical_formula_anonymous``: the reduced counts in descending order, labelled A, B, ..., Z, Aa, Ba, ...
* ``chemical_formula_hill``: the cell's counts in Hill order (C, H, then alphabetical; alphabetical without carbon);
  ``None`` when counts are fractional. ``chemical_formula_descriptive``: the cell's counts, elements in the order of
  their first site.
* ``structure_features`` contains ``disorder`` when a kind is an alloy or has vacancies.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

__all__ = ('anonymous_symbols', 'optimade_fields', 'reduced_counts')

WEIGHT_TOLERANCE = 1e-6


def anonymous_symbols():
    """Yield OPTIMADE's anonymous element symbols: A ... Z, Aa, Ba, ... Za, Ab, ..."""
    yield from string.ascii_uppercase
    for second in string.ascii_lowercase:
        for first in string.ascii_uppercase:
            yield first + second


def _as_fractions(counts: Mapping[str, float]) -> dict[str, Fraction]:
    return {element: Fraction(count).limit_denominator(10_000) for element, count in counts.items()}


def reduced_counts(counts: Mapping[str, float]) -> dict[str, int]:
    """Return the smallest integer counts with the same ratios as ``counts`` (Fe4O6 → Fe2O3)."""
    integral = _integral(counts)
    if integral is not None and all(integral.values()):
        divisor = math.gcd(*integral.values())
        return {element: value // divisor for element, value in integral.items()}
    fractions = _as_fractions(counts)
    scale = math.lcm(*(f.denominator for f in fractions.values())) if fractions else 1
    integers = {element: int(f * scale) for element, f in fractions.items()}
    divisor = math.gcd(*integers.values()) if integers else 1
    return {element: value // divisor for element, value in integers.items()} if divisor else integers


def _formula(items: list[tuple[str, int]]) -> str:
    return ''.join(f'{element}{count if count != 1 else ""}' for element, count in items)


def _integral(counts: Mapping[str, float]) -> dict[str, int] | None:
    rounded = {element: round(count) for element, count in counts.items()}
    if all(abs(rounded[e] - c) < WEIGHT_TOLERANCE for e, c in counts.items()):
        return rounded
    return None


def optimade_fields(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Return the OPTIMADE structure fields of a ``StructureData`` given its attributes."""
    kinds = {kind['name']: kind for kind in attributes.get('kinds', [])}
    sites = attributes.get('sites', [])
    species = []
    disorder = False
    for kind in attributes.get('kinds', []):
        symbols = list(kind['symbols'])
        weights = [float(w) for w in kind['weights']]
        total = sum(weights)
        if len(symbols) > 1:
            disorder = True
        if total < 1 - WEIGHT_TOLERANCE:
            disorder = True
            symbols.append('vacancy')
            weights.append(1.0 - total)
        entry: dict[str, Any] = {'name': kind['name'], 'chemical_symbols': symbols, 'concentration': weights}
        if len(symbols) == 1 and kind.get('mass') is not None:
            entry['mass'] = [float(kind['mass'])]
        species.append(entry)

    counts: dict[str, float] = {}
    for site in sites:
        kind = kinds[site['kind_name']]
        for symbol, weight in zip(kind['symbols'], kind['weights'], strict=True):
            counts[symbol] = counts.get(symbol, 0.0) + float(weight)

    elements = sorted(counts)
    total = sum(counts.values())
    reduced = reduced_counts(counts)
    anonymous = sorted(reduced.values(), reverse=True)
    integral = _integral(counts)
    pbc = [bool(attributes.get(f'pbc{i}', True)) for i in (1, 2, 3)]

    fields: dict[str, Any] = {
        'elements': elements,
        'nelements': len(elements),
        'elements_ratios': [counts[e] / total for e in elements] if total else [],
        'chemical_formula_reduced': _formula([(e, reduced[e]) for e in elements]),
        'chemical_formula_anonymous': _formula(list(zip(anonymous_symbols(), anonymous, strict=False))),
        'dimension_types': [int(p) for p in pbc],
        'nperiodic_dimensions': sum(pbc),
        'lattice_vectors': [[float(x) for x in vector] for vector in attributes.get('cell', [])],
        'cartesian_site_positions': [[float(x) for x in site['position']] for site in sites],
        'nsites': len(sites),
        'species_at_sites': [site['kind_name'] for site in sites],
        'species': species,
        'structure_features': ['disorder'] if disorder else [],
    }
    if integral is not None:
        first_seen = list(dict.fromkeys(s for site in sites for s in kinds[site['kind_name']]['symbols']))
        fields['chemical_formula_descriptive'] = _formula([(e, integral[e]) for e in first_seen])
        if 'C' in integral:
            order = ['C'] + (['H'] if 'H' in integral else []) + [e for e in elements if e not in ('C', 'H')]
        else:
            order = elements
        fields['chemical_formula_hill'] = _formula([(e, integral[e]) for e in order])
    else:
        fields['chemical_formula_descriptive'] = ' '.join(f'{e}{counts[e]:g}' for e in elements)
        fields['chemical_formula_hill'] = None
    return fields
