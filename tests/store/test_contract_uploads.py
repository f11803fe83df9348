"""The upload part of the store contract (``store/uploads.py``), run on every backend like ``test_contract.py``: the
``store`` fixture of ``conftest.py`` is parametrized over them.

Claims in these tests are scoped to the test's own tenant, since a Convex server is shared by the tests of a run; the
one test of an unscoped claim tolerates uploads other tests left pending.
"""

from __future__ import annotations

import hashlib
import threading

import pytest

from aiida_structstore.core.exceptions import (
    ClaimLostError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
)
from aiida_structstore.core.uploads import MAX_UPLOAD_BYTES, UploadKey, check_content, upload_id_for
from aiida_structstore.store import MemoryStore
from aiida_structstore.store.structures import MAX_RAW_BYTES
from aiida_structstore.store.uploads import MAX_UPLOAD_PAGE

CIF = b'data_si\n_cell_length_a 5.43\r\n# \xc3\xa9 \xf0\x9f\x98\x80\n'
SAMPLES = {
    'ascii': b'&CONTROL\n  calculation = "scf"\n/\n',
    'crlf-astral': CIF,
    'latin-1': b'data_fe\n_publ_author_name "M\xfcller"\n',  # not UTF-8: held as base64
    'binary': bytes(range(256)) * 3,
    'multi-chunk-text': 'K_POINTS crystal é😀\r\n'.encode() * 40_000,  # ~1 MB: several 512 KiB chunks
    'multi-chunk-binary': b'\xff\xfe' + b'\x80abc' * 300_000,  # ~1.2 MB of base64 text
    'staged': b'ATOMIC_POSITIONS crystal\n' * 200_000,  # 5 MB: staged in several calls, then committed
}


@pytest.fixture
def upload(store, tenant):
    """Return ``upload(content=..., workspace='ws', **fields) -> (record, created)`` in the test's tenant."""

    def factory(content: bytes = CIF, *, workspace: str = 'ws', tenant_id: str | None = None, **fields):
        fields.setdefault('filename', 'si.cif')
        fields.setdefault('kind', 'cif')
        fields.setdefault('uploaded_by', 'alice@example.org')
        return store.uploads.create(tenant_id or tenant, workspace, content=content, **fields)

    return factory


def claim(store, tenant, claimer='importer-a', **options):
    options.setdefault('lease_seconds', 300)
    return store.uploads.claim(claimer=claimer, tenant_id=tenant, **options)


