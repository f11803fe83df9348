"""The query language of the store: a small, total evaluator of compiled OPTIMADE filters on entry documents, the
entry document itself, and the plan that says which index a query walks.

:mod:`aiida_structstore.api.optimade.filters` compiles a filter into a JSON-serialisable query in the style of MongoDB
(the ``optimade`` package's ``MongoTransformer``, with explicit literal string operators); this module decides whether
one document matches it. It replaces ``mongomock``'s matcher, which ran ``CONTAINS``/``STARTS``/``ENDS`` as unescaped
Python regular expressions: here every string in a filter is literal text, nothing is ever compiled into a pattern.

It is deliberately small and portable: the next step of issue 18 ports it as-is to a Convex (TypeScript) query
function, so that filters run next to the data. Keep it that way:

* no regular expressions, no ``eval``, nothing but dictionary and list look-ups and comparisons;
* recursion bounded by :data:`MAX_QUERY_DEPTH` (the query) and :data:`MAX_VALUE_DEPTH` (values), so a deep
  document or query ends the descent (as "no match") instead of exhausting the stack;
* total: :func:`matches` returns ``True`` or ``False`` for any document and never raises (values of an unexpected
  type simply do not match); :func:`check_query` is where a malformed query is refused.

The query language (what :func:`check_query` accepts)::

    query      = { member, ... }                  all members must hold (an empty query matches everything)
    member     = "$and": [query, ...]             every query holds
               | "$or":  [query, ...]             at least one query holds
               | "<path>": condition              the value at <path> (names joined by ".") satisfies condition
    condition  = { operator, ... }                all operators hold
               | literal                          shorthand for {"$eq": literal}
    operator   = "$eq" | "$ne" | "$lt" | "$lte" | "$gt" | "$gte": literal
               | "$in" | "$nin" | "$all" | "$only": [literal, ...]
               | "$size": integer | { "$eq" | "$lt" | "$lte" | "$gt" | "$gte": integer }
               | "$exists": boolean
               | "$not": { operator, ... }
               | "$contains" | "$startswith" | "$endswith": string
    literal    = null | boolean | number | string | [literal, ...]

Semantics (those of MongoDB for the operators MongoDB has, which is what the ``optimade`` package's transformer
targets):

* a path that is absent gives "missing"; a path through a list of objects gives the list of their values;
* ``$eq`` matches an equal value, or a list with an equal element; ``null`` matches null and missing;
  ``$ne`` is its negation (so it matches missing values: the transformer adds ``$ne: null`` where needed);
* ``$lt``/``$lte``/``$gt``/``$gte`` compare numbers with numbers and strings with strings (a list matches when an
  element does); any other pair of types does not match;
* ``$in`` is ``$eq`` with any listed value, ``$nin`` its negation; ``$all``: every listed value is present;
  ``$only``: a non-empty list whose every element is listed (``HAS ONLY``);
* ``$size``: the length of a list; ``$exists``: whether the path is present (null counts as present);
* ``$contains``/``$startswith``/``$endswith``: a string (or a list with a string element) that contains, starts
  with or ends with the given text, compared character by character;
* timestamps (``datetime`` values in documents) are compared as fixed-width RFC 3339 UTC strings
  (:func:`timestamp_text`, e.g. ``2024-05-01T12:00:00.000000Z``), the form the filter compiler gives the timestamps of
  a query; booleans are never numbers.

This module imports no AiiDA module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .structures import SUMMARY_FIELDS, StructureRecord, StructureSummary

__all__ = (
    'COMPARISONS',
    'MAX_QUERY_DEPTH',
    'MAX_VALUE_DEPTH',
    'OPERATORS',
    'PAYLOAD_FIELDS',
    'PLAN_INDEXES',
    'PREFIX',
    'Bound',
    'QueryError',
    'QueryPlan',
    'check_query',
    'entry_document',
    'matches',
    'timestamp_text',
)

#: Deepest nesting of ``$and``/``$or``/``$not`` evaluated (a filter within the limits of the filter compiler stays far
#: below it); deeper parts of a query never match.
MAX_QUERY_DEPTH = 64
#: Deepest nesting of lists and objects compared; deeper values never compare equal.
MAX_VALUE_DEPTH = 32
COMPARISONS = ('$eq', '$ne', '$lt', '$lte', '$gt', '$gte')
_LISTS = ('$in', '$nin', '$all', '$only')
_TEXT = ('$contains', '$startswith', '$endswith')
OPERATORS = (*COMPARISONS, *_LISTS, '$size', '$exists', '$not', *_TEXT)
_MISSING = object()


class QueryError(ValueError):
    """A query outside the language of this module."""


def timestamp_text(value: dt.datetime) -> str:
    """A timestamp as the fixed-width UTC text queries compare (naive datetimes are taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    return (
        f'{value.year:04d}-{value.month:02d}-{value.day:02d}T'
        f'{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z'
    )


# --- checking a query -------------------------------------------------------------------------------------------


def check_query(query: Any) -> None:
    """Raise :class:`QueryError` unless ``query`` is in the language above (and JSON-serialisable)."""
    _check_query(query, 0)


def _check_query(query: Any, depth: int) -> None:
    if depth > MAX_QUERY_DEPTH:
        raise QueryError(f'the query is nested deeper than {MAX_QUERY_DEPTH} levels')
    if not isinstance(query, dict):
        raise QueryError(f'a query must be an object, not {type(query).__name__}')
    for key, value in query.items():
        if key in ('$and', '$or'):
            if not isinstance(value, list) or not value:
                raise QueryError(f'{key} takes a non-empty list of queries')
            for item in value:
                _check_query(item, depth + 1)
        elif not isinstance(key, str) or not key or key.startswith('$') or '' in key.split('.'):
            raise QueryError(f'{key!r} is not a property path')
        else:
            _check_condition(value, depth + 1)


def _is_operators(condition: Any) -> bool:
    return isinstance(condition, dict) and bool(condition) and all(str(key).startswith('$') for key in condition)


def _check_condition(condition: Any, depth: int) -> None:
    if depth > MAX_QUERY_DEPTH:
        raise QueryError(f'the query is nested deeper than {MAX_QUERY_DEPTH} levels')
    if not _is_operators(condition):
        _check_literal(condition, 0)
        return
    for operator, argument in condition.items():
        if operator in COMPARISONS:
            _check_literal(argument, 0)
        elif operator in _LISTS:
            if not isinstance(argument, list) or not argument:
                raise QueryError(f'{operator} takes a non-empty list of values')
            for item in argument:
                _check_literal(item, 0)
        elif operator == '$size':
            if isinstance(argument, dict):
                if not argument or any(
                    op not in COMPARISONS or op == '$ne' or not _is_integer(n) for op, n in argument.items()
                ):
                    raise QueryError('$size takes an integer or {"$lt"|"$lte"|"$gt"|"$gte"|"$eq": integer}')
            elif not _is_integer(argument):
                raise QueryError('$size takes an integer')
        elif operator == '$exists':
            if not isinstance(argument, bool):
                raise QueryError('$exists takes true or false')
        elif operator == '$not':
            if not _is_operators(argument):
                raise QueryError('$not takes an object of operators')
            _check_condition(argument, depth + 1)
        elif operator in _TEXT:
            if not isinstance(argument, str):
                raise QueryError(f'{operator} takes a string')
        else:
            raise QueryError(f'unknown operator {operator!r}')


def _check_literal(value: Any, depth: int) -> None:
    if depth > MAX_VALUE_DEPTH:
        raise QueryError(f'a value is nested deeper than {MAX_VALUE_DEPTH} levels')
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if value != value or value in (float('inf'), float('-inf')):
            raise QueryError('numbers must be finite')
        return
    if isinstance(value, list):
        for item in value:
            _check_literal(item, depth + 1)
        return
    raise QueryError(f'{type(value).__name__} is not a JSON value')


# --- evaluating a query -----------------------------------------------------------------------------------------


def matches(query: dict[str, Any], document: dict[str, Any]) -> bool:
    """Whether ``document`` satisfies ``query`` (see the module docstring). Never raises."""
    return _query(query, document, 0)


def _query(query: Any, document: Any, depth: int) -> bool:
    if depth > MAX_QUERY_DEPTH or not isinstance(query, dict):
        return False
    for key, value in query.items():
        if key == '$and':
            holds = isinstance(value, list) and all(_query(item, document, depth + 1) for item in value)
        elif key == '$or':
            holds = isinstance(value, list) and any(_query(item, document, depth + 1) for item in value)
        elif isinstance(key, str) and not key.startswith('$'):
            holds = _condition(value, _resolve(document, key), depth + 1)
        else:
            holds = False
        if not holds:
            return False
    return True


def _resolve(document: Any, path: str) -> Any:
    """The value at ``path`` (``_MISSING`` if absent); through a list of objects, the list of their values."""
    current = document
    for name in path.split('.'):
        if isinstance(current, dict):
            current = current.get(name, _MISSING)
        elif isinstance(current, list):
            found = [item[name] for item in current if isinstance(item, dict) and name in item]
            current = found if found else _MISSING
        else:
            return _MISSING
        if current is _MISSING:
            return _MISSING
    return current


def _condition(condition: Any, value: Any, depth: int) -> bool:
    if depth > MAX_QUERY_DEPTH:
        return False
    if _is_operators(condition):
        return all(_operator(operator, argument, value, depth) for operator, argument in condition.items())
    return _equal(value, condition)


def _operator(operator: str, argument: Any, value: Any, depth: int) -> bool:
    if operator == '$eq':
        return _equal(value, argument)
    if operator == '$ne':
        return not _equal(value, argument)
    if operator in ('$lt', '$lte', '$gt', '$gte'):
        if isinstance(value, list):
            return any(_compare(item, operator, argument) for item in value)
        return _compare(value, operator, argument)
    if operator == '$in':
        return isinstance(argument, list) and any(_equal(value, item) for item in argument)
    if operator == '$nin':
        return not (isinstance(argument, list) and any(_equal(value, item) for item in argument))
    if operator == '$all':
        return isinstance(argument, list) and bool(argument) and all(_equal(value, item) for item in argument)
    if operator == '$only':
        return (
            isinstance(value, list)
            and bool(value)
            and isinstance(argument, list)
            and all(any(_same(item, allowed, 0) for allowed in argument) for item in value)
        )
    if operator == '$size':
        if not isinstance(value, list):
            return False
        if isinstance(argument, dict):
            return bool(argument) and all(_compare(len(value), op, n) for op, n in argument.items())
        return _is_integer(argument) and len(value) == argument
    if operator == '$exists':
        return isinstance(argument, bool) and (value is not _MISSING) == argument
    if operator == '$not':
        return _is_operators(argument) and not _condition(argument, value, depth + 1)
    if operator in _TEXT:
        if not isinstance(argument, str):
            return False
        if isinstance(value, list):
            return any(_text(operator, item, argument) for item in value)
        return _text(operator, value, argument)
    return False


def _text(operator: str, value: Any, text: str) -> bool:
    if isinstance(value, dt.datetime):
        value = timestamp_text(value)
    if not isinstance(value, str):
        return False
    if operator == '$contains':
        return text in value
    if operator == '$startswith':
        return value.startswith(text)
    return value.endswith(text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scalar(value: Any) -> Any:
    return timestamp_text(value) if isinstance(value, dt.datetime) else value


def _equal(value: Any, argument: Any) -> bool:
    """MongoDB equality: the value itself, or an element of a list value; null also matches a missing value."""
    if value is _MISSING:
        return argument is None
    if _same(value, argument, 0):
        return True
    return isinstance(value, list) and any(_same(item, argument, 0) for item in value)


def _same(a: Any, b: Any, depth: int) -> bool:
    """Strict equality of JSON values (numbers equal numbers, booleans only booleans), depth-bounded."""
    if depth > MAX_VALUE_DEPTH:
        return False
    a, b = _scalar(a), _scalar(b)
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and a == b
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(_same(x, y, depth + 1) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_same(a[key], b[key], depth + 1) for key in a)
        )
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return isinstance(a, str) and isinstance(b, str) and a == b


def _compare(value: Any, operator: str, argument: Any) -> bool:
    """An order comparison between two numbers or two strings; anything else does not match."""
    value, argument = _scalar(value), _scalar(argument)
    if _is_number(value) and _is_number(argument):
        pass
    elif not (isinstance(value, str) and isinstance(argument, str)):
        return False
    if operator == '$lt':
        return value < argument
    if operator == '$lte':
        return value <= argument
    if operator == '$gt':
        return value > argument
    if operator == '$gte':
        return value >= argument
    if operator == '$eq':
        return value == argument
    return False


# -- the entry document ----------------------------------------------------------------------------------------------

#: Prefix of this database's provider-specific properties (``_structstore_source``, ``_structstore_aiida_node``).
PREFIX = 'structstore'
#: Properties that need the structure payload (not in the always-inline summary).
PAYLOAD_FIELDS = frozenset({'cartesian_site_positions', 'species_at_sites', 'species'})


def entry_document(item: StructureSummary, structure: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The flat document of an entry (what queries are evaluated on), from a summary or a full record.

    Payload properties are present only when ``item`` is a :class:`StructureRecord` with a structure payload, or
    when the payload is given as ``structure``.
    """
    doc: dict[str, Any] = {
        'id': item.key.structure_id,
        'type': 'structures',
        'last_modified': item.updated_at,
        f'_{PREFIX}_source': {'kind': item.source.kind, 'filename': item.source.filename},
        f'_{PREFIX}_aiida_node': item.node_uuid,
    }
    doc.update({name: item.summary.get(name) for name in SUMMARY_FIELDS})
    if structure is None and isinstance(item, StructureRecord):
        structure = item.structure
    if structure is not None:
        doc.update({name: structure.get(name) for name in PAYLOAD_FIELDS})
    return doc


# -- the plan --------------------------------------------------------------------------------------------------------

#: The indexes a query can walk, by the entry property each orders by (``element``: the structures that have one
#: element, by id).
PLAN_INDEXES = ('structure_id', 'updated_at', 'nsites', 'nelements', 'chemical_formula_reduced', 'element')


@dataclass(frozen=True)
class Bound:
    """One end of an index range."""

    value: Any
    inclusive: bool = True


@dataclass(frozen=True)
class QueryPlan:
    """Which index of a workspace a query walks, over which range and in which order; the filter then decides, row
    by row, which of them match. The default walks every structure by id."""

    index: Literal['structure_id', 'updated_at', 'nsites', 'nelements', 'chemical_formula_reduced', 'element'] = (
        'structure_id'
    )
    element: str | None = None
    lower: Bound | None = None
    upper: Bound | None = None
    order: Literal['asc', 'desc'] = 'asc'

    def __post_init__(self) -> None:
        if self.index not in PLAN_INDEXES:
            raise QueryError(f'unknown index {self.index!r}; one of {", ".join(PLAN_INDEXES)}')
        if (self.index == 'element') != (self.element is not None):
            raise QueryError('an element is given with the index "element", and only then')
        if self.order not in ('asc', 'desc'):
            raise QueryError(f'order must be "asc" or "desc", got {self.order!r}')

    def as_json(self) -> dict[str, Any]:
        """The plan as the Convex function ``queryStructures`` takes it."""
        plan: dict[str, Any] = {'index': self.index, 'order': self.order}
        if self.element is not None:
            plan['element'] = self.element
        for name in ('lower', 'upper'):
            bound = getattr(self, name)
            if bound is not None:
                value = bound.value
                if isinstance(value, dt.datetime):  # Convex keeps times as milliseconds
                    value = value.timestamp() * 1000
                plan[name] = {'value': value, 'inclusive': bound.inclusive}
        return plan

    def value_of(self, item: StructureSummary) -> Any:
        """The value of ``item`` this plan's index orders by (``None``: missing)."""
        if self.index == 'structure_id' or self.index == 'element':
            return item.key.structure_id
        if self.index == 'updated_at':
            return item.updated_at
        return item.summary.get(self.index)

    def admits(self, item: StructureSummary) -> bool:
        """Whether ``item`` lies in the plan's range (and, for ``element``, has the element)."""
        if self.index == 'element':
            return self.element in (item.summary.get('elements') or ())
        value = self.value_of(item)
        for bound, is_lower in ((self.lower, True), (self.upper, False)):
            if bound is None:
                continue
            if value is None or not _comparable(value, bound.value):
                return False
            beyond = value < bound.value if is_lower else value > bound.value
            if beyond or (value == bound.value and not bound.inclusive):
                return False
        return True


def _comparable(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (type(a) is type(b) and isinstance(a, str | dt.datetime))
