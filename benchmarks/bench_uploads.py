"""The uploads benchmark: one ``verdi data structstore uploads watch`` process importing uploads from the local Convex
server into a throwaway PostgreSQL profile. Prints a table.

Usage::

    .venv/bin/python benchmarks/bench_uploads.py                         # 300 in a backlog, 20 one by one
    .venv/bin/python benchmarks/bench_uploads.py --backlog 100 --trickle 10 --intervals 0.2

Two runs, on small real files (``examples/cif/si.cif`` and ``examples/pw/si_scf.in``, alternately, each made
distinct):

* **backlog**: the uploads are all pending when the watcher starts; throughput is the uploads imported per second
  between the first and the last one marked imported (the records' ``updated_at``, the store's clock), so the
  watcher's start-up (``verdi`` importing AiiDA) is not counted;
* **one by one**: each upload is made when the previous one is imported, with the watcher idle; the latency is
  from the upload's ``created_at`` to its ``updated_at`` when imported (both the store's clock): the watcher's poll
  interval (``--interval``, half of it on average) plus the import itself (claim, read, the import calcfunction in
  one transaction, the projection calcfunction, complete).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))
SI_CIF = (ROOT / 'examples' / 'cif' / 'si.cif').read_text()
SI_PW = (ROOT / 'examples' / 'pw' / 'si_scf.in').read_text()


def upload(store, tenant: str, space: str, index: int):
    if index % 2:
        content, kind, name = SI_CIF.replace('data_Si_diamond', f'data_Si_{index}'), 'cif', f'si-{index}.cif'
    else:
        content, kind, name = SI_PW.replace("prefix = 'silicon'", f"prefix = 'si{index}'"), 'pw', f'si-{index}.in'
    return store.uploads.create(tenant, space, filename=name, kind=kind, content=content.encode(), uploaded_by='b')[0]


def watch(server, space: str, interval: float, log: pathlib.Path) -> subprocess.Popen:
    env = {
        **os.environ,
        'STRUCTURE_STORE_BACKEND': 'convex',
        'CONVEX_URL': server.url,
        'CONVEX_DEPLOY_KEY': server.deploy_key,
        'PYTHONUNBUFFERED': '1',
    }
    command = [str(pathlib.Path(sys.executable).parent / 'verdi'), '-p', 'bench', 'data', 'structstore', 'uploads']
    command += ['watch', '-t', 'bench', '-w', space, '--interval', str(interval), '--group', f'bench/{space}']
    return subprocess.Popen(command, env=env, stdout=log.open('wb'), stderr=subprocess.STDOUT)


def wait_imported(store, key, process: subprocess.Popen, log: pathlib.Path):
    while True:
        record = store.uploads.get(key)
        if record.status in ('imported', 'failed'):
            if record.status == 'failed':
                raise SystemExit(f'{key} failed: {record.message}')
            return record
        if process.poll() is not None:
            raise SystemExit(f'the watcher ended: {log.read_text()[-3000:]}')
        time.sleep(0.02)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(120)


def backlog(store, server, count: int, folder: pathlib.Path) -> list:
    space = f'backlog-{time.time_ns()}'
    keys = [upload(store, 'bench', space, index).key for index in range(count)]
    log = folder / f'{space}.log'
    process = watch(server, space, 0.5, log)
    try:
        records = [wait_imported(store, key, process, log) for key in keys]
    finally:
        stop(process)
    done = sorted(record.updated_at.timestamp() for record in records)
    rate = (count - 1) / (done[-1] - done[0])
    return ['backlog', count, 0.5, f'{rate:.2f}', '', '']


def trickle(store, server, count: int, interval: float, folder: pathlib.Path) -> list:
    space = f'trickle-{time.time_ns()}'
    log = folder / f'{space}.log'
    process = watch(server, space, interval, log)
    try:
        wait_imported(store, upload(store, 'bench', space, 10**6).key, process, log)  # the watcher is up
        latencies = []
        for index in range(count):
            record = wait_imported(store, upload(store, 'bench', space, index).key, process, log)
            latencies.append((record.updated_at - record.created_at).total_seconds())
    finally:
        stop(process)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
    return ['one by one', count, interval, '', f'{statistics.median(latencies):.2f}', f'{p95:.2f}']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--backlog', type=int, default=300, help='uploads pending when the watcher starts')
    parser.add_argument('--trickle', type=int, default=20, help='uploads made one by one')
    parser.add_argument('--intervals', type=float, nargs='+', default=[0.2, 2.0], help='poll intervals, one by one')
    args = parser.parse_args()
    from bench_sync import make_profile
    from tabulate import tabulate

    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex

    with tempfile.TemporaryDirectory() as folder:
        cluster = make_profile(folder)
        try:
            with local_convex() as server, ConvexStore(server.url, server.deploy_key) as store:
                rows = [backlog(store, server, args.backlog, pathlib.Path(folder))]
                for interval in args.intervals:
                    rows.append(trickle(store, server, args.trickle, interval, pathlib.Path(folder)))
        finally:
            from aiida.manage import get_manager

            get_manager().reset_profile()
            cluster.close()
    headers = ['run', 'uploads', 'poll interval s', 'imported /s', 'latency median s', 'latency p95 s']
    print(tabulate(rows, headers=headers, tablefmt='github'))


if __name__ == '__main__':
    main()
