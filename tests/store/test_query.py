"""The store's query (``store.structures.query``): an index plan, a filter evaluated next to the data, cursor pages.

The property: paging through a query returns exactly what a full scan in Python returns (the entries in the plan's
range whose documents match the filter), in the plan's order, each once, whatever the page size; on random plans
and filters over one workspace of varied records.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiida_structstore.api.optimade.filters import compile_filter
from aiida_structstore.core.exceptions import InvalidInputError
from aiida_structstore.core.query import Bound, QueryError, QueryPlan, entry_document, matches
from aiida_structstore.core.structures import Source, StructureContent, StructureKey

ELEMENTS = ('Cu', 'Fe', 'O', 'Si')
FILTERS = (
    None,
    'nsites > 5',
    'nsites >= 3 AND nsites <= 9',
    'elements HAS "Fe"',
    'elements HAS ALL "Fe", "O"',
    'elements HAS ANY "Cu", "Si"',
    'elements HAS ONLY "Fe", "O"',
    'NOT elements HAS "Si"',
    'nelements = 2 OR nsites < 3',
    'chemical_formula_reduced STARTS WITH "Fe"',
    'chemical_formula_reduced CONTAINS "O"',
    'id ENDS WITH "7"',
    'id CONTAINS "."',
    'elements LENGTH 3',
    'nsites IS KNOWN AND NOT nelements = 1',
)


def formula(elements: list[str], nsites: int) -> str:
    return ''.join(f'{e}{nsites if i == 0 and nsites > 1 else ""}' for i, e in enumerate(elements))


@pytest.fixture
def workspace(store, tenant):
    """Forty structures with varied elements, site counts and formulas (some equal, for ties)."""
    rng = random.Random(1234)
    contents = []
    for i in range(40):
        elements = sorted(rng.sample(ELEMENTS, rng.randint(1, 3)))
        nsites = rng.randint(1, 12)
        structure = {
            'elements': elements,
            'nelements': len(elements),
            'nsites': nsites,
            'chemical_formula_reduced': formula(elements, nsites),
        }
        key = StructureKey.of(tenant, 'q', f's{i:02d}')
        contents.append(StructureContent(key=key, source=Source(kind='cif', filename=f'{i}.cif'), structure=structure))
    store.structures.put_many([(content, None) for content in contents])
    return store, tenant, list(store.structures.iter_workspace(tenant, 'q'))


def expected(items, plan: QueryPlan, query) -> list[str]:
    def position(item):
        value = plan.value_of(item)
        return (value is not None, value if value is not None else 0, item.key.structure_id)

    rows = [i for i in items if plan.admits(i) and (query is None or matches(query, entry_document(i)))]
    rows.sort(key=position, reverse=plan.order == 'desc')
    return [item.key.structure_id for item in rows]


def collect(store, tenant, plan, query, limit, max_rows=None) -> list[str]:
    found, cursor = [], None
    for _ in range(200):
        page = store.structures.query(
            tenant, 'q', plan=plan, filter=query, cursor=cursor, limit=limit, max_rows=max_rows
        )
        assert len(page.items) <= limit
        found += [item.key.structure_id for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return found
    raise AssertionError('the query never ended')


@st.composite
def plans(draw, items):
    index = draw(
        st.sampled_from(['structure_id', 'updated_at', 'nsites', 'nelements', 'chemical_formula_reduced', 'element'])
    )
    order = draw(st.sampled_from(['asc', 'desc']))
    if index == 'element':
        return QueryPlan(index='element', element=draw(st.sampled_from(ELEMENTS)), order=order)
    values = sorted({QueryPlan(index=index).value_of(item) for item in items} - {None}, key=lambda v: (str(type(v)), v))
    bounds = {}
    for name in ('lower', 'upper'):
        if values and draw(st.booleans()):
            bounds[name] = Bound(draw(st.sampled_from(values)), inclusive=draw(st.booleans()))
    return QueryPlan(index=index, order=order, **bounds)


def test_paging_a_query_returns_what_a_full_scan_returns(workspace):
    store, tenant, items = workspace

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(plan=plans(items), text=st.sampled_from(FILTERS), limit=st.integers(1, 9))
    def check(plan, text, limit):
        query = compile_filter(text).query
        assert collect(store, tenant, plan, query, limit) == expected(items, plan, query)

    check()


def test_paging_with_a_row_budget_returns_what_a_full_scan_returns(workspace):
    """Pages that end at their row budget (short, even empty, with a cursor) lose and repeat nothing."""
    store, tenant, items = workspace

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(plan=plans(items), text=st.sampled_from(FILTERS), limit=st.integers(1, 9), max_rows=st.integers(1, 7))
    def check(plan, text, limit, max_rows):
        query = compile_filter(text).query
        assert collect(store, tenant, plan, query, limit, max_rows) == expected(items, plan, query)

    check()


def test_a_row_budget_ends_a_page_that_matches_nothing(workspace):
    """A filter that matches nothing reads ``max_rows`` rows and stops, with a cursor, instead of the workspace."""
    store, tenant, _ = workspace
    query = {'chemical_formula_descriptive': {'$contains': 'Zz'}}
    page = store.structures.query(tenant, 'q', filter=query, limit=5, max_rows=3)
    assert page.items == () and page.next_cursor is not None
    assert collect(store, tenant, QueryPlan(), query, 5, max_rows=3) == []
    with pytest.raises(InvalidInputError, match='max_rows'):
        store.structures.query(tenant, 'q', max_rows=0)


def test_item_cursors_cut_a_page_anywhere_and_payloads_come_with_the_page(workspace):
    """``cursors[k]`` goes on right after item k (nothing lost, nothing twice), and ``with_structures`` gives each
    item's payload as ``get`` reads it, in the same call."""
    store, tenant, _ = workspace
    for plan in (QueryPlan(), QueryPlan(index='nsites', order='desc'), QueryPlan(index='element', element='O')):
        everything = collect(store, tenant, plan, None, 50)
        page = store.structures.query(tenant, 'q', plan=plan, limit=7, with_structures=True)
        assert len(page.cursors) == len(page.items) == len(page.structures) == 7
        for k in (0, 3, 6):
            rest = store.structures.query(tenant, 'q', plan=plan, cursor=page.cursors[k], limit=50)
            ids = [item.key.structure_id for item in page.items[: k + 1] + rest.items]
            assert ids == everything[: len(ids)] and len(rest.items) == min(50, len(everything) - k - 1)
        for item, payload in zip(page.items, page.structures, strict=True):
            assert payload == store.structures.get(item.key).structure
    assert store.structures.query(tenant, 'q', limit=3).structures is None


