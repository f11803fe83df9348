"""Benchmark: what the Modal app adds to the read API's cold start, in fresh interpreters.

Usage::

    .venv/bin/python benchmarks/bench_modal_coldstart.py [--repeat 7]

A Modal container imports ``modal`` (its runtime) first, then the function's module, then calls the function to get
the ASGI app. This script times, in a new interpreter each run and with ``modal.is_local()`` false as in a
container (no checkout is touched), in CPU time (``time.process_time``: on a shared machine, wall time varies with
the load more than with the code):

* (a) ``import aiida_structstore.api`` + ``create_app()``: the API alone, what ``bench_coldstart.py`` starts from;
* (b) ``import modal``: the runtime, loaded by the container before any user code;
* (c) with ``modal`` loaded: (a) again (``modal`` has loaded some of the API's dependencies already);
* (d) with ``modal`` loaded: ``import aiida_structstore.api.modal_app`` + ``api.local()`` (the app the function
  serves): the API plus the module's own definitions;

* (e) with ``modal`` and the API loaded: ``import aiida_structstore.api.modal_app`` alone;

and prints median and max of ``--repeat`` runs (the programs interleaved, so load on the machine hits them alike);
(d) - (c) is what the Modal module adds to a container's cold start.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import secrets
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent

CONTAINER = (
    'from modal._runtime.task_lifecycle_manager import _TaskLifecycleManager\n'
    '_TaskLifecycleManager._singleton = object()\n'  # modal.is_local() is False, as in a container
)
PROGRAMS = {
    '(a) import aiida_structstore.api + create_app()': (
        'import time\nstart = time.process_time()\n'
        'from aiida_structstore.api import create_app\ncreate_app()\n'
        'print(time.process_time() - start)'
    ),
    '(b) import modal (the container runtime)': (
        'import time\nstart = time.process_time()\nimport modal\nprint(time.process_time() - start)'
    ),
    '(c) modal loaded: import aiida_structstore.api + create_app()': (
        'import modal\n' + CONTAINER + 'import time\nstart = time.process_time()\n'
        'from aiida_structstore.api import create_app\ncreate_app()\n'
        'print(time.process_time() - start)'
    ),
    '(d) modal loaded: import modal_app + api.local()': (
        'import modal\n' + CONTAINER + 'import time\nstart = time.process_time()\n'
        'import aiida_structstore.api.modal_app as m\nm.api.local()\n'
        'print(time.process_time() - start)'
    ),
    '(e) modal and the API loaded: import modal_app': (
        'import modal\n' + CONTAINER + 'import aiida_structstore.api\nimport time\nstart = time.process_time()\n'
        'import aiida_structstore.api.modal_app\n'
        'print(time.process_time() - start)'
    ),
}


def run(program: str, env: dict[str, str]) -> float:
    result = subprocess.run(
        [sys.executable, '-c', program], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr[-2000:])
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    from tabulate import tabulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            'HOME': home,
            'PYTHONPATH': str(ROOT),
            'STRUCTURE_STORE_BACKEND': 'memory',
            'STRUCTURE_API_JWT_SECRET': secrets.token_urlsafe(48),
        }
        times: dict[str, list[float]] = {label: [] for label in PROGRAMS}
        for _ in range(args.repeat):
            for label, program in PROGRAMS.items():
                times[label].append(run(program, env) * 1000)
    rows = [[label, statistics.median(values), max(values)] for label, values in times.items()]
    print(tabulate(rows, headers=['fresh interpreter', 'median ms', 'max ms'], floatfmt='.0f'))
    print(f'\nthe Modal module adds (d) - (c) = {rows[3][1] - rows[2][1]:.0f} ms (medians)')


if __name__ == '__main__':
    main()
