"""The sync benchmark suite: throughput, calls, pacing, raw inputs, large structures, memory, parallel workers, and
the baselines, in one run. Prints a table and writes JSON.

Usage::

    .venv/bin/python benchmarks/bench_sync.py                       # 10,000 and 50,000 structures, 3 repeats
    .venv/bin/python benchmarks/bench_sync.py --sizes 500 --repeat 1 --quick --json out.json   # the CI smoke run

It makes a throwaway AiiDA profile (a temporary database on the running PostgreSQL server, dropped at the end, and
RabbitMQ for the daemon runs), stores N small structures (2 to 9 sites, three elements) per size, and measures:

* **first sync** of N structures into: the in-memory store; the counting sink (the local server answering as an
  empty deployment without any database work: the pipeline's own speed); the counting sink with the client paced to
  Convex's default 4 MiB/s write throughput (what a real deployment on the default plan allows); and the local
  Convex server (the in-memory test double, paced as Convex). The local server's own cost is reported apart as the
  difference between its time and the sink's;
* **re-syncs**: unchanged, and with 1 % new structures;
* **Convex calls per 1,000 structures** and bytes sent;
* **raw inputs** of 1, 10 and 50 MB: write, read back, verify, through the local Convex server (paced);
* **one structure of 50,000 sites**: project, write, read back;
* **peak RSS** of a whole sync process (``verdi data structstore sync``, into the sink) at N = 1,000, 10,000 and
  50,000 (each in a fresh process, ``ru_maxrss``);
* **parallel sync** (work chain ``structstore.sync``) of the largest N into the sink with 1 and 2 daemon workers;
* **baselines**: ``verdi archive create`` of the same group, and the obvious loop (``get_cif()`` and one ``put``
  per structure, on a sample of 200) into the sink.

Each timing is repeated ``--repeat`` times (a fresh workspace each time) and reported as the median with the
spread (min to max).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MIB = 2**20


def make_profile(folder: str):
    """A throwaway profile on PostgreSQL (a new database on the running server) with RabbitMQ, if it answers."""
    os.environ['AIIDA_PATH'] = folder
    from aiida.manage.configuration import create_profile, get_config, load_profile

    from devserver.postgres import RunningServerCluster, port_open

    cluster = RunningServerCluster()
    storage_config = cluster.create_database()
    storage_config['repository_uri'] = pathlib.Path(folder, 'repository').as_uri()
    config = get_config(create=True)
    broker = 'core.rabbitmq' if port_open('127.0.0.1', 5672) else None
    kwargs = {'broker_backend': broker, 'broker_config': {}} if broker else {}
    create_profile(
        config,
        name='bench',
        email='bench@localhost',
        storage_backend='core.psql_dos',
        storage_config=storage_config,
        **kwargs,
    )
    config.set_default_profile('bench', overwrite=True)
    load_profile('bench', allow_switch=True)
    return cluster


def make_structures(n: int, label: str | None = None) -> tuple[int, float]:
    """Store ``n`` small structures in a new group; return the group's pk and the seconds it took."""
    from aiida import orm
    from aiida.manage import get_manager

    group = orm.Group(label=label or f'bench-{n}-{time.time_ns()}').store()
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
    pk = group.pk
    del nodes, group
    # A sync runs in a fresh process (verdi): the nodes just created must not sit in this ORM session.
    storage.get_session().expunge_all()
    return pk, seconds


def timed(function, repeat: int) -> tuple[list[float], object]:
    seconds, result = [], None
    for index in range(repeat):
        started = time.perf_counter()
        result = function(index)
        seconds.append(time.perf_counter() - started)
    return seconds, result


def spread(seconds: list[float]) -> dict:
    return {'median': statistics.median(seconds), 'min': min(seconds), 'max': max(seconds), 'runs': len(seconds)}


