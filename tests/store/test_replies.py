"""A reply of the wrong shape from any Convex function the client calls is one clear ``BackendError`` naming the
function and what was wrong: never a crash deep in the client (``ValueError: Bad JSON value``, ``KeyError``), never
the deploy key, never a retry (the same call gets the same answer). The local server answers every other call; the
fault proxy answers the function under test with each wrong shape."""

from __future__ import annotations

import datetime as dt
import json
import uuid as uuid_lib

import pytest

import aiida_structstore.store.convex.structures as convex_structures
import aiida_structstore.store.convex.uploads as convex_uploads
from aiida_structstore.core.exceptions import BackendError
from aiida_structstore.core.executions import ExecutionContent, ExecutionKey
from aiida_structstore.core.structures import Source, StructureContent, StructureKey
from aiida_structstore.store.convex import ConvexStore
from aiida_structstore.store.convex.replies import REPLIES

from ..faults import FaultProxy
from ..leaks import leaks

#: Values no function of convex/ returns: integers (Convex sends float64 as 1.0), an object without the fields
#: asked for, a list of items of the wrong type, a bare boolean.
WRONG_VALUES = ['{"unexpected":[1,2,3]}', '{"unexpected":[1.0,2.0]}', '[{"structure_id":7.0}]', 'true']
RAW = 'K_POINTS gamma\n' * 100


def execution(tenant: str) -> ExecutionContent:
    key = ExecutionKey.of(tenant, 'ws', str(uuid_lib.UUID(int=7)))
    t0 = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
    return ExecutionContent.build(
        key=key,
        process_label='PwCalculation',
        process_type='aiida.calculations:quantumespresso.pw',
        kind='calcjob',
        state='waiting',
        structures_in=['s1'],
        created_at=t0,
        modified_at=t0,
    )


def structure(tenant: str, structure_id: str = 's1') -> StructureContent:
    return StructureContent(key=StructureKey.of(tenant, 'ws', structure_id), source=Source.of('pw-input'), cif='x')


#: How the client is made to call each function (after a record and an execution were written).
CALLS = {
    'structures:putBatch': lambda s, t: s.structures.put(structure(t, 'new')),
    'structures:stageChunks': lambda s, t: s.structures.put(structure(t, 'staged'), raw=RAW[::-1]),
    'structures:getStructure': lambda s, t: s.structures.get(StructureKey.of(t, 'ws', 's1')),
    'structures:getStructures': lambda s, t: s.structures.get_many([StructureKey.of(t, 'ws', 's1')]),
    'structures:readChunks': lambda s, t: s.structures.get_raw(StructureKey.of(t, 'ws', 's1')),
    'structures:listStructures': lambda s, t: s.structures.list(t, 'ws'),
    'structures:contentHashes': lambda s, t: s.structures.content_hashes(t, 'ws', ['s1']),
    'structures:removeStructure': lambda s, t: s.structures.delete(StructureKey.of(t, 'ws', 's1')),
    'structures:collectGarbage': lambda s, t: s.structures.collect_garbage(t, 'ws'),
    'structures:storageStats': lambda s, t: s.structures.storage_stats(t, 'ws'),
    'structures:getInstance': lambda s, t: s.current_instance(),
    'structures:ensureInstance': lambda s, t: s.current_instance(),
    'optimade:queryStructures': lambda s, t: s.structures.query(t, 'ws'),
    'executions:putExecutions': lambda s, t: s.executions.put_many(
        [execution(t).model_copy(update={'state': 'running'})]
    ),
    'executions:getExecution': lambda s, t: s.executions.get(execution(t).key),
    'executions:listExecutions': lambda s, t: s.executions.list(t, 'ws'),
    'executions:listExecutionsOfStructure': lambda s, t: s.executions.list(t, 'ws', structure_id='s1'),
    'executions:executionHashes': lambda s, t: s.executions.content_hashes(t, 'ws', [execution(t).key.process_uuid]),
    'executions:removeExecution': lambda s, t: s.executions.delete(execution(t).key),
    'uploads:createUpload': lambda s, t: upload(s, t, b'data_new\n'),
    'uploads:stageUploadChunks': lambda s, t: upload(s, t, b'data_staged\n' * 20),
    'uploads:getUpload': lambda s, t: s.uploads.get(upload(s, t)[0].key),
    'uploads:readUploadChunks': lambda s, t: s.uploads.read(upload(s, t)[0].key),
    'uploads:listUploads': lambda s, t: s.uploads.list(t, 'ws'),
    'uploads:claimUpload': lambda s, t: s.uploads.claim(claimer='c', tenant_id=t),
    'uploads:renewUpload': lambda s, t: s.uploads.renew(claimed(s, t).key, claim=claimed(s, t, again=True).claim),
    'uploads:completeUpload': lambda s, t: (
        (c := claimed(s, t)) and s.uploads.complete(c.key, claim=c.claim, structure_id='s1', node_uuid='n')
    ),
    'uploads:failUpload': lambda s, t: (c := claimed(s, t)) and s.uploads.fail(c.key, claim=c.claim, message='m'),
    'uploads:collectUploadGarbage': lambda s, t: s.uploads.collect_garbage(t, 'ws'),
}


def upload(store, tenant: str, content: bytes = b'data_x\n'):
    return store.uploads.create(tenant, 'ws', filename='x.cif', kind='cif', content=content, uploaded_by='u')


