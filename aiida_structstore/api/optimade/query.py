"""Answering ``/structures`` from the store's index queries: the planner and the page walk.

:func:`plan_request` turns the compiled filter and ``sort`` into a :class:`Strategy`:

* ``ids``: ``id = "x"`` (or several joined by ``OR``) at the top level: the records are read with one
  ``get_many`` call, filtered, sorted and sliced here; everything is exact.
* ``index``: one index of the workspace walked by ``store.structures.query`` with the WHOLE compiled query as the
  residual filter (evaluated next to the data); the plan only narrows the walk, it never decides what matches.
  A single-key ``sort`` on an indexed property (``id``, ``last_modified``, ``nsites``, ``nelements``,
  ``chemical_formula_reduced``; ``-`` for descending) fixes the index and order, bounded by the filter's top-level
  conjuncts on that property. Without ``sort``, the most selective index the top-level conjuncts give (see
  :func:`_best_plan`), else every structure by id. Pages follow the store's cursor, cut right after the page's
  last entry (the store's item cursors). A filter on the structure payload (``species_at_sites``, ``species``,
  ``cartesian_site_positions``) is walked the same way: the store evaluates the conjuncts it can see, and the whole
  filter is evaluated here on the payloads that come with each store page (``residual``).
* ``scan``: a sort on several keys or on a property without an index: the matches are collected (the walk narrowed
  by the same planner; payload conjuncts evaluated here on full records read by ``get_many``), sorted here and
  sliced. At most :data:`MAX_SCAN_ENTRIES` entries are read; beyond that the request is refused with 403.

Every request makes at most :data:`MAX_CALLS` store calls, of which at most :data:`MAX_SHORT_CALLS` may end at
their row budget (:data:`ROWS_PER_CALL` rows): a page whose walk spends that ends early, with a next link.

Offsets (``page_offset``, ``page_number``) walk the store's pages up to the offset: at most
:data:`MAX_PAGE_OFFSET`, 403 beyond.

:class:`StructureCollection` is the ``optimade`` package's ``EntryCollection`` over the store, as its custom backends
are written: ``handle_query_params`` turns the package's query-parameter objects into this module's criteria (the
compiled filter with its limits, the plan, the page), ``_run_db_query`` runs the plan with :func:`walk`, ``count``
and ``__len__`` count by walking an index, and the base class's ``find`` does the rest (mapping documents back to
resources, checking ``response_fields``). One collection is built per app; :meth:`StructureCollection.scoped` gives
each request its own, bound to the token's workspace and the store. What it keeps of its own, and why:

* the filter is compiled by :func:`.filters.compile_filter` (limits checked before parsing, literal string
  operators, timestamps), not by the base class's parser and transformer;
* page limits are answered 403 with this API's message, ``page_cursor`` is this API's signed opaque text (the
  package's parameter is an integer), and a bad one is 400 without backend text;
* ``__len__`` and ``count`` walk an index (``count`` gives up past :data:`MAX_SCAN_ENTRIES` and answers ``None``, as
  the package's MongoDB backend does on a timeout): the routes give ``data_available`` only when a walk read it.

This module imports no AiiDA module.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from optimade.filterparser import LarkParser
from optimade.models import StructureResource
from optimade.server.entry_collections import EntryCollection
from optimade.server.query_params import EntryListingQueryParams, SingleEntryQueryParams

from ...core.exceptions import BackendError, InvalidInputError
from ...core.query import Bound, QueryPlan, timestamp_text
from ...core.structures import StructureKey, StructureRecord, StructureSummary
from ...store import Store
from ...store.structures import MAX_PAGE_SIZE as MAX_STORE_PAGE
from ..context import Scope, http_errors
from ..cursors import MAX_CURSOR_LENGTH, CursorCodec, bad_cursor, listing_of
from .fields import (
    MAX_PAGE_LIMIT,
    PAYLOAD_FIELDS,
    PREFIX,
    SERVED_FIELDS,
    document,
    server_config,
    sortable_fields,
)
from .filters import (
    CompiledFilter,
    FilterError,
    compile_filter,
    filter_parser,
    filter_transformer,
    parse_timestamp,
    structure_mapper,
)

__all__ = (
    'MAX_PAGE_OFFSET',
    'MAX_SCAN_ENTRIES',
    'SORT_INDEXES',
    'Page',
    'Strategy',
    'StructureCollection',
    'WalkResult',
    'parse_sort',
    'plan_request',
    'walk',
)

#: Entries a ``scan`` strategy reads at most (payload filters, multi-key or non-indexed sorts); 403 beyond.
MAX_SCAN_ENTRIES = 1000
#: The largest ``page_offset`` (or ``(page_number - 1) * page_limit``) served; 403 beyond (follow ``links.next``).
MAX_PAGE_OFFSET = 1000
#: Summaries per ``store.structures.query`` call.
STORE_PAGE = 200
#: Index rows one ``store.structures.query`` call reads at most (a tenth of Convex's per-call budget of the protocol:
#: a call that evaluates the filter on 500 rows takes about 20 ms on the local Convex server, which answers one call
#: at a time, so that is what another tenant's call may wait behind).
ROWS_PER_CALL = 500
#: Calls per request that may end short (their rows read, the page not full): a filter that matches little reads at
#: most this many times :data:`ROWS_PER_CALL` rows; the page then ends early, with a next link.
MAX_SHORT_CALLS = 4
#: Store calls one tenant's OPTIMADE requests make at the same time, at most, per API process: the others of that
#: tenant wait their turn, so one tenant's many expensive requests cannot fill the store's queue ahead of another's.
MAX_TENANT_CALLS = 2
_tenant_slots: dict[str, threading.BoundedSemaphore] = {}
_tenant_slots_lock = threading.Lock()


def _tenant_slot(tenant_id: str) -> threading.BoundedSemaphore:
    with _tenant_slots_lock:
        slot = _tenant_slots.get(tenant_id)
        if slot is None:
            slot = _tenant_slots[tenant_id] = threading.BoundedSemaphore(MAX_TENANT_CALLS)
        return slot


#: Store calls per request at most (full pages included: a payload filter is evaluated here on pages of
#: :data:`STORE_PAGE` entries, most of which may not match).
MAX_CALLS = 10
#: Full records per ``get_many`` call while scanning for a payload filter.
RECORD_BATCH = 100
#: The properties ``sort`` is served from an index for, and the index.
SORT_INDEXES = {
    'id': 'structure_id',
    'last_modified': 'updated_at',
    'nsites': 'nsites',
    'nelements': 'nelements',
    'chemical_formula_reduced': 'chemical_formula_reduced',
}
#: Elements so common that another element of ``HAS ALL`` is walked first.
_COMMON_ELEMENTS = ('O', 'H', 'C', 'N')


@dataclass(frozen=True)
class Strategy:
    """How a request is answered (see the module docstring)."""

    kind: Literal['ids', 'index', 'scan']
    plan: QueryPlan | None = None
    #: The query given to the store (the whole compiled query, or for a payload filter its summary conjuncts).
    store_filter: dict[str, Any] | None = None
    sort: tuple[tuple[str, bool], ...] = ()
    #: Whether the whole filter is evaluated here too, on the payloads that come with each store page (a filter on
    #: the structure payload, which the store's ``filter`` cannot see).
    residual: bool = False


def parse_sort(value: str | None) -> tuple[tuple[str, bool], ...]:
    """``sort`` as ``(property, descending)`` pairs; 400 for an unknown or unsortable property."""
    if not value:
        return ()
    keys = []
    for part in (part.strip() for part in value.split(',')):
        if not part:
            continue
        name, descending = part.removeprefix('-'), part.startswith('-')
        if name not in sortable_fields():
            standard = StructureResource.model_fields['attributes'].annotation.model_fields
            known = name in SERVED_FIELDS or name in standard
            raise FilterError(
                400,
                'Bad Request',
                f"'{name}' is {'not sortable' if known else 'not a known property'}; "
                f'sortable: {", ".join(sorted(sortable_fields()))}',
            )
        keys.append((name, descending))
    return tuple(keys)


def _conjuncts(query: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not query:
        return []
    if set(query) == {'$and'}:
        return [part for item in query['$and'] for part in _conjuncts(item)]
    return [query]


def _mentions(query: Any, names: frozenset[str]) -> bool:
    """Whether ``query`` names a property of ``names`` anywhere."""
    if isinstance(query, list):
        return any(_mentions(item, names) for item in query)
    if not isinstance(query, dict):
        return False
    for key, value in query.items():
        if key in ('$and', '$or'):
            if _mentions(value, names):
                return True
        elif not key.startswith('$') and key.split('.', 1)[0] in names:
            return True
    return False


_INDEX_PROPERTY = {index: name for name, index in SORT_INDEXES.items()}


def _bounds(conjuncts: list[dict[str, Any]], index: str) -> tuple[Bound | None, Bound | None]:
    """The tightest range on ``index`` that top-level comparisons of its property give (``None``: unbounded)."""
    name = _INDEX_PROPERTY[index]
    lowers: list[Bound] = []
    uppers: list[Bound] = []
    for part in conjuncts:
        if set(part) != {name} or not isinstance(part[name], dict):
            continue
        for operator, value in part[name].items():
            if operator == '$startswith' and index == 'chemical_formula_reduced':
                # A prefix is a range: from the prefix to the prefix with its last character the next one (ASCII).
                if isinstance(value, str) and 0 < len(value) <= 1024 and ' ' <= value[-1] < '~':
                    lowers.append(Bound(value))
                    uppers.append(Bound(value[:-1] + chr(ord(value[-1]) + 1), inclusive=False))
                continue
            value = _bound_value(index, value)
            if value is None:
                continue
            if operator in ('$gt', '$gte', '$eq'):
                lowers.append(Bound(value, inclusive=operator != '$gt'))
            if operator in ('$lt', '$lte', '$eq'):
                uppers.append(Bound(value, inclusive=operator != '$lt'))
    lower = max(lowers, key=lambda b: (b.value, not b.inclusive), default=None)
    upper = min(uppers, key=lambda b: (b.value, b.inclusive), default=None)
    return lower, upper


def _bound_value(index: str, value: Any) -> Any:
    """``value`` as a bound of ``index``, or ``None`` when it cannot be one (then the filter alone decides)."""
    if index in ('nsites', 'nelements'):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value
        return value if ok and abs(value) != float('inf') else None
    if index == 'updated_at':
        if not isinstance(value, str):
            return None
        try:
            moment = parse_timestamp(value)
        except FilterError:
            return None
        # Whole milliseconds, widened (the store keeps milliseconds); the filter applies the exact comparison.
        return moment
    return value if isinstance(value, str) and len(value) <= 1024 else None


def _widen(bound: Bound | None, lower: bool) -> Bound | None:
    """A time bound made inclusive and rounded outwards to the millisecond (never narrower than asked)."""
    if bound is None or not isinstance(bound.value, dt.datetime):
        return bound
    moment = bound.value
    rounded = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if not lower and rounded != moment:
        rounded += dt.timedelta(milliseconds=1)
    return Bound(rounded, inclusive=True)


def _plan(index: str, conjuncts: list[dict[str, Any]], order: str = 'asc') -> QueryPlan:
    lower, upper = _bounds(conjuncts, index) if index != 'structure_id' else (None, None)
    return QueryPlan(index=index, lower=_widen(lower, True), upper=_widen(upper, False), order=order)


def _element(conjuncts: list[dict[str, Any]]) -> str | None:
    """An element every match has (``elements HAS "X"`` or ``HAS ALL``), preferring a less common one."""
    candidates: list[str] = []
    for part in conjuncts:
        condition = part.get('elements') if set(part) == {'elements'} else None
        if not isinstance(condition, dict):
            continue
        for operator, values in condition.items():
            if not isinstance(values, list) or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in values):
                continue
            if operator == '$all' or (operator == '$in' and len(values) == 1):
                candidates += values
    if not candidates:
        return None
    return next((e for e in candidates if e not in _COMMON_ELEMENTS), candidates[0])


def _best_plan(conjuncts: list[dict[str, Any]]) -> QueryPlan:
    """The most selective index the top-level conjuncts give, by a fixed ranking (there are no statistics):
    an equal formula, an equal ``nsites``, an element, a closed range (``last_modified``, ``nsites``, a formula
    prefix: ``chemical_formula_reduced STARTS "Fe"``), a one-sided
    range (``last_modified``, then ``nsites``), ``nelements``; else every structure by id."""
    ranked: list[tuple[int, QueryPlan]] = []
    for index in ('chemical_formula_reduced', 'nsites', 'updated_at', 'nelements'):
        lower, upper = _bounds(conjuncts, index)
        if lower is None and upper is None:
            continue
        equal = lower is not None and upper is not None and lower.value == upper.value
        closed = lower is not None and upper is not None
        if index == 'nelements':
            rank = 7
        elif equal and index in ('chemical_formula_reduced', 'nsites'):
            rank = 0 if index == 'chemical_formula_reduced' else 1
        elif closed:
            rank = 3
        elif index == 'updated_at':
            rank = 4
        else:
            rank = 5
        ranked.append((rank, _plan(index, conjuncts)))
    element = _element(conjuncts)
    if element is not None:
        ranked.append((2, QueryPlan(index='element', element=element)))
    ranked.sort(key=lambda item: item[0])
    return ranked[0][1] if ranked else QueryPlan()


def plan_request(compiled: CompiledFilter, sort: tuple[tuple[str, bool], ...]) -> Strategy:
    """The strategy for ``compiled`` and ``sort`` (see the module docstring)."""
    if compiled.ids is not None:
        return Strategy('ids', sort=sort)
    conjuncts = _conjuncts(compiled.query)
    if compiled.needs_payload:
        # The store evaluates documents without the payload: give it only the conjuncts that do not need it.
        summary = [part for part in conjuncts if not _mentions(part, PAYLOAD_FIELDS)]
        store_filter = None if not summary else summary[0] if len(summary) == 1 else {'$and': summary}
    else:
        store_filter = compiled.query
    indexed = len(sort) == 1 and sort[0][0] in SORT_INDEXES
    if indexed:
        name, descending = sort[0]
        plan = _plan(SORT_INDEXES[name], conjuncts, 'desc' if descending else 'asc')
    else:
        plan = _best_plan(conjuncts)
    kind = 'index' if indexed or not sort else 'scan'
    return Strategy(kind, plan=plan, store_filter=store_filter, sort=sort, residual=compiled.needs_payload)


# -- walking ---------------------------------------------------------------------------------------------------------


@dataclass
class WalkResult:
    """What a request read: the documents of the page, the full records read on the way, and what is known."""

    documents: list[dict[str, Any]]
    records: dict[str, StructureRecord]
    #: Entries matching in all (``None``: not known without reading further).
    returned: int | None
    more: bool
    #: The store's cursor and the id of the entry read ahead, for the next page (``index`` strategy only).
    next_state: dict[str, Any] | None = None


def _too_many(what: str, limit: int, unit: str = 'entries') -> FilterError:
    return FilterError(
        403,
        'Forbidden',
        f'{what} reads more than {limit} {unit}: narrow the filter (an id, elements HAS, nsites or '
        'last_modified ranges use indexes) or sort on one indexed property (id, last_modified, nsites, nelements, '
        'chemical_formula_reduced)',
    )


class _Budget:
    """The store calls of one request: each reads at most :data:`ROWS_PER_CALL` rows, and at most
    :data:`MAX_SHORT_CALLS` of them may end short because of that."""

    def __init__(self) -> None:
        self.short = 0
        self.calls = 0

    @property
    def spent(self) -> bool:
        return self.short >= MAX_SHORT_CALLS or self.calls >= MAX_CALLS

    def query(self, store: Store, scope: Scope, strategy: Strategy, cursor: str | None, limit: int, **options: Any):
        with _tenant_slot(scope.tenant_id):
            page = store.structures.query(
                scope.tenant_id,
                scope.workspace_id,
                plan=strategy.plan,
                filter=strategy.store_filter,
                cursor=cursor,
                limit=limit,
                max_rows=ROWS_PER_CALL,
                **options,
            )
        self.calls += 1
        if page.next_cursor is not None and len(page.items) < limit:
            self.short += 1
        return page


def _summaries(store: Store, scope: Scope, strategy: Strategy, cursor: str | None) -> Iterator[tuple[Any, str | None]]:
    """The matching summaries in the plan's order, each with the store cursor after the store page it came from;
    403 when the request's row budget runs out first."""
    budget = _Budget()
    while True:
        if budget.spent:
            raise _too_many('this filter', MAX_SHORT_CALLS * ROWS_PER_CALL, 'rows')
        page = budget.query(store, scope, strategy, cursor, STORE_PAGE)
        cursor = page.next_cursor
        for index, item in enumerate(page.items):
            yield item, cursor if index == len(page.items) - 1 else None
        if cursor is None:
            return


