"""The local Convex server enforces what convex-test does not: admin key, visibility, limits, Convex's JSON."""

from __future__ import annotations

import hashlib
import json
import re

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
    # As on a real deployment: an internal function looks missing without the admin key (HTTP 200, an error).
    missing = call('query', 'structures:getStructure', args, key=None)
    assert missing.status_code == 200
    assert missing.json()['status'] == 'error'
    assert re.match(
        r"\[Request ID: [0-9a-f]+\] Could not find public function for 'structures:getStructure'",
        missing.json()['errorMessage'],
    )
    wrong = call('query', 'structures:getStructure', args, key='nope')
    assert wrong.status_code == 401
    assert wrong.json()['code'] == 'BadAdminKey'


def test_kind_and_path_must_match(call):
    for reply in (
        call('mutation', 'structures:getStructure', {**SCOPE, 'structure_id': 'x'}),
        call('query', 'no:x', {}),
    ):
        assert reply.status_code == 200
        assert 'Could not find public function' in reply.json()['errorMessage']


def test_function_errors_carry_a_request_id(call):
    reply = call('query', 'structures:getStructure', {**SCOPE, 'structure_id': '../x'})
    assert reply.status_code == 560
    assert re.match(r'\[Request ID: [0-9a-f]+\] ', reply.json()['errorMessage'])


def test_the_convex_client_header_must_be_name_version(convex_server):
    body = {'path': 'structures:getInstance', 'args': {}, 'format': 'convex_encoded_json'}
    for header, status in (('aiida-structstore-0.1.0', 200), ('no version', 400)):
        headers = {'Authorization': f'Convex {convex_server.deploy_key}', 'Convex-Client': header}
        assert httpx.post(f'{convex_server.url}/api/query', json=body, headers=headers).status_code == status


def test_the_counting_sink_answers_and_counts():
    from devserver.local_convex import local_convex

    with local_convex(sink=True) as sink:
        assert httpx.get(f'{sink.url}/version').json() == 'counting-sink'
        headers = {'Authorization': f'Convex {sink.deploy_key}'}
        body = {'path': 'structures:putBatch', 'args': {**SCOPE, 'records': [record('a')]}, 'format': 'json'}
        reply = httpx.post(f'{sink.url}/api/mutation', json=body, headers=headers)
        assert reply.json()['value'] == [
            {'structure_id': 'a', 'status': 'created', 'chunk_count': 0.0, 'garbage': False}
        ]
        bad = httpx.post(f'{sink.url}/api/mutation', json={**body, 'args': {'x': [1] * 9000}}, headers=headers)
        assert '9000 elements' in bad.json()['errorMessage']  # validated like the local server
        stats = httpx.get(f'{sink.url}/stats').json()
        assert stats['calls'] == {'structures:putBatch': 1} and stats['bytes_in'] > 0


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


def test_pages_stop_at_the_read_budget():
    from devserver.local_convex import local_convex

    # Six mutations of 3.5 MB written at once (no throughput limit here); a page of all 30 chunks would read 21 MB.
    with local_convex(write_bytes_per_second=0) as server:
        headers = {'Authorization': f'Convex {server.deploy_key}'}

        def call(kind, path, args):
            body = {'path': path, 'args': args, 'format': 'convex_encoded_json'}
            return httpx.post(f'{server.url}/api/{kind}', json=body, headers=headers, timeout=60)

        for index in range(6):
            chunks = [{'part': 'raw', 'chunk_index': i, 'text': 'y' * 700_000} for i in range(5)]
            args = {**SCOPE, 'structure_id': f'reads{index}', 'generation': 'g1', 'chunks': chunks}
            reply = call('mutation', 'structures:stageChunks', args)
            assert reply.status_code == 200, reply.text
        page = {'numItems': 1000.0, 'cursor': None}
        stats = call('query', 'structures:storageStats', {**SCOPE, 'table': 'chunks', 'paginationOpts': page})
        assert stats.status_code == 200, stats.text
        assert stats.json()['value']['isDone'] is False
        assert 0 < stats.json()['value']['count'] < 30