_CLAIMS: dict = {}


def claimed(store, tenant: str, *, again: bool = False):
    """The test's claim of its upload (claimed once; ``again`` returns the same claim)."""
    if not again:
        _CLAIMS[tenant] = store.uploads.claim(claimer='c', tenant_id=tenant)
    return _CLAIMS[tenant]


def test_every_function_the_client_calls_has_a_reply_shape_and_a_case_here():
    assert set(CALLS) == set(REPLIES)


@pytest.fixture
def proxied(convex_server, tenant, monkeypatch):
    """A store behind the fault proxy, with one record (raw input staged) and one execution written."""
    monkeypatch.setattr(convex_structures, 'STAGE_THRESHOLD_BYTES', 1000)  # stage small raw inputs: stageChunks
    monkeypatch.setattr(convex_uploads, 'INLINE_CHUNK_BYTES', 100)  # and small uploads: stageUploadChunks
    with FaultProxy(convex_server.url) as proxy, ConvexStore(proxy.url, convex_server.deploy_key, retries=2) as store:
        store.structures.put(structure(tenant), raw=RAW)
        store.executions.put_many([execution(tenant)])
        upload(store, tenant)
        yield proxy, store


@pytest.mark.parametrize('value', WRONG_VALUES)
@pytest.mark.parametrize('function', sorted(CALLS))
def test_a_reply_of_the_wrong_shape_is_one_clear_error(proxied, convex_server, tenant, function, value):
    proxy, store = proxied
    if function == 'structures:ensureInstance':  # called only when the deployment has no instance id yet
        proxy.answers['structures:getInstance'] = 'reply:200:{"status":"success","value":null}'
    proxy.answers[function] = f'reply:200:{{"status":"success","value":{value}}}'
    before = len(proxy.requests)
    with pytest.raises(BackendError) as info:
        CALLS[function](store, tenant)
    message = str(info.value)
    assert message.startswith(f'{function} answered with a reply of an unexpected shape (')
    assert 'deploy the functions in convex/' in message
    assert '\n' not in message
    assert leaks(info.value, convex_server.deploy_key, proxy.url) == []
    answered = [r for r in proxy.requests[before:] if r.endswith(proxy.answers[function])]
    assert len(answered) == 1  # not retried


def test_what_was_wrong_is_named(proxied, tenant):
    proxy, store = proxied
    proxy.answers['structures:listStructures'] = 'reply:200:{"status":"success","value":{"unexpected":[1,2,3]}}'
    with pytest.raises(BackendError, match=r'not a Convex value: Bad JSON value: 1\)'):
        store.structures.list(tenant, 'ws')
    proxy.answers['structures:listStructures'] = 'reply:200:{"status":"success","value":{"page":[],"isDone":1.0}}'
    with pytest.raises(BackendError, match=r'isDone: Input should be a valid boolean; continueCursor: Field required'):
        store.structures.list(tenant, 'ws')


def test_a_record_the_client_cannot_read_is_named(proxied, convex_server, tenant):
    """The page has the right shape, but a record in it has an id this version never writes."""
    proxy, store = proxied
    paging = {'numItems': 10.0, 'cursor': None}
    page = store.transport.call(
        'query', 'listStructures', {'tenant_id': tenant, 'workspace_id': 'ws', 'paginationOpts': paging}
    )
    page['page'][0]['structure_id'] = 'not an id!'
    body = json.dumps({'status': 'success', 'value': page})
    proxy.answers['structures:listStructures'] = f'reply:200:{body}'
    with pytest.raises(BackendError, match=r'structures:listStructures answered .*a record in it is not valid'):
        store.structures.list(tenant, 'ws')


def test_put_batch_answering_for_other_records_is_refused(proxied, tenant):
    proxy, store = proxied
    item = {'structure_id': 'someone-else', 'status': 'created', 'chunk_count': 0.0, 'garbage': False}
    proxy.answers['structures:putBatch'] = f'reply:200:{json.dumps({"status": "success", "value": [item]})}'
    with pytest.raises(BackendError, match=r'putBatch answered .*its items are not the records sent'):
        store.structures.put(structure(tenant, 'new'))


@pytest.mark.parametrize(
    ('command', 'function'),
    [
        ('list', 'structures:listStructures'),
        ('sync', 'structures:putBatch'),
        ('project', 'structures:putBatch'),
    ],
)
def test_the_cli_says_it_in_one_line(
    convex_backend, convex_server, run_cli_command, monkeypatch, tenant, generate_structure, command, function
):
    from aiida_structstore.cli import cmd_structstore

    node = generate_structure('silicon').store()
    args = {'list': ['list'], 'sync': ['sync', '-N', node.pk], 'project': ['project', node.pk]}[command]
    with FaultProxy(convex_server.url) as proxy:
        monkeypatch.setenv('CONVEX_URL', proxy.url)
        proxy.answers[function] = 'reply:200:{"status":"success","value":{"unexpected":[1,2,3]}}'
        result = run_cli_command(cmd_structstore, [*args, '-t', tenant, '-w', 'ws'], raises=True)
    critical = [line for line in result.output.splitlines() if line.startswith('Critical:')]
    assert len(critical) == 1 and f'{function} answered with a reply of an unexpected shape' in critical[0]
    assert 'Traceback' not in result.output and convex_server.deploy_key not in result.output
