"""The store contract: the invariants of ``docs/store-contract.md``, run on every backend (see ``conftest.py``)."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiida_structstore.core.exceptions import (
    IntegrityError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    OwnershipError,
)
from aiida_structstore.core.structures import Source, StructureContent, StructureKey
from aiida_structstore.store import structures as base

RAW_SAMPLES = {
    'empty': '',
    'ascii': '&CONTROL\n  calculation = "scf"\n/\n',
    'crlf': 'line one\r\nline two\r\n\r\n',
    'astral': 'Fe \U0001f9f2 magnet \U00010348 gothic, é, 中文, \u200b',
    'multi-chunk': ('K_POINTS crystal \u00e9\U0001f600\r\n' * 40_000),  # ~1.4 MB: several 512 KiB chunks
}


class TestWriteRead:
    def test_put_then_get_returns_what_was_written(self, store, make_content):
        content = make_content(params={'SYSTEM': {'ecutwfc': 30.0, 'celldm(1)': 10.2}})
        result = store.structures.put(content, raw='raw text')
        assert result.status == 'created'
        record = store.structures.get(content.key)
        assert record.to_content() == content
        assert record.content_hash == result.content_hash
        assert record.summary['chemical_formula_reduced'] == 'Si'
        assert 'cartesian_site_positions' not in record.summary
        assert record.raw_size == len(b'raw text')
        assert record.chunk_count == 1
        assert record.created_at == record.updated_at

    def test_same_content_again_is_a_noop(self, store, make_content):
        content = make_content()
        first = store.structures.put(content, raw='abc')
        before = store.structures.get(content.key)
        second = store.structures.put(content, raw='abc')
        assert second.status == 'unchanged'
        assert second.content_hash == first.content_hash
        assert store.structures.get(content.key) == before

    def test_changed_content_updates_the_one_record(self, store, make_content):
        store.structures.put(make_content(cif='data_a\n'), raw='one')
        created = store.structures.get(make_content().key)
        result = store.structures.put(make_content(cif='data_b\n'), raw='two')
        assert result.status == 'updated'
        record = store.structures.get(make_content().key)
        assert record.cif == 'data_b\n'
        assert store.structures.get_raw(record.key) == 'two'
        assert record.created_at == created.created_at
        assert record.updated_at >= created.updated_at
        page = store.structures.list(record.key.tenant_id, 'ws')
        assert [item.key for item in page.items] == [record.key]

    def test_raw_change_alone_changes_the_hash(self, store, make_content):
        content = make_content()
        first = store.structures.put(content, raw='one')
        second = store.structures.put(content, raw='two')
        third = store.structures.put(content)
        assert len({first.content_hash, second.content_hash, third.content_hash}) == 3
        assert store.structures.get_raw(content.key) is None
        assert store.structures.get(content.key).chunk_count == 0

    @pytest.mark.parametrize('name', sorted(RAW_SAMPLES))
    def test_raw_round_trip_is_byte_exact(self, store, make_content, name):
        text = RAW_SAMPLES[name]
        content = make_content(f'raw-{name}')
        store.structures.put(content, raw=text)
        back = store.structures.get_raw(content.key)
        assert back.encode('utf-8') == text.encode('utf-8')
        record = store.structures.get(content.key)
        assert record.raw_size == len(text.encode('utf-8'))
        assert (
            record.chunk_count
            == (len(text.encode()) + store.structures.chunk_bytes - 1) // store.structures.chunk_bytes
        )

    @pytest.mark.parametrize('name', ['empty', 'astral', 'multi-chunk'])
    def test_open_raw_streams_the_committed_version(self, store, make_content, name):
        text = RAW_SAMPLES[name]
        content = make_content(f'stream-{name}')
        result = store.structures.put(content, raw=text)
        stream = store.structures.open_raw(content.key)
        assert (stream.size, stream.chunk_count, stream.content_hash) == (
            len(text.encode()),
            result.chunk_count,
            result.content_hash,
        )
        assert ''.join(stream) == text
        assert store.structures.open_raw(store.structures.put(make_content('stream-none')).key) is None
        with pytest.raises(NotFoundError):
            store.structures.open_raw(StructureKey.of(content.key.tenant_id, 'ws', 'missing'))

    def test_raw_bytes_are_decoded_as_utf8(self, store, make_content):
        content = make_content()
        store.structures.put(content, raw='Å\r\n'.encode())
        assert store.structures.get_raw(content.key) == 'Å\r\n'

    def test_put_many_reports_each_status(self, store, make_content):
        items = [(make_content(f's{i}'), f'raw {i}') for i in range(5)]
        assert {r.status for r in store.structures.put_many(items)} == {'created'}
        items[2] = (make_content('s2', cif='data_changed\n'), 'raw 2')
        statuses = [r.status for r in store.structures.put_many(items)]
        assert statuses == ['unchanged', 'unchanged', 'updated', 'unchanged', 'unchanged']

    def test_content_hashes(self, store, make_content, tenant):
        results = store.structures.put_many([(make_content('a'), None), (make_content('b'), 'x')])
        hashes = store.structures.content_hashes(tenant, 'ws', ['a', 'b', 'missing'])
        assert hashes == {'a': results[0].content_hash, 'b': results[1].content_hash}


class TestListDelete:
    def test_list_is_paginated_newest_first(self, store, make_content, tenant):
        for index in range(7):
            store.structures.put(make_content(f's{index}'))
        latest = max(store.structures.get(StructureKey.of(tenant, 'ws', f's{index}')).updated_at for index in range(7))
        # Timestamps have millisecond resolution: s3 is rewritten until its time is later than every other one
        # (waiting on that condition, not for a while).
        version = 0
        while True:
            store.structures.put(make_content('s3', cif=f'data_newest_{version}\n'))
            if store.structures.get(StructureKey.of(tenant, 'ws', 's3')).updated_at > latest:
                break
            version += 1
        seen = []
        cursor = None
        while True:
            page = store.structures.list(tenant, 'ws', cursor=cursor, limit=3)
            assert len(page.items) <= 3
            seen.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert len(seen) == 7
        assert len({s.key for s in seen}) == 7
        assert seen[0].key.structure_id == 's3'
        stamps = [s.updated_at for s in seen]
        assert stamps == sorted(stamps, reverse=True)
        assert [s.key for s in store.structures.iter_workspace(tenant, 'ws', page_size=2)] == [s.key for s in seen]

    def test_list_restricted_to_an_updated_at_range(self, store, make_content, tenant):
        for structure_id in ('a', 'b', 'c'):
            store.structures.put(make_content(structure_id))
        stamps = {sid: store.structures.get(StructureKey.of(tenant, 'ws', sid)).updated_at for sid in 'abc'}

        def ids(**bounds):
            return [
                item.key.structure_id for item in store.structures.iter_workspace(tenant, 'ws', page_size=1, **bounds)
            ]

        newest_first = ids()
        assert ids(updated_from=stamps['b']) == [sid for sid in newest_first if stamps[sid] >= stamps['b']]
        assert ids(updated_to=stamps['b']) == [sid for sid in newest_first if stamps[sid] <= stamps['b']]
        same = [sid for sid in newest_first if stamps[sid] == stamps['b']]
        assert ids(updated_from=stamps['b'], updated_to=stamps['b']) == same
        assert ids(updated_from=max(stamps.values()) + dt.timedelta(milliseconds=1)) == []
        with pytest.raises(InvalidInputError, match='timezone-aware'):
            store.structures.list(tenant, 'ws', updated_from=dt.datetime(2020, 1, 1))

    def test_list_pages_of_the_largest_size(self, store, make_content, tenant):
        store.structures.put_many([(make_content(f's{i:03d}'), None) for i in range(base.MAX_PAGE_SIZE + 20)])
        first = store.structures.list(tenant, 'ws', limit=base.MAX_PAGE_SIZE)
        assert len(first.items) == base.MAX_PAGE_SIZE
        rest = store.structures.list(tenant, 'ws', cursor=first.next_cursor, limit=base.MAX_PAGE_SIZE)
        assert len(rest.items) == 20 and rest.next_cursor is None
        ids = [i.key.structure_id for i in first.items + rest.items]
        assert sorted(ids) == [f's{i:03d}' for i in range(base.MAX_PAGE_SIZE + 20)]

    def test_list_of_empty_workspace(self, store, tenant):
        page = store.structures.list(tenant, 'nothing-here')
        assert page.items == ()
        assert page.next_cursor is None

    @pytest.mark.parametrize('limit', [0, -1, 10_000, 2.5, True])
    def test_list_rejects_bad_limits(self, store, tenant, limit):
        with pytest.raises(InvalidInputError, match='page limit'):
            store.structures.list(tenant, 'ws', limit=limit)

    def test_list_rejects_a_bad_cursor(self, store, tenant, make_content):
        store.structures.put(make_content())
        with pytest.raises(InvalidInputError, match='cursor'):
            store.structures.list(tenant, 'ws', cursor='not a cursor !!')

    def test_delete(self, store, make_content):
        content = make_content()
        store.structures.put(content, raw=RAW_SAMPLES['multi-chunk'])
        assert store.structures.delete(content.key) is True
        assert store.structures.delete(content.key) is False
        assert store.structures.find(content.key) is None
        with pytest.raises(NotFoundError, match='no structure'):
            store.structures.get(content.key)
        with pytest.raises(NotFoundError):
            store.structures.get_raw(content.key)
        assert store.structures.collect_garbage(content.key.tenant_id, 'ws', older_than_seconds=0) == 0
        assert store.structures.put(content).status == 'created'


class TestOwnership:
    """A record belongs to the AiiDA node it came from: another node's content never silently replaces it."""

    A, B = '11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222'

    def test_another_nodes_record_is_not_replaced(self, store, make_content):
        store.structures.put(make_content(node_uuid=self.A), raw='from A')
        with pytest.raises(OwnershipError) as info:
            store.structures.put(make_content(cif='data_other\n', node_uuid=self.B), raw='from B')
        assert self.A in str(info.value) and self.B in str(info.value)
        record = store.structures.get(make_content().key)
        assert record.node_uuid == self.A
        assert store.structures.get_raw(record.key) == 'from A'

    @pytest.mark.parametrize(('first', 'second'), [(A, None), (None, A)])
    def test_a_record_of_no_node_and_one_of_a_node_do_not_replace_each_other(self, store, make_content, first, second):
        store.structures.put(make_content(node_uuid=first))
        with pytest.raises(OwnershipError, match='no AiiDA node'):
            store.structures.put(make_content(cif='data_other\n', node_uuid=second))
        assert store.structures.get(make_content().key).node_uuid == first

    def test_the_same_node_updates_its_record(self, store, make_content):
        store.structures.put(make_content(node_uuid=self.A))
        assert store.structures.put(make_content(cif='data_new\n', node_uuid=self.A)).status == 'updated'

    def test_replace_owner(self, store, make_content):
        store.structures.put(make_content(node_uuid=self.A), raw='from A')
        result = store.structures.put(make_content(cif='data_b\n', node_uuid=self.B), raw='from B', replace_owner=True)
        assert result.status == 'updated'
        record = store.structures.get(make_content().key)
        assert record.node_uuid == self.B
        assert store.structures.get_raw(record.key) == 'from B'

    def test_a_batch_commits_the_rest_and_reports_the_conflict(self, store, make_content):
        store.structures.put(make_content('s1', node_uuid=self.A))
        big = 'x' * (5 * 1024 * 1024)  # staged on Convex: its upload must not be left behind
        results = store.structures.put_many(
            [
                (make_content('s1', cif='data_b\n', node_uuid=self.B), big),
                (make_content('s2', node_uuid=self.B), 'two'),
            ]
        )
        assert [(r.key.structure_id, r.status, r.owner) for r in results] == [
            ('s1', 'conflict', self.A),
            ('s2', 'created', None),
        ]
        assert store.structures.get(make_content('s1').key).node_uuid == self.A
        assert store.structures.get_raw(make_content('s1').key) is None
        if hasattr(store, 'storage_stats'):
            stats = store.structures.storage_stats(make_content().key.tenant_id, 'ws')
            assert stats['chunk_sets'] == []
            assert stats['chunks'] == stats['committed_chunks']


