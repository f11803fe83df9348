"""The main job of aiida-structstore on embedded defaults (run by ``bash scripts/demo.sh``).

1. An AiiDA profile on embedded defaults: ``verdi presto`` (SQLite storage, no PostgreSQL) in ``.structstore-demo/``,
   so your own AiiDA configuration is not touched.
2. The local Convex server (``devserver/``, an in-memory test double of Convex) on a free port, with a random key.
3. ``verdi data structstore import --project`` of the bundled files in ``examples/`` (CIF and pw.x inputs, one
   with a large raw part), then ``list`` and ``show`` reading back **from the store**, and a byte-for-byte check
   of each raw input against its file; then the execution records of the processes behind the structures (the
   import and projection calcfunctions), ``executions sync`` and ``executions list`` of one structure.
4. The server is stopped; the profile stays in ``.structstore-demo/`` (delete the folder to start over).

``--serve`` then serves the read API and the viewer on the demo's records, at ``--port`` (default: the variable
``STRUCTSTORE_DEMO_PORT``, else 8000). The port is taken at the start, before the demo runs, so a port in use is
a one-line error at once; ``demo.sh`` checks it even before installing (``--preflight``, with the system's Python:
this file imports only the standard library at the top).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import pathlib
import secrets
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The AiiDA profile's folder (STRUCTSTORE_DEMO_DIR: another one, as the tests use).
DEMO = pathlib.Path(os.environ.get('STRUCTSTORE_DEMO_DIR') or ROOT / '.structstore-demo')
VERDI = str(ROOT / '.venv' / 'bin' / 'verdi')
TENANT, WORKSPACE = 'demo', 'examples'
EXAMPLES = sorted((ROOT / 'examples').glob('cif/*.cif')) + sorted((ROOT / 'examples').glob('pw/*.in'))


def say(text: str) -> None:
    print(f'\n\033[1m{text}\033[0m', flush=True)


def verdi(*args: str, env: dict, capture: bool = False) -> str:
    print('$ verdi ' + ' '.join(args), flush=True)
    result = subprocess.run([VERDI, *args], env=env, text=True, capture_output=capture, check=False)
    if result.returncode != 0:
        if capture:
            print(result.stdout, result.stderr)
        raise SystemExit(f'verdi {" ".join(args)} failed with exit code {result.returncode}')
    return result.stdout if capture else ''


DEFAULT_PORT = 8000
PORT_VARIABLE = 'STRUCTSTORE_DEMO_PORT'
#: Set by demo.sh to the time it started (seconds since the epoch), so the total includes the installs.
STARTED_VARIABLE = 'STRUCTSTORE_DEMO_STARTED'


def fail(message: str) -> None:
    """One line on stderr, exit code 2 (before anything ran)."""
    print(f'error: {message}', file=sys.stderr, flush=True)
    raise SystemExit(2)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='bash scripts/demo.sh',
        description='The main job of aiida-structstore on embedded defaults; with --serve, then the read API and the '
        'viewer on its data.',
    )
    parser.add_argument('--serve', action='store_true', help='then serve the read API and the viewer (Ctrl-C stops)')
    parser.add_argument(
        '--port',
        help=f'the port --serve listens on, at 127.0.0.1 (default: ${PORT_VARIABLE}, else {DEFAULT_PORT})',
    )
    parser.add_argument('--preflight', action='store_true', help=argparse.SUPPRESS)  # demo.sh: check, then exit
    args = parser.parse_args(argv)
    text, origin = (args.port, '--port') if args.port is not None else (os.environ.get(PORT_VARIABLE), PORT_VARIABLE)
    if text is None or (origin == PORT_VARIABLE and not text.strip()):
        args.port = DEFAULT_PORT
    elif text.strip().isdigit() and 1 <= int(text) <= 65535:
        args.port = int(text)
    else:
        fail(f'{origin} must be a port number from 1 to 65535, got {text!r}')
    if args.port != DEFAULT_PORT and not args.serve:
        fail(f'{origin} is the port of --serve: add --serve, or leave the port out')
    return args


def reserve_port(port: int) -> socket.socket:
    """A socket listening at 127.0.0.1:``port`` (as uvicorn binds it), for the API to serve on later; a port in use
    is a one-line error naming it and how to pick another."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(('127.0.0.1', port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            free = _free_port()
            fail(
                f'port {port} on 127.0.0.1 is already in use, so --serve could not listen there; pick another with '
                f'--port {free} (or {PORT_VARIABLE}={free})'
            )
        fail(f'cannot listen on 127.0.0.1:{port} for --serve: {exc.strerror}; pick another port with --port')
    return sock


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def main() -> None:
    args = parse_arguments(sys.argv[1:])
    listening = reserve_port(args.port) if args.serve else None
    if args.preflight:
        if listening is not None:
            listening.close()
        return
    started = time.perf_counter()
    env = {**os.environ, 'AIIDA_PATH': str(DEMO)}
    say('1. AiiDA profile on embedded defaults (verdi presto: SQLite, no PostgreSQL needed)')
    exists = (
        subprocess.run(
            [VERDI, 'profile', 'show', 'structstore-demo'], env=env, capture_output=True, check=False
        ).returncode
        == 0
    )
    if not exists:
        verdi('presto', '--profile-name', 'structstore-demo', env=env)
    else:
        print(f'profile structstore-demo exists in {DEMO}')
    env['AIIDA_PROFILE'] = 'structstore-demo'

    say('2. The local Convex server (an in-memory TEST DOUBLE of Convex, not a real deployment)')
    from devserver.local_convex import local_convex

    with local_convex() as server:
        print(f'listening at {server.url}')
        env.update(STRUCTURE_STORE_BACKEND='convex', CONVEX_URL=server.url, CONVEX_DEPLOY_KEY=server.deploy_key)

        say('3. Import the example files with provenance and project them into the store')
        group = f'demo-{secrets.token_hex(3)}'
        verdi(
            'data',
            'structstore',
            'import',
            *map(str, EXAMPLES),
            '-G',
            group,
            '--project',
            '-t',
            TENANT,
            '-w',
            WORKSPACE,
            env=env,
        )

        say('4. Read back from the store (not from AiiDA)')
        verdi('data', 'structstore', 'list', '-t', TENANT, '-w', WORKSPACE, '--all', env=env)
        from aiida_structstore.store.convex import ConvexStore

        with ConvexStore(server.url, server.deploy_key) as store:
            records = list(store.structures.iter_workspace(TENANT, WORKSPACE))
            first = next(r for r in records if r.source.kind == 'pw-input')
            print()
            verdi('data', 'structstore', 'show', first.key.structure_id, '-t', TENANT, '-w', WORKSPACE, env=env)

            say('5. Where each record came from, and its raw input checked byte for byte against the file')
            rows = []
            for record in sorted(records, key=lambda r: (r.source.filename or '', r.key.structure_id)):
                path = next(p for p in EXAMPLES if p.name == record.source.filename)
                raw = store.structures.get_raw(record.key)
                same = raw is not None and raw.encode() == path.read_bytes()
                full = store.structures.get(record.key)
                rows.append(
                    [
                        record.source.filename,
                        record.source.kind,
                        record.summary.get('chemical_formula_reduced'),
                        record.summary.get('nsites'),
                        ' '.join(s['name'] for s in full.structure['species']),
                        f'{record.raw_size:,}',
                        record.chunk_count,
                        'identical' if same else 'DIFFERENT',
                        record.node_uuid[:8],
                    ]
                )
                if not same:
                    raise SystemExit(f'raw input of {record.key} differs from {path}')
            from tabulate import tabulate

            print(
                tabulate(
                    rows,
                    headers=[
                        'file',
                        'source',
                        'formula',
                        'sites',
                        'kinds',
                        'raw bytes',
                        'chunks',
                        'raw vs file',
                        'AiiDA node',
                    ],
                )
            )
            digest = hashlib.sha256(json.dumps([r.content_hash for r in records]).encode()).hexdigest()[:12]
            print(f'\n{len(records)} records in {TENANT}/{WORKSPACE} (content digest {digest})')

        say('6. Sync again: nothing has changed, nothing is written')
        verdi('data', 'structstore', 'sync', '-G', group, '-t', TENANT, '-w', WORKSPACE, env=env)

        say('7. The processes behind the structures: execution records beside them (docs/executions.md)')
        verdi('data', 'structstore', 'executions', 'sync', '-t', TENANT, '-w', WORKSPACE, env=env)
        verdi(
            'data', 'structstore', 'executions', 'list', '-t', TENANT, '-w', WORKSPACE,
            '-s', first.key.structure_id, env=env,
        )  # fmt: skip
        say(f'Done in {elapsed(started)}.')
        if args.serve:
            say('8. The read API and the viewer on these records (bash scripts/demo.sh --serve)')
            from api_demo import serve_viewer

            serve_viewer(server, TENANT, WORKSPACE, records, listening)
    say('The local Convex server is stopped.')
    print(
        'To use a real Convex deployment instead: deploy convex/ into your Convex app (docs/convex-projection.md),\n'
        'then set STRUCTURE_STORE_BACKEND=convex, CONVEX_URL=https://<deployment>.convex.cloud and\n'
        'CONVEX_DEPLOY_KEY=<deploy key>, and use the same verdi data structstore commands.'
    )


def elapsed(started: float) -> str:
    """How long the demo took: in all since demo.sh started (installs included) when it says so, and the demo."""
    demo = time.perf_counter() - started
    try:
        total = time.time() - float(os.environ[STARTED_VARIABLE])
    except (KeyError, ValueError):
        return f'{demo:.1f} s (the demo; installs not counted)'
    return f'{_duration(total)} in all, installs included; the demo itself {demo:.1f} s'


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f'{minutes} min {rest} s' if minutes else f'{seconds:.1f} s'


if __name__ == '__main__':
    main()
