"""Benchmark of the read API's cold start: process start to the first validated response, in fresh processes.

Usage::

    .venv/bin/python benchmarks/bench_coldstart.py [--repeat 5]

For each backend (the in-memory store, the local Convex server) and each first request,

* (a) ``GET /api/structures/{id}`` (validated as the API's ``StructureDetail``, the id checked),
* (b) ``GET /optimade/v1/structures?page_limit=1`` (validated as the ``optimade`` package's
  ``StructureResponseMany``, one entry),

it starts the API in a new process (``structstore-api`` over Convex; over memory ``python -m uvicorn --factory`` with
this file's :func:`memory_app`, which puts the one structure into the process's own store first: a fresh process's
memory store is empty), polls the port with that request until the answer validates, and stops the process. The
clock runs from just before the process is spawned to the validated answer. It also times, in fresh interpreters,
``import aiida_structstore.api`` + ``create_app()`` with and without building the OPTIMADE sub-application, and
prints both tables (median and max of ``--repeat`` runs).

The local Convex server is an in-memory test double: what it adds is one local HTTP round trip per Convex call.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
TENANT, WORKSPACE, STRUCTURE_ID = 'cold', 'lab', 'si'
ATTRIBUTES = {
    'cell': [[5.43, 0.0, 0.0], [0.0, 5.43, 0.0], [0.0, 0.0, 5.43]],
    'pbc1': True,
    'pbc2': True,
    'pbc3': True,
    'kinds': [{'name': 'Si', 'symbols': ['Si'], 'weights': [1.0], 'mass': 28.085}],
    'sites': [{'kind_name': 'Si', 'position': [0.0, 0.0, 0.0]}, {'kind_name': 'Si', 'position': [1.36, 1.36, 1.36]}],
}
#: A structure content as JSON (set by the benchmark for :func:`memory_app`).
SEED_VARIABLE = 'BENCH_COLDSTART_CONTENT'
REQUESTS = {
    '(a) GET /api/structures/{id}': f'/api/structures/{STRUCTURE_ID}',
    '(b) GET /optimade/v1/structures?page_limit=1': '/optimade/v1/structures?page_limit=1',
}


def memory_app():
    """The app over this process's memory store, holding the benchmark's structure (a uvicorn factory)."""
    from aiida_structstore.api import create_app
    from aiida_structstore.core.structures import StructureContent
    from aiida_structstore.store import open_store

    open_store().structures.put_many([(StructureContent.model_validate_json(os.environ[SEED_VARIABLE]), None)])
    return create_app()


def content():
    from aiida_structstore.core.structures import Source, StructureKey
    from aiida_structstore.structures import structure_content

    key = StructureKey.of(TENANT, WORKSPACE, STRUCTURE_ID)
    return structure_content(ATTRIBUTES, key=key, node_uuid=None, source=Source(kind='aiida'))


def validate(path: str, response) -> bool:
    """Whether ``response`` is the validated first answer to ``path``."""
    if response.status_code != 200:
        return False
    if path.startswith('/optimade/'):
        from optimade.models import StructureResponseMany

        body = StructureResponseMany.model_validate(response.json())
        return [entry.id for entry in body.data] == [STRUCTURE_ID]
    from aiida_structstore.api.schemas import StructureDetail

    return StructureDetail.model_validate(response.json()).id == STRUCTURE_ID


def first_response(command: list[str], env: dict[str, str], port: int, path: str, token: str) -> float:
    """Seconds from spawning ``command`` to a validated answer to ``path`` on ``port``."""
    import httpx

    url = f'http://127.0.0.1:{port}{path}'
    headers = {'Authorization': f'Bearer {token}'}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(timeout=30) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f'the server exited: {process.stderr.read().decode()[-2000:]}')
                try:
                    response = client.get(url, headers=headers)
                except httpx.TransportError:
                    time.sleep(0.005)  # not listening yet
                    continue
                if not validate(path, response):
                    raise RuntimeError(f'{path}: HTTP {response.status_code} {response.text[:500]}')
                return time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(30)


def import_time(build_optimade: bool) -> float:
    """Seconds to ``import aiida_structstore.api`` and ``create_app()`` (and build OPTIMADE) in a fresh interpreter."""
    code = (
        'import time; start = time.perf_counter()\n'
        'from aiida_structstore.api import ApiSettings, create_app\n'
        f'app = create_app(ApiSettings(jwt_secret={"x" * 40!r}, public_url="http://127.0.0.1:1"))\n'
        + (
            'from aiida_structstore.api.app import _optimade_app\n_optimade_app(app.state.read_context)\n'
            if build_optimade
            else ''
        )
        + 'print(time.perf_counter() - start)'
    )
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'STRUCTURE_STORE_BACKEND': 'memory'}
    result = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from tabulate import tabulate

    from aiida_structstore.api import ApiSettings, mint_token
    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex
    from tests.ports import free_port

    secret = secrets.token_urlsafe(48)
    token = mint_token(ApiSettings(jwt_secret=secret), TENANT, [WORKSPACE])
    seed = content()
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(('STRUCTURE_', 'CONVEX_'))},
        'PYTHONPATH': str(ROOT),
        'STRUCTURE_API_JWT_SECRET': secret,
    }
    import httpx  # noqa: F401 - imported before the clocks run, as are the validators
    from optimade.models import StructureResponseMany  # noqa: F401

    from aiida_structstore.api.schemas import StructureDetail  # noqa: F401

    rows = []

    def run(backend: str, env: dict[str, str], command_of) -> None:
        for label, path in REQUESTS.items():
            times = []
            for _ in range(args.repeat):
                port = free_port()
                times.append(first_response(command_of(port), env, port, path, token))
            rows.append([backend, label, f'{statistics.median(times):.2f}', f'{max(times):.2f}'])
            print(f'{backend:12} {label:45} {" ".join(f"{t:.2f}" for t in times)}', flush=True)

    memory_env = {**base_env, 'STRUCTURE_STORE_BACKEND': 'memory', SEED_VARIABLE: seed.model_dump_json()}
    run(
        'memory',
        memory_env,
        lambda port: [
            str(BIN / 'python'),
            '-m',
            'uvicorn',
            '--factory',
            '--app-dir',
            str(ROOT / 'benchmarks'),
            'bench_coldstart:memory_app',
            '--port',
            str(port),
            '--log-level',
            'warning',
        ],
    )
    with local_convex() as server:
        with ConvexStore(server.url, server.deploy_key) as store:
            store.structures.put_many([(seed, None)])
        convex_env = {
            **base_env,
            'STRUCTURE_STORE_BACKEND': 'convex',
            'CONVEX_URL': server.url,
            'CONVEX_DEPLOY_KEY': server.deploy_key,
        }
        run(
            'local Convex',
            convex_env,
            lambda port: [str(BIN / 'structstore-api'), '--port', str(port), '--log-level', 'warning'],
        )

    imports = []
    for build, label in ((False, 'import aiida_structstore.api + create_app()'), (True, '... + build OPTIMADE')):
        times = [import_time(build) for _ in range(args.repeat)]
        imports.append([label, f'{statistics.median(times):.2f}', f'{max(times):.2f}'])
    print()
    print(f'Process start to the first validated response, s (fresh process each, {args.repeat} runs):')
    print(tabulate(rows, headers=['backend', 'first request', 'median', 'max']))
    print()
    print(f'In a fresh interpreter, s ({args.repeat} runs):')
    print(tabulate(imports, headers=['step', 'median', 'max']))
    print(json.dumps({'cpus': os.cpu_count(), 'loadavg': os.getloadavg()}))


if __name__ == '__main__':
    main()