class Suite:
    def __init__(self, args):
        self.args = args
        self.rows: list[dict] = []

    def add(self, run: str, n: int | None, seconds: list[float] | None, **extra) -> None:
        row = {'run': run, 'structures': n}
        if seconds:
            row['seconds'] = spread(seconds)
            if n:
                row['per_second'] = n / row['seconds']['median']
        row.update(extra)
        self.rows.append(row)
        print(self.format_row(row), flush=True)

    @staticmethod
    def format_row(row: dict) -> str:
        seconds = row.get('seconds')
        timing = f'{seconds["median"]:.2f} s ({seconds["min"]:.2f}-{seconds["max"]:.2f})' if seconds else ''
        rate = f'{row["per_second"]:,.0f}/s' if 'per_second' in row else ''
        notes = ', '.join(f'{k}={v}' for k, v in row.items() if k not in ('run', 'structures', 'seconds', 'per_second'))
        return f'{row["run"]:<52} {row["structures"] or "":>7} {timing:>24} {rate:>10}  {notes}'


def sync_into(store, group_pk: int, workspace: str, **kwargs):
    from aiida import orm

    from aiida_structstore.structures.sync import sync_structures

    return sync_structures(
        store, tenant_id='bench', workspace_id=workspace, group=orm.load_group(group_pk), progress=False, **kwargs
    )


def first_syncs(suite: Suite, n: int, group_pk: int) -> None:
    import httpx

    from aiida_structstore.store import MemoryStore
    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex

    repeat = suite.args.repeat

    def memory(index):
        report = sync_into(MemoryStore(), group_pk, f'mem{index}')
        assert report.new == n, report
        return report

    seconds, _ = timed(memory, repeat)
    suite.add('first sync → memory store', n, seconds)

    with local_convex(sink=True) as sink:
        with ConvexStore(sink.url, sink.deploy_key, write_rate=0) as store:
            httpx.post(f'{sink.url}/stats')
            seconds, _ = timed(lambda i: sync_into(store, group_pk, f'sink{i}'), repeat)
            stats = httpx.get(f'{sink.url}/stats').json()
            calls = sum(stats['calls'].values()) / repeat
            sink_seconds = seconds
            suite.add(
                'first sync → counting sink (unpaced)',
                n,
                seconds,
                calls_per_1000=round(calls * 1000 / n, 1),
                bytes_per_structure=round(stats['bytes_in'] / repeat / n),
            )
            before = store.transport.calls
            started = time.perf_counter()
            again = sync_into(store, group_pk, 'sink0')
            assert again.unchanged == n, again
            calls = store.transport.calls - before
            suite.add('re-sync unchanged → counting sink', n, [time.perf_counter() - started], calls=calls)
        if not suite.args.quick:
            with ConvexStore(sink.url, sink.deploy_key) as store:
                seconds, _ = timed(lambda i: sync_into(store, group_pk, f'paced{i}'), 1)
                suite.add(
                    'first sync → counting sink, paced at 4 MiB/s',
                    n,
                    seconds,
                    waited=round(store.transport.pacer.waited, 1),
                )

    if n <= suite.args.convex_max:
        with local_convex() as server, ConvexStore(server.url, server.deploy_key) as store:
            seconds, _ = timed(lambda i: sync_into(store, group_pk, f'convex{i}'), 1)
            own = seconds[0] - statistics.median(sink_seconds) - store.transport.pacer.waited
            suite.add(
                'first sync → local Convex server (paced)',
                n,
                seconds,
                server_own_seconds=round(own, 2),
                client_waited_for_pacing=round(store.transport.pacer.waited, 1),
            )


