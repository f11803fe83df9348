"""The local Convex server enforces what convex-test does not: admin key, visibility, limits, Convex's JSON."""

from __future__ import annotations

import httpx
import pytest

A = 'a' * 64


@pytest.fixture
def call(convex_server):
    def call(kind, path, args, key=convex_server.deploy_key):
        headers = {} if key is None else {'Authorization': f'Convex {key}'}
        body = {'path': path, 'args': args, 'format': 'convex_encoded_json'}
        return httpx.post(f'{convex_server.url}/api/{kind}', json=body, headers=headers, timeout=60)

    return call


def record(structure_id, **overrides):
    return {
        'structure_id': structure_id,
        'generation': f'g{structure_id}',
        'content_hash': A,
        'source': {'kind': 'cif', 'filename': None},
        'summary': {},
        'node_uuid': None,
        'cif': None,
        'structure': None,
        'params': None,
        'parts': [],
        'chunks': [],
        **overrides,
    }


SCOPE = {'tenant_id': 'devserver', 'workspace_id': 'ws'}


def test_version_says_it_is_a_test_double(convex_server):
    assert httpx.get(f'{convex_server.url}/version').json() == 'local-convex-test-double'


def test_internal_functions_need_the_admin_key(call):
    args = {**SCOPE, 'structure_id': 'x'}
    assert call('query', 'structures:getStructure', args).json() == {'status': 'success', 'value': None, 'logLines': []}
    missing = call('query', 'structures:getStructure', args, key=None)
    assert missing.status_code == 404
    assert missing.json()['code'] == 'FunctionNotFound'
    wrong = call('query', 'structures:getStructure', args, key='nope')
    assert wrong.status_code == 401
    assert wrong.json()['code'] == 'BadAdminKey'


def test_kind_and_path_must_match(call):
    assert call('mutation', 'structures:getStructure', {**SCOPE, 'structure_id': 'x'}).status_code == 404
    assert call('query', 'nothing:here', {}).status_code == 404


def test_numbers_are_written_as_floats(call):
    reply = call('mutation', 'structures:collectGarbage', {**SCOPE, 'older_than_ms': 0})
    assert reply.text.startswith('{"status":"success","value":{"deleted":0.0,"done":true}')


def test_convex_errors_are_560_with_data(call):
    reply = call('query', 'structures:getStructure', {**SCOPE, 'structure_id': '../x'})
    assert reply.status_code == 560
    assert reply.json()['errorData']['code'] == 'INVALID_ARGUMENT'


def test_argument_validation(call):
    reply = call('query', 'structures:getStructure', {**SCOPE})
    assert reply.status_code == 560
    assert 'structure_id' in reply.json()['errorMessage']


def test_document_size_limit(call):
    summary = {'chemical_formula_descriptive': 'x' * (1024 * 1024 + 1)}  # functions bound inline payloads themselves
    reply = call('mutation', 'structures:putBatch', {**SCOPE, 'records': [record('big', summary=summary)]})
    assert reply.status_code == 560
    assert 'Document is too large' in reply.json()['errorMessage']
    assert call('query', 'structures:getStructure', {**SCOPE, 'structure_id': 'big'}).json()['value'] is None


def test_array_limit(call):
    reply = call('query', 'structures:contentHashes', {**SCOPE, 'structure_ids': ['a'] * 8193})
    assert reply.status_code == 560
    assert '8193 elements; the limit is 8192' in reply.json()['errorMessage']


@pytest.mark.parametrize('name', ['$bad', 'caf\u00e9', 'tab\there'])
def test_field_names(call, name):
    reply = call('mutation', 'structures:putBatch', {**SCOPE, 'records': [record('f', summary={name: 1})]})
    assert reply.status_code == 560
    assert 'field name' in reply.json()['errorMessage'].lower()


def test_request_size_limit(call):
    reply = call('query', 'structures:contentHashes', {**SCOPE, 'structure_ids': ['x' * (3 * 1024 * 1024)] * 6})
    assert reply.status_code == 413


def test_pages_stop_at_the_read_budget(call):
    # Ten chunks of 700 KB per mutation are fine; a page of 30 of them would read more than the 8 MiB budget.
    for index in range(3):
        chunks = [{'part': 'raw', 'chunk_index': i, 'text': 'y' * 700_000} for i in range(10)]
        reply = call(
            'mutation',
            'structures:stageChunks',
            {**SCOPE, 'structure_id': 'reads', 'generation': 'g1', 'chunks': chunks[:10]}
            if index == 0
            else {**SCOPE, 'structure_id': f'reads{index}', 'generation': 'g1', 'chunks': chunks},
        )
        assert reply.status_code == 200, reply.text
    page = {'numItems': 1000.0, 'cursor': None}
    stats = call('query', 'structures:storageStats', {**SCOPE, 'table': 'chunks', 'paginationOpts': page})
    assert stats.status_code == 200, stats.text
    assert stats.json()['value']['isDone'] is False
    assert 0 < stats.json()['value']['count'] < 30