class TestCreateRead:
    def test_create_then_get_returns_a_pending_upload(self, store, tenant, upload):
        record, created = upload(structure_id='si-1')
        assert created
        sha256 = hashlib.sha256(CIF).hexdigest()
        assert record.key == UploadKey.of(tenant, 'ws', upload_id_for(sha256))
        assert record.status == 'pending' and not record.terminal
        assert (record.filename, record.kind, record.size, record.sha256) == ('si.cif', 'cif', len(CIF), sha256)
        assert record.uploaded_by == 'alice@example.org'
        assert record.structure_id == 'si-1'
        assert record.result_structure_id is record.node_uuid is record.message is record.claimed_by is None
        assert record.attempts == 0
        assert record.created_at == record.updated_at
        assert store.uploads.get(record.key) == record
        assert store.uploads.find(record.key) == record

    @pytest.mark.parametrize('name', list(SAMPLES))
    def test_read_returns_exactly_the_bytes_uploaded(self, store, upload, name):
        record, _ = upload(SAMPLES[name])
        assert store.uploads.read(record.key) == SAMPLES[name]

    def test_same_bytes_again_are_the_same_upload(self, store, upload):
        first, _ = upload(filename='a.cif')
        again, created = upload(filename='renamed.cif', uploaded_by='bob')
        assert not created
        assert again == first  # the first upload's name and uploader stay

    def test_same_bytes_as_another_kind_or_structure_id_is_a_conflict(self, store, upload):
        record, _ = upload()
        with pytest.raises(ConflictError, match=f'{record.key.upload_id} of kind cif'):
            upload(kind='pw')
        with pytest.raises(ConflictError, match='for structure id'):
            upload(structure_id='other')
        assert store.uploads.get(record.key) == record

    def test_same_bytes_in_another_workspace_is_another_upload(self, store, tenant, upload):
        first, _ = upload(workspace='ws')
        other, created = upload(workspace='ws2')
        assert created and other.key.workspace_id == 'ws2' and other.key.upload_id == first.key.upload_id
        with pytest.raises(NotFoundError):
            store.uploads.get(UploadKey.of('other-tenant', 'ws', first.key.upload_id))

    def test_an_upload_that_does_not_exist_is_not_found(self, store, tenant):
        key = UploadKey.of(tenant, 'ws', upload_id_for('0' * 64))
        with pytest.raises(NotFoundError, match='no'):
            store.uploads.get(key)
        assert store.uploads.find(key) is None
        with pytest.raises(NotFoundError):
            store.uploads.read(key)

    @pytest.mark.parametrize(
        ('fields', 'message'),
        [
            ({'content': b''}, 'the file is empty'),
            ({'content': 'text'}, 'content must be bytes'),
            ({'kind': 'xyz'}, 'kind must be one of cif, pw'),
            ({'filename': '../etc/passwd'}, 'without a directory'),
            ({'filename': ''}, 'filename must not be empty'),
            ({'filename': 'a\u202eb.cif'}, 'U\\+202E'),
            ({'filename': 'x' * 256}, 'the limit is 255'),
            ({'uploaded_by': ''}, 'uploaded_by'),
            ({'structure_id': 'a/b'}, 'structure_id'),
            ({'workspace': 'bad ws'}, 'workspace_id'),
        ],
    )
    def test_invalid_input_is_refused_and_nothing_is_written(self, store, tenant, upload, fields, message):
        with pytest.raises(InvalidInputError, match=message):
            upload(**fields)
        assert store.uploads.list(tenant, 'ws').items == ()

    def test_the_size_limit_is_the_raw_input_limit(self):
        assert MAX_UPLOAD_BYTES == MAX_RAW_BYTES
        assert check_content(b'x' * 10, limit=10) == b'x' * 10
        with pytest.raises(LimitExceededError, match='11 bytes; the limit is 10 bytes'):
            check_content(b'x' * 11, limit=10)


class TestList:
    def test_newest_first_by_status_in_pages(self, store, tenant, upload):
        records = [upload(f'data_{n}\n'.encode(), filename=f'{n}.cif')[0] for n in range(5)]
        listed = store.uploads.list(tenant, 'ws', limit=MAX_UPLOAD_PAGE).items
        assert [r.key for r in listed] == [r.key for r in reversed(records)]  # ties in time: the later one first
        first = store.uploads.list(tenant, 'ws', limit=2)
        assert len(first.items) == 2 and first.next_cursor
        rest = store.uploads.list(tenant, 'ws', limit=200, cursor=first.next_cursor)
        assert [r.key for r in first.items + rest.items] == [r.key for r in listed]
        assert list(store.uploads.iter(tenant, 'ws')) == list(listed)

        claimed = claim(store, tenant)
        assert [r.key for r in store.uploads.list(tenant, 'ws', status='importing').items] == [claimed.key]
        assert len(store.uploads.list(tenant, 'ws', status='pending').items) == 4
        assert store.uploads.list(tenant, 'ws', status='failed').items == ()

    def test_listing_is_scoped_to_the_workspace(self, store, tenant, upload):
        upload(workspace='ws')
        assert store.uploads.list(tenant, 'ws2').items == ()
        assert store.uploads.list('someone-else', 'ws').items == ()

    @pytest.mark.parametrize(
        ('options', 'message'), [({'status': 'done'}, 'status must be one of'), ({'limit': 0}, 'page limit')]
    )
    def test_invalid_listing_is_refused(self, store, tenant, options, message):
        with pytest.raises(InvalidInputError, match=message):
            store.uploads.list(tenant, 'ws', **options)


