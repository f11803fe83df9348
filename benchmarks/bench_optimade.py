"""Benchmark of OPTIMADE queries over one workspace: records read, Convex calls and time per request.

Usage::

    .venv/bin/python benchmarks/bench_optimade.py [--n 1000] [--repeat 3]

It projects N synthetic structures (1 to 8 sites, 4 compositions; no AiiDA needed: the projection works on
attribute dictionaries) into the in-memory store and into the local Convex server, then times requests to
``/optimade/v1/structures`` through the app (FastAPI test client, page_limit 20, the first page) and prints, per
filter and backend: the plan the planner picks, Convex function calls per request, and the median wall time. The
local Convex server is an in-memory test double, not a deployment, so its milliseconds say nothing about a real
deployment; its calls are what a deployment would receive.
"""

from __future__ import annotations

import argparse
import pathlib
import secrets
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FILTERS = [
    ('(none)', ''),
    ('elements HAS ALL "Fe","O"', 'elements HAS ALL "Fe","O"'),
    ('nsites >= 4 AND NOT elements HAS "Si"', 'nsites >= 4 AND NOT elements HAS "Si"'),
    ('chemical_formula_reduced STARTS "Fe"', 'chemical_formula_reduced STARTS "Fe"'),
    ('id = "s-000042"', 'id = "s-000042"'),
    ('last_modified >= <newest 5%>', None),
    ('species_at_sites HAS "Fe2"', 'species_at_sites HAS "Fe2"'),
]
COMPOSITIONS = [('Si', 'Si'), ('Fe1', 'Fe'), ('Fe2', 'Fe'), ('O', 'O')]


def attributes(i: int) -> dict:
    nsites = 1 + i % 8
    kinds = [COMPOSITIONS[(i + k) % (1 + i % 4)] for k in range(nsites)]
    names = sorted({name for name, _ in kinds})
    return {
        'cell': [[4.0 + i % 3, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]],
        'pbc1': True,
        'pbc2': True,
        'pbc3': True,
        'kinds': [{'name': n, 'symbols': [dict(COMPOSITIONS)[n]], 'weights': [1.0], 'mass': 1.0} for n in names],
        'sites': [{'kind_name': name, 'position': [0.5 * k, 0.25 * k, 0.1 * k]} for k, (name, _) in enumerate(kinds)],
    }


def seed(store, tenant: str, n: int) -> None:
    from aiida_structstore.core.structures import Source, StructureKey
    from aiida_structstore.structures import structure_content

    batch = []
    for i in range(n):
        key = StructureKey.of(tenant, 'bench', f's-{i:06d}')
        batch.append((structure_content(attributes(i), key=key, node_uuid=None, source=Source(kind='aiida')), None))
        if len(batch) == 200:
            store.structures.put_many(batch)
            batch = []
    if batch:
        store.structures.put_many(batch)


def _calls(store) -> int:
    transport = getattr(store, 'transport', None)
    return 0 if transport is None else transport.calls


def measure(client, headers, store, query: str, repeat: int) -> tuple[int, float, float]:
    from aiida_structstore.api.optimade.filters import compile_filter
    from aiida_structstore.api.optimade.query import plan_request

    times, calls = [], []
    for _ in range(repeat):
        before = _calls(store)
        start = time.perf_counter()
        response = client.get('/optimade/v1/structures', params={'filter': query, 'page_limit': 20}, headers=headers)
        times.append(time.perf_counter() - start)
        calls.append(_calls(store) - before)
        assert response.status_code == 200, response.text
    strategy = plan_request(compile_filter(query), ())
    plan = strategy.kind if strategy.plan is None else f'{strategy.kind}: {strategy.plan.index}'
    return plan, statistics.median(calls), statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=1000)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()

    from fastapi.testclient import TestClient
    from tabulate import tabulate

    from aiida_structstore.api import ApiSettings, create_app, mint_token
    from aiida_structstore.store import MemoryStore
    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex

    settings = ApiSettings(jwt_secret=secrets.token_urlsafe(48))
    rows = []
    with local_convex() as server:
        stores = {'memory': MemoryStore(), 'local Convex': ConvexStore(server.url, server.deploy_key)}
        for name, store in stores.items():
            tenant = f'bench-{secrets.token_hex(3)}'
            started = time.perf_counter()
            seed(store, tenant, args.n)
            print(f'{name}: {args.n} records written in {time.perf_counter() - started:.1f} s', flush=True)
            summaries = list(store.structures.iter_workspace(tenant, 'bench', page_size=200))
            newest = sorted(s.updated_at for s in summaries)[-max(1, args.n // 20)]
            stamp = newest.isoformat(timespec='milliseconds').replace('+00:00', 'Z')
            app = create_app(settings, store=store)
            token = mint_token(settings, tenant, ['bench'])
            headers = {'Authorization': f'Bearer {token}', 'tenant': tenant}
            with TestClient(app) as client:
                client.get('/optimade/versions')  # builds the OPTIMADE app (on first use): not a query's cost
                for label, query in FILTERS:
                    query = query if query is not None else f'last_modified >= "{stamp}"'
                    plan, calls, ms = measure(client, headers, store, query, args.repeat)
                    rows.append([name, label, plan, calls if name != 'memory' else '', f'{ms:.0f}'])
        stores['local Convex'].close()
    print()
    print(f'OPTIMADE /structures over a workspace of {args.n} records (page_limit 20, median of {args.repeat}):')
    print(tabulate(rows, headers=['backend', 'filter', 'plan', 'Convex calls', 'ms / request']))


if __name__ == '__main__':
    main()
