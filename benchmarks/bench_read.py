"""The read side at workspace scale, side by side with AiiDA's own REST API (``verdi restapi``), in one run.

Usage::

    .venv/bin/pip install 'aiida-core[rest]'          # the baseline (Flask); not needed by the package
    .venv/bin/python benchmarks/bench_read.py                          # 2,000 and 20,000 structures (~15 min)
    .venv/bin/python benchmarks/bench_read.py --sizes 200 --requests 8 --no-restapi   # smoke (in the tests)

It makes a throwaway AiiDA profile on the running PostgreSQL server, stores N structures (1 to 40 sites, one to
four of 20 elements, so about a fifth hold Fe) in a group, syncs them into one workspace of the local Convex
server, and serves them two ways, each as a server process on this machine:

* this project's read API (``structstore-api``: uvicorn, one process) over the local Convex server;
* ``verdi restapi`` (aiida-core's Flask REST API, one process, threaded) over the same profile.

Each workload is run at concurrency 1 and 8 (threads, one HTTP connection each) for ``--requests`` requests per
thread; every response is checked (status 200, the expected number of entries). Workloads:

* **CIF by id** (random structures): ``GET /api/structures/{id}/view?format=cif`` vs
  ``GET /api/v4/nodes/{uuid}/download?download_format=cif``;
* **page of 100 with positions**: ``GET /optimade/v1/structures?page_limit=100`` vs
  ``GET /api/v4/nodes/page/1?perpage=100&full_type=...StructureData...&attributes=true``;
* **the filter** ``elements HAS "Fe" AND nsites>10`` (a page of 100): OPTIMADE's ``filter`` vs ``POST
  /api/v4/querybuilder`` with the same conditions on the attributes (``kinds`` contains Fe, more than 10 ``sites``);
* **list route page of 100** (this project only): ``GET /api/structures?limit=100``.

Then, at the largest N: another tenant's ``GET /api/structures/{id}`` (sequential, median latency) while eight
threads of one tenant run the most expensive OPTIMADE query the API allows (a residual filter that matches nothing,
walking the whole workspace until the per-request row budget stops it).

Convex calls per request are counted with the same app in-process (``fastapi.testclient``). The local Convex server
is an in-memory test double (one Node process on the same two cores), not a deployment: its milliseconds are not a
deployment's, but the calls and rows it is asked for are what a deployment would receive.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import platform
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))

ELEMENTS = ('Fe', 'O', 'Si', 'Al', 'Mg', 'Ca', 'Ti', 'Li', 'Na', 'K', 'Cu', 'Zn', 'Ni', 'Co', 'Mn', 'C', 'N', 'S',
            'P', 'Ba')  # fmt: skip
FILTER = 'elements HAS "Fe" AND nsites>10'
#: A residual filter no structure matches: the index walk reads rows until the request's row budget stops it.
EXPENSIVE = 'chemical_formula_descriptive CONTAINS "Zz" AND NOT nsites = 0'
STRUCTURE_TYPE = 'data.core.structure.StructureData.|'


def composition(i: int) -> tuple[int, list[str]]:
    """The number of sites and the elements of structure ``i``."""
    rng = random.Random(i)
    nsites = 1 + rng.randrange(40)
    return nsites, rng.sample(ELEMENTS, 1 + rng.randrange(4))


def filter_matches(n: int) -> int:
    """How many of the first ``n`` structures match :data:`FILTER`."""
    return sum(1 for i in range(n) if (c := composition(i))[0] > 10 and 'Fe' in c[1])


def make_structures(n: int, start: int, group_label: str) -> float:
    """Store ``n`` structures (numbered from ``start``) in the group ``group_label``; return the seconds it took."""
    from aiida import orm
    from aiida.manage import get_manager

    group, _ = orm.Group.collection.get_or_create(label=group_label)
    storage = get_manager().get_profile_storage()
    started = time.perf_counter()
    for first in range(start, start + n, 2000):
        nodes = []
        with storage.transaction():
            for i in range(first, min(first + 2000, start + n)):
                nsites, elements = composition(i)
                side = 2.5 * (1 + round(nsites ** (1 / 3) + 0.5))
                structure = orm.StructureData(cell=[[side, 0, 0], [0, side, 0], [0, 0, side]])
                grid = 1 + round(nsites ** (1 / 3) + 0.5)
                for j in range(nsites):
                    x, y, z = j % grid, j // grid % grid, j // grid // grid
                    structure.append_atom(position=(2.5 * x, 2.5 * y, 2.5 * z), symbols=elements[j % len(elements)])
                nodes.append(structure.store())
        group.add_nodes(nodes)
    storage.get_session().expunge_all()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_until(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f'{url}: the server exited with {process.returncode}')
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f'{url} did not answer within {timeout} s')


def start(command: list[str], env: dict[str, str], url: str) -> subprocess.Popen:
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    wait_until(url, process)
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load(request: Callable[[object, int], None], concurrency: int, per_thread: int) -> tuple[float, float]:
    """Requests per second and median latency (ms) of ``request`` run by ``concurrency`` threads."""
    import httpx

    latencies: list[float] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        with httpx.Client(timeout=300) as client:
            request(client, index * 1000)  # warm the connection and the server's caches
            mine = []
            for k in range(per_thread):
                started = time.perf_counter()
                request(client, index * 1000 + k + 1)
                mine.append(time.perf_counter() - started)
            with lock:
                latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    seconds = time.perf_counter() - started
    return len(latencies) / seconds, statistics.median(latencies) * 1000


def check(response, what: str, entries: int | None = None) -> None:
    if response.status_code != 200:
        raise RuntimeError(f'{what}: HTTP {response.status_code}: {response.text[:300]}')
    if entries is not None:
        data = response.json()['data']
        found = len(data['nodes'] if isinstance(data, dict) and 'nodes' in data else data)
        if found != entries:
            raise RuntimeError(f'{what}: {found} entries instead of {entries}')


class Ours:
    """Requests to this project's read API."""

    def __init__(self, url: str, token: str, ids: list[str]) -> None:
        self.url, self.ids = url, ids
        self.full, self.matching = min(100, len(ids)), min(100, filter_matches(len(ids)))
        self.headers = {'Authorization': f'Bearer {token}'}

    def cif(self, client, i: int) -> None:
        structure_id = self.ids[random.Random(i).randrange(len(self.ids))]
        response = client.get(f'{self.url}/api/structures/{structure_id}/view', headers=self.headers)
        check(response, 'CIF by id')

    def page(self, client, i: int) -> None:
        response = client.get(f'{self.url}/optimade/v1/structures', params={'page_limit': 100}, headers=self.headers)
        check(response, 'OPTIMADE page', self.full)

    def filter(self, client, i: int) -> None:
        params = {'page_limit': 100, 'filter': FILTER}
        response = client.get(f'{self.url}/optimade/v1/structures', params=params, headers=self.headers)
        check(response, 'OPTIMADE filter', self.matching)

    def listing(self, client, i: int) -> None:
        response = client.get(f'{self.url}/api/structures', params={'limit': 100}, headers=self.headers)
        check(response, 'list route')
        if len(response.json()['items']) != self.full:
            raise RuntimeError(f'list route: not {self.full} items')

    def expensive(self, client, i: int) -> None:
        params = {'page_limit': 100, 'filter': EXPENSIVE}
        response = client.get(f'{self.url}/optimade/v1/structures', params=params, headers=self.headers)
        check(response, 'expensive filter')


