"""How soon the viewer shows that an upload was imported, and what following it costs. Prints a table.

Usage::

    .venv/bin/python benchmarks/bench_viewer_uploads.py                         # imports of 0.5 to 30 s, 3 each
    .venv/bin/python benchmarks/bench_viewer_uploads.py --imports 1 5 --repeat 2

The viewer (Debian's Chromium, headless, driven by Playwright) is served by the API app (uvicorn, in this process) on
the local Convex server. For each import duration D: the page uploads a small CIF file through its form, the
benchmark plays the importer with the store's own calls (``claim`` once the page shows the upload pending, then
``complete`` D seconds later: the time an import takes), and measures

* **seen after**: from ``complete`` returning to the page's status line saying ``imported`` (what the backoff of the
  page's reads costs in latency: the page reads half a second after a change, then 1.5 times later each time, at most
  every 5 s);
* **reads** and **304s**: the page's ``GET /api/structures/uploads/{id}`` requests for that upload, and how many of
  them the API answered ``304 Not Modified`` (``If-None-Match``: nothing changed, no body).

"Open when imported" is unticked, so the page stays on the workspace list. The claim and the wait of D seconds stand
in for the AiiDA side (``verdi data structstore uploads watch``, ``benchmarks/bench_uploads.py`` measures it).
"""

from __future__ import annotations

import argparse
import pathlib
import secrets
import statistics
import sys
import threading
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = pathlib.Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--enable-unsafe-swiftshader', '--no-first-run']


def serve(app):
    """The app under uvicorn in a thread; returns (base URL, server)."""
    import uvicorn

    class Server(uvicorn.Server):
        ready = threading.Event()

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            self.ready.set()

    server = Server(uvicorn.Config(app, host='127.0.0.1', port=0, log_level='warning', lifespan='on'))
    threading.Thread(target=server.run, daemon=True).start()
    if not server.ready.wait(30):
        raise RuntimeError('uvicorn did not start')
    port = server.servers[0].sockets[0].getsockname()[1]
    return f'http://127.0.0.1:{port}', server


def one(page, store, tenant: str, index: int, duration: float, responses: list, tmp: pathlib.Path) -> dict:
    path = tmp / f'bench-{index}.cif'
    path.write_bytes((ROOT / 'examples' / 'cif' / 'si.cif').read_bytes() + f'# bench {index}\n'.encode())
    page.set_input_files('#upload-file', str(path))
    page.set_checked('#upload-open', False)
    first = len(responses)
    page.click('#upload-submit')
    page.wait_for_selector(f'#upload-status[data-status="pending"]:text-matches("^{path.name}")')
    claimed = store.uploads.claim(claimer='bench', lease_seconds=300, tenant_id=tenant, workspace_id='lab')
    page.wait_for_selector(f'#upload-status[data-status="importing"]:text-matches("^{path.name}")')
    time.sleep(duration)  # the import's work, played
    store.uploads.complete(claimed.key, claim=claimed.claim, structure_id=f'bench-{index}', node_uuid=str(uuid.uuid4()))
    done = time.perf_counter()
    page.wait_for_selector(f'#upload-status[data-status="imported"]:text-matches("^{path.name}")', timeout=60_000)
    seen = time.perf_counter() - done
    suffix = f'/api/structures/uploads/{claimed.key.upload_id}?workspace=lab'
    reads = [status for url, status in responses[first:] if url.endswith(suffix)]
    return {'seen': seen, 'reads': len(reads), 'not_modified': reads.count(304)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--imports', type=float, nargs='+', default=[0.5, 2, 5, 10, 30], help='import durations (s)')
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()

    import tempfile

    from playwright.sync_api import sync_playwright

    from aiida_structstore.api import ApiSettings, create_app
    from aiida_structstore.api.auth import mint_token
    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex

    settings = ApiSettings(jwt_secret=secrets.token_urlsafe(48))
    tenant = f'bench-{secrets.token_hex(4)}'
    token = mint_token(settings, tenant, ['lab'], upload=['lab'], subject='bench')
    rows = []
    with (
        local_convex() as convex,
        ConvexStore(convex.url, convex.deploy_key) as store,
        sync_playwright() as playwright,
        tempfile.TemporaryDirectory() as tmp,
    ):
        base, server = serve(create_app(settings, store=store))
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            responses: list[tuple[str, int]] = []
            page.on('response', lambda response: responses.append((response.url, response.status)))
            page.goto(f'{base}/viewer/?workspace=lab#token={token}')
            page.wait_for_selector('body[data-uploads="ready"]')
            index = 0
            for duration in args.imports:
                runs = []
                for _ in range(args.repeat):
                    index += 1
                    runs.append(one(page, store, tenant, index, duration, responses, pathlib.Path(tmp)))
                rows.append((duration, runs))
        finally:
            browser.close()
            server.should_exit = True

    print(f'\n{"import (s)":>10} | {"seen after (ms), median":>24} | {"max":>6} | {"reads":>5} | {"304s":>5}')
    print('-' * 64)
    for duration, runs in rows:
        seen = [run['seen'] * 1000 for run in runs]
        reads = statistics.median(run['reads'] for run in runs)
        not_modified = statistics.median(run['not_modified'] for run in runs)
        print(
            f'{duration:>10g} | {statistics.median(seen):>24.0f} | {max(seen):>6.0f} | {reads:>5g} | {not_modified:>5g}'
        )


if __name__ == '__main__':
    main()
