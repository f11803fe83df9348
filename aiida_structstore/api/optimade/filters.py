"""The OPTIMADE filter language over the projection: parsed with the ``optimade`` package's grammar, turned into a
JSON query in the style of MongoDB by its ``MongoTransformer`` (with the changes below), and evaluated on each
entry's document by this package's own evaluator, :mod:`aiida_structstore.core.query`.

The semantics of the operators (``HAS ALL/ANY/ONLY``, ``LENGTH``, ``IS KNOWN``, ``NOT``, comparisons either way
round, unknown properties of other providers) are the package's transformer's. What is changed:

* ``CONTAINS``, ``STARTS [WITH]`` and ``ENDS [WITH]`` become the literal operators ``$contains``,
  ``$startswith`` and ``$endswith``: the text of a filter is never a regular expression (``id CONTAINS "."``
  matches ids with a dot, ``id CONTAINS "("`` ids with a parenthesis);
* strings are unescaped as the specification says (``\\"`` is ``"``, ``\\\\`` is ``\\``);
* ``HAS ONLY`` is the operator ``$only`` and ``LENGTH <op> n`` is ``$size: {<op>: n}`` (so that ``NOT`` applies
  to them too), not MongoDB work-arounds;
* timestamps (``last_modified``) are RFC 3339 date-times, or dates meaning midnight UTC, with or without an offset
  (none means UTC); they become fixed-width UTC text (:func:`aiida_structstore.core.query.timestamp_text`).
  Anything else compared with ``last_modified`` is 400 Bad Request naming the value.

Limits, checked on the text before the parser runs (so a filter over them costs nothing and can never exhaust the
stack), all answered with 400 Bad Request:

* :data:`MAX_FILTER_LENGTH` characters;
* :data:`MAX_FILTER_DEPTH` levels of nested parentheses;
* :data:`MAX_FILTER_TERMS` terms: comparison operators and keywords (``=``, ``!=``, ``<``, ``<=``, ``>``,
  ``>=``, ``CONTAINS``, ``STARTS``, ``ENDS``, ``HAS``, ``LENGTH``, ``IS``), opening parentheses and the commas of
  value lists, counted outside strings (the parser's time grows with each of them).

What the store's indexes can answer is noted on the compiled filter (:class:`CompiledFilter`): ``id = "x"`` (or
several joined by ``OR``) at the top level (point reads), and bounds on ``last_modified``. Which index a request
walks is the planner's choice (:mod:`.query`, from the top-level conjuncts and ``sort``); the whole query is always
evaluated on each row, next to the data (``store.structures.query``), on the summaries, or, when the filter names a
property of the structure payload (``species_at_sites``, ``species``, ``cartesian_site_positions``), in the API on the
full records. Errors follow the specification: an unknown property is 400 Bad Request, a property of the specification
this database does not hold (``space_group_*``, ``assemblies``, ``immutable_id``) is 501 Not Implemented, never an
empty answer that looks like "no match".

This module imports no AiiDA module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import importlib.resources
import json
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lark import Tree, v_args
from lark.exceptions import LarkError, VisitError
from optimade.exceptions import BadRequest, OptimadeHTTPException
from optimade.filterparser import LarkParser
from optimade.filtertransformers.mongo import MongoTransformer
from optimade.server.mappers import StructureMapper

from ...core.query import COMPARISONS, QueryError, check_query, matches, timestamp_text
from .fields import PAYLOAD_FIELDS, PREFIX, PROVIDER_FIELDS, SERVED_FIELDS, server_config

__all__ = (
    'MAX_FILTER_DEPTH',
    'MAX_FILTER_LENGTH',
    'MAX_FILTER_TERMS',
    'CompiledFilter',
    'FilterError',
    'compile_filter',
    'filter_parser',
    'filter_transformer',
    'parse_timestamp',
    'request_warnings',
    'structure_mapper',
)

GRAMMAR_VERSION = (1, 2, 0)
#: The longest filter accepted, in characters.
MAX_FILTER_LENGTH = 4096
#: The deepest nesting of parentheses accepted.
MAX_FILTER_DEPTH = 16
#: The most terms accepted: comparisons, parenthesised groups and the extra values of value lists (see the module
#: docstring).
MAX_FILTER_TERMS = 100
_TERM_KEYWORDS = frozenset({'CONTAINS', 'STARTS', 'ENDS', 'HAS', 'LENGTH', 'IS'})
_TIMESTAMP_FIELDS = frozenset({'last_modified'})
_TIMESTAMP = re.compile(
    r'(?P<date>\d{4}-\d{2}-\d{2})'
    r'(?:[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?)?'
)


class FilterError(OptimadeHTTPException):
    """A request that cannot be served: ``status`` is 400 (malformed, unknown property), 403 (over a bound) or 501
    (not supported). An ``optimade`` HTTP exception, answered by the package's exception handler."""

    status_code = 400
    title = 'Bad Request'

    def __init__(self, status: int, title: str, detail: str) -> None:
        self.status_code = status
        self.title = title
        super().__init__(detail)

    @property
    def status(self) -> int:
        return self.status_code


