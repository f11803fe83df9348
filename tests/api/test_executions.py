"""The executions routes on every backend: a structure's executions and one execution, isolation, ETag/304."""

from __future__ import annotations

import datetime as dt
import uuid as uuid_lib

import pytest

from aiida_structstore.core.executions import ExecutionContent, ExecutionKey

from .conftest import bearer, make_token
from .test_structures import BAD_CURSOR, CURSOR, tampered

T0 = dt.datetime(2025, 5, 1, 9, 30, tzinfo=dt.timezone.utc)


def uuid(n: int) -> str:
    return str(uuid_lib.UUID(int=n))


def execution(tenant: str, n: int, *, workspace: str = 'lab', seconds: int = 0, **fields) -> ExecutionContent:
    fields.setdefault('process_label', 'PwBaseWorkChain')
    fields.setdefault('kind', 'workchain')
    fields.setdefault('state', 'running')
    fields.setdefault('structures_in', ['si'])
    return ExecutionContent.build(
        key=ExecutionKey.of(tenant, workspace, uuid(n)),
        created_at=T0,
        modified_at=T0 + dt.timedelta(seconds=seconds),
        **fields,
    )


@pytest.fixture
def auth(tenant):
    return bearer(make_token(tenant, ['lab']))


@pytest.fixture
def executions(backend, seeded, tenant):
    """Executions of ``si`` in ``lab``, and look-alikes under another tenant and in another workspace."""
    mine = [
        execution(tenant, 1, seconds=1),
        execution(
            tenant,
            2,
            seconds=3,
            process_label='PwCalculation',
            kind='calcjob',
            state='finished',
            exit_status=0,
            computer='slurm',
            scheduler={'type': 'core.slurm', 'job_id': '4711', 'state': 'done'},
            parent_uuid=uuid(1),
            structures_out=['si-scf'],
        ),
        execution(tenant, 3, seconds=2, state='killed', exit_status=None, structures_in=['fe2o3']),
    ]
    backend.executions.put_many(mine)
    backend.executions.put_many([execution(f'{tenant}-other', 9, structures_in=['si'])])
    backend.executions.put_many([execution(tenant, 8, workspace='private', structures_in=['si'])])
    return mine


def test_the_executions_of_a_structure(client, executions, auth):
    response = client.get('/api/structures/si/executions', headers=auth)
    assert response.status_code == 200
    assert response.headers['cache-control'] == 'private, no-cache'
    body = response.json()
    assert (body['workspace'], body['structure_id'], body['next_cursor']) == ('lab', 'si', None)
    assert [item['uuid'] for item in body['items']] == [uuid(2), uuid(1)]
    calc = body['items'][0]
    assert calc['scheduler'] == {'type': 'core.slurm', 'job_id': '4711', 'state': 'done'}
    assert (calc['state'], calc['exit_status'], calc['roles'], calc['parent_uuid']) == (
        'finished',
        0,
        ['input'],
        uuid(1),
    )
    assert calc['structures_out'] == ['si-scf'] and calc['hostname'] is None
    produced = client.get('/api/structures/si-scf/executions', headers=auth).json()
    assert [(item['uuid'], item['roles']) for item in produced['items']] == [(uuid(2), ['output'])]
    assert client.get('/api/structures/fe2o3-bands/executions', headers=auth).json()['items'] == []


def test_pages_and_etags(client, executions, auth):
    first = client.get('/api/structures/si/executions', params={'limit': 1}, headers=auth).json()
    second = client.get(
        '/api/structures/si/executions', params={'limit': 1, 'cursor': first['next_cursor']}, headers=auth
    ).json()
    assert [i['uuid'] for i in first['items'] + second['items']] == [uuid(2), uuid(1)]
    response = client.get('/api/structures/si/executions', headers=auth)
    etag = response.headers['etag']
    again = client.get('/api/structures/si/executions', headers={**auth, 'If-None-Match': etag})
    assert again.status_code == 304 and again.content == b''


def test_execution_cursors_are_opaque_and_bound_to_their_listing(client, executions, auth):
    first = client.get('/api/structures/si/executions?limit=1', headers=auth).json()
    cursor = first['next_cursor']
    assert CURSOR.fullmatch(cursor), cursor
    second = client.get(f'/api/structures/si/executions?limit=1&cursor={cursor}', headers=auth)
    assert [item['uuid'] for item in second.json()['items']] == [uuid(1)]
    for bad in tampered(cursor):
        response = client.get('/api/structures/si/executions', params={'cursor': bad}, headers=auth)
        assert response.status_code == 400 and response.json() == {'detail': BAD_CURSOR}, bad
    elsewhere = client.get('/api/structures/si-scf/executions', params={'cursor': cursor}, headers=auth)
    assert elsewhere.status_code == 400 and elsewhere.json() == {'detail': BAD_CURSOR}
    listing = client.get('/api/structures', params={'cursor': cursor}, headers=auth)
    assert listing.status_code == 400 and listing.json() == {'detail': BAD_CURSOR}


def test_one_execution_and_its_etag(client, executions, backend, auth, tenant):
    response = client.get(f'/api/executions/{uuid(3)}', params={'workspace': 'lab'}, headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert (body['state'], body['exit_status'], body['structures_in'], body['roles']) == (
        'killed',
        None,
        ['fe2o3'],
        None,
    )
    etag = response.headers['etag']
    assert client.get(f'/api/executions/{uuid(3)}', headers={**auth, 'If-None-Match': etag}).status_code == 304
    # A new state is a new ETag.
    backend.executions.put(execution(tenant, 3, seconds=5, state='excepted', structures_in=['fe2o3']))
    changed = client.get(f'/api/executions/{uuid(3)}', headers={**auth, 'If-None-Match': etag})
    assert changed.status_code == 200 and changed.json()['state'] == 'excepted'


@pytest.mark.parametrize(
    ('path', 'params'),
    [
        ('/api/executions/{other}', {}),  # another tenant's process
        ('/api/executions/{private}', {}),  # another workspace of the tenant, not asked for
        ('/api/executions/{missing}', {}),
        ('/api/structures/their-secret/executions', {}),  # another tenant's structure
        ('/api/structures/nothing/executions', {}),
        ('/api/structures/si/executions', {'workspace': 'elsewhere'}),  # a workspace the token does not grant
    ],
)
def test_other_tenants_data_is_not_found_like_missing_data(
    client, executions, backend, seeded, auth, tenant, path, params
):
    from aiida_structstore.core.structures import StructureKey

    backend.structures.put(
        seeded['si'].model_copy(update={'key': StructureKey.of(f'{tenant}-other', 'lab', 'their-secret')})
    )
    url = path.format(other=uuid(9), private=uuid(8), missing=uuid(77))
    response = client.get(url, params=params, headers=auth)
    assert response.status_code == 404
    assert f'{tenant}-other' not in response.text


def test_bad_requests(client, executions, auth):
    assert client.get('/api/executions/not-a-uuid-at-all-but-long-enough', headers=auth).status_code == 422
    assert client.get('/api/structures/si/executions', params={'limit': 101}, headers=auth).status_code == 422
    response = client.get('/api/structures/si/executions', params={'cursor': 'garbage'}, headers=auth)
    assert response.status_code == 400 and response.json() == {'detail': BAD_CURSOR}
    response = client.get(f'/api/executions/{uuid(1)}')
    assert response.status_code == 401 and response.headers['www-authenticate'] == 'Bearer'