def _sort(documents: list[dict[str, Any]], sort: tuple[tuple[str, bool], ...]) -> list[dict[str, Any]]:
    """Documents sorted by ``sort`` in Python (ties and entries without the value: by id, the latter last)."""
    ordered = sorted(documents, key=lambda doc: doc['id'])
    for name, descending in reversed(sort):
        present = [doc for doc in ordered if doc.get(name) is not None]
        missing = [doc for doc in ordered if doc.get(name) is None]
        present.sort(key=lambda doc: _sort_key(doc[name]), reverse=descending)
        ordered = present + missing
    return ordered


def _sort_key(value: Any) -> tuple[int, Any]:
    """A key that orders any values without an error: numbers, then text, then timestamps, then anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value) if value == value else (3, '')
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, dt.datetime):
        return (2, timestamp_text(value))
    return (3, repr(value))


def _records(store: Store, scope: Scope, ids: list[str]) -> dict[str, StructureRecord]:
    keys = []
    for structure_id in ids:
        try:
            keys.append(StructureKey.of(scope.tenant_id, scope.workspace_id, structure_id))
        except InvalidInputError:
            continue  # no record can have this id
    found = {}
    for start in range(0, len(keys), RECORD_BATCH):
        for record in store.structures.get_many(keys[start : start + RECORD_BATCH]):
            if record is not None:
                found[record.key.structure_id] = record
    return found


def walk(
    store: Store,
    scope: Scope,
    compiled: CompiledFilter,
    strategy: Strategy,
    *,
    offset: int,
    limit: int,
    state: dict[str, Any] | None,
    with_records: bool = False,
) -> WalkResult:
    """The page of ``limit`` entries after ``offset`` (or continuing ``state``, a cursor's content); with the full
    records of the page's entries when ``with_records`` (an index walk reads them in one ``get_many`` call)."""
    if offset > MAX_PAGE_OFFSET:
        raise FilterError(
            403, 'Forbidden', f'page_offset {offset} is over the maximum of {MAX_PAGE_OFFSET}; follow links.next'
        )
    if strategy.kind == 'index':
        return _walk_index(
            store, scope, compiled, strategy, offset=offset, limit=limit, state=state, with_records=with_records
        )
    if state is not None:
        raise InvalidInputError('a page cursor is only issued for index walks')
    if strategy.kind == 'ids':
        records = _records(store, scope, sorted(compiled.ids or ()))
        matched = [document(r) for r in records.values()]
    else:
        records, matched = _scan(store, scope, compiled, strategy)
    matched = [doc for doc in matched if compiled.matches(doc)]
    ordered = _sort(matched, strategy.sort)
    return WalkResult(
        documents=ordered[offset : offset + limit],
        records=records,
        returned=len(ordered),
        more=offset + limit < len(ordered),
    )


def _scan(
    store: Store, scope: Scope, compiled: CompiledFilter, strategy: Strategy
) -> tuple[dict[str, StructureRecord], list[dict[str, Any]]]:
    records: dict[str, StructureRecord] = {}
    matched: list[dict[str, Any]] = []
    batch: list[StructureSummary] = []
    count = 0

    def flush() -> None:
        found = _records(store, scope, [item.key.structure_id for item in batch])
        records.update(found)
        matched.extend(document(record) for record in found.values())
        batch.clear()

    for item, _ in _summaries(store, scope, strategy, None):
        count += 1
        if count > MAX_SCAN_ENTRIES:
            what = 'a filter on the structure payload' if compiled.needs_payload else 'this sort'
            raise _too_many(what, MAX_SCAN_ENTRIES)
        if compiled.needs_payload:
            batch.append(item)
            if len(batch) == RECORD_BATCH:
                flush()
        else:
            matched.append(document(item))
    if batch:
        flush()
    return records, matched


def _walk_index(
    store: Store,
    scope: Scope,
    compiled: CompiledFilter,
    strategy: Strategy,
    *,
    offset: int,
    limit: int,
    state: dict[str, Any] | None,
    with_records: bool,
) -> WalkResult:
    """Read ``offset + limit + 1`` matches (the one more says whether there are more), from the start or from a
    cursor's state: the store's cursor right after the last entry of the previous page, and the position of the page.
    The entries come with their structure payloads from the same store calls when ``with_records`` (a payload
    stored in chunks is read with ``get_many``), so a page usually costs one store call. Each call asks for exactly
    the matches still needed.

    A state may also name an entry the previous page read ahead (``ahead``, from cursors issued before item cursors
    existed): it is read again with ``get_many`` and kept if it still matches."""
    documents: list[dict[str, Any]] = []
    #: The store cursor right after each document (``None`` for the entry read ahead).
    after: list[str | None] = []
    chunked: list[str] = []
    records: dict[str, StructureRecord] = {}
    skip = offset if state is None else 0
    need = skip + limit + 1
    cursor = None if state is None else state['cursor']
    exhausted = state is not None and cursor is None
    ahead = None if state is None else state.get('ahead')
    if ahead is not None:
        documents.append({'id': ahead})  # read below
        after.append(cursor)
    budget = _Budget()
    while len(documents) < need and not exhausted and not budget.spent:
        # A payload filter is evaluated here: ask for whole store pages, since most entries may not match.
        limit_now = STORE_PAGE if strategy.residual else min(need - len(documents), MAX_STORE_PAGE)
        page = budget.query(
            store, scope, strategy, cursor, limit_now, with_structures=with_records or strategy.residual
        )
        assert page.structures is not None or not strategy.residual
        unread = [
            item.key.structure_id
            for item, payload in zip(page.items, page.structures or (), strict=False)
            if payload is False
        ]
        if unread and strategy.residual:
            records.update(_records(store, scope, unread))  # chunked payloads, needed to evaluate the filter
        for index, item in enumerate(page.items):
            payload = page.structures[index] if page.structures is not None else None
            if payload is False:
                record = records.get(item.key.structure_id)
                payload = None if record is None else record.structure
                if record is None:
                    chunked.append(item.key.structure_id)
            doc = document(item, payload or None)
            if strategy.residual and not compiled.matches(doc):
                continue
            documents.append(doc)
            after.append(page.cursors[index])
        cursor = page.next_cursor
        exhausted = cursor is None
    if len(documents) < skip and not exhausted:
        raise _too_many(f'page_offset {offset} with this filter', MAX_SHORT_CALLS * ROWS_PER_CALL, 'rows')
    page_docs = documents[skip : skip + limit]
    rest = documents[skip + limit :]
    # The row budget ran out before the page was full: the page ends here, and the next one goes on from the cursor.
    cut = len(documents) < need and not exhausted
    wanted = [doc['id'] for doc in page_docs if doc['id'] in chunked or doc['id'] == ahead]
    if wanted:
        records.update(_records(store, scope, wanted))
    if ahead is not None and page_docs and page_docs[0]['id'] == ahead:
        record = records.get(ahead)
        doc = None if record is None else document(record)
        if doc is None or not compiled.matches(doc):
            page_docs = page_docs[1:]
        else:
            page_docs[0] = doc
    more = bool(rest) or cut
    returned = None
    if not more:
        returned = len(documents) if state is None else state['position'] + len(page_docs)
    next_state = None
    if more:
        # Right after the page's last entry (the entry read beyond it is read again by the next page), or where the
        # row budget stopped the walk.
        last = skip + limit - 1
        position_cursor = after[last] if rest and last < len(after) and after[last] is not None else cursor
        next_state = {
            'position': (offset if state is None else state['position']) + len(page_docs),
            'cursor': position_cursor,
            'ahead': rest[0]['id'] if rest and position_cursor is cursor else None,
        }
    return WalkResult(documents=page_docs, records=records, returned=returned, more=more, next_state=next_state)


# -- the package's entry collection over the store -------------------------------------------------------------------

#: Standard structure properties (of the specification) that the records do not hold: returned as null when asked.
ALL_STANDARD = frozenset(StructureResource.model_fields['attributes'].annotation.model_fields)


def response_fields(value: str | None) -> tuple[list[str] | None, list[str]]:
    """The attributes to return (``None``: all served ones) and warnings for other providers' fields."""
    if not value:
        return None, []
    names, notes = [], []
    for name in (part.strip() for part in value.split(',')):
        if not name or name in ('id', 'type'):
            continue
        if name in SERVED_FIELDS or name in ALL_STANDARD:
            names.append(name)
        elif name.startswith('_') and not name.startswith(f'_{PREFIX}_'):
            notes.append(f"response field '{name}' belongs to another provider; it was ignored")
        else:
            raise FilterError(400, 'Bad Request', f"unknown response field '{name}'")
    return names, notes


def _cursor_state(payload: str) -> dict[str, Any]:
    """The state inside a page cursor (signed by this API, so malformed means another version's): 400 otherwise."""
    try:
        state = json.loads(payload)
    except ValueError:
        raise bad_cursor() from None
    if (
        not isinstance(state, dict)
        or set(state) != {'position', 'cursor', 'ahead'}
        or not isinstance(state['position'], int)
        or state['position'] < 0
        or not isinstance(state['cursor'], str | None)
        or not isinstance(state['ahead'], str | None)
    ):
        raise bad_cursor()
    return state


@dataclass
class Page:
    """What one request to a scoped collection learnt beyond what ``find`` returns: for the route's response."""

    compiled: CompiledFilter = field(default_factory=lambda: CompiledFilter(text='', query=None))
    #: The attributes asked for (``None``: every served one) and warnings about ``response_fields``.
    fields: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    listing: str = ''
    offset: int = 0
    #: The state of the next page's cursor (``None``: no cursor; offsets continue).
    next_state: dict[str, Any] | None = None
    returned: int | None = None


class StructureCollection(EntryCollection):
    """The structures of one workspace of the store, as an ``optimade`` ``EntryCollection`` (module docstring)."""

    def __init__(self, cursors: CursorCodec) -> None:
        # Not the base class's __init__: it builds a parser of the latest grammar, which this collection never uses
        # (filters are compiled by compile_filter), and that costs the first OPTIMADE request about a third of its
        # time. These are the attributes it sets (tests/api/test_optimade.py checks that none is missing).
        self.resource_cls = StructureResource
        self.resource_mapper = structure_mapper()
        self.transformer = filter_transformer()
        self.config = server_config()
        self.provider_prefix = self.config.provider.prefix
        self.provider_fields = [
            name if isinstance(name, str) else name['name']
            for name in self.config.provider_fields.get(self.resource_mapper.ENDPOINT, [])
        ]
        self._all_fields: set[str] = set()
        self.cursors = cursors
        self.store: Store | None = None
        self.scope: Scope | None = None
        self.entry_id: str | None = None
        self.page = Page()
        self.all_fields  # noqa: B018 - computed once here, shared by the scoped copies

    @property
    def parser(self) -> LarkParser:
        """The parser of the grammar version :func:`.filters.compile_filter` uses (built on the first filter)."""
        return filter_parser()

    def scoped(self, store: Store, scope: Scope, entry_id: str | None = None) -> StructureCollection:
        """This collection for one request: the workspace ``scope`` of ``store`` (and one entry)."""
        scoped = copy.copy(self)
        scoped.store, scoped.scope, scoped.entry_id, scoped.page = store, scope, entry_id, Page()
        return scoped

    def _bound(self) -> tuple[Store, Scope]:
        if self.store is None or self.scope is None:
            raise RuntimeError('the collection is not scoped to a workspace: use scoped()')
        return self.store, self.scope

    def __len__(self) -> int:
        """The entries of the workspace, counted by walking its id index (a read of every summary)."""
        store, scope = self._bound()
        return sum(1 for _ in _summaries(store, scope, Strategy('index', plan=QueryPlan()), None))

    def count(self, **kwargs: Any) -> int | None:
        """The entries matching ``filter`` (an OPTIMADE filter string), or ``None`` past :data:`MAX_SCAN_ENTRIES`."""
        store, scope = self._bound()
        strategy = plan_request(compile_filter(kwargs.get('filter') or None), ())
        if strategy.kind != 'index':
            return None
        count = 0
        for count, _ in enumerate(_summaries(store, scope, strategy, None), start=1):
            if count > MAX_SCAN_ENTRIES:
                return None
        return count

    def insert(self, data: list) -> None:
        raise NotImplementedError('structures are written by the projection from AiiDA, never through OPTIMADE')

    def handle_query_params(self, params: EntryListingQueryParams | SingleEntryQueryParams) -> dict[str, Any]:
        """The criteria of ``params`` for :meth:`_run_db_query` (and ``fields`` for the base class's ``find``)."""
        if params.response_format != 'json':
            raise FilterError(400, 'Bad Request', f"response_format '{params.response_format}' is not served; use json")
        page = self.page
        page.fields, page.notes = response_fields(params.response_fields)
        fields = self.all_fields.copy() if page.fields is None else {*page.fields, 'id', 'type'}
        if isinstance(params, SingleEntryQueryParams):
            return {'fields': fields}
        limit, offset, number = params.page_limit, params.page_offset, params.page_number
        if limit < 1:
            raise FilterError(400, 'Bad Request', 'page_limit must be at least 1')
        if limit > MAX_PAGE_LIMIT:
            raise FilterError(403, 'Forbidden', f'page_limit {limit} is over the maximum of {MAX_PAGE_LIMIT}')
        if number is not None:
            if number < 1:
                raise FilterError(400, 'Bad Request', 'page_number must be at least 1 (the first page is 1)')
            offset = (number - 1) * limit
        cursor = params.page_cursor
        if cursor is not None and (offset or number is not None):
            raise FilterError(400, 'Bad Request', 'page_cursor cannot be combined with page_offset or page_number')
        if offset > MAX_PAGE_OFFSET:
            raise FilterError(
                403, 'Forbidden', f'page_offset {offset} is over the maximum of {MAX_PAGE_OFFSET}; follow links.next'
            )
        sort = parse_sort(params.sort)
        page.compiled = compile_filter(params.filter)
        _, scope = self._bound()
        # A cursor serves only the listing that issued it: same scope, same filter, same sort.
        page.listing = listing_of(
            'optimade',
            scope.tenant_id,
            scope.workspace_id,
            json.dumps(page.compiled.query, sort_keys=True, separators=(',', ':')),
            json.dumps(sort),
        )
        page.offset = offset
        state = _cursor_state(self.cursors.unwrap(cursor, page.listing)) if cursor is not None else None
        return {
            'fields': fields,
            'strategy': plan_request(page.compiled, sort),
            'limit': limit,
            'offset': offset,
            'state': state,
        }

    def _run_db_query(
        self, criteria: dict[str, Any], single_entry: bool = False
    ) -> tuple[list[dict[str, Any]], int | None, bool]:
        store, scope = self._bound()
        payload = self.page.fields is None or bool(PAYLOAD_FIELDS & set(self.page.fields))
        if single_entry:
            with http_errors('entry'):
                record = store.structures.get(scope.key(self.entry_id or ''))
            return [document(record)], 1, False
        state = criteria['state']
        with http_errors('entries'):
            try:
                result = walk(
                    store,
                    scope,
                    self.page.compiled,
                    criteria['strategy'],
                    offset=criteria['offset'],
                    limit=criteria['limit'],
                    state=state,
                    with_records=payload,
                )
            except (InvalidInputError, BackendError):
                if state is None:
                    raise
                raise bad_cursor() from None  # the store refused its own cursor: never show its text
            records = dict(result.records)
            # Entries read without their payload (a sort-only scan): their full records, in one call.
            missing = [
                doc['id']
                for doc in result.documents
                if payload and doc['id'] not in records and not PAYLOAD_FIELDS.intersection(doc)
            ]
            if missing:
                records.update(_records(store, scope, missing))
        self.page.next_state, self.page.returned = result.next_state, result.returned
        documents = [
            doc if records.get(doc['id']) is None else document(records[doc['id']]) for doc in result.documents
        ]
        return documents, result.returned, result.more

    def get_next_query_params(
        self, params: EntryListingQueryParams, results: dict[str, Any] | list[dict[str, Any]] | None
    ) -> dict[str, list[str]]:
        """``page_cursor`` (signed) for an index walk, else ``page_offset``."""
        state = self.page.next_state
        wrapped = None
        if state is not None:
            wrapped = self.cursors.wrap(json.dumps(state, separators=(',', ':')), self.page.listing)
        if wrapped is not None and len(wrapped) <= MAX_CURSOR_LENGTH:
            return {'page_cursor': [wrapped]}
        position = state['position'] if state else self.page.offset + (len(results) if isinstance(results, list) else 0)
        return {'page_offset': [str(position)]}
