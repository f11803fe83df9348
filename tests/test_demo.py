"""The demo as a newcomer runs it: ``bash scripts/demo.sh [--serve [--port PORT]]``.

The port checks run through demo.sh itself and end before anything is installed (they are the first thing it
does). The served demo runs ``scripts/demo.py`` (what demo.sh runs after the installs, which CI has done already)
with its AiiDA profile in a temporary folder.
"""

from __future__ import annotations

import os
import pathlib
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from .ports import free_port

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def busy_port():
    """A port another server listens on, as a newcomer's port 8000 may be."""
    with socket.socket() as other:
        other.bind(('127.0.0.1', 0))
        other.listen()
        yield other.getsockname()[1]


def demo_sh(*args: str, **env: str) -> subprocess.CompletedProcess:
    command = ['bash', str(ROOT / 'scripts' / 'demo.sh'), *args]
    return subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize('how', ['--port', 'STRUCTSTORE_DEMO_PORT'])
def test_a_port_in_use_is_one_line_before_anything_runs(busy_port, how):
    if how == '--port':
        result = demo_sh('--serve', '--port', str(busy_port))
    else:
        result = demo_sh('--serve', STRUCTSTORE_DEMO_PORT=str(busy_port))
    assert result.returncode == 2
    assert result.stdout == ''  # no install, no demo step
    [line] = result.stderr.splitlines()
    match = re.fullmatch(
        rf'error: port {busy_port} on 127\.0\.0\.1 is already in use, so --serve could not listen there; '
        r'pick another with --port (\d+) \(or STRUCTSTORE_DEMO_PORT=(\d+)\)',
        line,
    )
    assert match and match[1] == match[2] and int(match[1]) != busy_port


@pytest.mark.parametrize(
    ('args', 'env', 'message'),
    [
        (['--serve', '--port', 'http'], {}, "--port must be a port number from 1 to 65535, got 'http'"),
        (['--serve', '--port', '70000'], {}, "--port must be a port number from 1 to 65535, got '70000'"),
        (['--serve'], {'STRUCTSTORE_DEMO_PORT': '0'}, 'STRUCTSTORE_DEMO_PORT must be a port number from 1 to 65535'),
        (['--port', '9000'], {}, '--port is the port of --serve: add --serve, or leave the port out'),
        (['--servee'], {}, 'unrecognized arguments: --servee'),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(args, env, message):
    result = demo_sh(*args, **env)
    assert result.returncode == 2 and result.stdout == ''
    assert message in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_served_demo_says_how_long_it_took_and_how_to_mint_more_tokens(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        'STRUCTSTORE_DEMO_DIR': str(tmp_path / 'demo'),
        'STRUCTSTORE_DEMO_STARTED': str(time.time() - 125),  # as demo.sh sets it: installs took about two minutes
        'STRUCTSTORE_DEMO_PORT': str(port),
        'PYTHONUNBUFFERED': '1',
    }
    env.pop('STRUCTURE_API_JWT_SECRET', None)
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / 'scripts' / 'demo.py'), '--serve'],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout], daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        while not seen or 'Ctrl-C stops' not in seen[-1]:
            seen.append(lines.get(timeout=400))  # raises queue.Empty if the demo never gets to serving
        text = ''.join(seen)
        done = re.search(r'Done in (\d+) min (\d+) s in all, installs included; the demo itself ([\d.]+) s', text)
        assert done, text[-3000:]
        assert 2 * 60 <= int(done[1]) * 60 + int(done[2]) and float(done[3]) < int(done[1]) * 60 + int(done[2])
        assert 'throwaway made for this demo server only' in text
        [mint] = re.findall(r'^  (STRUCTURE_API_JWT_SECRET=\S+ \.venv/bin/structstore-dev-token .*)$', text, re.M)
        assignment, *command = shlex.split(mint)
        secret = assignment.split('=', 1)[1]
        assert command[:1] == ['.venv/bin/structstore-dev-token']
        command[0] = str(pathlib.Path(sys.executable).parent / 'structstore-dev-token')
        minted = subprocess.run(
            command, env={**env, 'STRUCTURE_API_JWT_SECRET': secret}, capture_output=True, text=True, check=False
        )
        assert minted.returncode == 0, minted.stderr
        response = httpx.get(
            f'http://127.0.0.1:{port}/api/structures',
            params={'workspace': 'examples'},
            headers={'Authorization': f'Bearer {minted.stdout.strip()}'},
        )
        assert response.status_code == 200, response.text
        assert len(response.json()['items']) == 4
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C, as the demo says
        code = demo.wait(60)
        reader.join(30)  # the rest of its output, to the end
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert code == 0, ''.join(rest)[-3000:]
    assert 'The local Convex server is stopped.' in ''.join(rest)
    assert 'Traceback' not in ''.join(rest)
