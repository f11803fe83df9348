"""The store and API side of uploads: how fast uploads are stored, claimed, read and finished. Prints a table.

Usage::

    .venv/bin/python benchmarks/bench_upload_store.py                 # 500 uploads, memory and the local Convex server
    .venv/bin/python benchmarks/bench_upload_store.py --count 100 --no-large

For each backend (the in-memory store; the local Convex server, paced to Convex's default write throughput):

* **POST /api/structures/uploads**: N small CIF files (about 1.5 KB) through the app (FastAPI's test client, in
  process: the route, the capped body read, the store), uploads per second and latency (median, p95);
* **claim → read → complete** by 1 and by 2 importer threads until none is left: the store's part of an import (the
  AiiDA side adds parsing, provenance and the projection), uploads per second, and the claims each thread won (their
  sum is N: no upload claimed twice);
* **a 10 MB pw.x-like upload** (staged in several calls) and **a 10 MB non-UTF-8 one** (base64): store, read back.

The local Convex server runs one function at a time, as a test double; a real deployment runs mutations in
parallel, serializably, so its numbers are a lower bound there, and network round trips (not counted here) add to
each call.
"""

from __future__ import annotations

import argparse
import pathlib
import secrets
import statistics
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cif(n: int) -> bytes:
    lines = [f'data_bench_{n}', '_cell_length_a 5.43', '_cell_length_b 5.43', '_cell_length_c 5.43']
    lines += [
        '_cell_angle_alpha 90',
        '_cell_angle_beta 90',
        '_cell_angle_gamma 90',
        "_symmetry_space_group_name_H-M 'P 1'",
    ]
    lines += ['loop_', '_atom_site_label', '_atom_site_fract_x', '_atom_site_fract_y', '_atom_site_fract_z']
    lines += [f'Si{i} {i / 40:.4f} {(i * 7 % 40) / 40:.4f} {(i * 13 % 40) / 40:.4f}' for i in range(40)]
    return ('\n'.join(lines) + '\n').encode()


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def bench_api(store, count: int) -> dict:
    from fastapi.testclient import TestClient

    from aiida_structstore.api import ApiSettings, create_app
    from aiida_structstore.api.auth import mint_token

    settings = ApiSettings(jwt_secret=secrets.token_urlsafe(48))
    tenant = f'bench-{secrets.token_hex(4)}'
    token = mint_token(settings, tenant, ['lab'], upload=['lab'], subject='bench')
    headers = {'Authorization': f'Bearer {token}', 'Content-Type': 'chemical/x-cif'}
    latencies = []
    with TestClient(create_app(settings, store=store, viewer=False, optimade=False)) as client:
        start = time.perf_counter()
        for n in range(count):
            began = time.perf_counter()
            answer = client.post(
                '/api/structures/uploads',
                params={'workspace': 'lab', 'kind': 'cif', 'filename': f'{n}.cif'},
                content=cif(n),
                headers=headers,
            )
            latencies.append(time.perf_counter() - began)
            assert answer.status_code == 201, answer.text
        elapsed = time.perf_counter() - start
    return {
        'tenant': tenant,
        'rate': count / elapsed,
        'median': statistics.median(latencies),
        'p95': percentile(latencies, 0.95),
    }


def bench_claims(store, tenant: str, threads: int) -> dict:
    won = [0] * threads

    def importer(index: int) -> None:
        while (
            claimed := store.uploads.claim(claimer=f'bench-{index}', tenant_id=tenant, lease_seconds=300)
        ) is not None:
            store.uploads.read(claimed.key)
            store.uploads.complete(
                claimed.key, claim=claimed.claim, structure_id=f's{claimed.key.upload_id}', node_uuid='n'
            )
            won[index] += 1

    workers = [threading.Thread(target=importer, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    return {'rate': sum(won) / elapsed, 'won': won}


def bench_large(store) -> list[tuple[str, float, float]]:
    tenant = f'bench-{secrets.token_hex(4)}'
    rows = []
    for label, content in (
        ('10 MB UTF-8 text', b'  0.1250 0.1250 0.1250 1.0\n' * (10 * 2**20 // 27)),
        ('10 MB not UTF-8 (base64)', b'\xff' + bytes(range(256)) * (10 * 2**20 // 256)),
    ):
        start = time.perf_counter()
        record, _ = store.uploads.create(tenant, 'lab', filename='big.in', kind='pw', content=content, uploaded_by='b')
        stored = time.perf_counter() - start
        start = time.perf_counter()
        assert store.uploads.read(record.key) == content
        rows.append((label, stored, time.perf_counter() - start))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=500, help='uploads per run (default: %(default)s)')
    parser.add_argument('--no-large', action='store_true', help='leave out the 10 MB uploads')
    args = parser.parse_args()

    from tabulate import tabulate

    from aiida_structstore.store import MemoryStore
    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex

    rows, large = [], []
    with local_convex() as server:
        for name, make in (
            ('memory', MemoryStore),
            ('local Convex server', lambda: ConvexStore(server.url, server.deploy_key)),
        ):
            with make() as store:
                posted = bench_api(store, args.count)
                rows.append(
                    (
                        name,
                        f'POST {args.count} uploads',
                        f'{posted["rate"]:.0f}',
                        f'{posted["median"] * 1000:.1f}',
                        f'{posted["p95"] * 1000:.1f}',
                        '',
                    )
                )
                half = args.count // 2
                # The first half by one importer, the second by two at once: the rest of the uploads.
                one = bench_claims_limited(store, posted['tenant'], 1, half)
                two = bench_claims(store, posted['tenant'], 2)
                rows.append((name, 'claim, read, complete (1 importer)', f'{one["rate"]:.0f}', '', '', str(one['won'])))
                rows.append(
                    (name, 'claim, read, complete (2 importers)', f'{two["rate"]:.0f}', '', '', str(two['won']))
                )
                assert sum(one['won']) + sum(two['won']) == args.count
                if not args.no_large:
                    large += [(name, *row) for row in bench_large(store)]
    print(tabulate(rows, headers=['backend', 'what', 'per second', 'median ms', 'p95 ms', 'claims won']))
    if large:
        print()
        print(
            tabulate(
                [(b, label, f'{s:.2f}', f'{r:.2f}') for b, label, s, r in large],
                headers=['backend', 'upload', 'store s', 'read s'],
            )
        )


def bench_claims_limited(store, tenant: str, threads: int, limit: int) -> dict:
    """As :func:`bench_claims`, stopping after ``limit`` uploads."""
    won = [0] * threads
    start = time.perf_counter()
    while won[0] < limit and (claimed := store.uploads.claim(claimer='bench', tenant_id=tenant)) is not None:
        store.uploads.read(claimed.key)
        store.uploads.complete(
            claimed.key, claim=claimed.claim, structure_id=f's{claimed.key.upload_id}', node_uuid='n'
        )
        won[0] += 1
    return {'rate': won[0] / (time.perf_counter() - start), 'won': won}


if __name__ == '__main__':
    main()
