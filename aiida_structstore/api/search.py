"""Searching a workspace's list (``/api/structures?id_prefix=&formula=&elements=``): the query plan and filter.

A search walks one of the store's indexes (:class:`~aiida_structstore.core.query.QueryPlan`) over a bounded range
and leaves the rest to the store's filter, so it never reads the whole workspace on its own:

* ``formula``: the ``chemical_formula_reduced`` index at exactly that formula, after writing it the way the record
  does (``O3Fe2`` and ``Fe4O6`` are ``Fe2O3``: elements in alphabetical order, counts divided by their greatest
  common divisor);
* else ``id_prefix``: the ``structure_id`` index from the prefix up to the last id that can start with it (a bounded
  range, where an element's index would be walked from its first id to the prefix's);
* else ``elements``: the ``element`` index of one of them (not O, H, C or N when another is given), the others in
  the filter (``$all``).

Whatever is given besides the walked index joins the filter. Results come in structure id order (for a formula:
its one formula, then ids). A value that is not a valid prefix, formula or symbol is a 422 that names it.

This module imports no AiiDA module.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException

from ..core.query import Bound, QueryPlan
from ..core.values import canonical_json

__all__ = ('Search', 'normalise_formula')

_ID_PREFIX = re.compile(r'[A-Za-z0-9._-]{1,128}')
_SYMBOL = re.compile(r'[A-Z][a-z]{0,2}')
_FORMULA_PART = re.compile(r'([A-Z][a-z]{0,2})(\d*)')
#: One past the greatest character of an id (ids are ``[A-Za-z0-9._-]``, the greatest ``z``).
_AFTER_ID_CHARS = chr(ord('z') + 1)
_COMMON_ELEMENTS = ('O', 'H', 'C', 'N')
MAX_ELEMENTS = 16


def _refuse(message: str) -> HTTPException:
    return HTTPException(422, message)


def normalise_formula(text: str) -> str:
    """``text`` (``Fe2O3``, ``O3 Fe2``, ``Fe4O6``) as a reduced formula; raise a 422 naming what is wrong."""
    compact = ''.join(text.split())
    if not compact or len(compact) > 200:
        raise _refuse('formula must have 1 to 200 characters')
    counts: dict[str, int] = {}
    position = 0
    for match in _FORMULA_PART.finditer(compact):
        if match.start() != position:
            break
        element, count = match.group(1), int(match.group(2) or 1)
        if count < 1:
            raise _refuse(f'formula {text!r}: the count of {element} must be at least 1')
        counts[element] = counts.get(element, 0) + count
        position = match.end()
    if position != len(compact):
        raise _refuse(
            f'formula {text!r} is not a chemical formula at {compact[position:][:20]!r}: write element symbols '
            'with counts, e.g. Fe2O3'
        )
    divisor = math.gcd(*counts.values())
    return ''.join(f'{e}{counts[e] // divisor if counts[e] // divisor > 1 else ""}' for e in sorted(counts))


def _elements(text: str) -> list[str]:
    names = [name for name in re.split(r'[\s,]+', text) if name]
    if not names or len(names) > MAX_ELEMENTS:
        raise _refuse(f'elements must list 1 to {MAX_ELEMENTS} chemical symbols, separated by commas or spaces')
    for name in names:
        if _SYMBOL.fullmatch(name) is None:
            raise _refuse(f'elements: {name[:20]!r} is not a chemical symbol (write Fe, not fe or FE)')
    return sorted(set(names))


@dataclass(frozen=True)
class Search:
    """A search of a workspace's list; ``Search.of`` checks the parameters (``None``: no search)."""

    id_prefix: str | None = None
    formula: str | None = None
    elements: tuple[str, ...] = ()

    @classmethod
    def of(cls, id_prefix: str | None, formula: str | None, elements: str | None) -> Search | None:
        id_prefix, formula, elements = (
            value.strip() if value and value.strip() else None for value in (id_prefix, formula, elements)
        )
        if id_prefix is not None and _ID_PREFIX.fullmatch(id_prefix) is None:
            raise _refuse(
                f'id_prefix {id_prefix[:40]!r} is not the start of a structure id '
                '(1 to 128 of the letters, digits, ".", "_" and "-")'
            )
        search = cls(
            id_prefix=id_prefix or None,
            formula=normalise_formula(formula) if formula is not None else None,
            elements=tuple(_elements(elements)) if elements is not None else (),
        )
        return search if (search.id_prefix or search.formula or search.elements) else None

    def listing(self) -> str:
        """What a page cursor of this search is bound to (another search cannot use it)."""
        return canonical_json({'id_prefix': self.id_prefix, 'formula': self.formula, 'elements': list(self.elements)})

    def plan(self) -> QueryPlan:
        if self.formula:
            bound = Bound(self.formula)
            return QueryPlan(index='chemical_formula_reduced', lower=bound, upper=bound)
        if self.id_prefix:
            upper = Bound(self.id_prefix + _AFTER_ID_CHARS, False)
            return QueryPlan(index='structure_id', lower=Bound(self.id_prefix), upper=upper)
        element = next((e for e in self.elements if e not in _COMMON_ELEMENTS), self.elements[0])
        return QueryPlan(index='element', element=element)

    def filter(self) -> dict[str, Any]:
        """The conditions the plan's index range does not already ensure."""
        plan = self.plan()
        conditions: list[dict[str, Any]] = []
        if self.id_prefix and plan.index != 'structure_id':
            conditions.append({'id': {'$startswith': self.id_prefix}})
        others = [e for e in self.elements if e != plan.element]
        if others:
            conditions.append({'elements': {'$all': others}})
        return {'$and': conditions} if conditions else {}
