"""The structures API on every backend: each route, each status code, isolation, ETag/304, caching headers."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from aiida_structstore.api.structures import etag_matches
from aiida_structstore.core.structures import StructureKey

from .conftest import bearer, make_token

ROUTES = [
    '/api/structures',
    '/api/structures/si',
    '/api/structures/si/view?format=cif',
    '/api/structures/si/view?format=json',
    '/api/structures/si/view?format=xyz',
    '/api/structures/si/raw',
]


@pytest.fixture
def auth(tenant):
    return bearer(make_token(tenant, ['lab']))


class TestRoutes:
    def test_list_pages_through_the_workspace_with_the_summary_fields(self, client, seeded, auth, examples):
        seen, cursor = [], None
        while True:
            params = {'limit': 3} | ({'cursor': cursor} if cursor else {})
            response = client.get('/api/structures', params=params, headers=auth)
            assert response.status_code == 200
            page = response.json()
            assert page['workspace'] == 'lab' and len(page['items']) <= 3
            seen.extend(page['items'])
            cursor = page['next_cursor']
            if cursor is None:
                break
        assert sorted(item['id'] for item in seen) == sorted(examples)
        item = next(item for item in seen if item['id'] == 'fe2o3')
        assert item['chemical_formula_reduced'] == 'Fe2O3' and item['elements'] == ['Fe', 'O']
        assert item['nsites'] == seeded['fe2o3'].structure['nsites'] == 30
        assert item['source'] == {'kind': 'cif', 'filename': 'fe2o3.cif'}
        assert item['updated_at'].startswith('20')

    def test_one_record_without_raw_text_with_its_origin(self, client, seeded, auth, examples):
        response = client.get('/api/structures/fe2o3-bands', headers=auth)
        assert response.status_code == 200
        body = response.json()
        raw = examples['fe2o3-bands'].raw.encode()
        assert body['source'] == {'kind': 'pw-input', 'filename': 'fe2o3_bands.in'}
        assert body['aiida_node_uuid'] == examples['fe2o3-bands'].node_uuid
        chunks = -(-len(raw) // (512 * 1024))
        assert body['raw'] == {'size': len(raw), 'sha256': hashlib.sha256(raw).hexdigest(), 'chunk_count': chunks}
        assert body['structure'] == seeded['fe2o3-bands'].structure
        assert body['params']['SYSTEM']['hubbard_u(1)'] == 4.3
        assert body['views'] == ['cif', 'json', 'xyz']
        assert 'K_POINTS' not in response.text  # the raw input stays out

    def test_view_as_cif_json_and_xyz(self, client, seeded, auth):
        content = seeded['fe2o3']
        cif = client.get('/api/structures/fe2o3/view', params={'format': 'cif'}, headers=auth)
        assert cif.status_code == 200
        assert cif.headers['content-type'] == 'chemical/x-cif'
        assert cif.text == content.cif
        default = client.get('/api/structures/fe2o3/view', headers=auth)
        assert default.text == content.cif
        payload = client.get('/api/structures/fe2o3/view', params={'format': 'json'}, headers=auth)
        assert payload.headers['content-type'] == 'application/json'
        assert payload.json() == content.structure
        xyz = client.get('/api/structures/fe2o3/view', params={'format': 'xyz'}, headers=auth)
        assert xyz.headers['content-type'] == 'chemical/x-xyz'
        lines = xyz.text.splitlines()
        assert int(lines[0]) == len(lines) - 2 == 30
        assert 'Lattice="' in lines[1] and 'pbc="T T T"' in lines[1]
        first = lines[2].split()
        assert first[0] == 'Fe' and first[4] == content.structure['species_at_sites'][0]
        assert [float(x) for x in first[1:4]] == pytest.approx(content.structure['cartesian_site_positions'][0])

    def test_an_unknown_format_is_422_naming_the_valid_ones(self, client, seeded, auth):
        response = client.get('/api/structures/si/view', params={'format': 'pdb'}, headers=auth)
        assert response.status_code == 422
        assert "'cif', 'json' or 'xyz'" in json.dumps(response.json())

    def test_raw_input_reassembled_and_verified(self, client, seeded, auth, examples):
        response = client.get('/api/structures/fe2o3-bands/raw', headers=auth)
        assert response.status_code == 200
        raw = examples['fe2o3-bands'].raw.encode()
        assert response.content == raw
        assert response.headers['content-type'] == 'text/plain; charset=utf-8'
        assert int(response.headers['content-length']) == len(raw)
        assert response.headers['x-content-sha256'] == hashlib.sha256(raw).hexdigest()

    def test_a_record_without_raw_input(self, client, backend, seed, tenant, auth, examples):
        contents = seed(backend, tenant, 'lab', ('si',))
        backend.structures.put(contents['si'])  # the same structure, now without raw input
        response = client.get('/api/structures/si/raw', headers=auth)
        assert response.status_code == 404
        assert response.json()['detail'] == "structure 'si' has no raw input"
        assert client.get('/api/structures/si', headers=auth).json()['raw'] is None

    def test_bad_ids_are_422(self, client, seeded, auth):
        response = client.get('/api/structures/bad%20id', headers=auth)
        assert response.status_code == 422 and 'not allowed' in response.json()['detail']
        response = client.get('/api/structures', params={'limit': 0}, headers=auth)
        assert response.status_code == 422


CURSOR = re.compile(r'[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+')
BAD_CURSOR = 'invalid page cursor: pass the next_cursor of the previous page unchanged'


BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'


def tamper(token: str, index: int) -> str:
    """``token`` with the character at ``index`` changed in its highest bit (always a bit the part decodes to)."""
    index %= len(token)
    changed = BASE64URL[BASE64URL.index(token[index]) ^ 32]
    return token[:index] + changed + token[index + 1 :]


def tampered(cursor: str) -> list[str]:
    """Cursors one edit away from ``cursor``: a changed character in either part, a part left out, padding."""
    payload, mac = cursor.split('.')
    flip = {'A': 'B', 'B': 'A'}
    return [
        f'{payload[:-1]}{flip.get(payload[-1], "A")}.{mac}',
        f'{payload}.{mac[:-1]}{flip.get(mac[-1], "A")}',
        payload,
        f'{payload}.',
        f'{payload}=.{mac}',
        f'{cursor}.{mac}',
    ]


class TestCursors:
    """Page cursors are opaque and URL-safe; a bad one is a 400 that never carries the store's text."""

    def test_cursors_page_through_in_a_plain_url(self, client, seeded, auth, examples):
        seen, url = [], '/api/structures?limit=1'
        while url:
            page = client.get(url, headers=auth).json()
            seen += [item['id'] for item in page['items']]
            cursor = page['next_cursor']
            assert cursor is None or CURSOR.fullmatch(cursor), cursor
            url = cursor and f'/api/structures?limit=1&cursor={cursor}'  # pasted as it is, as with curl
        assert sorted(seen) == sorted(examples)

    @pytest.mark.parametrize(
        'cursor',
        ['garbage', 'not-a-cursor', '{"x": 1}', '[1, 2]', 'eyJ4IjogMX0', 'a.b', '..', '\u00e9.x', 'a' * 1000],
    )
    def test_malformed_cursors_are_400_with_a_fixed_message(self, client, seeded, auth, cursor):
        response = client.get('/api/structures', params={'cursor': cursor}, headers=auth)
        assert response.status_code == 400 and response.json() == {'detail': BAD_CURSOR}

    def test_tampered_cursors_are_400(self, client, seeded, auth):
        cursor = client.get('/api/structures', params={'limit': 1}, headers=auth).json()['next_cursor']
        for bad in tampered(cursor):
            response = client.get('/api/structures', params={'cursor': bad}, headers=auth)
            assert response.status_code == 400 and response.json() == {'detail': BAD_CURSOR}, bad

    def test_a_cursor_only_serves_the_listing_it_came_from(self, client, seeded, tenant):
        both = bearer(make_token(tenant, ['lab', 'private']))
        cursor = client.get('/api/structures?workspace=lab&limit=1', headers=both).json()['next_cursor']
        response = client.get('/api/structures', params={'workspace': 'private', 'cursor': cursor}, headers=both)
        assert response.status_code == 400 and response.json() == {'detail': BAD_CURSOR}
        theirs = bearer(make_token(f'{tenant}-other', ['lab']))
        response = client.get('/api/structures', params={'cursor': cursor}, headers=theirs)
        assert response.status_code == 400 and response.json() == {'detail': BAD_CURSOR}

    def test_a_store_that_refuses_a_cursor_never_shows_its_text(self, client, seeded, auth, backend, monkeypatch):
        from aiida_structstore.core.exceptions import InvalidInputError

        cursor = client.get('/api/structures', params={'limit': 1}, headers=auth).json()['next_cursor']

        def refuse(*args, **kwargs):
            raise InvalidInputError(
                'invalid page cursor: structures:listStructures failed: [Request ID: 1f2e] Unexpected token'
            )

        monkeypatch.setattr(type(backend.structures), 'list', refuse)
        response = client.get('/api/structures', params={'cursor': cursor}, headers=auth)
        assert response.status_code == 400 and response.json() == {'detail': BAD_CURSOR}