@functools.cache
def restapi_query() -> dict:
    """:data:`FILTER` as a ``QueryBuilder`` (serialised as the REST API takes it): the kinds contain Fe and there
    are more than 10 sites, the first 100 by id."""
    from aiida import orm

    builder = orm.QueryBuilder().append(
        orm.StructureData,
        tag='s',
        filters={'attributes.kinds': {'contains': [{'symbols': ['Fe']}]}, 'attributes.sites': {'longer': 10}},
        project=['*'],
    )
    return builder.order_by({'s': {'id': 'asc'}}).limit(100).as_dict()


class RestApi:
    """The same requests to ``verdi restapi``."""

    def __init__(self, url: str, uuids: list[str]) -> None:
        self.url, self.uuids = url, uuids
        self.full, self.matching = min(100, len(uuids)), min(100, filter_matches(len(uuids)))

    def cif(self, client, i: int) -> None:
        uuid = self.uuids[random.Random(i).randrange(len(self.uuids))]
        response = client.get(f'{self.url}/api/v4/nodes/{uuid}/download', params={'download_format': 'cif'})
        check(response, 'restapi CIF')

    def page(self, client, i: int) -> None:
        params = {'perpage': 100, 'full_type': f'"{STRUCTURE_TYPE}"', 'attributes': 'true', 'orderby': 'id'}
        response = client.get(f'{self.url}/api/v4/nodes/page/1', params=params)
        check(response, 'restapi page', self.full)

    def filter(self, client, i: int) -> None:
        query = restapi_query()
        response = client.post(f'{self.url}/api/v4/querybuilder', json=query)
        check(response, 'restapi querybuilder')
        if len(response.json()['data']['s']) != self.matching:
            raise RuntimeError(f'restapi querybuilder: not {self.matching} entries')


