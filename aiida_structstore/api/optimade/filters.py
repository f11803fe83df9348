"""The OPTIMADE filter language over the projection: parsed with the ``optimade`` package's grammar, turned into a
MongoDB-style query by its ``MongoTransformer``, evaluated on each entry's document by ``mongomock``'s matcher.

That is the same path the OPTIMADE reference server takes with its in-memory backend, so the semantics of every
operator (``HAS ALL/ANY/ONLY``, ``LENGTH``, ``IS KNOWN``, string matching, ``NOT``, comparisons either way round,
unknown properties of other providers) are the package's, not rewritten here.

What the store's indexes can answer is taken out of the query before the scan (:class:`CompiledFilter`):

* ``id = "x"`` (or several joined by ``OR``) at the top level becomes point lookups on the index
  ``by_tenant_id_and_workspace_id_and_structure_id``: only those records are read;
* ``last_modified`` compared with a time (``>``, ``>=``, ``<``, ``<=``, ``=``) at the top level becomes a range of
  the index ``by_tenant_id_and_workspace_id_and_updated_at``: only records updated in that range are read.

Everything else is evaluated after reading: on the summaries of the workspace's records, or, when the filter names a
property of the structure payload (``species_at_sites``, ``species``, ``cartesian_site_positions``), on the full
records. Errors follow the specification: an unknown property is 400 Bad Request, a property of the specification
this database does not hold (``space_group_*``, ``assemblies``, ``immutable_id``) is 501 Not Implemented, never an
empty answer that looks like "no match".

This module imports no AiiDA module.
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from dataclasses import dataclass, field
from typing import Any

from lark.exceptions import LarkError, VisitError
from mongomock.filtering import filter_applies
from optimade.exceptions import BadRequest
from optimade.filterparser import LarkParser
from optimade.filtertransformers.mongo import MongoTransformer
from optimade.server.config import ServerConfig
from optimade.server.mappers import StructureMapper

from .fields import PAYLOAD_FIELDS, PREFIX, PROVIDER_FIELDS, SERVED_FIELDS

__all__ = ('CompiledFilter', 'FilterError', 'compile_filter')

GRAMMAR_VERSION = (1, 2, 0)


class FilterError(Exception):
    """A filter that cannot be served: ``status`` is 400 (malformed, unknown property) or 501 (not supported)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


class _Mapper(StructureMapper):
    """The reference mapper, with this provider's prefix and fields (names are used as they are, no aliases)."""

    PROVIDER_FIELDS = tuple(PROVIDER_FIELDS)


@functools.cache
def _parser() -> LarkParser:
    return LarkParser(version=GRAMMAR_VERSION)


@functools.cache
def _mapper() -> _Mapper:
    return _Mapper(ServerConfig(provider={'prefix': PREFIX, 'name': 'aiida-structstore', 'description': PREFIX}))


@dataclass(frozen=True)
class CompiledFilter:
    """A filter ready to run: the query, what it reads, and what the store's indexes can answer."""

    text: str
    query: dict[str, Any] | None
    properties: frozenset[str] = frozenset()
    #: Structure ids the filter is restricted to (``id = ...`` at the top level): point lookups, no scan.
    ids: frozenset[str] | None = None
    #: Bounds on ``last_modified`` from the top level (inclusive; the filter itself decides strictness): a range of
    #: the ``updated_at`` index.
    modified_from: dt.datetime | None = None
    modified_to: dt.datetime | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def needs_payload(self) -> bool:
        """Whether the filter reads properties of the structure payload (full records must be read)."""
        return bool(self.properties & PAYLOAD_FIELDS)

    def matches(self, document: dict[str, Any]) -> bool:
        return self.query is None or filter_applies(self.query, document)


def _properties(tree) -> set[str]:
    return {str(node.children[0]) for node in tree.find_data('property')}


def compile_filter(text: str | None) -> CompiledFilter:
    """Parse and check ``text`` (``None`` or blank: no filter); raise :class:`FilterError`."""
    if text is None or not text.strip():
        return CompiledFilter(text='', query=None)
    try:
        tree = _parser().parse(text)
    except BadRequest as exc:
        raise FilterError(400, 'Bad Request', f'the filter could not be parsed: {exc.detail}') from None
    names = _properties(tree)
    mapper = _mapper()
    for name in sorted(names):
        if name in SERVED_FIELDS or (name.startswith('_') and not name.startswith(f'_{PREFIX}_')):
            continue  # served, or another provider's property (treated as unknown, with a warning)
        if name in mapper.ALL_ATTRIBUTES:
            raise FilterError(
                501,
                'Not Implemented',
                f"filtering on '{name}' is not supported: this database does not hold that property "
                f'(filterable: {", ".join(SERVED_FIELDS)})',
            )
        raise FilterError(400, 'Bad Request', f"'{name}' is not a known or searchable property")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            query = MongoTransformer(mapper=mapper).transform(tree)
        except VisitError as exc:
            original = exc.orig_exc
            if isinstance(original, BadRequest):
                raise FilterError(400, 'Bad Request', str(original.detail)) from None
            if isinstance(original, NotImplementedError):
                raise FilterError(501, 'Not Implemented', f'not supported in filters: {original}') from None
            raise FilterError(400, 'Bad Request', f'invalid filter: {original}') from None
        except LarkError as exc:
            raise FilterError(400, 'Bad Request', f'invalid filter: {exc}') from None
    return CompiledFilter(
        text=text,
        query=query,
        properties=frozenset(names),
        ids=_ids(query),
        modified_from=_bound(query, ('$gte', '$gt', '$eq'), max),
        modified_to=_bound(query, ('$lte', '$lt', '$eq'), min),
        warnings=tuple(str(w.message) for w in caught),
    )


def _conjuncts(query: dict[str, Any]) -> list[dict[str, Any]]:
    if set(query) == {'$and'}:
        return [part for item in query['$and'] for part in _conjuncts(item)]
    return [query]


def _id_values(query: dict[str, Any]) -> set[str] | None:
    if set(query) == {'id'} and isinstance(query['id'], dict) and set(query['id']) == {'$eq'}:
        value = query['id']['$eq']
        return {value} if isinstance(value, str) else None
    if set(query) == {'$or'}:
        values: set[str] = set()
        for item in query['$or']:
            found = _id_values(item)
            if found is None:
                return None
            values |= found
        return values
    return None


def _ids(query: dict[str, Any]) -> frozenset[str] | None:
    for part in _conjuncts(query):
        values = _id_values(part)
        if values is not None:
            return frozenset(values)
    return None


def _bound(query: dict[str, Any], operators: tuple[str, ...], tightest) -> dt.datetime | None:
    """The tightest bound on ``last_modified`` that top-level conjuncts with ``operators`` give, if any."""
    bounds = []
    for part in _conjuncts(query):
        condition = part.get('last_modified') if set(part) == {'last_modified'} else None
        if isinstance(condition, dict):
            bounds += [condition[op] for op in operators if isinstance(condition.get(op), dt.datetime)]
    return tightest(bounds) if bounds else None
