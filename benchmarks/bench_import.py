"""The import benchmark: a CIF of many data blocks through ``structstore.import_cif``, with its outputs stored one
commit each (the calcfunction called alone) and in one transaction (as ``verdi data structstore import`` runs it).
Prints a table.

Usage::

    .venv/bin/python benchmarks/bench_import.py                  # 100 and 1,000 blocks
    .venv/bin/python benchmarks/bench_import.py --blocks 200     # one size

It makes a throwaway AiiDA profile on the running PostgreSQL server (as ``bench_sync.py`` does) and builds the file
from the COD entries in ``tests/cli/files/cod`` (8 minerals, 4 to 24 sites each), each block renamed. Columns: the
blocks counted by gemmi (the cap's check), the file read by the project's reader, the calcfunction without and with
the transaction (its parse included), and the structures stored per second of the calcfunction's time.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))
COD = ROOT / 'tests' / 'cli' / 'files' / 'cod'


def many_blocks(count: int) -> str:
    texts = [file.read_text() for file in sorted(COD.glob('*.cif'))]
    return ''.join(
        re.sub(r'(?m)^data_(\S+)', rf'data_\g<1>_{index}', texts[index % len(texts)], count=1) for index in range(count)
    )


def clock(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def measure(count: int) -> list:
    import io

    from aiida import orm
    from aiida.manage import get_manager

    from aiida_structstore.calculations.functions.import_cif import import_cif
    from aiida_structstore.tools.cif import parse_cif
    from aiida_structstore.tools.files import check_block_count

    text = many_blocks(count)
    counted, _ = clock(lambda: check_block_count(text))
    parsed, _ = clock(lambda: parse_cif(text, filename='many.cif'))

    def run():
        node = orm.CifData(file=io.BytesIO(text.encode()), filename='many.cif', parse_policy='lazy').store()
        return import_cif.run_get_node(file=node)

    alone, _ = clock(run)

    def in_transaction():
        with get_manager().get_profile_storage().transaction():
            return run()

    together, _ = clock(in_transaction)
    size = len(text.encode()) / 1e6
    return [count, f'{size:.2f}', f'{counted:.2f}', f'{parsed:.2f}', f'{alone:.1f}', f'{together:.1f}',
            f'{count / alone:.0f}', f'{count / together:.0f}']  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--blocks', type=int, nargs='+', default=[100, 1000])
    args = parser.parse_args()
    from bench_sync import make_profile
    from tabulate import tabulate

    with tempfile.TemporaryDirectory() as folder:
        cluster = make_profile(folder)
        try:
            rows = [measure(count) for count in args.blocks]
        finally:
            from aiida.manage import get_manager

            get_manager().reset_profile()
            cluster.close()
    headers = ['blocks', 'MB', 'count s', 'parse s', 'alone s', 'transaction s', 'alone /s', 'transaction /s']
    print(tabulate(rows, headers=headers, tablefmt='github'))


if __name__ == '__main__':
    main()