class TestIsolation:
    def test_same_id_in_other_tenants_and_workspaces(self, store, make_content, tenant):
        other = f'{tenant}-other'
        keys = {
            (tenant, 'ws'): make_content('same', cif='data_mine\n'),
            (tenant, 'ws2'): make_content('same', workspace='ws2', cif='data_ws2\n'),
            (other, 'ws'): make_content('same', tenant_id=other, cif='data_other\n'),
        }
        for content in keys.values():
            store.structures.put(content, raw=content.cif)
        for (t, w), content in keys.items():
            assert store.structures.get(content.key).cif == content.cif
            assert store.structures.get_raw(content.key) == content.cif
            assert [item.key for item in store.structures.list(t, w).items] == [content.key]
            assert store.structures.content_hashes(t, w, ['same']) == {
                'same': store.structures.get(content.key).content_hash
            }
        store.structures.delete(keys[(tenant, 'ws')].key)
        assert store.structures.get(keys[(tenant, 'ws2')].key).cif == 'data_ws2\n'
        assert store.structures.get(keys[(other, 'ws')].key).cif == 'data_other\n'

    @pytest.mark.slow
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        writes=st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 1), st.sampled_from(['a', 'b', 'c']), st.integers(0, 3)),
            min_size=1,
            max_size=15,
        )
    )
    def test_no_call_returns_another_scopes_data(self, store, writes):
        run = secrets.token_hex(3)
        tenants = [f'{run}-t{i}' for i in range(3)]
        workspaces = ['w0', 'w1']
        model: dict[tuple[str, str, str], str] = {}
        for t, w, sid, variant in writes:
            cif = f'data_{tenants[t]}_{workspaces[w]}_{sid}_{variant}\n'
            key = StructureKey.of(tenants[t], workspaces[w], sid)
            store.structures.put(StructureContent(key=key, source=Source(kind='cif'), cif=cif), raw=cif)
            model[(tenants[t], workspaces[w], sid)] = cif
        for t in tenants:
            for w in workspaces:
                listed = {item.key.structure_id for item in store.structures.iter_workspace(t, w)}
                expected = {sid for (mt, mw, sid) in model if (mt, mw) == (t, w)}
                assert listed == expected
                for item in store.structures.iter_workspace(t, w):
                    assert (item.key.tenant_id, item.key.workspace_id) == (t, w)
                for sid in 'abc':
                    record = store.structures.find(StructureKey.of(t, w, sid))
                    if (t, w, sid) in model:
                        assert record.cif == model[(t, w, sid)]
                        assert store.structures.get_raw(record.key) == model[(t, w, sid)]
                    else:
                        assert record is None