class TestAuthentication:
    @pytest.mark.parametrize('route', ROUTES)
    def test_no_token_is_401_on_every_route(self, client, seeded, route):
        response = client.get(route)
        assert response.status_code == 401
        assert response.headers['www-authenticate'] == 'Bearer'
        assert 'Authorization: Bearer' in response.json()['detail']

    @pytest.mark.parametrize('route', ROUTES)
    def test_a_valid_token_reads_every_route(self, client, seeded, auth, route):
        assert client.get(route, headers=auth).status_code == 200

    def test_every_one_character_change_is_a_signature_that_does_not_verify(self, tenant):
        from aiida_structstore.api import ApiSettings, TokenVerifier
        from aiida_structstore.api.auth import AuthenticationError

        from .conftest import SECRET

        verifier = TokenVerifier(ApiSettings(jwt_secret=SECRET))
        token = make_token(tenant, ['lab'])
        for index in range(len(token)):
            if token[index] == '.' or 'eyJhbGciOiJIUzI1NiIs'.startswith(token[: index + 1]):
                continue  # the dots, and the header's text '{"alg":"HS256",' (changed, it names another algorithm)
            with pytest.raises(AuthenticationError, match='signature does not verify'):
                verifier.verify(tamper(token, index))

    @pytest.mark.parametrize(
        ('token', 'message'),
        [
            (lambda t: make_token(t, ['lab'], key='another-secret-that-is-long-enough-for-hs256'), 'signature'),
            (lambda t: make_token(t, ['lab'], expires_in=-120), 'expired'),
            (lambda t: make_token(t, ['lab'], aud='another-api'), 'audience'),
            (lambda t: make_token(t, ['lab'], iss='someone-else'), 'issued by'),
            (lambda t: make_token(t, ['lab'], exp=None), "'exp' claim"),
            (lambda t: make_token(t, ['lab'], tenant=None), "tenant claim 'tenant'"),
            (lambda t: make_token(t, []), "workspaces claim 'workspaces'"),
            (lambda t: make_token(t, ['../etc']), 'not allowed'),
            (lambda t: make_token(t, ['lab'], key=None, algorithm='none'), "algorithm 'none' is not accepted"),
            (lambda t: 'not.a.jwt', 'not a JWT'),
            (lambda t: tamper(make_token(t, ['lab']), 24), 'signature does not verify'),
            (lambda t: tamper(make_token(t, ['lab']), -1), 'signature does not verify'),
        ],
        ids=[
            'bad-signature',
            'expired',
            'audience',
            'issuer',
            'no-exp',
            'no-tenant',
            'no-workspaces',
            'bad-workspace',
            'alg-none',
            'garbage',
            'header-changed',
            'signature-changed',
        ],
    )
    def test_bad_tokens_are_401_naming_the_problem(self, client, seeded, tenant, token, message):
        text = token(tenant)
        response = client.get('/api/structures/si', headers=bearer(text))
        assert response.status_code == 401
        assert message in response.json()['detail']
        assert response.headers['www-authenticate'] == 'Bearer error="invalid_token"'
        assert text not in response.text

    def test_workspaces_claim_may_be_one_string(self, client, seeded, tenant):
        headers = bearer(make_token(tenant, 'lab private'))
        assert client.get('/api/structures/si', params={'workspace': 'private'}, headers=headers).status_code == 200
        response = client.get('/api/structures/si', headers=headers)
        assert response.status_code == 422 and 'lab, private' in response.json()['detail']

    def test_an_invalid_workspace_parameter_is_422(self, client, seeded, auth):
        response = client.get('/api/structures', params={'workspace': 'a/b'}, headers=auth)
        assert response.status_code == 422 and 'workspace' in response.json()['detail']


