"""The execution part of the store contract (``store/executions.py``), run on every backend like
``test_contract.py``: the ``store`` fixture of ``conftest.py`` is parametrized over them."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid as uuid_lib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiida_structstore.core.exceptions import InvalidInputError, NotFoundError
from aiida_structstore.core.executions import (
    MAX_STRUCTURE_LINKS,
    ExecutionContent,
    ExecutionKey,
    execution_hash,
    scrub_text,
)

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)


@pytest.fixture
def make_execution(tenant):
    """Return a factory of valid :class:`ExecutionContent` objects (``n`` picks the process UUID)."""

    def factory(n: int = 1, *, workspace: str = 'ws', tenant_id: str | None = None, seconds: float = 0, **fields):
        key = ExecutionKey.of(tenant_id or tenant, workspace, str(uuid_lib.UUID(int=n)))
        fields.setdefault('process_label', 'PwCalculation')
        fields.setdefault('process_type', 'aiida.calculations:quantumespresso.pw')
        fields.setdefault('kind', 'calcjob')
        fields.setdefault('state', 'waiting')
        fields.setdefault('computer', 'slurm')
        fields.setdefault('scheduler', {'type': 'core.slurm', 'job_id': '42', 'state': 'queued'})
        fields.setdefault('structures_in', ['si'])
        fields.setdefault('created_at', T0)
        fields.setdefault('modified_at', T0 + dt.timedelta(seconds=seconds))
        return ExecutionContent.build(key=key, **fields)

    return factory


class TestWriteRead:
    def test_put_then_get_returns_what_was_written(self, store, make_execution):
        content = make_execution(state='finished', exit_status=0, structures_out=['si-relaxed'], parent_uuid=None)
        result = store.executions.put(content)
        assert result.status == 'created'
        record = store.executions.get(content.key)
        assert record.to_content() == content
        assert record.content_hash == result.content_hash == execution_hash(content)
        assert record.modified_at == T0.replace(microsecond=123000)  # milliseconds, as Convex keeps them
        assert record.scheduler.job_id == '42'
        assert record.roles('si') == ['input'] and record.roles('si-relaxed') == ['output']

    def test_same_content_again_is_a_noop(self, store, make_execution):
        content = make_execution()
        store.executions.put(content)
        before = store.executions.get(content.key)
        assert store.executions.put(content).status == 'unchanged'
        assert store.executions.get(content.key) == before

    def test_a_later_state_updates_and_an_earlier_one_is_stale(self, store, make_execution):
        store.executions.put(make_execution(state='waiting', seconds=1))
        assert store.executions.put(make_execution(state='running', seconds=2)).status == 'updated'
        stale = store.executions.put(make_execution(state='waiting', seconds=1))
        assert stale.status == 'stale'
        record = store.executions.get(make_execution().key)
        assert record.state == 'running'
        # The same modification time with other content (a structure projected later) replaces the record.
        linked = make_execution(state='running', seconds=2, structures_out=['late'])
        assert store.executions.put(linked).status == 'updated'
        assert store.executions.get(linked.key).structures_out == ('late',)

    def test_put_executions_reports_each_status(self, store, make_execution):
        items = [make_execution(n) for n in range(1, 6)]
        assert {r.status for r in store.executions.put_many(items)} == {'created'}
        items[2] = make_execution(3, state='running', seconds=5)
        assert [r.status for r in store.executions.put_many(items)] == ['unchanged'] * 2 + ['updated'] + [
            'unchanged'
        ] * 2

    def test_many_links_are_written_in_several_calls(self, store, make_execution, tenant):
        ids = [f'{n}-s{i}' for n in range(12) for i in range(MAX_STRUCTURE_LINKS)]
        items = [
            make_execution(n, structures_in=ids[n * MAX_STRUCTURE_LINKS : (n + 1) * MAX_STRUCTURE_LINKS])
            for n in range(12)
        ]
        calls = getattr(store, 'calls', 0)
        assert {r.status for r in store.executions.put_many(items)} == {'created'}
        if hasattr(store, 'calls'):
            assert store.transport.calls - calls >= 2  # 6,000 links: more than one putExecutions call
        listed = store.executions.list(tenant, 'ws', structure_id='7-s499').items
        assert [r.key for r in listed] == [items[7].key]

    def test_execution_hashes(self, store, make_execution, tenant):
        results = store.executions.put_many([make_execution(1), make_execution(2, state='running')])
        missing = str(uuid_lib.UUID(int=99))
        hashes = store.executions.content_hashes(
            tenant, 'ws', [str(uuid_lib.UUID(int=1)), str(uuid_lib.UUID(int=2)), missing]
        )
        assert hashes == {r.key.process_uuid: r.content_hash for r in results}

    def test_delete(self, store, make_execution, tenant):
        content = make_execution()
        store.executions.put(content)
        assert store.executions.delete(content.key) is True
        assert store.executions.delete(content.key) is False
        with pytest.raises(NotFoundError):
            store.executions.get(content.key)
        assert store.executions.find(content.key) is None
        assert store.executions.list(tenant, 'ws', structure_id='si').items == ()


class TestListing:
    def test_most_recently_modified_first_with_pages(self, store, make_execution, tenant):
        store.executions.put_many([make_execution(n, seconds=n) for n in range(1, 8)])
        seen, cursor = [], None
        while True:
            page = store.executions.list(tenant, 'ws', cursor=cursor, limit=3)
            seen.extend(record.key.process_uuid for record in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == [str(uuid_lib.UUID(int=n)) for n in range(7, 0, -1)]
        assert store.executions.latest_modified(tenant, 'ws') == (T0 + dt.timedelta(seconds=7)).replace(
            microsecond=123000
        )
        assert store.executions.latest_modified(tenant, 'empty') is None

    def test_recently_changed(self, store, make_execution, tenant):
        store.executions.put_many([make_execution(n, seconds=10 * n) for n in range(1, 5)])
        since = T0 + dt.timedelta(seconds=25)
        recent = store.executions.list(tenant, 'ws', modified_from=since).items
        assert [r.key.process_uuid for r in recent] == [str(uuid_lib.UUID(int=4)), str(uuid_lib.UUID(int=3))]

    def test_executions_of_one_structure(self, store, make_execution, tenant):
        store.executions.put_many(
            [
                make_execution(1, seconds=1, structures_in=['si']),
                make_execution(2, seconds=3, structures_in=['si'], structures_out=['si-relaxed']),
                make_execution(3, seconds=2, structures_in=['fe2o3']),
                make_execution(4, seconds=4, structures_in=['si-relaxed'], structures_out=['si-relaxed']),
            ]
        )
        si = store.executions.list(tenant, 'ws', structure_id='si').items
        assert [r.key.process_uuid[-1] for r in si] == ['2', '1']
        relaxed = store.executions.list(tenant, 'ws', structure_id='si-relaxed').items
        assert [(r.key.process_uuid[-1], r.roles('si-relaxed')) for r in relaxed] == [
            ('4', ['input', 'output']),
            ('2', ['output']),
        ]
        assert store.executions.list(tenant, 'ws', structure_id='nothing').items == ()
        first = store.executions.list(tenant, 'ws', structure_id='si', limit=1)
        rest = store.executions.list(tenant, 'ws', structure_id='si', limit=1, cursor=first.next_cursor)
        assert [r.key.process_uuid[-1] for r in first.items + rest.items] == ['2', '1']

    @pytest.mark.parametrize('limit', [0, -1, 201, 2.5, True])
    def test_bad_limits(self, store, tenant, limit):
        with pytest.raises(InvalidInputError, match='page limit'):
            store.executions.list(tenant, 'ws', limit=limit)

    def test_bad_cursor(self, store, make_execution, tenant):
        store.executions.put_many([make_execution(1), make_execution(2)])
        with pytest.raises(InvalidInputError, match='cursor'):
            store.executions.list(tenant, 'ws', cursor='not-a-cursor', limit=1)


class TestIsolation:
    def test_same_process_in_other_tenants_and_workspaces(self, store, make_execution, tenant):
        other = f'{tenant}-other'
        mine = make_execution(1, state='running')
        elsewhere = [
            make_execution(1, workspace='ws2', state='finished', exit_status=3),
            make_execution(1, tenant_id=other),
        ]
        store.executions.put_many([mine, *elsewhere])
        assert store.executions.get(mine.key).state == 'running'
        for content in elsewhere:
            assert store.executions.get(content.key).to_content() == content
            scope = (content.key.tenant_id, content.key.workspace_id)
            assert [r.key for r in store.executions.list(*scope, structure_id='si').items] == [content.key]
        store.executions.delete(mine.key)
        assert all(store.executions.find(content.key) is not None for content in elsewhere)

    @pytest.mark.slow
    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        writes=st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(1, 3), st.sampled_from(['a', 'b'])),
            min_size=1,
            max_size=12,
        )
    )
    def test_no_call_returns_another_scopes_data(self, store, writes):
        run = secrets.token_hex(3)
        tenants, workspaces = [f'{run}-t{i}' for i in range(3)], ['w0', 'w1']
        model: dict[tuple[str, str, int], str] = {}
        for step, (t, w, n, structure) in enumerate(writes):
            key = ExecutionKey.of(tenants[t], workspaces[w], str(uuid_lib.UUID(int=n)))
            content = ExecutionContent.build(
                key=key,
                process_label=f'{tenants[t]}-{workspaces[w]}',
                kind='calcjob',
                state='running',
                structures_in=[structure],
                created_at=T0,
                modified_at=T0 + dt.timedelta(seconds=step),
            )
            store.executions.put(content)
            model[(tenants[t], workspaces[w], n)] = structure
        for t in tenants:
            for w in workspaces:
                expected = {n for (mt, mw, n) in model if (mt, mw) == (t, w)}
                listed = list(store.executions.iter(t, w))
                assert {int(uuid_lib.UUID(r.key.process_uuid)) for r in listed} == expected
                assert all(r.process_label == f'{t}-{w}' for r in listed)
                for structure in 'ab':
                    of = store.executions.list(t, w, structure_id=structure).items
                    assert {int(uuid_lib.UUID(r.key.process_uuid)) for r in of} == {
                        n for (mt, mw, n), s in model.items() if (mt, mw) == (t, w) and s == structure
                    }


class TestInvalidInputWritesNothing:
    @pytest.mark.parametrize(
        ('fields', 'match'),
        [
            ({'structures_in': ['../etc/passwd']}, 'character'),
            ({'structures_in': [f's{i}' for i in range(MAX_STRUCTURE_LINKS + 1)]}, 'limit'),
            ({'state': 'paused'}, 'state'),
            ({'exit_status': 0}, 'no exit status'),
            ({'process_label': 'evil\u202elabel'}, 'U\\+202E'),
            ({'modified_at': dt.datetime(2025, 1, 1)}, 'timezone'),
            ({'exit_message': 'x' * 5000}, 'limit'),
            ({'scheduler': {'type': 'core.slurm', 'job_id': '1; rm -rf /'}}, 'job id'),
            ({'parent_uuid': 'not-a-uuid'}, 'UUID'),
        ],
    )
    def test_bad_content_is_refused(self, make_execution, fields, match):
        with pytest.raises(InvalidInputError, match=match):
            make_execution(**fields)

    @pytest.mark.parametrize('bad', ['', 'not-a-uuid', '12345678-1234-1234-1234-1234567890123'])
    def test_bad_keys(self, store, tenant, bad):
        with pytest.raises(InvalidInputError):
            ExecutionKey.of(tenant, 'ws', bad)
        with pytest.raises(InvalidInputError):
            store.executions.content_hashes(tenant, 'ws', [bad])

    def test_a_duplicate_in_a_batch_writes_nothing(self, store, make_execution, tenant):
        with pytest.raises(InvalidInputError, match='more than once'):
            store.executions.put_many([make_execution(1), make_execution(2), make_execution(2, state='running')])
        assert store.executions.list(tenant, 'ws').items == ()

    def test_not_a_content(self, store, make_execution, tenant):
        with pytest.raises(InvalidInputError, match='ExecutionContent'):
            store.executions.put_many([make_execution(1), {'key': 'x'}])
        assert store.executions.list(tenant, 'ws').items == ()

    def test_exit_messages_lose_their_paths(self):
        text = scrub_text("failed: cannot open '/scratch/alice/aiida/ab/cd/aiida.out' (see ~/logs/run.txt)")
        assert text == "failed: cannot open '<path>' (see <path>)"
        assert scrub_text('x' * 2000).endswith('…') and len(scrub_text('x' * 2000)) == 1000