def test_optimade_queries_run_over_http(call):
    """optimade:queryStructures is served: the filter travels as JSON text (Convex field names may not start with
    `$`), pages resume from their cursor, and the index lookups (missing values included) agree with full scans."""
    scope = {'tenant_id': 'devserver', 'workspace_id': 'optimade'}
    records = [
        record(f's{i}', generation=f'q{i}', summary={'elements': ['Fe'] if i % 3 == 0 else ['Si'], 'nsites': i % 4})
        for i in range(12)
    ]
    records.append(record('bare', generation='qbare'))
    assert call('mutation', 'structures:putBatch', {**scope, 'records': records}).status_code == 200
    filter_text = json.dumps({'elements': {'$contains': 'F'}})
    for plan in (
        {'index': 'nsites', 'order': 'asc'},
        {'index': 'nsites', 'order': 'desc', 'upper': {'value': 2.0, 'inclusive': True}},
        {'index': 'element', 'element': 'Fe', 'order': 'asc'},
    ):
        found, cursor = [], None
        while True:
            args = {**scope, 'plan': plan, 'filter': filter_text, 'cursor': cursor, 'numItems': 2, 'maximumRowsRead': 3}
            reply = call('query', 'optimade:queryStructures', args)
            assert reply.status_code == 200, reply.text
            value = reply.json()['value']
            assert value['rowsRead'] <= 3
            found += [item['structure_id'] for item in value['page']]
            if value['isDone']:
                break
            cursor = value['continueCursor']
        expected = {f's{i}' for i in range(0, 12, 3) if 'upper' not in plan or i % 4 <= 2}
        assert sorted(found) == sorted(expected) and len(found) == len(expected), plan
    bad = call(
        'query',
        'optimade:queryStructures',
        {**scope, 'plan': plan, 'filter': '{"id": {"$regex": "."}}', 'cursor': None, 'numItems': 2},
    )
    assert bad.status_code == 560
    assert bad.json()['errorData'] == {
        'code': 'INVALID_ARGUMENT',
        'message': 'invalid filter: unknown operator "$regex"',
    }


def test_sorted_indexes_follow_every_commit(call):
    """Index ranges are slices of sorted indexes kept up to date commit by commit: records written, rewritten
    several times between two reads, and deleted are listed in index order, ascending and descending, exactly as a
    full scan lists them (the verifying server compares every lookup with one)."""
    scope = {'tenant_id': 'devserver', 'workspace_id': 'sorted'}

    def put(ids, nsites):
        records = [
            record(
                i,
                generation=f'{i}-{nsites}',
                content_hash=hashlib.sha256(f'{i}-{nsites}'.encode()).hexdigest(),
                summary={'nsites': float(nsites)},
            )
            for i in ids
        ]
        reply = call('mutation', 'structures:putBatch', {**scope, 'records': records})
        assert reply.status_code == 200, reply.text

    def walk(order):
        found, cursor = [], None
        while True:
            args = {**scope, 'plan': {'index': 'nsites', 'order': order}, 'filter': None, 'cursor': cursor}
            value = call('query', 'optimade:queryStructures', {**args, 'numItems': 3}).json()['value']
            found += [(item['summary'].get('nsites'), item['structure_id']) for item in value['page']]
            if value['isDone']:
                return found
            cursor = value['continueCursor']

    put([f'r{i}' for i in range(10)], 1)
    assert [n for n, _ in walk('asc')] == [1.0] * 10
    for nsites in (5, 2, 7):  # the same records changed three times between two reads
        put(['r3', 'r8'], nsites)
    put(['r0'], 0)
    reply = call('mutation', 'structures:removeStructure', {**scope, 'structure_id': 'r5'})
    assert reply.status_code == 200, reply.text
    expected = sorted([(1.0, f'r{i}') for i in (1, 2, 4, 6, 7, 9)] + [(0.0, 'r0'), (7.0, 'r3'), (7.0, 'r8')])
    assert walk('asc') == expected
    assert walk('desc') == expected[::-1]


def test_reset_needs_the_admin_key(convex_server):
    assert httpx.post(f'{convex_server.url}/reset').status_code == 401
    wrong = httpx.post(f'{convex_server.url}/reset', headers={'Authorization': 'Convex nope'})
    assert (wrong.status_code, wrong.json()['code']) == (401, 'BadAdminKey')


def test_reset_is_a_new_empty_deployment_at_the_same_url():
    """What a restart on the same port does to the data (tests/executions/test_watch.py restarts for real): every
    table is empty, the instance id is new, and a client that was connected carries on against the new deployment."""
    from aiida_structstore.core.structures import Source, StructureContent, StructureKey
    from aiida_structstore.store.convex import ConvexStore
    from devserver.local_convex import local_convex

    key = StructureKey.of('devserver', 'ws', 'before-reset')
    with local_convex() as server, ConvexStore(server.url, server.deploy_key) as store:
        store.structures.put(StructureContent(key=key, source=Source.of('cif'), cif='data_x\n'), raw='raw text')
        before = store.current_instance()
        assert store.structures.find(key) is not None
        server.reset()
        assert httpx.get(f'{server.url}/stats').json()['calls'] == {}
        assert store.structures.find(key) is None
        assert store.structures.storage_stats('devserver', 'ws')['records'] == 0
        with ConvexStore(server.url, server.deploy_key) as fresh:
            assert fresh.current_instance() != before
            assert fresh.current_instance() == store.current_instance()
