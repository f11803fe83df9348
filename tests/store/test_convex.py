"""Behaviour of the Convex backend beyond the contract: retries, faults, interrupted writers, secrets."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from aiida_structstore.core.exceptions import BackendError, BackendUnavailableError, ConfigurationError
from aiida_structstore.core.structures import Source, StructureContent, StructureKey
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
    stats = store.structures.storage_stats(tenant, workspace)
    assert stats['chunk_sets'] == []
    assert stats['chunks'] == stats['committed_chunks']


@pytest.mark.parametrize(
    'faults',
    [['status:503'], ['status:429', 'status:502'], ['reset'], ['drop-reply'], ['reset', 'drop-reply', 'status:500']],
)
@pytest.mark.slow
def test_transient_faults_are_retried_and_end_in_the_exact_state(server, content_factory, tenant, faults):
    with FaultProxy(server.url) as proxy, ConvexStore(proxy.url, server.deploy_key, backoff_max=0.05) as store:
        content = content_factory()
        proxy.faults.extend(faults)
        result = store.structures.put(content, raw='raw \U0001f600' * 1000)
        # A lost reply means the mutation ran and its retry found the same content: reported as unchanged.
        assert result.status in ('created', 'unchanged')
        assert not proxy.faults
        assert store.structures.get(content.key).cif == 'data_x\n'
        assert store.structures.get_raw(content.key) == 'raw \U0001f600' * 1000
        assert_no_orphans(store, tenant)


@pytest.mark.slow
def test_lost_reply_of_a_staged_upload(server, content_factory, tenant):
    big = 'x' * (9 * 1024 * 1024)
    with FaultProxy(server.url) as proxy, ConvexStore(proxy.url, server.deploy_key, backoff_max=0.05) as store:
        content = content_factory('staged')
        store.structures.put(content, raw='old version')
        # contentHashes, stageChunks (2 calls: lose the 1st reply), putBatch (lose the reply)
        proxy.faults.extend([None, 'drop-reply', None, 'drop-reply'])
        store.structures.put(content, raw=big)
        assert store.structures.get_raw(content.key) == big
        assert_no_orphans(store, tenant)


def test_a_timeout_is_retried(server, content_factory):
    with (
        FaultProxy(server.url) as proxy,
        ConvexStore(proxy.url, server.deploy_key, timeout=0.5, backoff_max=0.05) as store,
    ):
        proxy.faults.append('delay:1.0')
        content = content_factory()
        store.structures.put(content)
        assert store.structures.get(content.key).cif == 'data_x\n'


def test_persistent_failure_is_a_clear_error_without_the_key(server, content_factory, caplog):
    with (
        FaultProxy(server.url) as proxy,
        ConvexStore(proxy.url, server.deploy_key, retries=3, backoff_max=0.01) as store,
        caplog.at_level(logging.WARNING),
    ):
        proxy.faults.extend(['status:503'] * 3)
        with pytest.raises(BackendUnavailableError, match='after 3 attempts: HTTP 503') as info:
            store.structures.put(content_factory())
    assert server.deploy_key not in str(info.value)
    assert server.deploy_key not in caplog.text
    assert 'retrying' in caplog.text


def test_unreachable_deployment(content_factory):
    with ConvexStore('http://127.0.0.1:9', 'some-key', retries=2, backoff_max=0.01) as store:
        with pytest.raises(BackendUnavailableError, match='ConnectError'):
            store.structures.put(content_factory())


def test_wrong_deploy_key_is_named_but_never_shown(server, content_factory):
    wrong = 'wrong-key-value-1234567890'
    with ConvexStore(server.url, wrong) as store:
        assert wrong not in repr(store)
        with pytest.raises(ConfigurationError, match='rejected the deploy key') as info:
            store.structures.put(content_factory())
    assert wrong not in str(info.value)
    assert server.deploy_key not in str(info.value)


def test_open_store_selects_convex(server, monkeypatch, content_factory):
    monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'convex')
    monkeypatch.setenv('CONVEX_URL', server.url)
    monkeypatch.setenv('CONVEX_DEPLOY_KEY', server.deploy_key)
    with open_store() as store:
        assert isinstance(store, ConvexStore)
        assert server.deploy_key not in repr(store)
        store.structures.put(content_factory())


@pytest.mark.slow
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
        before = store.transport.calls
        results = store.structures.put_many(items)
        assert {r.status for r in results} == {'created'}
        assert store.transport.calls - before <= 10
        assert len(list(store.structures.iter_workspace(tenant, 'ws', page_size=200))) == 1000


WRITER = textwrap.dedent(
    """
    import sys, threading
    from aiida_structstore.core.structures import Source, StructureContent, StructureKey
    from aiida_structstore.store.convex import ConvexStore, ConvexStructures

    url, key, tenant = sys.argv[1:4]
    store = ConvexStore(url, key)
    original = ConvexStructures._stage_group
    def stage_then_hang(self, *args, **kwargs):
        original(self, *args, **kwargs)
        print('STAGED', flush=True)
        threading.Event().wait()  # blocks until killed here, between two chunk batches
    ConvexStructures._stage_group = stage_then_hang
    content = StructureContent(key=StructureKey.of(tenant, 'ws', 'victim'), source=Source(kind='cif'), cif='data_new')
    store.structures.put(content, raw='N' * (13 * 1024 * 1024))
    """
)


def test_writer_killed_between_chunk_batches(server, content_factory, tenant):
    old_raw = 'old \u00e9 version\r\n' * 400_000  # ~7 MB: itself staged
    with ConvexStore(server.url, server.deploy_key) as store:
        old = content_factory('victim', cif='data_old')
        store.structures.put(old, raw=old_raw)
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
        assert store.structures.get(old.key).cif == 'data_old'
        assert store.structures.get_raw(old.key) == old_raw
        stats = store.structures.storage_stats(tenant, 'ws')
        assert [s['state'] for s in stats['chunk_sets']] == ['staging']
        assert stats['chunks'] > stats['committed_chunks']
        # A young staging upload may belong to a live writer: the default collection leaves it.
        assert store.structures.collect_garbage(tenant, 'ws') == 0
        # A later write and a collection leave no orphan chunk.
        new = content_factory('victim', cif='data_newer')
        assert store.structures.put(new, raw='newer').status == 'updated'
        assert store.structures.collect_garbage(tenant, 'ws', older_than_seconds=0) > 0
        assert store.structures.get_raw(new.key) == 'newer'
        assert_no_orphans(store, tenant)


# -- misconfigurations and secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize('suffix', ['\n', ' ', '\r\n', '\t'])
def test_whitespace_around_the_key_is_removed(server, content_factory, suffix):
    with ConvexStore(server.url, server.deploy_key + suffix) as store:
        assert store.structures.put(content_factory()).status == 'created'


@pytest.mark.parametrize('bad', ['in side', 'new\nline', 'tab\there', 'caf\u00e9', 'nul\x00'])
def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it(bad):
    key = f'prod:secret-{bad}-value'
    with pytest.raises(ConfigurationError, match='CONVEX_DEPLOY_KEY has a space, control or non-ASCII') as info:
        ConvexStore('https://happy-otter-123.convex.cloud', key)
    assert 'secret' not in str(info.value)


def test_swapped_url_and_key_never_show_the_key(server):
    with pytest.raises(ConfigurationError, match='swapped') as info:
        ConvexStore(server.deploy_key, server.url)
    assert server.deploy_key not in str(info.value)
    assert server.url not in str(info.value)


@pytest.mark.parametrize(
    'url',
    ['http://user:hunter2secret@127.0.0.1:9', 'https://:hunter2secret@x.convex.cloud', 'https://hunter2secret@x.cloud'],
)
def test_credentials_in_the_url_are_refused_without_showing_them(url):
    with pytest.raises(ConfigurationError, match='must not contain a user name or password') as info:
        ConvexStore(url, 'some-key')
    assert 'hunter2secret' not in str(info.value)


@pytest.mark.parametrize(
    ('url', 'message'),
    [
        ('https://x.convex.cloud?key=1', 'query'),
        ('https://x.convex.cloud#frag', 'fragment'),
        ('https:///nohost', 'no host'),
        ('https://x.convex.cloud:99999', 'bad host or port'),
        ('https://x .convex.cloud', 'spaces or control'),
    ],
)
def test_malformed_urls_are_refused(url, message):
    with pytest.raises(ConfigurationError, match=message):
        ConvexStore(url, 'some-key')


def test_plain_http_only_to_this_machine_unless_allowed():
    for url in ('http://127.0.0.1:3210', 'http://localhost:3210', 'http://[::1]:3210'):
        ConvexStore(url, 'key').close()
    with pytest.raises(ConfigurationError, match='unencrypted'):
        ConvexStore('http://convex.internal.example:3210', 'key')
    ConvexStore('http://convex.internal.example:3210', 'key', allow_http=True).close()


@pytest.mark.parametrize(
    'faults',
    [
        ['status:503'] * 2,
        ['reset'] * 2,
        ['reply:401:{"code":"BadAdminKey","message":"bad key"}'],
        ['reply:404:{"code":"NotFound","message":"no"}'],
        ['reply:200:{"status":"error","errorMessage":"[Request ID: 1] Server Error"}'],
    ],
)
def test_failures_show_neither_key_nor_url_and_keep_no_frame_with_them(server, content_factory, caplog, faults):
    from ..leaks import leaks

    with (
        FaultProxy(server.url) as proxy,
        ConvexStore(proxy.url, server.deploy_key, retries=2, backoff_max=0.01) as store,
        caplog.at_level(logging.DEBUG),
    ):
        proxy.faults.extend(faults)
        with pytest.raises(Exception) as info:
            store.structures.put(content_factory())
        assert leaks(info.value, server.deploy_key, proxy.url) == []
        assert server.deploy_key not in caplog.text  # not even in the HTTP libraries' debug logs
        # The URL may appear in httpx's own INFO/DEBUG lines (off unless the root logger is set lower than WARNING).
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING and proxy.url in r.getMessage()]
        assert proxy.url.split('//')[1] not in str(info.value)


def test_unreachable_deployment_keeps_no_frame_with_the_key(content_factory, caplog):
    from ..leaks import leaks

    key = 'prod:this-is-the-secret-deploy-key'
    with (
        ConvexStore('http://127.0.0.1:9', key, retries=2, backoff_max=0.01) as store,
        caplog.at_level(logging.DEBUG),
    ):
        with pytest.raises(BackendUnavailableError) as info:
            store.structures.put(content_factory())
    assert leaks(info.value, key, '127.0.0.1:9') == []
    assert key not in caplog.text


def test_malformed_replies_are_retried(server, content_factory, tenant):
    with FaultProxy(server.url) as proxy, ConvexStore(proxy.url, server.deploy_key, backoff_max=0.01) as store:
        proxy.faults.extend(['garble', 'reply:200:{"status":"success"}', 'reply:560:not json', 'garble'])
        content = content_factory()
        assert store.structures.put(content, raw='r' * 1000).status in ('created', 'unchanged')
        assert store.structures.get_raw(content.key) == 'r' * 1000
        assert not proxy.faults
        assert_no_orphans(store, tenant)


def test_a_missing_function_answered_as_a_real_deployment_does(server, content_factory):
    message = "[Request ID: 7f3a] Could not find public function for 'structures:putBatch'"
    reply = json.dumps({'status': 'error', 'errorMessage': message})
    with FaultProxy(server.url) as proxy, ConvexStore(proxy.url, server.deploy_key) as store:
        proxy.faults.append(f'reply:200:{reply}')
        with pytest.raises(BackendError, match=r'is not deployed.*deploy the functions in convex/'):
            store.structures.put(content_factory())


@pytest.mark.slow
@pytest.mark.parametrize('megabytes', [8.1, 20])
def test_deleting_and_replacing_large_records_leaves_nothing_behind(server, content_factory, tenant, megabytes):
    raw = 'K_POINTS \u00e9\n' * int(megabytes * 1024 * 1024 / 12)
    with ConvexStore(server.url, server.deploy_key) as store:
        first = content_factory('big')
        store.structures.put(first, raw=raw)
        assert store.structures.put(content_factory('big', cif='data_new\n'), raw=raw[::-1]).status == 'updated'
        assert store.structures.get_raw(first.key) == raw[::-1]
        assert store.structures.delete(first.key)
        store.structures.put(content_factory('other'), raw=raw)
        assert store.structures.collect_garbage(tenant, 'ws', older_than_seconds=0) == 0  # nothing was left to collect
        assert_no_orphans(store, tenant)


def test_batches_are_sized_to_the_elements_one_call_may_name(server, tenant):
    """250 records of 20 elements each name 5,000 elements, more than one putBatch takes (maxBatchElements, 4,000):
    the client sends them in more calls, each within the limit."""
    from aiida_structstore.core.limits import PROTOCOL

    symbols = sorted('H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca'.split())
    structure = {
        'elements': symbols,
        'nelements': len(symbols),
        'nsites': len(symbols),
        'chemical_formula_reduced': ''.join(symbols),
        'cartesian_site_positions': [[float(i), 0.0, 0.0] for i in range(len(symbols))],
    }
    items = [
        StructureContent(key=StructureKey.of(tenant, 'ws', f's{i:03d}'), source=Source(kind='cif'), structure=structure)
        for i in range(250)
    ]
    assert 250 * len(symbols) > PROTOCOL['maxBatchElements']
    with ConvexStore(server.url, server.deploy_key) as store:
        calls = store.transport.calls
        results = store.structures.put_many([(item, None) for item in items])
        assert [r.status for r in results] == ['created'] * 250
        assert store.transport.calls - calls == 2
        assert sum(1 for _ in store.structures.iter_workspace(tenant, 'ws')) == 250