def test_a_time_range(workspace):
    store, tenant, items = workspace
    times = sorted(item.updated_at for item in items)
    plan = QueryPlan(index='updated_at', lower=Bound(times[10]), upper=Bound(times[19], inclusive=False))
    found = collect(store, tenant, plan, None, 4)
    assert found == expected(items, plan, None)
    assert all(times[10] <= item.updated_at < times[19] for item in items if item.key.structure_id in found)


def test_other_scopes_are_never_returned(workspace, make_content):
    store, tenant, items = workspace
    store.structures.put(make_content('intruder', workspace='q', tenant_id=f'{tenant}-other'))
    store.structures.put(make_content('neighbour', workspace='q2'))
    found = collect(store, tenant, QueryPlan(), None, 50)
    assert sorted(found) == sorted(item.key.structure_id for item in items)


def test_bad_plans_and_queries_are_refused(workspace):
    store, tenant, _ = workspace
    with pytest.raises(InvalidInputError, match='invalid query'):
        store.structures.query(tenant, 'q', filter={'nsites': {'$regex': '.*'}})
    with pytest.raises(InvalidInputError, match='plan must be a QueryPlan'):
        store.structures.query(tenant, 'q', plan={'index': 'nsites'})
    with pytest.raises(QueryError, match='unknown index'):
        QueryPlan(index='cell_volume')
    with pytest.raises(QueryError, match='element'):
        QueryPlan(index='element')
    with pytest.raises(InvalidInputError):
        store.structures.query(tenant, '../q')


def test_plans_as_the_convex_function_takes_them():
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    plan = QueryPlan(index='updated_at', lower=Bound(moment), upper=Bound(moment, inclusive=False), order='desc')
    assert plan.as_json() == {
        'index': 'updated_at',
        'order': 'desc',
        'lower': {'value': moment.timestamp() * 1000, 'inclusive': True},
        'upper': {'value': moment.timestamp() * 1000, 'inclusive': False},
    }
    assert QueryPlan(index='element', element='Fe').as_json() == {'index': 'element', 'order': 'asc', 'element': 'Fe'}
