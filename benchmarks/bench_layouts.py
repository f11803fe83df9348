"""Benchmark of the two Convex layouts on the local Convex server: the component adds one hop per call (the app's
internal function calling ``components.structstore.<module>.<fn>``); this measures what that hop costs there.

Usage::

    .venv/bin/python benchmarks/bench_layouts.py [--records 1000] [--repeat 3]

For each layout (``standalone``: convex/'s functions as the app's own; ``component``: devserver/app/convex mounting
convex/ as a component, the client calling ``structstore/<module>:<fn>``) it starts a fresh local server and times,
through :class:`ConvexStore`, writing ``--records`` small records (``put_many``), listing them all (pages of 100),
reading 200 of them one by one (``get``), and an OPTIMADE query walking them all (pages of 100, ``nsites > 1``). It
prints the median of ``--repeat`` runs per step and the ratio component/standalone.

The local Convex server is an in-memory test double (convex-test): its figures say what the extra hop costs in
convex-test's JavaScript, not what it costs on a Convex deployment.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiida_structstore.core.structures import Source, StructureContent, StructureKey  # noqa: E402
from aiida_structstore.store.convex import ConvexStore  # noqa: E402
from devserver.local_convex import local_convex  # noqa: E402

TENANT, WORKSPACE = 'bench', 'layouts'


def content(i: int) -> StructureContent:
    structure = {
        'elements': ['Si'],
        'nelements': 1,
        'nsites': 2,
        'chemical_formula_reduced': 'Si',
        'cartesian_site_positions': [[0.0, 0.0, 0.0], [1.3575, 1.3575, 1.3575 + i * 1e-6]],
    }
    key = StructureKey.of(TENANT, WORKSPACE, f's{i:05d}')
    return StructureContent(
        key=key, source=Source(kind='cif', filename=f's{i}.cif'), cif=f'data_s{i}\n', structure=structure
    )


def run(layout: str, records: int) -> dict[str, float]:
    times: dict[str, float] = {}
    with local_convex(layout=layout, write_bytes_per_second=0) as server:
        with ConvexStore(server.url, server.deploy_key, function_prefix=server.function_prefix, write_rate=0) as store:
            start = time.perf_counter()
            store.structures.put_many([(content(i), f'raw {i}') for i in range(records)])
            times['put_many'] = time.perf_counter() - start

            start = time.perf_counter()
            seen, cursor = 0, None
            while True:
                page = store.structures.list(TENANT, WORKSPACE, cursor=cursor, limit=100)
                seen += len(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == records, (seen, records)
            times['list (pages of 100)'] = time.perf_counter() - start

            start = time.perf_counter()
            for i in range(0, records, max(1, records // 200)):
                store.structures.get(StructureKey.of(TENANT, WORKSPACE, f's{i:05d}'))
            times['get x200'] = time.perf_counter() - start

            start = time.perf_counter()
            found, cursor = 0, None
            query = {'nsites': {'$gt': 1}}
            while True:
                page = store.structures.query(TENANT, WORKSPACE, filter=query, cursor=cursor, limit=100)
                found += len(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert found == records, (found, records)
            times['query (pages of 100)'] = time.perf_counter() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--records', type=int, default=1000)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.repeat):
        for layout in ('standalone', 'component'):
            for step, seconds in run(layout, args.records).items():
                results.setdefault(step, {}).setdefault(layout, []).append(seconds)
    print(f'{args.records} records, median of {args.repeat} runs, local Convex server (a test double), seconds')
    print('| step | standalone | component | component / standalone |')
    print('|---|---:|---:|---:|')
    for step, by_layout in results.items():
        a, b = statistics.median(by_layout['standalone']), statistics.median(by_layout['component'])
        print(f'| {step} | {a:.3f} | {b:.3f} | {b / a:.2f} |')


if __name__ == '__main__':
    main()
