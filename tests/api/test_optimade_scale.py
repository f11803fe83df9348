"""OPTIMADE on a workspace of 20,000 structures on the local Convex server: the official validator, indexed filters
against what the generator made, paging to the end, and the cost of a page (calls) independent of the size."""

from __future__ import annotations

import contextlib
import math
import random
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aiida_structstore.api import create_app

from .conftest import bearer, make_token, run_validator, serve

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('optimade-scale')]

SIZE = 20_000
TENANT = 'scale'
ELEMENTS = ('Fe', 'O', 'Si', 'Al', 'Mg', 'Ca', 'Ti', 'Li', 'Na', 'K', 'Cu', 'Zn', 'Ni', 'Co', 'Mn', 'C', 'N', 'S',
            'P', 'Ba')  # fmt: skip
BIN = Path(sys.executable).parent


def composition(i: int) -> tuple[int, list[str]]:
    """Structure ``i``: 1 to 12 sites, one to four elements (the same generator as benchmarks/bench_read.py)."""
    rng = random.Random(i)
    return 1 + rng.randrange(12), rng.sample(ELEMENTS, 1 + rng.randrange(4))


def used(i: int) -> tuple[int, set[str]]:
    """The number of sites and the elements structure ``i`` holds (a site each, in order, until the sites end)."""
    nsites, elements = composition(i)
    return nsites, set(sorted(elements)[:nsites])