def convex_calls(store, app_headers, settings, requests: dict[str, tuple[str, dict]]) -> dict[str, int]:
    """Convex calls per request of each workload, counted in-process on the same store."""
    from fastapi.testclient import TestClient

    from aiida_structstore.api import create_app

    calls = {}
    with TestClient(create_app(settings, store=store)) as client:
        for name, (path, params) in requests.items():
            before = store.transport.calls
            response = client.get(path, params=params, headers=app_headers)
            if response.status_code != 200:
                raise RuntimeError(f'{name}: HTTP {response.status_code}: {response.text[:300]}')
            calls[name] = store.transport.calls - before
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='2000,20000', help='workspace sizes, ascending (each adds to the last)')
    parser.add_argument('--concurrency', default='1,8')
    parser.add_argument('--requests', type=int, default=20, help='requests per thread and workload')
    parser.add_argument('--no-restapi', action='store_true', help='skip verdi restapi (needs aiida-core[rest])')
    parser.add_argument('--json', type=pathlib.Path)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(',')]
    levels = [int(c) for c in args.concurrency.split(',')]

    from bench_sync import make_profile
    from tabulate import tabulate

    from aiida_structstore.api import ApiSettings, mint_token
    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex

    secret = secrets.token_urlsafe(48)
    settings = ApiSettings(jwt_secret=secret)
    rows: list[dict] = []
    calls_rows: list[list] = []
    isolation: list[list] = []
    bin_dir = pathlib.Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as folder:
        cluster = make_profile(folder)
        try:
            from aiida import orm

            from aiida_structstore.structures.sync import sync_structures

            with local_convex() as server, ConvexStore(server.url, server.deploy_key) as store:
                stored = 0
                for n in sizes:
                    seconds = make_structures(n - stored, stored, 'bench-read')
                    print(f'stored {n - stored:,} more structures ({n:,} in all) in {seconds:.1f} s', flush=True)
                    stored = n
                    workspace = f'w{n}'
                    started = time.perf_counter()
                    group = orm.load_group('bench-read')
                    sync_structures(store, tenant_id='bench', workspace_id=workspace, group=group, progress=False)
                    print(f'synced {n:,} into workspace {workspace} in {time.perf_counter() - started:.1f} s')
                    ids = [s.key.structure_id for s in store.structures.iter_workspace('bench', workspace)]
                    token = mint_token(settings, 'bench', [workspace], seconds=3600)
                    headers = {'Authorization': f'Bearer {token}'}
                    calls = convex_calls(
                        store,
                        headers,
                        settings,
                        {
                            'CIF by id': (f'/api/structures/{ids[0]}/view', {}),
                            'page of 100': ('/optimade/v1/structures', {'page_limit': 100}),
                            'filter': ('/optimade/v1/structures', {'page_limit': 100, 'filter': FILTER}),
                            'list route page of 100': ('/api/structures', {'limit': 100}),
                            'expensive filter': ('/optimade/v1/structures', {'page_limit': 100, 'filter': EXPENSIVE}),
                        },
                    )
                    calls_rows += [[n, name, count] for name, count in calls.items()]
                    port = free_port()
                    api = start(
                        [str(bin_dir / 'structstore-api'), '--port', str(port), '--log-level', 'warning'],
                        {
                            'CONVEX_URL': server.url,
                            'CONVEX_DEPLOY_KEY': server.deploy_key,
                            'STRUCTURE_STORE_BACKEND': 'convex',
                            'STRUCTURE_API_JWT_SECRET': secret,
                        },
                        f'http://127.0.0.1:{port}/api/structures',
                    )
                    servers = {'structstore': (api, Ours(f'http://127.0.0.1:{port}', token, ids))}
                    if not args.no_restapi:
                        rest_port = free_port()
                        rest = start(
                            [str(bin_dir / 'verdi'), '-p', 'bench', 'restapi', '-P', str(rest_port)],
                            {},
                            f'http://127.0.0.1:{rest_port}/api/v4/server',
                        )
                        servers['verdi restapi'] = (rest, RestApi(f'http://127.0.0.1:{rest_port}', ids))
                    try:
                        for workload in ('cif', 'page', 'filter', 'listing'):
                            for concurrency in levels:
                                for name, (_, client) in servers.items():
                                    if not hasattr(client, workload):
                                        continue
                                    rate, median = load(getattr(client, workload), concurrency, args.requests)
                                    rows.append(
                                        {
                                            'n': n,
                                            'workload': workload,
                                            'concurrency': concurrency,
                                            'server': name,
                                            'requests/s': round(rate, 2),
                                            'median ms': round(median, 1),
                                        }
                                    )
                                    print(rows[-1], flush=True)
                        if n == sizes[-1]:
                            isolation += tenant_isolation(servers['structstore'][1], settings, store, args.requests)
                    finally:
                        for process, _ in servers.values():
                            stop(process)
        finally:
            from aiida.manage import get_manager

            get_manager().reset_profile()
            cluster.close()

    print()
    print(f'Requests per second and median latency ({args.requests} requests per thread):')
    print(
        tabulate(
            [[r['n'], r['workload'], r['concurrency'], r['server'], r['requests/s'], r['median ms']] for r in rows],
            headers=['structures', 'workload', 'threads', 'server', 'requests/s', 'median ms'],
        )
    )
    print()
    print(ratios(rows, sizes, levels))
    print()
    print('Convex calls per request:')
    print(tabulate(calls_rows, headers=['structures', 'request', 'Convex calls']))
    if isolation:
        print()
        print(tabulate(isolation, headers=["another tenant's GET /api/structures/{id}", 'median ms', 'p95 ms']))
    machine = f'{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}'
    print(f'\nmachine: {machine}')
    if args.json:
        args.json.write_text(json.dumps({'machine': machine, 'rows': rows, 'calls': calls_rows}, indent=2))