class TestInvalidInputWritesNothing:
    @pytest.mark.parametrize(
        'bad_id',
        ['', 'a' * 129, 'a/b', 'a\\b', '..', '.hidden', '-opt', 'tab\there', 'new\nline', 'nul\x00', 'caf\u00e9', ' a'],
    )
    def test_invalid_ids_are_refused(self, bad_id):
        with pytest.raises(InvalidInputError):
            StructureKey.of('tenant', 'ws', bad_id)
        with pytest.raises(InvalidInputError):
            StructureKey.of(bad_id, 'ws', 'id')

    def test_invalid_scope_in_list(self, store):
        with pytest.raises(InvalidInputError, match='tenant_id'):
            store.structures.list('../etc', 'ws')

    @pytest.mark.parametrize(
        ('raw', 'match'),
        [(b'\xff\xfe broken', 'not valid UTF-8'), ('lone \ud800 surrogate', 'surrogate'), (42, 'must be text')],
    )
    def test_bad_raw_writes_nothing(self, store, make_content, raw, match):
        content = make_content()
        with pytest.raises(InvalidInputError, match=match):
            store.structures.put(content, raw=raw)
        assert store.structures.find(content.key) is None

    def test_bad_item_in_a_batch_writes_nothing(self, store, make_content, tenant):
        items = [(make_content('good1'), 'ok'), (make_content('bad'), b'\xc3\x28'), (make_content('good2'), 'ok')]
        with pytest.raises(InvalidInputError, match='bad: raw input is not valid UTF-8'):
            store.structures.put_many(items)
        assert store.structures.list(tenant, 'ws').items == ()

    def test_duplicate_keys_in_a_batch(self, store, make_content, tenant):
        with pytest.raises(InvalidInputError, match='more than once'):
            store.structures.put_many([(make_content('x'), None), (make_content('x', cif='data_y\n'), None)])
        assert store.structures.list(tenant, 'ws').items == ()

    def test_oversize_raw_writes_nothing(self, store, make_content, monkeypatch):
        monkeypatch.setattr(base, 'MAX_RAW_BYTES', 1000)
        content = make_content()
        with pytest.raises(LimitExceededError, match='raw input is 1001 bytes; the limit is 1000'):
            store.structures.put(content, raw='x' * 1001)
        assert store.structures.find(content.key) is None

    @pytest.mark.parametrize(
        'structure', [{'x': float('nan')}, {'x': float('inf')}, {1: 'int key'}, {'x': object()}, {'x': 2**70}]
    )
    def test_non_json_payload_is_refused(self, make_content, structure):
        with pytest.raises((InvalidInputError, ValueError)):
            make_content(structure=structure)

    def test_build_reports_every_problem(self):
        with pytest.raises(InvalidInputError, match='source'):
            StructureContent.build(key=StructureKey.of('t', 'w', 's'), source={'kind': 'Not Valid'})

    def test_corrupted_chunks_fail_loudly(self, store, make_content, corrupt_chunks):
        content = make_content()
        store.structures.put(content, raw='abc' * 10)
        corrupt_chunks(store, lambda text: text[:-1] + 'd')
        with pytest.raises(IntegrityError, match='sha256'):
            store.structures.get_raw(content.key)
        with pytest.raises(IntegrityError, match='sha256'):
            ''.join(store.structures.open_raw(content.key))