def content(i: int):
    from aiida_structstore.core.structures import Source, StructureContent, StructureKey

    nsites, elements = composition(i)
    elements = sorted(elements)
    kinds = [elements[n % len(elements)] for n in range(nsites)]
    counts = {e: kinds.count(e) for e in elements if e in kinds}
    divisor = math.gcd(*counts.values())
    reduced = {e: c // divisor for e, c in counts.items()}

    def formula(amounts):
        return ''.join(f'{e}{c if c > 1 else ""}' for e, c in amounts.items())

    anonymous = ''.join(
        f'{chr(65 + n)}{c if c > 1 else ""}' for n, c in enumerate(sorted(reduced.values(), reverse=True))
    )
    structure = {
        'elements': sorted(counts),
        'nelements': len(counts),
        'nsites': nsites,
        'chemical_formula_reduced': formula(reduced),
        'chemical_formula_descriptive': formula(counts),
        'chemical_formula_hill': formula(counts) if 'C' not in counts else None,
        'chemical_formula_anonymous': anonymous,
        'elements_ratios': [counts[e] / nsites for e in sorted(counts)],
        'lattice_vectors': [[2.5 * nsites, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]],
        'dimension_types': [1, 1, 1],
        'nperiodic_dimensions': 3,
        'structure_features': [],
        'species': [{'name': e, 'chemical_symbols': [e], 'concentration': [1.0]} for e in sorted(counts)],
        'species_at_sites': kinds,
        'cartesian_site_positions': [[2.5 * n, 0.0, 0.0] for n in range(nsites)],
    }
    key = StructureKey.of(TENANT, 'big', f'x{i:05d}')
    return StructureContent(key=key, source=Source(kind='cif', filename=f'{i}.cif'), structure=structure)


@pytest.fixture(scope='module')
def big():
    """A local Convex server (without the full-scan checks, which cost a sort of the workspace per lookup) holding
    ``SIZE`` structures in one workspace."""
    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex

    with (
        local_convex(write_bytes_per_second=0) as server,
        ConvexStore(server.url, server.deploy_key, write_rate=0) as store,
    ):
        for start in range(0, SIZE, 500):
            store.structures.put_many([(content(i), None) for i in range(start, min(start + 500, SIZE))])
        yield store


@pytest.fixture(scope='module')
def settings():
    from aiida_structstore.api import ApiSettings

    from .conftest import SECRET

    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ('JWT_SECRET', 'JWKS_URL', 'JWT_ISSUER', 'JWT_AUDIENCE', 'CORS_ORIGINS', 'PUBLIC_URL'):
            monkeypatch.delenv(f'STRUCTURE_API_{name}', raising=False)
        monkeypatch.setenv('STRUCTURE_API_JWT_SECRET', SECRET)
        return ApiSettings()


@pytest.fixture(scope='module')
def get(big, settings):
    headers = bearer(make_token(TENANT, ['big'], expires_in=3600))
    with TestClient(create_app(settings, store=big)) as client:

        def get(url, **params):
            response = client.get(url.split('testserver', 1)[-1], params=params or None, headers=headers)
            assert response.status_code == 200, response.text
            return response.json()

        yield get


def test_the_official_validator_passes_on_20000_structures(big, settings):
    with contextlib.contextmanager(serve)(create_app(settings, store=big)) as server:
        run_validator(f'{server.url}/optimade/v1', make_token(TENANT, ['big'], expires_in=3600))


@pytest.mark.parametrize(
    ('text', 'predicate'),
    [
        ('elements HAS "Cu" AND nsites > 10', lambda n, e: 'Cu' in e and n > 10),
        ('elements HAS ALL "Fe", "O"', lambda n, e: {'Fe', 'O'} <= e),
        ('nsites = 7 AND NOT elements HAS "Si"', lambda n, e: n == 7 and 'Si' not in e),
    ],
)
def test_indexed_filters_find_what_the_generator_made(get, text, predicate):
    """Every page followed to the end: exactly the structures the generator made that way, each once."""
    expected = sorted(f'x{i:05d}' for i in range(SIZE) if predicate(*used(i)))
    found, body = [], get('/optimade/v1/structures', filter=text, page_limit=100, response_fields='nsites')
    while True:
        found += [entry['id'] for entry in body['data']]
        if not body['meta']['more_data_available']:
            break
        body = get(body['links']['next'])
    assert sorted(found) == expected and len(found) == len(set(found))
    assert len(expected) > 100  # several pages


def test_a_payload_filter_pages_through_20000_structures(get):
    """``species_at_sites`` is in the payload: walked page by page with the payloads, never refused as a scan."""
    expected = sorted(f'x{i:05d}' for i in range(SIZE) if used(i)[0] > 10 and {'Ba', 'Zn'} <= used(i)[1])
    found, body = [], get('/optimade/v1/structures', filter='species_at_sites HAS ALL "Ba", "Zn" AND nsites > 10')
    while True:
        found += [entry['id'] for entry in body['data']]
        if not body['meta']['more_data_available']:
            break
        body = get(body['links']['next'])
    assert sorted(found) == expected and len(found) == len(set(found)) and expected


def test_a_page_costs_the_same_calls_at_the_end_of_the_workspace(big, get):
    """A page by cursor deep into 20,000 structures costs what the first page costs: one walk, one get_many."""
    body = get('/optimade/v1/structures', page_limit=100)
    for _ in range(5):
        body = get(body['links']['next'])
    before = big.transport.calls
    body = get(body['links']['next'])
    assert len(body['data']) == 100
    assert big.transport.calls - before <= 2
    last = get('/optimade/v1/structures', sort='-id', page_limit=1)['data'][0]['id']
    assert last == f'x{SIZE - 1:05d}'


def test_a_filter_that_matches_nothing_stops_at_the_row_budget(big, get):
    """No match in 20,000: each request reads its budget of rows and ends with a next link, never the workspace."""
    from aiida_structstore.api.optimade.query import MAX_SHORT_CALLS, ROWS_PER_CALL

    requests, calls = 0, []
    body = {
        'links': {'next': '/optimade/v1/structures?page_limit=100&filter=chemical_formula_descriptive CONTAINS "Zz"'}
    }
    while True:
        before = big.transport.calls
        body = get(body['links']['next'])
        calls.append(big.transport.calls - before)
        requests += 1
        assert body['data'] == []
        if not body['meta']['more_data_available']:
            break
    assert max(calls) <= MAX_SHORT_CALLS
    assert requests == -(-SIZE // (MAX_SHORT_CALLS * ROWS_PER_CALL)) + (SIZE % (MAX_SHORT_CALLS * ROWS_PER_CALL) == 0)