class TestClaim:
    def test_claim_takes_the_oldest_pending_upload(self, store, tenant, upload):
        older, _ = upload(b'data_a\n')
        newer, _ = upload(b'data_b\n')
        claimed = claim(store, tenant, claimer='host:42', lease_seconds=60)
        assert claimed.key == older.key
        record = claimed.record
        assert record.status == 'importing' and record.claimed_by == 'host:42' and record.attempts == 1
        assert (record.claim_expires_at - record.updated_at).total_seconds() == pytest.approx(60, abs=0.01)
        assert store.uploads.get(older.key) == record
        assert claim(store, tenant).key == newer.key
        assert claim(store, tenant) is None

    def test_claim_is_scoped_to_tenant_and_workspace(self, store, tenant, upload):
        upload(workspace='ws')
        assert store.uploads.claim(claimer='a', tenant_id='someone-else') is None
        assert store.uploads.claim(claimer='a', tenant_id=tenant, workspace_id='ws2') is None
        assert store.uploads.claim(claimer='a', tenant_id=tenant, workspace_id='ws') is not None

    def test_an_unscoped_claim_reaches_every_tenant(self, store, tenant, upload):
        record, _ = upload()
        # Other tests may have left pending uploads on a shared server: claim until ours comes.
        for _ in range(10_000):
            claimed = store.uploads.claim(claimer='global', lease_seconds=300)
            assert claimed is not None, 'the upload was never claimed'
            if claimed.key == record.key:
                break
        assert store.uploads.get(record.key).claimed_by == 'global'

    def test_complete_and_fail_finish_a_claim(self, store, tenant, upload):
        upload(b'data_a\n')
        upload(b'data_b\n')
        first, second = claim(store, tenant), claim(store, tenant)
        done = store.uploads.complete(first.key, claim=first.claim, structure_id='si', node_uuid='1234-abcd')
        assert (done.status, done.result_structure_id, done.node_uuid, done.message) == (
            'imported',
            'si',
            '1234-abcd',
            None,
        )
        assert done.terminal and store.uploads.get(first.key) == done
        failed = store.uploads.fail(second.key, claim=second.claim, message='line 3: /home/me/x.cif: no cell\x00')
        assert failed.status == 'failed' and failed.message == 'line 3: <path>: no cell'
        assert store.uploads.get(second.key) == failed
        # Finished uploads are never claimed again, and their claims are spent.
        assert claim(store, tenant, lease_seconds=0) is None
        with pytest.raises(ClaimLostError, match='the upload is imported'):
            store.uploads.fail(first.key, claim=first.claim, message='late')
        with pytest.raises(ClaimLostError, match='the upload is failed'):
            store.uploads.complete(second.key, claim=second.claim, structure_id='x', node_uuid='y')
        assert store.uploads.get(first.key) == done

    def test_an_expired_lease_is_claimed_again_and_the_stale_claim_changes_nothing(self, store, tenant, upload):
        record, _ = upload()
        stale = claim(store, tenant, claimer='crashed', lease_seconds=0)
        fresh = claim(store, tenant, claimer='second', lease_seconds=300)
        assert fresh.key == stale.key == record.key and fresh.claim != stale.claim
        assert fresh.record.attempts == 2 and fresh.record.claimed_by == 'second'
        for finish in (
            lambda: store.uploads.complete(stale.key, claim=stale.claim, structure_id='si', node_uuid='u'),
            lambda: store.uploads.fail(stale.key, claim=stale.claim, message='x'),
            lambda: store.uploads.renew(stale.key, claim=stale.claim, lease_seconds=10),
        ):
            with pytest.raises(ClaimLostError, match='another importer claimed'):
                finish()
        assert store.uploads.get(record.key) == fresh.record
        assert store.uploads.complete(fresh.key, claim=fresh.claim, structure_id='si', node_uuid='u').status == (
            'imported'
        )

    def test_an_expired_lease_not_yet_claimed_again_can_still_finish(self, store, tenant, upload):
        upload()
        late = claim(store, tenant, lease_seconds=0)
        assert store.uploads.complete(late.key, claim=late.claim, structure_id='si', node_uuid='u').status == 'imported'

    def test_a_call_sent_again_answers_what_the_first_did(self, store, tenant, upload):
        # What the client does when a reply is lost: the same call, with the same claim token, again.
        upload(b'data_a\n')
        upload(b'data_b\n')
        options = {'claimer': 'c', 'lease_ms': 300_000, 'tenant_id': tenant, 'workspace_id': None, 'max_attempts': 5}
        first = store.uploads._claim(token='t' * 32, **options)
        assert store.uploads._claim(token='t' * 32, **options) == first  # one upload taken, not two
        assert store.uploads.list(tenant, 'ws', status='pending').items[0].key != first.key
        done = store.uploads.complete(first.key, claim='t' * 32, structure_id='si', node_uuid='n')
        assert store.uploads.complete(first.key, claim='t' * 32, structure_id='si', node_uuid='n') == done
        with pytest.raises(ClaimLostError):
            store.uploads.complete(first.key, claim='t' * 32, structure_id='other', node_uuid='n')
        second = claim(store, tenant)
        failed = store.uploads.fail(second.key, claim=second.claim, message='bad')
        assert store.uploads.fail(second.key, claim=second.claim, message='bad') == failed
        with pytest.raises(ClaimLostError):
            store.uploads.fail(second.key, claim=second.claim, message='other')

    def test_a_long_message_is_cut_to_1000_characters_astral_ones_included(self, store, tenant, upload):
        upload()
        held = claim(store, tenant)
        failed = store.uploads.fail(held.key, claim=held.claim, message='\U0001f600' * 1500)
        assert len(failed.message) == 1000 and failed.message.endswith('…')
        assert store.uploads.get(held.key).message == failed.message

    def test_renew_extends_the_lease(self, store, tenant, upload):
        upload()
        held = claim(store, tenant, lease_seconds=0)
        renewed = store.uploads.renew(held.key, claim=held.claim, lease_seconds=600)
        assert renewed.claim_expires_at > held.record.claim_expires_at
        assert claim(store, tenant) is None  # no longer expired: nobody else takes it
        assert store.uploads.fail(held.key, claim=held.claim, message='bad').status == 'failed'

    def test_an_upload_interrupted_max_attempts_times_fails(self, store, tenant, upload):
        record, _ = upload()
        assert claim(store, tenant, lease_seconds=0, max_attempts=2).record.attempts == 1
        assert claim(store, tenant, lease_seconds=0, max_attempts=2).record.attempts == 2
        assert claim(store, tenant, lease_seconds=0, max_attempts=2) is None
        failed = store.uploads.get(record.key)
        assert failed.status == 'failed' and failed.message.startswith('the import was interrupted 2 times')

    def test_two_claimers_racing_never_win_the_same_upload(self, store, tenant, upload):
        count = 12
        keys = {upload(f'data_{n}\n'.encode())[0].key for n in range(count)}
        won: dict[str, list] = {'a': [], 'b': [], 'c': []}
        start = threading.Barrier(len(won))
        errors = []

        def importer(name: str) -> None:
            try:
                start.wait()
                while (claimed := claim(store, tenant, claimer=name)) is not None:
                    won[name].append(claimed.key)
            except Exception as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=importer, args=(name,)) for name in won]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        every = [key for keys_won in won.values() for key in keys_won]
        assert len(every) == len(set(every)) == count and set(every) == keys
        for name, keys_won in won.items():
            assert all(store.uploads.get(key).claimed_by == name for key in keys_won)

    @pytest.mark.parametrize(
        ('options', 'message'),
        [
            ({'claimer': ''}, 'claimer'),
            ({'lease_seconds': -1}, 'lease_seconds'),
            ({'lease_seconds': float('nan')}, 'lease_seconds'),
            ({'workspace_id': 'ws', 'tenant_id': None}, 'needs its tenant_id'),
            ({'max_attempts': 0}, 'max_attempts'),
        ],
    )
    def test_invalid_claims_are_refused(self, store, tenant, options, message):
        options = {'claimer': 'a', 'tenant_id': tenant, **options}
        with pytest.raises(InvalidInputError, match=message):
            store.uploads.claim(**options)

    def test_finishing_needs_a_claim_token(self, store, tenant, upload):
        record, _ = upload()
        with pytest.raises(InvalidInputError, match='claim token'):
            store.uploads.complete(record.key, claim='', structure_id='si', node_uuid='u')
        with pytest.raises(ClaimLostError, match='the upload is pending'):
            store.uploads.fail(record.key, claim='x' * 32, message='m')
        assert store.uploads.get(record.key) == record