def _bad(detail: str) -> FilterError:
    return FilterError(400, 'Bad Request', detail)


class _Mapper(StructureMapper):
    """The reference mapper, with this provider's prefix and fields (names are used as they are, no aliases)."""

    PROVIDER_FIELDS = tuple(PROVIDER_FIELDS)

    def __init__(self, config) -> None:
        super().__init__(config)
        # The package reads its list of OPTIMADE providers only when `bson` (pymongo) imports; without it every
        # other provider's prefix (`_mp_`) would be unrecognised and warned about. Read the same file as JSON, so a
        # known provider's field never warns and an unrecognised prefix always does (the specification's rule).
        self.KNOWN_PROVIDER_PREFIXES = known_provider_prefixes()


@functools.cache
def known_provider_prefixes() -> set[str]:
    """The ids of the OPTIMADE providers in the ``optimade`` package's copy of the providers list."""
    text = importlib.resources.files('optimade.server').joinpath('data', 'providers.json').read_text(encoding='utf-8')
    return {provider['id'] for provider in json.loads(text)['data']} - {PREFIX}


_WARNINGS = threading.RLock()


@contextlib.contextmanager
def request_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """The warnings raised inside the block (by the ``optimade`` package's transformer or parameter checks), for
    the response of this request only. ``warnings.catch_warnings`` swaps process-wide state, so the blocks of
    requests served in parallel threads take turns: one request's warnings never land in another's response."""
    with _WARNINGS, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        yield caught


@functools.cache
def filter_parser() -> LarkParser:
    return LarkParser(version=GRAMMAR_VERSION)


@functools.cache
def structure_mapper() -> _Mapper:
    return _Mapper(server_config())


def parse_timestamp(text: str) -> dt.datetime:
    """An RFC 3339 date-time (a date alone is midnight UTC; no offset is UTC), as an aware UTC datetime.

    Raises :class:`ValueError` naming the value.
    """
    match = _TIMESTAMP.fullmatch(text) if isinstance(text, str) and len(text) <= 64 else None
    problem = f'{str(text)[:64]!r} is not an RFC 3339 timestamp (e.g. "2024-05-01T12:00:00Z" or "2024-05-01")'
    if match is None:
        raise ValueError(problem)
    try:
        value = dt.datetime.strptime(f'{match["date"]}T{match["time"] or "00:00:00"}', '%Y-%m-%dT%H:%M:%S')
        value = value.replace(microsecond=int((match['fraction'] or '0')[:6].ljust(6, '0')))
        offset = (match['offset'] or 'Z').upper()
        if offset == 'Z':
            return value.replace(tzinfo=dt.timezone.utc)
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(problem)
        delta = dt.timedelta(hours=hours, minutes=minutes) * (1 if offset[0] == '+' else -1)
        return value.replace(tzinfo=dt.timezone(delta)).astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        raise ValueError(problem) from None


