"""Security headers on every surface of the app: the read API, OPTIMADE, the viewer, the docs, and errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from aiida_structstore.api import create_app

from .conftest import bearer, make_token

#: path, whether it sends the token, the status expected.
ROUTES = [
    ('/api/structures', True, 200),
    ('/api/structures', False, 401),
    ('/api/structures/si', True, 200),
    ('/api/structures/si/view?format=cif', True, 200),
    ('/api/structures/si/raw', True, 200),
    ('/api/structures/missing', True, 404),
    ('/api/structures/bad%20id', True, 422),
    ('/api/structures?limit=0', True, 422),
    ('/api/structures/si/executions', True, 200),
    ('/api/nothing', True, 404),
    ('/optimade/versions', False, 200),
    ('/optimade/v1/info', True, 200),
    ('/optimade/v1/structures?filter=nsites>0', True, 200),
    ('/optimade/v1/structures?filter=nsites', True, 400),
    ('/optimade/v1/structures', False, 401),
    ('/optimade/v9/info', True, 553),
    ('/openapi.json', False, 200),
    ('/', False, 307),
]
VIEWER = ['/viewer/', '/viewer/index.html', '/viewer/viewer.js', '/viewer/viewer.css', '/viewer/missing.js']


@pytest.fixture
def client(backend, api_settings, seeded):
    with TestClient(create_app(api_settings), follow_redirects=False) as test_client:
        yield test_client


def _check_common(response) -> str:
    assert response.headers['x-content-type-options'] == 'nosniff'
    assert response.headers['x-frame-options'] == 'DENY'
    assert response.headers['referrer-policy'] == 'no-referrer'
    policy = response.headers['content-security-policy']
    assert "frame-ancestors 'none'" in policy
    return policy


@pytest.mark.parametrize(('path', 'token', 'status'), ROUTES, ids=[f'{p}-{s}' for p, _, s in ROUTES])
def test_every_api_response_has_the_headers(client, tenant, path, token, status):
    response = client.get(path, headers=bearer(make_token(tenant, ['lab'])) if token else {})
    assert response.status_code == status, response.text
    policy = _check_common(response)
    assert "default-src 'none'" in policy  # nothing an API answer holds may load or run anything


@pytest.mark.parametrize('path', VIEWER)
def test_the_viewer_has_its_own_policy(client, path):
    response = client.get(path)
    assert response.status_code == (404 if 'missing' in path else 200)
    policy = _check_common(response)
    directives = dict(part.strip().split(' ', 1) for part in policy.split(';') if part.strip())
    assert directives['default-src'] == "'self'"
    assert directives['script-src'] == "'self'"  # no inline script, no eval
    assert directives['object-src'] == "'none'" and directives['base-uri'] == "'none'"
    assert 'unsafe-inline' not in policy and 'unsafe-eval' not in policy


def test_the_api_docs_keep_working_and_cannot_be_framed(client):
    response = client.get('/docs')
    assert response.status_code == 200
    assert _check_common(response) == "frame-ancestors 'none'"


def test_an_unexpected_error_has_the_headers_too(backend, api_settings, tenant, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('a bug')

    monkeypatch.setattr(type(backend.structures), 'list', broken)  # the read API's listing
    monkeypatch.setattr(type(backend.structures), 'query', broken)  # the OPTIMADE listing
    with TestClient(create_app(api_settings), raise_server_exceptions=False) as client:
        for path in ('/api/structures', '/optimade/v1/structures'):
            response = client.get(path, headers=bearer(make_token(tenant, ['lab'])))
            assert response.status_code == 500
            assert 'a bug' not in response.text
            _check_common(response)