def _nested(depth: int) -> dict:
    value: dict = {'leaf': 1}
    for level in range(depth):
        value = {f'level({level})': value}
    return value


class TestValuesBeyondConvexLimits:
    """Values over Convex's document, array and field-name limits project and read back exactly."""

    @pytest.mark.slow
    def test_50_mb_raw_input_round_trips_byte_exactly(self, store, make_content):
        line = 'Fe1  0.1234567890  0.2345678901  0.3456789012  ! é \U0001f9f2\r\n'
        text = line * (50_000_000 // len(line.encode()))
        content = make_content('huge-raw')
        assert store.structures.put(content, raw=text).status == 'created'
        back = store.structures.get_raw(content.key)
        assert back == text
        record = store.structures.get(content.key)
        assert record.raw_size == len(text.encode('utf-8')) >= 49_000_000
        assert store.structures.put(content, raw=text).status == 'unchanged'

    def test_50000_site_structure_round_trips_exactly(self, store, make_content):
        nsites = 50_000
        positions = [[i * 0.1 + 1e-9, (i % 97) * 0.3333333333333333, -i / 7] for i in range(nsites)]
        structure = {
            'elements': ['Fe', 'O'],
            'nelements': 2,
            'nsites': nsites,
            'chemical_formula_reduced': 'FeO',
            'lattice_vectors': [[1000.0, 0.0, 0.0], [0.0, 1000.0, 0.0], [0.0, 0.0, 1000.0]],
            'cartesian_site_positions': positions,
            'species_at_sites': ['Fe1' if i % 2 else 'O' for i in range(nsites)],
            'species': [{'name': 'Fe1', 'chemical_symbols': ['Fe'], 'concentration': [1.0]}],
        }
        content = make_content('many-sites', structure=structure)
        store.structures.put(content)
        record = store.structures.get(content.key)
        assert record.structure == structure
        assert record.summary['nsites'] == nsites
        assert record.to_content() == content

    def test_cif_over_1_mib(self, store, make_content):
        cif = 'data_big\nloop_\n_atom_site_label\n' + ''.join(f'Si{i} 0.{i:07d} 0.5 0.5\n' for i in range(60_000))
        assert len(cif.encode()) > 1024 * 1024
        content = make_content('big-cif', cif=cif)
        store.structures.put(content, raw=cif)
        assert store.structures.get(content.key).cif == cif
        assert store.structures.get_raw(content.key) == cif

    def test_params_with_keys_that_are_not_convex_field_names(self, store, make_content):
        params = {
            'SYSTEM': {'celldm(1)': 10.2, 'starting_magnetization(2)': 0.5, 'Hubbard_U(1)': 4.0, 'ibrav': 2},
            'CONTROL': {'$dollar': 'x', '_underscore': True, 'é': None, '': [1, 2.5, 'three']},
            'deep': _nested(20),
            'long_list': list(range(10_000)),
        }
        content = make_content('params', params=params)
        store.structures.put(content)
        back = store.structures.get(content.key).params
        assert back == params
        assert isinstance(back['SYSTEM']['ibrav'], int)
        assert isinstance(back['long_list'][5], int)
