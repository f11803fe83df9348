"""Cold start: ``create_app`` leaves OPTIMADE (the ``optimade`` package and its parser, ``lark``) unimported until the
first request under ``/optimade``, which then works; the lazy mount builds its app once, whatever arrives first."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from starlette.responses import PlainTextResponse

from aiida_structstore.api import create_app
from aiida_structstore.api.app import LazyMount

from .conftest import SECRET, bearer, make_token

HEAVY = ('optimade', 'lark', 'numpy', 'pymatgen', 'aiida')

#: Run in a fresh interpreter: what ``import aiida_structstore.api; create_app()`` loads, then the first requests.
PROGRAM = """
import json, sys
import aiida_structstore.api
from aiida_structstore.api import create_app

app = create_app()
report = {'after_create_app': sorted(name for name in HEAVY if name in sys.modules)}

from fastapi.testclient import TestClient
from aiida_structstore.core.structures import Source, StructureKey
from aiida_structstore.store import open_store
from aiida_structstore.structures import structure_content

attributes = {
    'cell': [[5.43, 0, 0], [0, 5.43, 0], [0, 0, 5.43]], 'pbc1': True, 'pbc2': True, 'pbc3': True,
    'kinds': [{'name': 'Si', 'symbols': ['Si'], 'weights': [1.0], 'mass': 28.085}],
    'sites': [{'kind_name': 'Si', 'position': [0, 0, 0]}, {'kind_name': 'Si', 'position': [1.3575, 1.3575, 1.3575]}],
}
key = StructureKey.of('cold', 'lab', 'si')
content = structure_content(attributes, key=key, node_uuid=None, source=Source(kind='aiida'))
open_store().structures.put_many([(content, None)])
headers = {'Authorization': 'Bearer ' + sys.argv[1]}
with TestClient(app) as client:
    report['api'] = client.get('/api/structures/si', headers=headers).status_code
    report['after_api'] = sorted(name for name in HEAVY if name in sys.modules)
    response = client.get('/optimade/v1/structures', params={'page_limit': 1}, headers=headers)
    report['optimade'] = response.status_code
    report['body'] = response.json()
    report['after_optimade'] = sorted(name for name in HEAVY if name in sys.modules)
    error = client.get('/optimade/v1/structures', params={'filter': 'nsites ='}, headers=headers)
    report['error'] = error.status_code, error.json()['errors'][0]['title']
    # The package's logger module configures logging and creates /var/log/optimade when imported.
    report['side_effects'] = sorted(name for name in ('optimade.server.logger', 'requests') if name in sys.modules)
print(json.dumps(report))
"""


def test_create_app_imports_no_optimade_until_the_first_optimade_request(api_settings):
    env = {**os.environ, 'STRUCTURE_STORE_BACKEND': 'memory', 'STRUCTURE_API_JWT_SECRET': SECRET}
    env.pop('STRUCTURE_API_PUBLIC_URL', None)
    result = subprocess.run(
        [sys.executable, '-c', f'HEAVY = {HEAVY!r}\n{PROGRAM}', make_token('cold', ['lab'])],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['after_create_app'] == []
    assert report['api'] == 200 and report['after_api'] == []
    assert report['optimade'] == 200, report['body']
    assert [entry['id'] for entry in report['body']['data']] == ['si']
    assert report['body']['data'][0]['attributes']['nsites'] == 2
    assert report['after_optimade'] == ['lark', 'optimade']
    assert report['error'] == [400, 'Bad Request'] and report['side_effects'] == []

    from optimade.models import StructureResponseMany

    StructureResponseMany.model_validate(report['body'])


def test_the_lazy_mount_builds_once_for_concurrent_first_requests():
    builds = []

    def build():
        builds.append(1)
        return PlainTextResponse('built')

    mount = LazyMount(build)
    assert not mount.built

    async def request() -> bytes:
        sent = []

        async def receive():
            return {'type': 'http.request', 'body': b'', 'more_body': False}

        async def send(message):
            sent.append(message)

        scope = {'type': 'http', 'method': 'GET', 'path': '/', 'headers': [], 'query_string': b''}
        await mount(scope, receive, send)
        return b''.join(message.get('body', b'') for message in sent if message['type'] == 'http.response.body')

    async def many():
        return await asyncio.gather(*(request() for _ in range(8)))

    assert asyncio.run(many()) == [b'built'] * 8
    assert builds == [1] and mount.built


def test_a_failed_build_is_an_error_and_is_tried_again():
    attempts = []

    def build():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError('first build fails')
        return PlainTextResponse('built')

    mount = LazyMount(build)
    client = TestClient(mount)
    with pytest.raises(RuntimeError, match='first build fails'):
        client.get('/')
    assert client.get('/').text == 'built'
    assert len(attempts) == 2


def test_the_optimade_app_is_built_on_first_use(backend, api_settings, seeded, tenant):
    app = create_app(api_settings)
    mount = next(route.app for route in app.routes if getattr(route, 'path', None) == '/optimade')
    assert isinstance(mount, LazyMount) and not mount.built
    with TestClient(app) as client:
        response = client.get('/optimade/v1/structures', headers=bearer(make_token(tenant, ['lab'])))
    assert response.status_code == 200 and mount.built
    assert {entry['id'] for entry in response.json()['data']} == set(seeded)
