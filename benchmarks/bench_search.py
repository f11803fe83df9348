"""Benchmark of the list route's search (what the viewer's workspace page asks) and of ``/raw`` with its file name.

Usage::

    .venv/bin/python benchmarks/bench_search.py [--n 2000] [--repeat 5]

It projects N synthetic structures (those of ``bench_optimade.py``: 1 to 8 sites of Si, Fe1, Fe2 and O; no AiiDA
needed) into the in-memory store and into the local Convex server, then times requests to ``/api/structures``
(a page of 50, the first) with each search parameter and to ``/raw`` through the app (FastAPI test client), and
prints per request and backend: the items on the page, the Convex function calls and the median wall time. The local
Convex server is an in-memory test double, not a deployment: its milliseconds say nothing about a real deployment;
its calls are what a deployment would receive.
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
sys.path.insert(0, str(ROOT / 'benchmarks'))

REQUESTS = [
    ('list, newest first', '/api/structures', {}),
    ('id_prefix=s-0012', '/api/structures', {'id_prefix': 's-0012'}),
    ('formula=<that of s-000011>', '/api/structures', {'formula': None}),
    ('elements=Si', '/api/structures', {'elements': 'Si'}),
    ('elements=Fe,O,Si', '/api/structures', {'elements': 'Fe,O,Si'}),
    ('elements=Fe&id_prefix=s-0019', '/api/structures', {'elements': 'Fe', 'id_prefix': 's-0019'}),
    ('/raw (name from the summary)', '/api/structures/with-raw/raw', {}),
    ('/view?format=cif', '/api/structures/with-raw/view', {'format': 'cif'}),
]


def _calls(store) -> int:
    transport = getattr(store, 'transport', None)
    return 0 if transport is None else transport.calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=2000)
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()

    from bench_optimade import attributes, seed
    from fastapi.testclient import TestClient
    from tabulate import tabulate

    from aiida_structstore.api import ApiSettings, create_app, mint_token
    from aiida_structstore.core.structures import Source, StructureKey
    from aiida_structstore.store import MemoryStore
    from aiida_structstore.store.convex import ConvexStore
    from aiida_structstore.structures import structure_content
    from devserver.local_convex import local_convex

    settings = ApiSettings(jwt_secret=secrets.token_urlsafe(48))
    rows = []
    with local_convex() as server:
        stores = {'memory': MemoryStore(), 'local Convex': ConvexStore(server.url, server.deploy_key)}
        for name, store in stores.items():
            tenant = f'bench-{secrets.token_hex(3)}'
            seed(store, tenant, args.n)
            key = StructureKey.of(tenant, 'bench', 'with-raw')
            source = Source(kind='pw-input', filename='/home/someone/runs/hématite "final".in')
            content = structure_content(attributes(7), key=key, node_uuid=None, source=source)
            store.structures.put(content, raw='&control\n/\n' * 20_000)
            formula = store.structures.get(StructureKey.of(tenant, 'bench', 's-000011')).summary
            formula = formula['chemical_formula_reduced']
            token = mint_token(settings, tenant, ['bench'])
            headers = {'Authorization': f'Bearer {token}'}
            with TestClient(create_app(settings, store=store)) as client:
                for label, path, params in REQUESTS:
                    times, calls, items = [], [], None
                    for _ in range(args.repeat):
                        before = _calls(store)
                        started = time.perf_counter()
                        query = {'limit': 50, **{k: v if v is not None else formula for k, v in params.items()}}
                        response = client.get(path, params=query, headers=headers)
                        times.append(time.perf_counter() - started)
                        calls.append(_calls(store) - before)
                        assert response.status_code == 200, response.text
                        if path == '/api/structures':
                            items = len(response.json()['items'])
                    rows.append(
                        [
                            name,
                            label.replace('<that of s-000011>', formula),
                            '' if items is None else items,
                            statistics.median(calls) if name != 'memory' else '',
                            f'{statistics.median(times) * 1000:.1f}',
                        ]
                    )
        stores['local Convex'].close()
    print()
    print(
        f'The list route searched, and /raw, over a workspace of {args.n} records (limit 50, median of {args.repeat}):'
    )
    print(tabulate(rows, headers=['backend', 'request', 'items', 'Convex calls', 'ms / request']))


if __name__ == '__main__':
    main()
