"""Start and stop the local Convex server (``devserver/server.ts``, an in-memory test double) from Python.

Used by the pytest fixture ``convex_server`` and by the demo (``scripts/demo.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = ('standalone', 'component')
#: The function prefixes of the component layout: devserver/app/convex mounts the component under these names.
COMPONENT_PREFIXES = ('structstore/', 'structstore2/')


@dataclass(frozen=True)
class LocalConvex:
    url: str
    deploy_key: str
    process: subprocess.Popen
    #: ``standalone`` (the functions at ``<module>:<fn>``) or ``component`` (devserver/app/convex mounts the
    #: component as ``structstore`` and ``structstore2``; its functions at ``structstore/<module>:<fn>``, ...)
    layout: str = 'standalone'

    @property
    def function_prefix(self) -> str:
        """The ``STRUCTURE_STORE_FUNCTION_PREFIX`` of this server's (first) store."""
        return COMPONENT_PREFIXES[0] if self.layout == 'component' else ''

    def reset(self) -> None:
        """Wipe every table, as a restart of the server would: afterwards it is a new, empty deployment at the same
        URL (the next client to ask gets a new instance id). Not part of Convex's API (``POST /reset``, admin only)."""
        # The URL is this server's own (http://127.0.0.1:port), never a user's.
        request = urllib.request.Request(  # noqa: S310
            f'{self.url}/reset', data=b'', method='POST', headers={'Authorization': f'Convex {self.deploy_key}'}
        )
        with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310
            if reply.status != 200:
                raise RuntimeError(f'the local Convex server did not reset: HTTP {reply.status}')


@contextlib.contextmanager
def local_convex(
    timeout: float = 60.0,
    *,
    port: int = 0,
    deploy_key: str | None = None,
    verify_indexes: bool = False,
    write_bytes_per_second: int | None = None,
    sink: bool = False,
    layout: str = 'standalone',
) -> Iterator[LocalConvex]:
    """Run the local Convex server (on a free port unless ``port`` is given); yield its URL and admin key; stop it
    afterwards. A server started again on the same port is a new, empty deployment at the same URL; so is one
    after :meth:`LocalConvex.reset`.

    ``verify_indexes`` checks every index lookup against a full table scan (slower; for tests);
    ``write_bytes_per_second`` sets its write-throughput limit (default: Convex's 4 MiB/s; 0: none); ``sink`` runs
    the counting sink instead (no database; ``GET /stats`` counts calls and bytes); ``layout`` is ``standalone``
    (convex/'s functions as the app's own) or ``component`` (an app mounting convex/ as a component twice, see
    :attr:`LocalConvex.layout`)."""
    if layout not in LAYOUTS:
        raise ValueError(f'layout {layout!r} is not one of {", ".join(LAYOUTS)}')
    tsx = ROOT / 'node_modules' / '.bin' / 'tsx'
    if not tsx.exists():
        raise RuntimeError(f'{tsx} is missing: run `npm ci` in {ROOT} first (bash .ci/run does)')
    if shutil.which('node') is None:
        raise RuntimeError('node is not on PATH: the local Convex server needs Node.js 20')
    key = deploy_key or f'local-test|{secrets.token_hex(16)}'
    env = {
        **os.environ,
        'CONVEX_DEPLOY_KEY': key,
        'STRUCTSTORE_VERIFY_INDEXES': '1' if verify_indexes else '0',
        'STRUCTSTORE_WRITE_BYTES_PER_SECOND': '' if write_bytes_per_second is None else str(write_bytes_per_second),
    }
    process = subprocess.Popen(
        [
            str(tsx),
            str(ROOT / 'devserver' / 'start.mjs'),
            '--port',
            str(port),
            '--layout',
            layout,
            *(['--sink'] if sink else []),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    try:
        if not line or not line[0].strip():
            process.kill()
            raise RuntimeError(f'the local Convex server did not start: {process.stderr.read()[-2000:]}')
        info = json.loads(line[0])
        # Keep draining stderr so the server never blocks on a full pipe.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield LocalConvex(url=info['url'], deploy_key=key, process=process, layout=layout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
