"""Token verification: HS256 with a secret, RS256/ES256 from a real JWKS URL, settings errors, no secret anywhere."""

from __future__ import annotations

import http.server
import json
import logging
import threading

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from aiida_structstore.api import ApiSettings, AuthenticationError, TokenVerifier, create_app, load_api_settings
from aiida_structstore.api.auth import mint_token
from aiida_structstore.core.exceptions import ConfigurationError

from .conftest import SECRET, bearer, make_token


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ('JWT_SECRET', 'JWKS_URL', 'JWT_ISSUER', 'JWT_AUDIENCE', 'CORS_ORIGINS', 'TENANT_CLAIM', 'PUBLIC_URL'):
        monkeypatch.delenv(f'STRUCTURE_API_{name}', raising=False)
    monkeypatch.setenv('STRUCTURE_STORE_SETTINGS_FILE', str(tmp_path / 'absent.env'))
    monkeypatch.delenv('STRUCTURE_STORE_SETTINGS_FILE')
    monkeypatch.setenv('HOME', str(tmp_path))  # no ~/.config/aiida-structstore/settings.env of the caller


class TestSettings:
    def test_no_key_configured_is_an_error_naming_both_variables(self, clean_env):
        with pytest.raises(ConfigurationError, match=r'STRUCTURE_API_JWT_SECRET.*STRUCTURE_API_JWKS_URL'):
            load_api_settings()

    def test_a_short_secret_is_refused_without_showing_it(self, clean_env, monkeypatch):
        monkeypatch.setenv('STRUCTURE_API_JWT_SECRET', 'short-secret-value')
        with pytest.raises(ConfigurationError, match='too short') as info:
            load_api_settings()
        assert 'short-secret-value' not in str(info.value)

    def test_bad_values_name_the_setting(self, clean_env, monkeypatch):
        monkeypatch.setenv('STRUCTURE_API_JWT_SECRET', SECRET)
        monkeypatch.setenv('STRUCTURE_API_JWKS_URL', 'ftp://keys.example')
        with pytest.raises(ConfigurationError, match=r'jwks_url|JWKS_URL') as info:
            load_api_settings()
        assert SECRET not in str(info.value)

    @pytest.mark.parametrize(
        ('value', 'expected'),
        [
            ('https://structures.example.org', 'https://structures.example.org'),
            ('https://structures.example.org/base/', 'https://structures.example.org/base'),
            ('http://127.0.0.1:8000', 'http://127.0.0.1:8000'),
            ('', None),
        ],
    )
    def test_the_public_url(self, clean_env, monkeypatch, value, expected):
        monkeypatch.setenv('STRUCTURE_API_JWT_SECRET', SECRET)
        monkeypatch.setenv('STRUCTURE_API_PUBLIC_URL', value)
        assert load_api_settings().public_url == expected

    @pytest.mark.parametrize(
        'value', ['ftp://example.org', 'example.org', 'https://', 'https://a.example/?x=1', 'https://u:p@a.example']
    )
    def test_a_bad_public_url_is_refused(self, clean_env, monkeypatch, value):
        monkeypatch.setenv('STRUCTURE_API_JWT_SECRET', SECRET)
        monkeypatch.setenv('STRUCTURE_API_PUBLIC_URL', value)
        with pytest.raises(ConfigurationError, match='STRUCTURE_API_PUBLIC_URL') as info:
            load_api_settings()
        assert 'u:p' not in str(info.value)

    def test_settings_file_is_read(self, clean_env, monkeypatch, tmp_path):
        path = tmp_path / 'settings.env'
        path.write_text(f'STRUCTURE_API_JWT_SECRET={SECRET}\nSTRUCTURE_API_JWT_ISSUER=https://issuer.example\n')
        path.chmod(0o600)
        monkeypatch.setenv('STRUCTURE_STORE_SETTINGS_FILE', str(path))
        settings = load_api_settings()
        assert settings.issuer == 'https://issuer.example'
        assert settings.jwt_secret.get_secret_value() == SECRET

    def test_the_secret_is_never_in_repr(self, api_settings, memory_backend):
        app = create_app(api_settings)
        context = app.state.read_context
        for text in (repr(api_settings), str(api_settings), repr(context), repr(context.verifier)):
            assert SECRET not in text

    def test_the_secret_and_tokens_never_reach_the_logs(self, api_settings, memory_backend, caplog):
        caplog.set_level(logging.DEBUG)
        token = make_token('acme', ['lab'])
        with TestClient(create_app(api_settings)) as client:
            client.get('/api/structures', headers=bearer(token))
            client.get('/api/structures', headers=bearer(token[:-2] + 'xx'))
            client.get('/api/structures/x', headers=bearer(make_token('acme', ['lab'], expires_in=-100)))
        assert SECRET not in caplog.text and token not in caplog.text


