"""Behaviour of the Convex backend beyond the contract: retries, faults, interrupted writers, secrets."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from aiida_structstore.exceptions import BackendUnavailableError, ConfigurationError
from aiida_structstore.models import Source, StructureContent, StructureKey
from aiida_structstore.store import open_store
from aiida_structstore.store.convex import ConvexStore

from ..faults import FaultProxy


@pytest.fixture
def server(convex_server):
    return convex_server


@pytest.fixture
def content_factory(tenant):
    def factory(structure_id='s1', cif='data_x\n'):
        return StructureContent(key=StructureKey.of(tenant, 'ws', structure_id), source=Source(kind='cif'), cif=cif)

    return factory


def assert_no_orphans(store: ConvexStore, tenant: str, workspace: str = 'ws') -> None:
    stats = store.storage_stats(tenant, workspace, max_bytes=12 * 1024 * 1024)
    assert stats['complete']
    assert stats['chunk_sets'] == []
    assert stats['chunks'] == stats['committed_chunks']


@pytest.mark.parametrize(
    'faults',
    [['status:503'], ['status:429', 'status:502'], ['reset'], ['drop-reply'], ['reset', 'drop-reply', 'status:500']],
)
def test_transient_faults_are_retried_and_end_in_the_exact_state(server, content_factory, tenant, faults):
    with FaultProxy(server.url) as proxy, ConvexStore(proxy.url, server.deploy_key, backoff_max=0.05) as store:
        content = content_factory()
        proxy.faults.extend(faults)
        result = store.put(content, raw='raw \U0001f600' * 1000)
        # A lost reply means the mutation ran and its retry found the same content: reported as unchanged.
        assert result.status in ('created', 'unchanged')
        assert not proxy.faults
        assert store.get(content.key).cif == 'data_x\n'
        assert store.get_raw(content.key) == 'raw \U0001f600' * 1000
        assert_no_orphans(store, tenant)


def test_lost_reply_of_a_staged_upload(server, content_factory, tenant):
    big = 'x' * (9 * 1024 * 1024)
    with FaultProxy(server.url) as proxy, ConvexStore(proxy.url, server.deploy_key, backoff_max=0.05) as store:
        content = content_factory('staged')
        store.put(content, raw='old version')
        # contentHashes, stageChunks (2 calls: lose the 1st reply), putBatch (lose the reply)
        proxy.faults.extend([None, 'drop-reply', None, 'drop-reply'])
        store.put(content, raw=big)
        assert store.get_raw(content.key) == big
        assert_no_orphans(store, tenant)


def test_a_timeout_is_retried(server, content_factory):
    with (
        FaultProxy(server.url) as proxy,
        ConvexStore(proxy.url, server.deploy_key, timeout=0.5, backoff_max=0.05) as store,
    ):
        proxy.faults.append('delay:1.0')
        content = content_factory()
        store.put(content)
        assert store.get(content.key).cif == 'data_x\n'


def test_persistent_failure_is_a_clear_error_without_the_key(server, content_factory, caplog):
    with (
        FaultProxy(server.url) as proxy,
        ConvexStore(proxy.url, server.deploy_key, retries=3, backoff_max=0.01) as store,
        caplog.at_level(logging.WARNING),
    ):
        proxy.faults.extend(['status:503'] * 3)
        with pytest.raises(BackendUnavailableError, match='after 3 attempts: HTTP 503') as info:
            store.put(content_factory())
    assert server.deploy_key not in str(info.value)
    assert server.deploy_key not in caplog.text
    assert 'retrying' in caplog.text


def test_unreachable_deployment(content_factory):
    with ConvexStore('http://127.0.0.1:9', 'some-key', retries=2, backoff_max=0.01) as store:
        with pytest.raises(BackendUnavailableError, match='ConnectError'):
            store.put(content_factory())


def test_wrong_deploy_key_is_named_but_never_shown(server, content_factory):
    wrong = 'wrong-key-value-1234567890'
    with ConvexStore(server.url, wrong) as store:
        assert wrong not in repr(store)
        with pytest.raises(ConfigurationError, match='rejected the deploy key') as info:
            store.put(content_factory())
    assert wrong not in str(info.value)
    assert server.deploy_key not in str(info.value)


def test_open_store_selects_convex(server, monkeypatch, content_factory):
    monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'convex')
    monkeypatch.setenv('CONVEX_URL', server.url)
    monkeypatch.setenv('CONVEX_DEPLOY_KEY', server.deploy_key)
    with open_store() as store:
        assert isinstance(store, ConvexStore)
        assert server.deploy_key not in repr(store)
        store.put(content_factory())


def test_batches_use_few_calls(server, tenant):
    with ConvexStore(server.url, server.deploy_key) as store:
        items = [
            (
                StructureContent(
                    key=StructureKey.of(tenant, 'ws', f's{i}'), source=Source(kind='cif'), cif=f'data_{i}\n'
                ),
                f'raw {i}',
            )
            for i in range(1000)
        ]
        before = store.calls
        results = store.put_many(items)
        assert {r.status for r in results} == {'created'}
        assert store.calls - before <= 10
        assert len(list(store.iter_workspace(tenant, 'ws', page_size=200))) == 1000


WRITER = textwrap.dedent(
    """
    import sys, time
    from aiida_structstore.models import Source, StructureContent, StructureKey
    from aiida_structstore.store.convex import ConvexStore

    url, key, tenant = sys.argv[1:4]
    store = ConvexStore(url, key)
    original = ConvexStore._stage_group
    def stage_then_hang(self, *args, **kwargs):
        original(self, *args, **kwargs)
        print('STAGED', flush=True)
        time.sleep(3600)  # killed here, between two chunk batches
    ConvexStore._stage_group = stage_then_hang
    content = StructureContent(key=StructureKey.of(tenant, 'ws', 'victim'), source=Source(kind='cif'), cif='data_new')
    store.put(content, raw='N' * (13 * 1024 * 1024))
    """
)


def test_writer_killed_between_chunk_batches(server, content_factory, tenant):
    old_raw = 'old \u00e9 version\r\n' * 400_000  # ~7 MB: itself staged
    with ConvexStore(server.url, server.deploy_key) as store:
        old = content_factory('victim', cif='data_old')
        store.put(old, raw=old_raw)
        writer = subprocess.Popen(
            [sys.executable, '-c', WRITER, server.url, server.deploy_key, tenant],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        try:
            assert writer.stdout.readline().strip() == 'STAGED'
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        # The previous version is still what readers get, intact.
        assert store.get(old.key).cif == 'data_old'
        assert store.get_raw(old.key) == old_raw
        stats = store.storage_stats(tenant, 'ws')
        assert [s['state'] for s in stats['chunk_sets']] == ['staging']
        assert stats['chunks'] > stats['committed_chunks']
        # A young staging upload may belong to a live writer: the default collection leaves it.
        assert store.collect_garbage(tenant, 'ws') == 0
        # A later write and a collection leave no orphan chunk.
        new = content_factory('victim', cif='data_newer')
        assert store.put(new, raw='newer').status == 'updated'
        assert store.collect_garbage(tenant, 'ws', older_than_seconds=0) > 0
        assert store.get_raw(new.key) == 'newer'
        assert_no_orphans(store, tenant)