def test_staged_chunks_never_committed_are_collected_and_committed_ones_stay(store, tenant, upload):
    record, _ = upload(SAMPLES['staged'])
    if hasattr(store.uploads, '_stage'):  # a creator that stopped after staging: its chunks are garbage
        store.uploads._stage(
            UploadKey.of(tenant, 'ws', upload_id_for('1' * 64)), 'stopped', [{'chunk_index': 0.0, 'text': 'x'}]
        )
        assert store.uploads.collect_garbage(tenant, 'ws', older_than_seconds=3600) == 0  # maybe still going on
        assert store.uploads.collect_garbage(tenant, 'ws', older_than_seconds=0) == 1
    assert store.uploads.collect_garbage(tenant, 'ws', older_than_seconds=0) == 0
    assert store.uploads.read(record.key) == SAMPLES['staged']


def test_a_corrupted_read_is_refused(store, upload, corrupt_upload):
    record, _ = upload(SAMPLES['multi-chunk-text'])
    corrupt_upload(store, lambda text: text[:-1] + ('x' if text[-1] != 'x' else 'y'))
    with pytest.raises(IntegrityError):
        store.uploads.read(record.key)


@pytest.fixture
def corrupt_upload(monkeypatch):
    """Return ``corrupt(store, change)``: from then on, the stored text of uploads read passes through ``change``."""

    def corrupt(store, change):
        if isinstance(store, MemoryStore):
            from aiida_structstore.core import uploads as core_uploads

            original = core_uploads.decode_from_storage
            monkeypatch.setattr(
                'aiida_structstore.store.memory.decode_from_storage',
                lambda text, *args, **kwargs: original(change(text), *args, **kwargs),
            )
        else:
            cls = type(store.uploads)
            original = cls._read_chunk_page
            monkeypatch.setattr(
                cls,
                '_read_chunk_page',
                lambda self, *a, **k: (lambda page: ([(i, change(t)) for i, t in page[0]], page[1]))(
                    original(self, *a, **k)
                ),
            )

    return corrupt