class TestDevToken:
    def test_minted_tokens_verify_and_expire(self, api_settings):
        token = mint_token(api_settings, 'acme', ['lab', 'hematite'], seconds=60)
        principal = TokenVerifier(api_settings).verify(token)
        assert (principal.tenant_id, principal.workspaces, principal.subject) == ('acme', ('lab', 'hematite'), 'dev')
        claims = jwt.decode(token, options={'verify_signature': False})
        assert claims['exp'] - claims['iat'] == 60

    @pytest.mark.parametrize(
        ('args', 'match'),
        [
            (('bad tenant', ['lab']), 'tenant'),
            (('acme', []), 'at least one workspace'),
            (('acme', ['a/b']), 'workspace'),
            (('acme', ['lab'], 10**6), 'lifetime'),
        ],
    )
    def test_bad_requests_are_refused(self, api_settings, args, match):
        tenant, workspaces, *seconds = args
        with pytest.raises(ValueError, match=match):
            mint_token(api_settings, tenant, workspaces, **({'seconds': seconds[0]} if seconds else {}))

    def test_needs_the_shared_secret(self):
        settings = ApiSettings(jwks_url='https://keys.example/jwks.json')
        with pytest.raises(ConfigurationError, match='STRUCTURE_API_JWT_SECRET'):
            mint_token(settings, 'acme', ['lab'])


class _Keys:
    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> bytes:
        keys = []
        for kid, key, alg in (('rsa-1', self.rsa, 'RS256'), ('ec-1', self.ec, 'ES256')):
            jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
            keys.append(jwk | {'kid': kid, 'alg': alg, 'use': 'sig'})
        return json.dumps({'keys': keys}).encode()


@pytest.fixture(scope='module')
def jwks_server():
    """A real HTTP server on localhost publishing a JWKS with one RSA and one EC key (as an identity provider does)."""
    keys = _Keys()
    body = keys.jwks()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield keys, f'http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json'
    server.shutdown()
    thread.join()


class TestJwks:
    @pytest.fixture
    def client(self, jwks_server, memory_backend, clean_env, monkeypatch):
        _, url = jwks_server
        monkeypatch.setenv('STRUCTURE_API_JWKS_URL', url)
        with TestClient(create_app()) as test_client:
            yield test_client

    @pytest.mark.parametrize(('kid', 'alg'), [('rsa-1', 'RS256'), ('ec-1', 'ES256')])
    def test_tokens_signed_by_the_published_keys_verify(self, client, jwks_server, kid, alg):
        keys, _ = jwks_server
        key = keys.rsa if alg == 'RS256' else keys.ec
        token = make_token('acme', ['lab'], key=key, algorithm=alg, headers={'kid': kid})
        response = client.get('/api/structures', headers=bearer(token))
        assert response.status_code == 200 and response.json()['workspace'] == 'lab'

    def test_a_key_not_published_is_refused(self, client, jwks_server):
        keys, _ = jwks_server
        forged = make_token('acme', ['lab'], key=keys.stranger, algorithm='RS256', headers={'kid': 'rsa-1'})
        response = client.get('/api/structures', headers=bearer(forged))
        assert response.status_code == 401 and 'signature' in response.json()['detail']
        unknown = make_token('acme', ['lab'], key=keys.stranger, algorithm='RS256', headers={'kid': 'rsa-9'})
        response = client.get('/api/structures', headers=bearer(unknown))
        assert response.status_code == 401 and 'JWKS' in response.json()['detail']

    @pytest.mark.parametrize(('alg', 'kid'), [('ES256', 'rsa-1'), ('RS256', 'ec-1')])
    def test_an_algorithm_that_does_not_fit_the_key_is_401(self, client, jwks_server, alg, kid):
        keys, _ = jwks_server
        token = make_token('acme', ['lab'], key=keys.ec if alg == 'ES256' else keys.rsa, algorithm=alg)
        forged = jwt.api_jws.base64url_encode(json.dumps({'alg': alg, 'kid': kid, 'typ': 'JWT'}).encode()).decode()
        for candidate in (token.replace(token.split('.')[0], forged, 1), f'{forged}.e30.c2ln'):
            response = client.get('/api/structures', headers=bearer(candidate))
            assert response.status_code == 401, response.text
            kty, key_alg = ('RSA', 'RS256') if alg == 'ES256' else ('EC', 'ES256')
            assert response.json()['detail'] == (
                f'the token algorithm {alg} does not fit the JWKS key {kid!r} (key type {kty}, algorithm {key_alg})'
            )
            response = client.get('/optimade/v1/info', headers=bearer(candidate))
            assert response.status_code == 401 and 'does not fit the JWKS key' in response.text

    def test_hs256_is_not_accepted_without_a_secret(self, client):
        response = client.get('/api/structures', headers=bearer(make_token('acme', ['lab'])))
        assert response.status_code == 401
        assert "algorithm 'HS256' is not accepted (accepted: RS256, ES256)" in response.json()['detail']

    def test_an_unreachable_jwks_url_is_401_not_500(self, memory_backend, clean_env, monkeypatch, jwks_server):
        keys, _ = jwks_server
        monkeypatch.setenv('STRUCTURE_API_JWKS_URL', 'http://127.0.0.1:9/jwks.json')
        with TestClient(create_app()) as client:
            token = make_token('acme', ['lab'], key=keys.rsa, algorithm='RS256', headers={'kid': 'rsa-1'})
            response = client.get('/api/structures', headers=bearer(token))
        assert response.status_code == 401 and 'could not be fetched' in response.json()['detail']


def test_verifier_errors_never_contain_the_token(api_settings):
    token = make_token('acme', ['lab'], aud='elsewhere')
    with pytest.raises(AuthenticationError) as info:
        TokenVerifier(api_settings).verify(token)
    assert token not in str(info.value) and SECRET not in str(info.value)
