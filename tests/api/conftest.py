"""Fixtures of the read API tests: the example structures projected for real, stores of every backend, tokens, and
the app served by uvicorn in a thread (for streaming and browser tests)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import uvicorn
from fastapi.testclient import TestClient

from aiida_structstore.api import ApiSettings, create_app
from aiida_structstore.core.structures import Source, StructureKey

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent.parent / 'examples'
#: structure id → example file: CIF and pw.x inputs, one of them 1 MB of explicit k-points.
EXAMPLE_FILES = {
    'fe2o3': EXAMPLES / 'cif' / 'fe2o3.cif',
    'si': EXAMPLES / 'cif' / 'si.cif',
    'fe2o3-bands': EXAMPLES / 'pw' / 'fe2o3_bands.in',
    'si-scf': EXAMPLES / 'pw' / 'si_scf.in',
}
SECRET = secrets.token_urlsafe(48)


@dataclasses.dataclass(frozen=True)
class Example:
    attributes: dict[str, Any]
    node_uuid: str
    source: Source
    params: dict[str, Any] | None
    raw: str


@pytest.fixture(scope='session')
def examples(aiida_profile) -> dict[str, Example]:
    """The example files imported by the real calcfunctions (AiiDA, once per session): what the demo projects."""
    from aiida import orm
    from aiida.plugins import CalculationFactory

    found = {}
    for structure_id, path in EXAMPLE_FILES.items():
        kind = 'cif' if path.suffix == '.cif' else 'pw-input'
        function = CalculationFactory('structstore.import_cif' if kind == 'cif' else 'structstore.import_pw_input')
        file = orm.CifData(file=str(path)) if kind == 'cif' else orm.SinglefileData(path)
        results = function(file=file.store())
        structure = results['structure']
        params = results['parameters'].get_dict() if 'parameters' in results else None
        found[structure_id] = Example(
            structure.base.attributes.all,
            structure.uuid,
            Source(kind=kind, filename=path.name),
            params,
            path.read_text(encoding='utf-8'),
        )
    return found


@pytest.fixture
def seed(examples):
    """Return ``seed(store, tenant, workspace)``: project the examples into that workspace; returns the contents."""
    from aiida_structstore.structures import structure_content

    def write(store, tenant: str, workspace: str, ids: tuple[str, ...] | None = None) -> dict:
        contents = {}
        for structure_id in ids or tuple(examples):
            example = examples[structure_id]
            contents[structure_id] = structure_content(
                example.attributes,
                key=StructureKey.of(tenant, workspace, structure_id),
                node_uuid=example.node_uuid,
                source=example.source,
                params=example.params,
            )
        store.structures.put_many((content, examples[sid].raw) for sid, content in contents.items())
        return contents

    return write


@pytest.fixture
def seeded(backend, seed, tenant):
    """The examples in ``tenant``/``lab``, and look-alikes elsewhere: ``si`` and ``fe2o3`` under another tenant's
    ``lab``, ``si`` in ``tenant``/``private``. Returns the contents of ``lab``."""
    contents = seed(backend, tenant, 'lab')
    seed(backend, f'{tenant}-other', 'lab', ('si', 'fe2o3'))
    seed(backend, tenant, 'private', ('si',))
    return contents


@pytest.fixture(params=['memory', 'convex-local', 'convex-component'])
def backend(request):
    """The store the app opens through ``open_store()``, selected by the environment: memory, then the local Convex
    server in the standalone layout, then in the component layout. Tests use unique tenant ids, so data left in the
    session-wide Convex servers never meets them."""
    if request.param == 'memory':
        return request.getfixturevalue('memory_backend')
    if request.param == 'convex-component':
        return request.getfixturevalue('convex_component_backend')
    return request.getfixturevalue('convex_backend')


@pytest.fixture
def tenant() -> str:
    return f'tenant-{secrets.token_hex(4)}'


@pytest.fixture
def api_settings(monkeypatch) -> ApiSettings:
    """HS256 settings with a fresh secret; no STRUCTURE_API_* variable of the caller's environment leaks in."""
    for name in ('JWT_SECRET', 'JWKS_URL', 'JWT_ISSUER', 'JWT_AUDIENCE', 'CORS_ORIGINS', 'PUBLIC_URL'):
        monkeypatch.delenv(f'STRUCTURE_API_{name}', raising=False)
    for name in ('UPLOAD_CLAIM', 'MAX_UPLOAD_BYTES'):
        monkeypatch.delenv(f'STRUCTURE_API_{name}', raising=False)
    monkeypatch.setenv('STRUCTURE_API_JWT_SECRET', SECRET)
    return ApiSettings()


def make_token(
    tenant: str,
    workspaces: list[str] | str,
    /,
    *,
    key: Any = SECRET,
    algorithm: str = 'HS256',
    expires_in: float = 600,
    headers: dict | None = None,
    **claims: Any,
) -> str:
    """A token as an application would issue it (defaults: HS256, the test secret, this API's issuer and audience)."""
    now = dt.datetime.now(dt.timezone.utc)
    payload = {
        'iss': 'aiida-structstore',
        'aud': 'aiida-structstore-api',
        'sub': 'someone',
        'iat': now,
        'exp': now + dt.timedelta(seconds=expires_in),
        'tenant': tenant,
        'workspaces': workspaces,
        **claims,
    }
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {'Authorization': f'Bearer {token}'}


@pytest.fixture
def client(backend, api_settings) -> Iterator[TestClient]:
    """The app on the selected backend, through FastAPI's test client (lifespan included)."""
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


class _Server(uvicorn.Server):
    """A uvicorn server that reports when it listens (an event, not a poll)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        self.ready.set()


@dataclasses.dataclass
class LiveServer:
    url: str
    server: _Server
    thread: threading.Thread


def serve(app, *, port: int = 0, timeout: float = 30.0) -> Iterator[LiveServer]:
    """Serve ``app`` with uvicorn on ``port`` (default: a free one) in a thread; stop it afterwards."""
    server = _Server(uvicorn.Config(app, host='127.0.0.1', port=port, log_level='warning', lifespan='on'))
    thread = threading.Thread(target=server.run, name='uvicorn', daemon=True)
    thread.start()
    if not server.ready.wait(timeout) or not server.started:
        server.should_exit = True
        raise RuntimeError('uvicorn did not start')
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(f'http://127.0.0.1:{port}', server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout)


@pytest.fixture
def live_server(backend, api_settings) -> Iterator[LiveServer]:
    """The app on the selected backend, served over real HTTP."""
    yield from serve(create_app(api_settings))


def run_validator(base_url: str, token: str) -> dict:
    """``optimade-validator`` (optional tests included) against ``base_url`` with the token: its JSON summary, after
    asserting that nothing failed and that more than 30 tests ran."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    validator = Path(sys.executable).parent / 'optimade-validator'
    result = subprocess.run(
        [str(validator), base_url, '--headers', json.dumps(bearer(token)), '--json'],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    summary = json.loads(result.stdout)
    failures = {
        name: summary[name]
        for name in ('failure_count', 'internal_failure_count', 'optional_failure_count')
        if summary[name]
    }
    print(f'\nvalidator: {summary["success_count"]} passed, {summary["optional_success_count"]} optional passed')
    assert not failures, json.dumps(summary, indent=1)[:20000]
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary['success_count'] > 30
    return summary