@pytest.mark.slow
def test_many_uploads_two_importers_each_imported_once(store, tenant):
    if store.backend == 'convex' and not store.transport.url.startswith('http://127.0.0.1'):
        pytest.skip('many uploads: on the local server only')
    # 1,000 in memory; 300 on the local server, which checks each index lookup against a full scan (slow at 1,000).
    count = 1000 if store.backend == 'memory' else 300
    keys = {
        store.uploads.create(
            tenant, 'ws', filename=f'{n}.cif', kind='cif', content=f'data_{n}\n'.encode(), uploaded_by='u'
        )[0].key
        for n in range(count)
    }
    imported: dict[str, list] = {'a': [], 'b': []}
    start = threading.Barrier(2)

    def importer(name: str) -> None:
        start.wait()
        while (claimed := store.uploads.claim(claimer=name, tenant_id=tenant, workspace_id='ws')) is not None:
            store.uploads.read(claimed.key)
            store.uploads.complete(claimed.key, claim=claimed.claim, structure_id=f's-{name}', node_uuid=name)
            imported[name].append(claimed.key)

    threads = [threading.Thread(target=importer, args=(name,)) for name in imported]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = imported['a'] + imported['b']
    assert len(every) == len(set(every)) == count and set(every) == keys
    records = list(store.uploads.iter(tenant, 'ws'))
    assert len(records) == count and {r.status for r in records} == {'imported'}
    assert all(r.attempts == 1 and r.node_uuid == r.claimed_by for r in records)