def ratios(rows: list[dict], sizes: list[int], levels: list[int]) -> str:
    """Our throughput against the REST API's, the largest size against the smallest, and OPTIMADE against the list
    route."""
    from tabulate import tabulate

    def rate(n, workload, concurrency, server='structstore'):
        found = [
            r['requests/s']
            for r in rows
            if (r['n'], r['workload'], r['concurrency'], r['server']) == (n, workload, concurrency, server)
        ]
        return found[0] if found else None

    table = []
    for n in sizes:
        for concurrency in levels:
            for workload in ('cif', 'page', 'filter'):
                ours, theirs = rate(n, workload, concurrency), rate(n, workload, concurrency, 'verdi restapi')
                listing = rate(n, 'listing', concurrency)
                table.append(
                    [
                        n,
                        concurrency,
                        workload,
                        f'{ours / theirs:.2f}' if ours and theirs else '',
                        f'{rate(sizes[0], workload, concurrency) / ours:.2f}' if ours and n != sizes[0] else '',
                        f'{listing / ours:.2f}' if ours and listing and workload != 'cif' else '',
                    ]
                )
    return tabulate(
        table,
        headers=[
            'structures',
            'threads',
            'workload',
            'ours ÷ restapi (requests/s)',
            f'time ÷ time at {sizes[0]:,}',
            'time ÷ list route page',
        ],
    )


def tenant_isolation(ours: Ours, settings, store, per_thread: int) -> list[list]:
    """Another tenant's ``GET /api/structures/{id}`` latencies, alone and while 8 threads run the expensive query."""
    import httpx

    from aiida_structstore.api import mint_token
    from aiida_structstore.core.structures import Source, StructureKey
    from aiida_structstore.structures import structure_content

    other = StructureKey.of('other', 'small', 'x1')
    attributes = {
        'cell': [[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0]],
        'pbc1': True,
        'pbc2': True,
        'pbc3': True,
        'kinds': [{'name': 'Si', 'symbols': ['Si'], 'weights': [1.0], 'mass': 28.0855}],
        'sites': [{'kind_name': 'Si', 'position': [0.0, 0.0, 0.0]}],
    }
    store.structures.put(structure_content(attributes, key=other, node_uuid=None, source=Source(kind='aiida')))
    token = mint_token(settings, 'other', ['small'], seconds=3600)
    url = f'{ours.url}/api/structures/x1'

    def probe(count: int) -> list[float]:
        times = []
        with httpx.Client(timeout=60, headers={'Authorization': f'Bearer {token}'}) as client:
            check(client.get(url), 'other tenant')
            for _ in range(count):
                started = time.perf_counter()
                check(client.get(url), 'other tenant')
                times.append((time.perf_counter() - started) * 1000)
        return times

    def summary(label: str, times: list[float]) -> list:
        times = sorted(times)
        return [label, round(statistics.median(times), 1), round(times[int(0.95 * (len(times) - 1))], 1)]

    alone = probe(50)
    stop_flag = threading.Event()
    expensive_count = [0]

    def hammer() -> None:
        with httpx.Client(timeout=300) as client:
            while not stop_flag.is_set():
                ours.expensive(client, 0)
                expensive_count[0] += 1

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        while expensive_count[0] < 8:  # every hammer has answered once: the load is on
            time.sleep(0.05)
        loaded = probe(max(50, per_thread))
    finally:
        stop_flag.set()
        for thread in threads:
            thread.join()
    return [summary('alone', alone), summary('while 8 threads run the expensive filter', loaded)]


if __name__ == '__main__':
    main()