def resync_one_percent(suite: Suite, n: int, group_pk: int) -> None:
    from aiida import orm

    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex

    with local_convex(sink=True) as sink, ConvexStore(sink.url, sink.deploy_key, write_rate=0) as store:
        sync_into(store, group_pk, 'one-percent')
        extra_pk, _ = make_structures(max(1, n // 100))
        orm.load_group(group_pk).add_nodes(list(orm.load_group(extra_pk).nodes))
        started = time.perf_counter()
        report = sync_into(store, group_pk, 'one-percent')
        seconds = time.perf_counter() - started
        assert report.new == max(1, n // 100), report
        suite.add('re-sync with 1% new → counting sink', n + report.new, [seconds], new=report.new)


def raw_inputs(suite: Suite) -> None:
    from aiida_structstore.core.structures import Source, StructureContent, StructureKey
    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex

    sizes = (1, 10) if suite.args.quick else (1, 10, 50)
    with local_convex() as server, ConvexStore(server.url, server.deploy_key) as store:
        for megabytes in sizes:
            raw = 'K_POINTS crystal 0.125 0.250 0.375 1.0\n' * (megabytes * MIB // 39)
            key = StructureKey.of('bench', 'raw', f'raw{megabytes}')
            content = StructureContent(key=key, source=Source.of('pw-input'), cif='data_x\n')
            started = time.perf_counter()
            store.structures.put(content, raw=raw)
            wrote = time.perf_counter() - started
            started = time.perf_counter()
            assert store.structures.get_raw(key) == raw  # verified against size, sha256 and chunk count
            read = time.perf_counter() - started
            suite.add(
                f'raw {megabytes} MB: write (paced) / read + verify',
                None,
                [wrote + read],
                write_s=round(wrote, 2),
                read_verify_s=round(read, 2),
            )


def large_structure(suite: Suite) -> None:
    from aiida import orm

    from aiida_structstore.core.structures import StructureKey
    from aiida_structstore.store.convex import ConvexStore
    from aiida_structstore.structures.sync import sync_structures
    from devserver.local_convex import local_convex

    sites = 5_000 if suite.args.quick else 50_000
    structure = orm.StructureData(cell=[[200.0, 0, 0], [0, 200.0, 0], [0, 0, 200.0]])
    for i in range(sites):
        structure.append_atom(position=(i % 100 * 2.0, i // 100 % 100 * 2.0, i // 10_000 * 2.0), symbols='Cu')
    structure.store()
    with local_convex() as server, ConvexStore(server.url, server.deploy_key) as store:
        started = time.perf_counter()
        report = sync_structures(store, tenant_id='bench', workspace_id='large', nodes=[structure.pk], progress=False)
        wrote = time.perf_counter() - started
        assert report.new == 1, report
        started = time.perf_counter()
        record = store.structures.get(StructureKey.of('bench', 'large', structure.uuid))
        read = time.perf_counter() - started
        assert record.summary['nsites'] == sites
        suite.add(
            f'one structure of {sites:,} sites: project + write / read',
            1,
            [wrote + read],
            write_s=round(wrote, 2),
            read_s=round(read, 2),
        )


def peak_rss(suite: Suite, group_pks: dict[int, int]) -> None:
    from aiida import orm

    from devserver.local_convex import local_convex

    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    with local_convex(sink=True) as sink:
        for n, pk in sorted(group_pks.items()):
            env = {
                **os.environ,
                'STRUCTURE_STORE_BACKEND': 'convex',
                'CONVEX_URL': sink.url,
                'CONVEX_DEPLOY_KEY': sink.deploy_key,
                'STRUCTURE_STORE_WRITE_RATE': '0',
            }
            command = [str(verdi), '-p', 'bench', 'data', 'structstore', 'sync', '-G', orm.load_group(pk).label]
            command += ['-t', 'bench', '-w', f'rss-{n}']
            code = (
                'import resource, subprocess, sys; '
                'r = subprocess.run(sys.argv[1:], capture_output=True); '
                'print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)'
            )
            started = time.perf_counter()
            out = subprocess.run([sys.executable, '-c', code, *command], env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            returncode, kib = out.stdout.split()
            assert returncode == '0', out
            suite.add(
                f'peak RSS of `verdi data structstore sync`, N={n:,}',
                n,
                [seconds],
                peak_rss_mib=round(int(kib) / 1024, 1),
            )


def parallel(suite: Suite, n: int, group_pk: int) -> None:
    from aiida import orm
    from aiida.engine import submit
    from aiida.engine.daemon.client import get_daemon_client
    from aiida.manage import get_manager
    from aiida.plugins import WorkflowFactory

    from devserver.local_convex import local_convex

    if get_manager().get_profile().process_control_backend is None:
        suite.add('parallel sync: skipped (no RabbitMQ)', n, None)
        return
    client = get_daemon_client()
    bin_dir = str(pathlib.Path(sys.executable).parent)
    os.environ['PATH'] = f'{bin_dir}{os.pathsep}{os.environ["PATH"]}'
    import aiida.engine.daemon.client as daemon_module

    daemon_module.VERDI_BIN = str(pathlib.Path(bin_dir) / 'verdi')
    with local_convex(sink=True) as sink:
        os.environ.update(
            STRUCTURE_STORE_BACKEND='convex',
            CONVEX_URL=sink.url,
            CONVEX_DEPLOY_KEY=sink.deploy_key,
            STRUCTURE_STORE_WRITE_RATE='0',
        )
        results = {}
        for workers in (1, 2):
            client.start_daemon(number_workers=workers, timeout=180)
            try:
                label = orm.load_group(group_pk).label
                node = submit(
                    WorkflowFactory('structstore.sync'),
                    tenant_id=orm.Str('bench'),
                    workspace_id=orm.Str(f'parallel-{workers}'),
                    group=orm.Str(label),
                    parts=orm.Int(2 * workers),
                )
                while not node.is_terminated:
                    time.sleep(0.5)
                assert node.is_finished_ok, node.exit_message
                seconds = (node.mtime - node.ctime).total_seconds()
                results[workers] = seconds
                suite.add(f'parallel sync → counting sink, {workers} daemon worker(s)', n, [seconds], parts=2 * workers)
            finally:
                # circus answers once the workers have exited: on a busy machine that takes longer than the client's
                # default 20 s (daemon.timeout), so the stop waits longer (a guard against a hang, not a pace).
                client.stop_daemon(wait=True, timeout=180)
        suite.rows[-1]['speedup_2_vs_1'] = round(results[1] / results[2], 2)
        print(f'    speed-up of 2 workers over 1: {results[1] / results[2]:.2f}x', flush=True)


def baselines(suite: Suite, n: int, group_pk: int) -> None:
    from aiida import orm

    from aiida_structstore.core.structures import Source, StructureContent, StructureKey
    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex

    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    with tempfile.TemporaryDirectory() as folder:
        label = orm.load_group(group_pk).label
        started = time.perf_counter()
        subprocess.run(
            [str(verdi), '-p', 'bench', 'archive', 'create', '-G', label, '--', str(pathlib.Path(folder, 'a.aiida'))],
            check=True,
            capture_output=True,
        )
        suite.add('baseline: `verdi archive create` of the group', n, [time.perf_counter() - started])
    sample = list(
        orm.QueryBuilder()
        .append(orm.Group, filters={'id': group_pk}, tag='g')
        .append(orm.StructureData, with_group='g')
        .limit(200)
        .all(flat=True)
    )
    with local_convex(sink=True) as sink, ConvexStore(sink.url, sink.deploy_key, write_rate=0) as store:
        started = time.perf_counter()
        for node in sample:
            cif = node.get_cif().get_content()
            key = StructureKey.of('bench', 'naive', node.uuid)
            store.structures.put(StructureContent(key=key, source=Source.of('aiida'), cif=cif, node_uuid=node.uuid))
        seconds = time.perf_counter() - started
        suite.add(
            'baseline: get_cif() + one put per structure (sample)',
            len(sample),
            [seconds],
            calls_per_1000=round(store.transport.calls * 1000 / len(sample)),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='10000,50000', help='comma-separated N for the first-sync runs')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--rss-sizes', default='1000,10000,50000')
    parser.add_argument('--convex-max', type=int, default=10_000, help='largest N synced into the local server')
    parser.add_argument('--quick', action='store_true', help='smaller raw inputs and structure; no paced runs')
    parser.add_argument('--no-parallel', action='store_true')
    parser.add_argument('--json', type=pathlib.Path)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(',')]
    rss_sizes = [int(s) for s in args.rss_sizes.split(',')] if args.rss_sizes else []

    suite = Suite(args)
    with tempfile.TemporaryDirectory() as folder:
        cluster = make_profile(folder)
        try:
            groups = {}
            for n in sorted(set(sizes) | set(rss_sizes)):
                groups[n], seconds = make_structures(n)
                print(f'stored {n:,} structures in {seconds:.1f} s', flush=True)
            for n in sizes:
                first_syncs(suite, n, groups[n])
            resync_one_percent(suite, max(sizes), groups[max(sizes)])
            raw_inputs(suite)
            large_structure(suite)
            if rss_sizes:
                peak_rss(suite, {n: groups[n] for n in rss_sizes})
            if not args.no_parallel:
                parallel(suite, max(sizes), groups[max(sizes)])
            baselines(suite, max(sizes), groups[max(sizes)])
        finally:
            from aiida.manage import get_manager

            get_manager().reset_profile()
            cluster.close()
    machine = f'{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}'
    print(f'\nmachine: {machine}')
    if args.json:
        args.json.write_text(json.dumps({'machine': machine, 'rows': suite.rows}, indent=2))


if __name__ == '__main__':
    main()