class TestIsolation:
    @pytest.mark.parametrize('route', ROUTES[1:])
    def test_another_tenants_structure_is_404_like_a_missing_one(self, client, seeded, tenant, route):
        other = bearer(make_token(f'{tenant}-third', ['lab']))
        missing = client.get(route.replace('/si', '/missing'), headers=bearer(make_token(tenant, ['lab'])))
        response = client.get(route, headers=other)
        assert response.status_code == missing.status_code == 404
        assert response.json()['detail'].replace('/si', '/missing').replace('-third', '') == missing.json()['detail']

    def test_a_workspace_not_in_the_token_is_404(self, client, seeded, auth):
        for route in ROUTES:
            response = client.get(route, params={'workspace': 'private'}, headers=auth)
            assert response.status_code == 404
            assert response.json()['detail'] == "no workspace 'private'"

    def test_each_token_lists_only_its_own_workspace(self, client, seeded, tenant):
        own = client.get('/api/structures', headers=bearer(make_token(tenant, ['private']))).json()
        assert [item['id'] for item in own['items']] == ['si']
        other = client.get('/api/structures', headers=bearer(make_token(f'{tenant}-other', ['lab']))).json()
        assert sorted(item['id'] for item in other['items']) == ['fe2o3', 'si']
        nobody = client.get('/api/structures', headers=bearer(make_token(f'{tenant}-none', ['lab']))).json()
        assert nobody['items'] == [] and nobody['next_cursor'] is None


