"""Benchmark of the incremental sync: throughput, Convex calls per 1,000 structures, unchanged re-sync, memory.

Usage::

    .venv/bin/python benchmarks/bench_sync.py [--n 10000] [--convex-n 2000] [--db psql|sqlite]

It creates a throwaway AiiDA profile (in a temporary config folder; on PostgreSQL a temporary database on the
running server, dropped at the end), stores N small structures (2 to 9 sites, 3 compositions), and prints a table:

* ``dry run``: select + project + diff of N nodes, nothing written (the AiiDA-side cost of a sync);
* ``sync → memory``: the same plus the writes into the in-memory store and the bulk update of the nodes' extras;
* ``re-sync unchanged``: a second sync of the same N nodes (must write nothing);
* ``sync → local Convex``: ``convex-n`` nodes into the local Convex server, counting HTTP function calls. The local
  server is an in-memory test double whose index queries scan, so its seconds say nothing about Convex; the calls
  are what a real deployment would receive.

Peak Python memory (tracemalloc, in separate dry runs) is measured for N/10 and N nodes to show it does not grow
with N. Times are measured without tracemalloc.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
import tracemalloc

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_profile(db: str, folder: str):
    os.environ['AIIDA_PATH'] = folder
    from aiida.manage.configuration import create_profile, get_config, load_profile

    cluster = None
    if db == 'psql':
        from tests.conftest import RunningServerCluster

        cluster = RunningServerCluster()
        storage_config = cluster.create_database()
        storage_config['repository_uri'] = pathlib.Path(folder, 'repository').as_uri()
        backend = 'core.psql_dos'
    else:
        storage_config = {'filepath': str(pathlib.Path(folder, 'storage'))}
        backend = 'core.sqlite_dos'
    config = get_config(create=True)
    create_profile(
        config, name='bench', email='bench@localhost', storage_backend=backend, storage_config=storage_config
    )
    config.set_default_profile('bench', overwrite=True)
    load_profile('bench', allow_switch=True)
    return cluster


def make_structures(n: int):
    from aiida import orm
    from aiida.manage import get_manager

    group = orm.Group(label=f'bench-{n}-{time.time_ns()}').store()
    storage = get_manager().get_profile_storage()
    nodes = []
    started = time.perf_counter()
    with storage.transaction():
        for i in range(n):
            structure = orm.StructureData(cell=[[4.0 + i % 7 * 0.1, 0, 0], [0, 4.0, 0], [0, 0, 4.0 + i % 5 * 0.1]])
            for j in range(2 + i % 8):
                structure.append_atom(position=(j * 0.5, (i % 3) * 0.1, j * 0.25), symbols=('Fe', 'O', 'Si')[j % 3])
            nodes.append(structure.store())
    group.add_nodes(nodes)
    seconds = time.perf_counter() - started
    # A sync runs in a fresh process (verdi): do not let the nodes just created sit in the ORM session, where every
    # commit of the sync would expire them all.
    pk = group.pk
    del nodes, group
    storage.get_session().expunge_all()
    return pk, seconds


def measure(function, *, trace_memory: bool = False):
    """Run ``function``; return its result, the seconds it took and (if traced) the peak traced memory in bytes.

    Time and memory are measured in separate runs: tracemalloc slows allocation-heavy code several times.
    """
    if trace_memory:
        tracemalloc.start()
    started = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - started
    peak = 0
    if trace_memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=10_000)
    parser.add_argument('--convex-n', type=int, default=2_000)
    parser.add_argument('--db', choices=['psql', 'sqlite'], default='psql')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        cluster = make_profile(args.db, folder)
        try:
            run(args)
        finally:
            from aiida.manage import get_manager

            get_manager().reset_profile()
            if cluster is not None:
                cluster.close()


def run(args) -> None:
    from tabulate import tabulate

    from aiida_structstore.store import MemoryStore
    from aiida_structstore.sync import sync_structures

    rows = []
    small_group, _ = make_structures(args.n // 10)
    group, created = make_structures(args.n)
    print(f'stored {args.n} structures in {created:.1f} s', flush=True)

    def sync(store, group_pk, workspace, **kwargs):
        from aiida import orm

        return sync_structures(
            store, tenant_id='bench', workspace_id=workspace, group=orm.load_group(group_pk), progress=False, **kwargs
        )

    mib = 2**20
    store = MemoryStore()
    report, seconds, _ = measure(lambda: sync(store, group, 'dry', dry_run=True))
    rows.append(['dry run (select + project + diff)', args.n, f'{seconds:.2f}', f'{args.n / seconds:,.0f}', 0, ''])

    writes = {'n': 0}
    original = store.put_prepared

    def counting(batch):
        writes['n'] += len(batch)
        return original(batch)

    store.put_prepared = counting
    report, seconds, _ = measure(lambda: sync(store, group, 'mem'))
    assert report.new == args.n, report
    rows.append(
        ['sync → memory store (+ extras)', args.n, f'{seconds:.2f}', f'{args.n / seconds:,.0f}', writes['n'], '']
    )
    writes['n'] = 0
    report, seconds, _ = measure(lambda: sync(store, group, 'mem'))
    assert report.unchanged == args.n, report
    rows.append(['re-sync unchanged', args.n, f'{seconds:.2f}', f'{args.n / seconds:,.0f}', writes['n'], ''])

    # Memory: a dry run keeps nothing, so its peak is what a sync itself needs; it must not grow with N.
    _, _, peak_small = measure(lambda: sync(MemoryStore(), small_group, 'peak', dry_run=True), trace_memory=True)
    _, _, peak = measure(lambda: sync(MemoryStore(), group, 'peak', dry_run=True), trace_memory=True)
    memory = (
        f'peak traced memory of a dry run: {peak_small / mib:.1f} MiB for {args.n // 10} structures, '
        f'{peak / mib:.1f} MiB for {args.n}'
    )

    if args.convex_n:
        from aiida_structstore.store.convex import ConvexStore
        from devserver.local_convex import local_convex

        convex_group, _ = make_structures(args.convex_n)
        with local_convex() as server, ConvexStore(server.url, server.deploy_key) as convex:
            report, seconds, peak = measure(lambda: sync(convex, convex_group, 'convex'))
            assert report.new == args.convex_n, report
            calls = convex.calls
            rows.append(
                [
                    'sync → local Convex (test double)',
                    args.convex_n,
                    f'{seconds:.2f}',
                    '(not meaningful)',
                    args.convex_n,
                    f'{calls} ({calls * 1000 / args.convex_n:.1f} per 1,000)',
                    f'{peak / 2**20:.1f}',
                ]
            )
            before = convex.calls
            report, seconds, peak = measure(lambda: sync(convex, convex_group, 'convex'))
            assert report.unchanged == args.convex_n, report
            rows.append(
                [
                    're-sync unchanged → local Convex',
                    args.convex_n,
                    f'{seconds:.2f}',
                    f'{args.convex_n / seconds:,.0f}',
                    0,
                    f'{convex.calls - before}',
                    f'{peak / 2**20:.1f}',
                ]
            )

    print(
        tabulate(
            rows,
            headers=[
                'run',
                'structures',
                'seconds',
                'structures/s',
                'records written',
                'Convex calls',
            ],
            tablefmt='github',
        )
    )
    print(f'\n{memory}')
    print(f'AiiDA storage: {args.db}; machine: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}')


if __name__ == '__main__':
    main()
