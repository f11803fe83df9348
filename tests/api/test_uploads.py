"""The uploads routes (``api/uploads.py``) on the memory store and the local Convex server: every route and error,
the upload right, scoping, ETags and the size cap."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from fastapi import HTTPException, Request
from fastapi.testclient import TestClient

from aiida_structstore.api import ApiSettings, create_app
from aiida_structstore.api.uploads import read_body
from aiida_structstore.core.uploads import UploadKey, upload_id_for

from .conftest import bearer, make_token

CIF = b'data_si\n_cell_length_a 5.43\r\n_symmetry_space_group_name_H-M "F d -3 m"\n'
LATIN1 = b'data_fe\n_publ_author_name "M\xfcller"\n'  # not UTF-8
URL = '/api/structures/uploads'


@pytest.fixture
def uploader(tenant):
    """Headers of a token that may read and upload into ``lab``, and only read ``archive``."""
    return bearer(make_token(tenant, ['lab', 'archive'], upload_workspaces=['lab'], sub='alice@example.org'))


def post(client, headers, content=CIF, *, workspace='lab', content_type='application/octet-stream', **params):
    params.setdefault('kind', 'cif')
    params.setdefault('filename', 'si.cif')
    if workspace is not None:
        params['workspace'] = workspace
    extra = {} if content_type is None else {'Content-Type': content_type}
    return client.post(URL, params=params, content=content, headers={**headers, **extra})


def store_of(client):
    return client.app.state.read_context.store()


class TestUpload:
    def test_upload_then_read_its_status(self, client, uploader, tenant):
        answer = post(client, uploader, structure_id='si-mine')
        assert answer.status_code == 201, answer.text
        body = answer.json()
        sha256 = hashlib.sha256(CIF).hexdigest()
        assert body['upload_id'] == upload_id_for(sha256)
        assert body | {'created_at': None, 'updated_at': None} == {
            'upload_id': upload_id_for(sha256),
            'workspace': 'lab',
            'filename': 'si.cif',
            'kind': 'cif',
            'status': 'pending',
            'size': len(CIF),
            'sha256': sha256,
            'uploaded_by': 'alice@example.org',
            'created_at': None,
            'updated_at': None,
            'structure_id': 'si-mine',
            'result_structure_id': None,
            'node_uuid': None,
            'message': None,
            'attempts': 0,
        }
        assert answer.headers['location'] == f'{URL}/{body["upload_id"]}?workspace=lab'
        one = client.get(answer.headers['location'], headers=uploader)
        assert one.status_code == 200 and one.json() == body
        assert one.headers['etag'] == answer.headers['etag']
        assert one.headers['cache-control'] == 'private, no-cache'
        # The store holds exactly the bytes sent.
        key = UploadKey.of(tenant, 'lab', body['upload_id'])
        assert store_of(client).uploads.read(key) == CIF

    def test_the_same_bytes_again_are_the_same_upload(self, client, uploader):
        first = post(client, uploader)
        again = post(client, uploader, filename='copy.cif')
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json() == first.json()
        conflict = post(client, uploader, kind='pw')
        assert conflict.status_code == 409
        assert 'of kind cif' in conflict.json()['detail']

    @pytest.mark.parametrize('content_type', [None, 'text/plain; charset=utf-8', 'chemical/x-cif'])
    def test_bytes_that_are_not_utf8_are_kept_exactly(self, client, uploader, tenant, content_type):
        answer = post(client, uploader, LATIN1, content_type=content_type)
        assert answer.status_code == 201, answer.text
        key = UploadKey.of(tenant, 'lab', answer.json()['upload_id'])
        assert store_of(client).uploads.read(key) == LATIN1

    def test_the_workspace_may_be_left_out_when_the_token_grants_one(self, client, tenant):
        headers = bearer(make_token(tenant, ['lab'], upload_workspaces='lab'))
        answer = post(client, headers, workspace=None)
        assert answer.status_code == 201 and answer.json()['workspace'] == 'lab'

    def test_status_follows_the_import_with_etags(self, client, uploader, tenant):
        upload_id = post(client, uploader).json()['upload_id']
        url = f'{URL}/{upload_id}?workspace=lab'
        pending = client.get(url, headers=uploader)
        etag = pending.headers['etag']
        assert client.get(url, headers={**uploader, 'If-None-Match': etag}).status_code == 304
        store = store_of(client)
        claimed = store.uploads.claim(claimer='test', tenant_id=tenant, workspace_id='lab')
        importing = client.get(url, headers={**uploader, 'If-None-Match': etag})
        assert importing.status_code == 200 and importing.json()['status'] == 'importing'
        assert importing.headers['etag'] != etag
        store.uploads.fail(claimed.key, claim=claimed.claim, message='line 2: the CIF block has no cell')
        failed = client.get(url, headers=uploader).json()
        assert failed['status'] == 'failed' and failed['message'] == 'line 2: the CIF block has no cell'


class TestMultipart:
    def test_a_form_upload_with_its_fields(self, client, uploader, tenant):
        answer = client.post(
            URL,
            params={'workspace': 'lab'},
            files={'file': ('fe.cif', LATIN1, 'chemical/x-cif')},
            data={'kind': 'cif', 'structure_id': 'fe-1'},
            headers=uploader,
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert (body['filename'], body['kind'], body['structure_id']) == ('fe.cif', 'cif', 'fe-1')
        assert store_of(client).uploads.read(UploadKey.of(tenant, 'lab', body['upload_id'])) == LATIN1
        # Query parameters win over form fields; the same bytes are the same upload.
        again = client.post(
            URL,
            params={'workspace': 'lab', 'kind': 'cif', 'filename': 'x.cif', 'structure_id': 'fe-1'},
            files={'file': ('other.cif', LATIN1)},
            headers=uploader,
        )
        assert again.status_code == 200 and again.json()['upload_id'] == body['upload_id']

    @pytest.mark.parametrize(
        ('files', 'data', 'status', 'message'),
        [
            ({'document': ('a.cif', CIF)}, {'kind': 'cif'}, 422, 'a part named "file"'),
            ({'file': ('a.cif', CIF)}, {}, 422, 'kind=cif or kind=pw'),
            ([('file', ('a.cif', CIF)), ('file', ('b.cif', CIF))], {'kind': 'cif'}, 400, 'multipart body is not valid'),
        ],
    )
    def test_bad_forms_are_refused_with_one_message(self, client, uploader, tenant, files, data, status, message):
        answer = client.post(URL, params={'workspace': 'lab'}, files=files, data=data, headers=uploader)
        assert answer.status_code == status, answer.text
        assert message in answer.json()['detail']
        assert store_of(client).uploads.list(tenant, 'lab').items == ()

    def test_a_malformed_multipart_body_is_400(self, client, uploader):
        headers = {**uploader, 'Content-Type': 'multipart/form-data'}  # no boundary
        answer = client.post(URL, params={'workspace': 'lab', 'kind': 'cif'}, content=b'--x\r\n', headers=headers)
        assert answer.status_code == 400 and 'multipart' in answer.json()['detail']


class TestList:
    def test_newest_first_by_status_in_pages_with_etags(self, client, uploader, tenant):
        ids = [post(client, uploader, f'data_{n}\n'.encode()).json()['upload_id'] for n in range(3)]
        listed = client.get(URL, params={'workspace': 'lab'}, headers=uploader)
        assert listed.status_code == 200
        assert [item['upload_id'] for item in listed.json()['items']] == ids[::-1]
        etag = listed.headers['etag']
        again = client.get(URL, params={'workspace': 'lab'}, headers={**uploader, 'If-None-Match': etag})
        assert again.status_code == 304
        first = client.get(URL, params={'workspace': 'lab', 'limit': 2}, headers=uploader).json()
        rest = client.get(URL, params={'workspace': 'lab', 'cursor': first['next_cursor']}, headers=uploader).json()
        assert [item['upload_id'] for item in first['items'] + rest['items']] == ids[::-1]
        store_of(client).uploads.claim(claimer='test', tenant_id=tenant, workspace_id='lab')
        importing = client.get(URL, params={'workspace': 'lab', 'status': 'importing'}, headers=uploader).json()
        assert [item['upload_id'] for item in importing['items']] == [ids[0]]
        changed = client.get(URL, params={'workspace': 'lab'}, headers={**uploader, 'If-None-Match': etag})
        assert changed.status_code == 200

    def test_a_cursor_of_another_listing_is_refused(self, client, uploader):
        for n in range(3):
            post(client, uploader, f'data_{n}\n'.encode())
        cursor = client.get(URL, params={'workspace': 'lab', 'limit': 1}, headers=uploader).json()['next_cursor']
        answer = client.get(URL, params={'workspace': 'lab', 'status': 'pending', 'cursor': cursor}, headers=uploader)
        assert answer.status_code == 400

    def test_a_bad_status_is_refused(self, client, uploader):
        assert client.get(URL, params={'workspace': 'lab', 'status': 'done'}, headers=uploader).status_code == 422


class TestRights:
    def test_reading_needs_a_token_and_uploading_needs_the_upload_claim(self, client, tenant, uploader):
        assert client.post(URL, params={'kind': 'cif', 'filename': 'a.cif'}, content=CIF).status_code == 401
        assert client.get(URL).status_code == 401
        reader = bearer(make_token(tenant, ['lab']))
        refused = post(client, reader)
        assert refused.status_code == 403
        assert "does not grant uploads into workspace 'lab'" in refused.json()['detail']
        assert 'upload_workspaces' in refused.json()['detail']
        # The upload claim grants only the workspaces the token may read, and only those it names.
        assert post(client, uploader, workspace='archive').status_code == 403
        sneaky = bearer(make_token(tenant, ['lab'], upload_workspaces=['lab', 'elsewhere']))
        assert post(client, sneaky, workspace='elsewhere').status_code == 404
        # A reader may follow what was uploaded.
        upload_id = post(client, uploader).json()['upload_id']
        assert client.get(f'{URL}/{upload_id}', params={'workspace': 'lab'}, headers=reader).status_code == 200
        assert store_of(client).uploads.list(tenant, 'lab').items[0].uploaded_by == 'alice@example.org'

    def test_the_list_says_whether_the_caller_may_upload(self, client, tenant, uploader):
        def rights(headers, workspace):
            body = client.get(URL, params={'workspace': workspace}, headers=headers).json()
            return body['may_upload'], body['upload_refused']

        assert rights(uploader, 'lab') == (True, None)
        may, refused = rights(uploader, 'archive')
        assert not may and refused == post(client, uploader, workspace='archive').json()['detail']
        assert "does not grant uploads into workspace 'archive'" in refused and 'upload_workspaces' in refused
        anonymous = bearer(make_token(tenant, ['lab'], upload_workspaces=['lab'], sub=None))
        may, refused = rights(anonymous, 'lab')
        assert not may and refused == post(client, anonymous).json()['detail']

    def test_uploading_needs_a_subject(self, client, tenant):
        anonymous = bearer(make_token(tenant, ['lab'], upload_workspaces=['lab'], sub=None))
        answer = post(client, anonymous)
        assert answer.status_code == 403 and '"sub"' in answer.json()['detail']

    def test_a_malformed_upload_claim_is_refused(self, client, tenant):
        headers = bearer(make_token(tenant, ['lab'], upload_workspaces={'lab': True}))
        answer = post(client, headers)
        assert answer.status_code == 401 and 'upload claim' in answer.json()['detail']

    def test_another_tenant_or_workspace_sees_nothing(self, client, tenant, uploader):
        upload_id = post(client, uploader).json()['upload_id']
        other_tenant = bearer(make_token(f'{tenant}-other', ['lab'], upload_workspaces=['lab']))
        other_workspace = bearer(make_token(tenant, ['archive']))
        for headers, workspace in ((other_tenant, 'lab'), (other_workspace, 'archive'), (uploader, 'archive')):
            one = client.get(f'{URL}/{upload_id}', params={'workspace': workspace}, headers=headers)
            assert one.status_code == 404
            assert client.get(URL, params={'workspace': workspace}, headers=headers).json()['items'] == []
        assert client.get(f'{URL}/{upload_id}', params={'workspace': 'lab'}, headers=other_workspace).status_code == 404
        # The other tenant's upload of the same bytes is its own.
        theirs = post(client, other_tenant)
        assert theirs.status_code == 201 and theirs.json()['uploaded_by'] == 'someone'
        assert store_of(client).uploads.claim(claimer='x', tenant_id=f'{tenant}-other', workspace_id='lab').key == (
            UploadKey.of(f'{tenant}-other', 'lab', upload_id)
        )
        assert client.get(f'{URL}/{upload_id}', params={'workspace': 'lab'}, headers=uploader).json()['status'] == (
            'pending'
        )


class TestApp:
    def test_browsers_of_configured_origins_may_upload(self, backend, api_settings, monkeypatch, uploader):
        monkeypatch.setenv('STRUCTURE_API_CORS_ORIGINS', 'https://app.example')
        with TestClient(create_app(ApiSettings())) as client:
            preflight = client.options(
                URL,
                headers={
                    'Origin': 'https://app.example',
                    'Access-Control-Request-Method': 'POST',
                    'Access-Control-Request-Headers': 'authorization, content-type',
                },
            )
            assert preflight.status_code == 200
            assert 'POST' in preflight.headers['access-control-allow-methods']
            answer = post(client, {**uploader, 'Origin': 'https://app.example'})
            assert answer.status_code == 201
            assert 'Location' in answer.headers['access-control-expose-headers']

    def test_the_openapi_schema_describes_both_bodies(self, client):
        route = client.get('/openapi.json').json()['paths'][URL]['post']
        content = route['requestBody']['content']
        assert {'application/octet-stream', 'multipart/form-data'} <= set(content)
        assert content['multipart/form-data']['schema']['required'] == ['file']


class TestErrors:
    @pytest.mark.parametrize(
        ('params', 'content', 'message'),
        [
            ({'kind': 'xyz'}, CIF, 'kind'),
            ({'filename': '../../etc/passwd'}, CIF, 'without a directory'),
            ({'filename': 'a\u202eb.cif'}, CIF, 'U+202E'),
            ({'structure_id': 'a b'}, CIF, 'structure_id'),
            ({}, b'', 'the file is empty'),
        ],
    )
    def test_bad_uploads_are_422_with_one_message(self, client, uploader, tenant, params, content, message):
        answer = post(client, uploader, content, **params)
        assert answer.status_code == 422, answer.text
        assert message in str(answer.json()['detail'])
        assert store_of(client).uploads.list(tenant, 'lab').items == ()

    def test_a_missing_kind_or_filename_is_422(self, client, uploader):
        answer = client.post(URL, params={'workspace': 'lab', 'filename': 'a.cif'}, content=CIF, headers=uploader)
        assert answer.status_code == 422 and 'kind' in answer.text

    @pytest.mark.parametrize('content_type', ['application/json', 'application/x-www-form-urlencoded', 'image/png'])
    def test_a_body_that_is_not_a_file_is_415(self, client, uploader, content_type):
        answer = post(client, uploader, content_type=content_type)
        assert answer.status_code == 415
        assert 'raw request body' in answer.json()['detail']

    def test_an_upload_that_does_not_exist_is_404_and_a_bad_id_422(self, client, uploader):
        missing = client.get(f'{URL}/{upload_id_for("0" * 64)}', params={'workspace': 'lab'}, headers=uploader)
        assert missing.status_code == 404
        assert client.get(f'{URL}/-bad', params={'workspace': 'lab'}, headers=uploader).status_code == 422

    def test_the_uploads_path_is_never_a_structure(self, client, uploader):
        # GET /api/structures/uploads is the listing, not the structure "uploads".
        assert 'items' in client.get(URL, params={'workspace': 'lab'}, headers=uploader).json()


class TestSizeCap:
    @pytest.fixture
    def small_client(self, backend, monkeypatch, api_settings):
        monkeypatch.setenv('STRUCTURE_API_MAX_UPLOAD_BYTES', '100')
        with TestClient(create_app(ApiSettings())) as test_client:
            yield test_client

    def test_a_file_over_the_cap_is_413_and_nothing_is_stored(self, small_client, uploader, tenant):
        assert post(small_client, uploader, b'x' * 100).status_code == 201
        declared = post(small_client, uploader, b'y' * 101)
        assert declared.status_code == 413
        assert declared.json()['detail'] == 'the file is larger than the limit of 100 bytes'

        # Without a Content-Length (chunked): refused too.
        streamed = small_client.post(
            URL,
            params={'workspace': 'lab', 'kind': 'cif', 'filename': 'big.cif'},
            content=(b'z' * 10 for _ in range(11)),
            headers=uploader,
        )
        assert streamed.status_code == 413
        # A form whose file passes the cap.
        form = small_client.post(
            URL,
            params={'workspace': 'lab', 'kind': 'cif'},
            files={'file': ('big.cif', b'w' * 101)},
            headers=uploader,
        )
        assert form.status_code == 413
        assert [item.size for item in store_of(small_client).uploads.list(tenant, 'lab').items] == [100]

    def test_the_body_is_read_no_further_than_the_cap(self):
        # The ASGI messages of a chunked body of 10,000 bytes, counted as the app pulls them.
        pulled = []

        async def receive():
            pulled.append(1)
            return {'type': 'http.request', 'body': b'z' * 10, 'more_body': len(pulled) < 1000}

        request = Request({'type': 'http', 'method': 'POST', 'headers': []}, receive)
        with pytest.raises(HTTPException) as raised:
            asyncio.run(read_body(request, 100))
        assert raised.value.status_code == 413
        assert len(pulled) == 11  # the piece that passed the cap is the last one read

    def test_a_client_that_goes_away_mid_body_is_400(self):
        messages = iter([{'type': 'http.request', 'body': b'abc', 'more_body': True}, {'type': 'http.disconnect'}])

        async def receive():
            return next(messages)

        request = Request({'type': 'http', 'method': 'POST', 'headers': [(b'content-length', b'10')]}, receive)
        with pytest.raises(HTTPException) as raised:
            asyncio.run(read_body(request, 100))
        assert raised.value.status_code == 400 and 'disconnected' in raised.value.detail

    def test_the_cap_cannot_pass_the_store_limit(self, monkeypatch, api_settings):
        monkeypatch.setenv('STRUCTURE_API_MAX_UPLOAD_BYTES', str(2**40))
        from aiida_structstore.api.settings import load_api_settings
        from aiida_structstore.core.exceptions import ConfigurationError

        with pytest.raises(
            ConfigurationError, match='STRUCTURE_API_MAX_UPLOAD_BYTES: Input should be less than or equal to 268435456'
        ):
            load_api_settings()


def test_a_development_token_grants_uploads_only_when_asked(api_settings, tenant):
    from aiida_structstore.api.auth import TokenVerifier, mint_token
    from aiida_structstore.core.exceptions import InvalidInputError

    verifier = TokenVerifier(api_settings)
    reader = verifier.verify(mint_token(api_settings, tenant, ['lab']))
    assert reader.may_read('lab') and not reader.may_upload('lab')
    writer = verifier.verify(mint_token(api_settings, tenant, ['lab', 'x'], upload=['lab'], subject='alice'))
    assert writer.may_upload('lab') and not writer.may_upload('x') and writer.subject == 'alice'
    with pytest.raises(InvalidInputError, match="upload workspace 'y' is not one of the token's workspaces"):
        mint_token(api_settings, tenant, ['lab'], upload=['y'])