class TestCaching:
    @pytest.mark.parametrize('route', ROUTES)
    def test_responses_are_private_and_vary_on_authorization(self, client, seeded, auth, route):
        response = client.get(route, headers=auth)
        assert response.headers['cache-control'] == 'private, no-cache'
        assert response.headers['vary'] == 'Authorization'

    @pytest.mark.parametrize('route', ROUTES[1:])
    def test_etag_and_304(self, client, backend, seeded, auth, route):
        first = client.get(route, headers=auth)
        etag = first.headers['etag']
        assert etag.startswith('"') and seeded['si'].key.structure_id
        again = client.get(route, headers=auth | {'If-None-Match': etag})
        assert again.status_code == 304 and again.content == b''
        assert again.headers['etag'] == etag and again.headers['cache-control'] == 'private, no-cache'
        weak = client.get(route, headers=auth | {'If-None-Match': f'"x", W/{etag}'})
        assert weak.status_code == 304
        assert client.get(route, headers=auth | {'If-None-Match': '"other"'}).status_code == 200
        # Another tenant's token never gets a 304 (nor a 200) for the ETag it may have seen.
        stranger = bearer(make_token('stranger', ['lab']))
        assert client.get(route, headers=stranger | {'If-None-Match': etag}).status_code == 404

    def test_etags_differ_by_representation_and_change_with_the_content(self, client, backend, seeded, auth):
        tags = {route: client.get(route, headers=auth).headers['etag'] for route in ROUTES[1:]}
        assert len(set(tags.values())) == len(tags)
        changed = seeded['si'].model_copy(update={'params': {'changed': True}})
        backend.structures.put(changed, raw='new raw input')
        for route, etag in tags.items():
            response = client.get(route, headers=auth | {'If-None-Match': etag})
            assert response.status_code == 200 and response.headers['etag'] != etag

    def test_if_none_match_parsing(self):
        assert etag_matches('*', '"a"')
        assert etag_matches('"b", W/"a"', '"a"')
        assert not etag_matches('"ab"', '"a"')
        assert not etag_matches(None, '"a"')


class TestCors:
    def test_off_unless_configured(self, client, seeded, auth):
        response = client.get('/api/structures', headers=auth | {'Origin': 'https://app.example'})
        assert 'access-control-allow-origin' not in response.headers
        preflight = client.options(
            '/api/structures',
            headers={'Origin': 'https://app.example', 'Access-Control-Request-Method': 'GET'},
        )
        assert 'access-control-allow-origin' not in preflight.headers

    def test_configured_origins_only(self, backend, seed, tenant, api_settings, monkeypatch):
        from fastapi.testclient import TestClient

        from aiida_structstore.api import ApiSettings, create_app

        seed(backend, tenant, 'lab', ('si',))
        monkeypatch.setenv('STRUCTURE_API_CORS_ORIGINS', 'https://app.example, https://other.example')
        settings = ApiSettings()
        assert settings.cors_origins == ['https://app.example', 'https://other.example']
        with TestClient(create_app(settings)) as client:
            headers = bearer(make_token(tenant, ['lab']))
            allowed = client.get('/api/structures', headers=headers | {'Origin': 'https://app.example'})
            assert allowed.headers['access-control-allow-origin'] == 'https://app.example'
            assert 'ETag' in allowed.headers['access-control-expose-headers']
            refused = client.get('/api/structures', headers=headers | {'Origin': 'https://evil.example'})
            assert 'access-control-allow-origin' not in refused.headers


def test_the_app_reads_through_open_store(client, backend, seed, tenant):
    """The app was given no store: it opened the one STRUCTURE_STORE_BACKEND selects, which the test writes into."""
    seed(backend, tenant, 'lab', ('si',))
    response = client.get('/api/structures/si', headers=bearer(make_token(tenant, ['lab'])))
    assert response.status_code == 200
    assert backend.structures.get(StructureKey.of(tenant, 'lab', 'si')).content_hash == response.json()['content_hash']
