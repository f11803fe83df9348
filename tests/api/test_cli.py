"""The console scripts: ``structstore-api`` serves, ``structstore-dev-token`` mints. Each runs once as a user runs
it (a subprocess, through its installed script); their error cases run the same functions in this process."""

from __future__ import annotations

import os
import pathlib
import queue
import subprocess
import sys
import threading

import httpx
import pytest

from aiida_structstore.api import ApiSettings, TokenVerifier

from ..ports import free_port
from .conftest import SECRET, bearer

BIN = pathlib.Path(sys.executable).parent


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(('STRUCTURE_API_', 'STRUCTURE_STORE_', 'CONVEX_'))}
    return clean | {'HOME': str(tmp_path), 'STRUCTURE_STORE_BACKEND': 'memory', 'STRUCTURE_API_JWT_SECRET': SECRET}


def run(command: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / command), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_dev_token_prints_a_token_the_api_accepts(env):
    result = run('structstore-dev-token', '-t', 'acme', '-w', 'lab', '-w', 'hematite', '--minutes', '5', env=env)
    assert result.returncode == 0, result.stderr
    principal = TokenVerifier(ApiSettings(jwt_secret=SECRET)).verify(result.stdout.strip())
    assert principal.tenant_id == 'acme' and principal.workspaces == ('lab', 'hematite')


@pytest.fixture
def in_process(env, monkeypatch, capsys):
    """Run a console script's function in this process, in ``env``; return (exit code, stdout, stderr)."""
    from aiida_structstore.api import cli

    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def call(command: str, *args: str) -> tuple[int, str, str]:
        function = {'structstore-dev-token': cli.dev_token, 'structstore-api': cli.serve}[command]
        try:
            function(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_dev_token_errors_name_the_problem(in_process, env, monkeypatch):
    monkeypatch.delenv('STRUCTURE_API_JWT_SECRET')
    code, out, err = in_process('structstore-dev-token', '-t', 'acme', '-w', 'lab')
    assert code == 2 and 'STRUCTURE_API_JWT_SECRET' in err
    monkeypatch.setenv('STRUCTURE_API_JWT_SECRET', SECRET)
    code, out, err = in_process('structstore-dev-token', '-t', 'acme', '-w', 'no/slash')
    assert code == 2 and "character '/' is not allowed" in err
    assert SECRET not in err + out


def test_dev_token_refuses_a_lifetime_beyond_the_maximum_in_minutes(in_process):
    code, out, err = in_process('structstore-dev-token', '-t', 'acme', '-w', 'lab', '--minutes', '5000')
    assert code == 2 and out == ''
    assert '--minutes must be 1 to 1440 (24 hours), got 5000' in err
    code, out, err = in_process('structstore-dev-token', '-t', 'acme', '-w', 'lab', '--minutes', '0')
    assert code == 2 and 'got 0' in err
    code, out, _ = in_process('structstore-dev-token', '-t', 'acme', '-w', 'lab', '--minutes', '1440')
    assert code == 0 and out.count('.') == 2


def test_api_refuses_to_start_without_a_way_to_verify_tokens(in_process, monkeypatch):
    monkeypatch.delenv('STRUCTURE_API_JWT_SECRET')
    code, _, err = in_process('structstore-api', '--port', '1')
    assert code == 2 and 'STRUCTURE_API_JWKS_URL' in err


def test_the_public_url_defaults_from_host_and_port(env):
    token = run('structstore-dev-token', '-t', 'acme', '-w', 'lab', env=env).stdout.strip()
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / 'structstore-api'), '--host', '127.0.0.1', '--port', str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    try:
        seen = []
        while not any('Application startup complete' in line for line in seen):
            seen.append(lines.get(timeout=60))
        response = httpx.get(
            f'http://127.0.0.1:{port}/optimade/v1/info', headers={**bearer(token), 'Host': 'evil.example'}
        )
        assert response.status_code == 200, response.text
        [version] = response.json()['data']['attributes']['available_api_versions']
        assert version['url'] == f'http://127.0.0.1:{port}/optimade/v1'
    finally:
        process.terminate()
        process.wait(30)


@pytest.mark.parametrize(
    ('args', 'environment', 'expected'),
    [
        (['--host', '10.1.2.3', '--port', '9000'], None, 'http://10.1.2.3:9000'),
        (['--host', '0.0.0.0'], None, 'http://127.0.0.1:8000'),
        (['--host', '::'], None, 'http://[::1]:8000'),
        (['--host', '::1', '--port', '81'], None, 'http://[::1]:81'),
        ([], 'https://structures.example.org', 'https://structures.example.org'),
        (['--public-url', 'https://b.example/x/'], 'https://a.example', 'https://b.example/x'),
    ],
)
def test_public_url_choice(env, monkeypatch, args, environment, expected):
    from aiida_structstore.api.cli import _settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if environment:
        monkeypatch.setenv('STRUCTURE_API_PUBLIC_URL', environment)
    else:
        monkeypatch.delenv('STRUCTURE_API_PUBLIC_URL', raising=False)
    settings, _ = _settings(args)
    assert settings.public_url == expected


def test_api_command_serves_the_app(env):
    token = run('structstore-dev-token', '-t', 'acme', '-w', 'lab', env=env).stdout.strip()
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / 'structstore-api'), '--port', str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    try:
        seen = []
        while not any('Application startup complete' in line for line in seen):
            seen.append(lines.get(timeout=60))  # raises queue.Empty if the server never starts
        url = f'http://127.0.0.1:{port}'
        assert httpx.get(f'{url}/api/structures').status_code == 401
        response = httpx.get(f'{url}/api/structures', headers=bearer(token))
        assert response.status_code == 200 and response.json() == {'workspace': 'lab', 'items': [], 'next_cursor': None}
        assert httpx.get(f'{url}/viewer/').status_code == 200
    finally:
        process.terminate()
        process.wait(30)
    assert SECRET not in ''.join(seen)