def _timestamp_value(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest(detail=f"'{name}' is compared with a timestamp string, not {value!r}")
    try:
        return timestamp_text(parse_timestamp(value))
    except ValueError as exc:
        raise BadRequest(detail=f"'{name}': {exc}") from None


def filter_transformer() -> MongoTransformer:
    """A transformer of parsed filters into this module's queries (not thread-safe: one per use)."""
    return _Transformer(mapper=structure_mapper())


class _Transformer(MongoTransformer):
    """The package's MongoDB transformer, with literal string operators and this module's timestamps."""

    def postprocess(self, query: dict[str, Any]) -> dict[str, Any]:
        # Of the package's post-processing only IS KNOWN/UNKNOWN ($exists and null checks) is kept: relationships
        # are unknown properties here, HAS ONLY and LENGTH are operators of core.query, and there is no ObjectId.
        query = self._apply_unknown_or_null_filter(query)
        return self._timestamps(query)

    @v_args(inline=True)
    def string(self, token) -> str:
        # string: ESCAPED_STRING. The package only strips the quotes; the specification's escapes are \" and \\.
        text, out, index = str(token)[1:-1], [], 0
        while index < len(text):
            char = text[index]
            if char == '\\' and index + 1 < len(text) and text[index + 1] in '"\\':
                char = text[index + 1]
                index += 1
            out.append(char)
            index += 1
        return ''.join(out)

    def bool(self, arg):
        raise NotImplementedError('boolean values (TRUE, FALSE) are not supported in filters here')

    def fuzzy_string_op_rhs(self, arg):
        # fuzzy_string_op_rhs: CONTAINS value | STARTS [ WITH ] value | ENDS [ WITH ] value
        value = arg[-1]
        if not isinstance(value, str):
            raise BadRequest(detail=f'{arg[0]} takes a string, not {value!r}')
        return {{'CONTAINS': '$contains', 'STARTS': '$startswith', 'ENDS': '$endswith'}[str(arg[0])]: value}

    def set_op_rhs(self, arg):
        query = super().set_op_rhs(arg)
        if '#only' in query:
            return {'$only': query.pop('#only')}
        return query

    def _timestamps(self, query: Any, depth: int = 0) -> Any:
        """Timestamps compared with ``last_modified`` as fixed-width UTC text; other uses of it are refused."""
        if depth > 4 * MAX_FILTER_DEPTH + 16:
            raise BadRequest(detail='the filter is nested too deeply')
        if isinstance(query, list):
            return [self._timestamps(item, depth + 1) for item in query]
        if not isinstance(query, dict):
            return query
        result = {}
        for key, value in query.items():
            if key in ('$and', '$or'):
                result[key] = self._timestamps(value, depth + 1)
            elif key in _TIMESTAMP_FIELDS:
                result[key] = self._timestamp_condition(key, value)
            else:
                result[key] = value
        return result

    def _timestamp_condition(self, name: str, condition: Any) -> Any:
        if not isinstance(condition, dict):
            return _timestamp_value(name, condition)
        result = {}
        for operator, value in condition.items():
            if operator in COMPARISONS:
                result[operator] = None if value is None else _timestamp_value(name, value)
            elif operator == '$exists':
                result[operator] = value
            elif operator == '$not' and isinstance(value, dict):
                result[operator] = self._timestamp_condition(name, value)
            else:
                raise BadRequest(
                    detail=f"'{name}' can only be compared (=, !=, <, <=, >, >=) with a timestamp, "
                    'or tested with IS KNOWN / IS UNKNOWN'
                )
        return result


@dataclass(frozen=True)
class CompiledFilter:
    """A filter ready to run: the query, what it reads, and what the store's indexes can answer."""

    text: str
    #: The JSON query :func:`aiida_structstore.core.query.matches` evaluates (``None``: no filter).
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
        return self.query is None or matches(self.query, document)


def check_limits(text: str) -> None:
    """Raise :class:`FilterError` (400) if ``text`` is over a limit of the module docstring; no parsing."""
    if len(text) > MAX_FILTER_LENGTH:
        raise _bad(f'the filter is {len(text)} characters long; at most {MAX_FILTER_LENGTH} are accepted')
    depth = terms = index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char == '"':
            index += 1
            while index < length and text[index] != '"':
                index += 2 if text[index] == '\\' else 1
        elif char == '(':
            depth += 1
            terms += 1
            if depth > MAX_FILTER_DEPTH:
                raise _bad(f'the filter nests parentheses deeper than {MAX_FILTER_DEPTH} levels')
        elif char == ')':
            depth = max(depth - 1, 0)
        elif char in '<>!=,':
            terms += 1
            if char in '<>!' and index + 1 < length and text[index + 1] == '=':
                index += 1
        elif char.isalpha():
            start = index
            while index + 1 < length and (text[index + 1].isalnum() or text[index + 1] == '_'):
                index += 1
            if text[start : index + 1] in _TERM_KEYWORDS:
                terms += 1
        if terms > MAX_FILTER_TERMS:
            raise _bad(
                f'the filter has more than {MAX_FILTER_TERMS} terms (comparisons, parentheses and listed values); '
                'split it into several requests'
            )
        index += 1


def _properties(tree: Tree) -> set[str]:
    return {str(node.children[0]) for node in tree.find_data('property')}


def _check_comparisons(tree: Tree) -> None:
    """Refuse what the transformer would turn into nonsense: a property compared with a property, no property."""
    for node in tree.find_data('value'):
        if any(isinstance(child, Tree) and child.data == 'property' for child in node.children):
            raise FilterError(
                501, 'Not Implemented', 'comparing a property with another property is not supported here'
            )
    for node in tree.find_data('constant_first_comparison'):
        last = node.children[-1]
        if isinstance(last, Tree) and last.data == 'non_string_value':
            if not any(isinstance(child, Tree) and child.data == 'property' for child in last.children):
                raise _bad('a comparison needs a property on one side')


def compile_filter(text: str | None) -> CompiledFilter:
    """Parse and check ``text`` (``None`` or blank: no filter); raise :class:`FilterError`.

    A filter compiles to the same result every time: the last 512 are kept (a page of a listing and the pages after
    it send the same filter; parsing is about a twentieth of a page's time). Refusals are not kept."""
    if text is None or not text.strip():
        return CompiledFilter(text='', query=None)
    check_limits(text)
    return _compile(text)


@functools.lru_cache(maxsize=512)
def _compile(text: str) -> CompiledFilter:
    try:
        tree = filter_parser().parse(text)
    except BadRequest as exc:
        raise _bad(f'the filter could not be parsed: {exc.detail}') from None
    except RecursionError:  # pragma: no cover - the limits above keep the parser far from the stack's end
        raise _bad('the filter is nested too deeply') from None
    names = _properties(tree)
    mapper = structure_mapper()
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
        raise _bad(f"'{name}' is not a known or searchable property")
    _check_comparisons(tree)
    with request_warnings() as caught:
        try:
            query = _Transformer(mapper=mapper).transform(tree)
        except VisitError as exc:
            original = exc.orig_exc
            if isinstance(original, BadRequest):
                raise _bad(str(original.detail)) from None
            if isinstance(original, NotImplementedError):
                raise FilterError(501, 'Not Implemented', f'not supported in filters: {original}') from None
            raise _bad(f'invalid filter: {original}') from None
        except BadRequest as exc:  # raised by the post-processing
            raise _bad(str(exc.detail)) from None
        except NotImplementedError as exc:
            raise FilterError(501, 'Not Implemented', f'not supported in filters: {exc}') from None
        except LarkError as exc:
            raise _bad(f'invalid filter: {exc}') from None
    try:
        check_query(query)
    except QueryError as exc:
        raise _bad(f'invalid filter: {exc}') from None
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
            bounds += [parse_timestamp(condition[op]) for op in operators if isinstance(condition.get(op), str)]
    return tightest(bounds) if bounds else None
