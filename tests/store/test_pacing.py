"""Writes are paced to a deployment's write throughput (Convex: 4 MiB/s by default), which the local server
enforces as a deployment does: writes over it wait a moment, then get HTTP 429 ``TooManyWrites``."""

from __future__ import annotations

import secrets
import threading

import httpx
import pytest

from aiida_structstore.core.structures import Source, StructureContent, StructureKey
from aiida_structstore.store.convex import ConvexStore

RATE = 4 * 1024 * 1024


@pytest.fixture
def paced_server():
    """A local Convex server with Convex's default write throughput, and a way to read what it saw."""
    from devserver.local_convex import local_convex

    with local_convex(write_bytes_per_second=RATE) as server:
        yield server


def server_stats(server) -> dict:
    return httpx.get(f'{server.url}/stats').json()


def content(tenant, structure_id):
    return StructureContent(key=StructureKey.of(tenant, 'w', structure_id), source=Source.of('pw-input'), cif='x')


@pytest.mark.slow
def test_a_50_mb_upload_is_paced_and_never_refused(paced_server):
    raw = 'K_POINTS crystal \u00e9\n' * (50 * 1024 * 1024 // 20)
    with ConvexStore(paced_server.url, paced_server.deploy_key) as store:
        store.structures.put(content('paced', 'big'), raw=raw)
        assert store.structures.get_raw(StructureKey.of('paced', 'w', 'big')) == raw
    stats = server_stats(paced_server)
    assert stats['throttled'] == 0
    assert stats['bytes_in'] > 50 * 1024 * 1024


@pytest.mark.slow
def test_an_unpaced_writer_runs_into_the_limit(paced_server):
    """Without pacing the same upload is refused again and again (and only the client's retries save it)."""
    raw = 'y' * (30 * 1024 * 1024)
    with ConvexStore(paced_server.url, paced_server.deploy_key, write_rate=0, retries=30, backoff_max=0.5) as store:
        store.structures.put(content('unpaced', 'big'), raw=raw)
    assert server_stats(paced_server)['throttled'] > 0


@pytest.mark.slow
def test_parallel_writers_slow_down_and_all_finish(paced_server):
    """Three writers, each paced to the whole limit: the deployment refuses some writes, the writers halve their
    rate on each refusal, and every upload finishes."""
    raw = 'z' * (7 * 1024 * 1024)
    errors, rates = [], []

    def upload(index):
        try:
            with ConvexStore(paced_server.url, paced_server.deploy_key, backoff_max=1.0) as store:
                store.structures.put(content('parallel', f's{index}'), raw=raw)
                rates.append(store.transport.pacer.rate)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with ConvexStore(paced_server.url, paced_server.deploy_key) as store:
        for index in range(3):
            assert store.structures.get_raw(StructureKey.of('parallel', 'w', f's{index}')) == raw


@pytest.mark.slow
def test_many_small_records_under_the_limit(paced_server):
    tenant = f'many-{secrets.token_hex(3)}'
    items = [(content(tenant, f's{i:05d}'), f'raw text {i} ' * 100) for i in range(10_000)]
    with ConvexStore(paced_server.url, paced_server.deploy_key) as store:
        results = store.structures.put_many(items)
        assert {r.status for r in results} == {'created'}
        assert sum(1 for _ in store.structures.iter_workspace(tenant, 'w', page_size=500)) == 10_000
    assert server_stats(paced_server)['throttled'] == 0


@pytest.fixture
def small_budget_server():
    """A deployment with a quarter of the write throughput the client is told (1 MiB/s against 4 MiB/s)."""
    from devserver.local_convex import local_convex

    with local_convex(write_bytes_per_second=RATE // 4) as server:
        yield server


def test_a_batch_over_the_deployments_write_budget_is_written_in_parts(small_budget_server):
    """One putBatch of 30 records (1.5 MiB) and one record of 1.5 MiB (chunks inline: one putBatch) are each over a
    budget of 1 MiB/s, which the deployment never accepts in one call: the client splits the batch, stages the
    record's chunks over several calls, and every record lands."""
    server = small_budget_server
    tenant = f'budget-{secrets.token_hex(3)}'
    raws = {f's{i:02d}': f'{i:02d} ' * (50 * 1024 // 3) for i in range(30)}
    raws['big'] = 'K_POINTS gamma\n' * (1536 * 1024 // 15)
    items = [(content(tenant, structure_id), raw) for structure_id, raw in raws.items()]
    httpx.post(f'{server.url}/stats')
    with ConvexStore(server.url, server.deploy_key, throttle_patience=30) as store:
        results = store.structures.put_many(items)
        assert [r.status for r in results] == ['created'] * 31
        stored = list(store.structures.iter_workspace(tenant, 'w'))
        assert len(stored) == 31
        for structure_id, raw in raws.items():
            assert store.structures.get_raw(StructureKey.of(tenant, 'w', structure_id)) == raw
        assert store.structures.batch_bytes <= RATE // 4  # later batches are sized to what the deployment took
    stats = server_stats(server)
    assert stats['throttled'] > 0  # the client was told too large a budget, and learnt
    assert stats['calls']['structures:putBatch'] >= 3 and stats['calls']['structures:stageChunks'] >= 2


def test_execution_records_over_the_deployments_write_budget_are_written_in_parts():
    """200 execution records in one putExecutions call (about 300 KB) against a deployment of 256 KiB/s: the call is
    refused as over the budget, sent again in smaller ones, and every record lands."""
    import datetime as dt
    import uuid as uuid_lib

    from aiida_structstore.core.executions import ExecutionContent, ExecutionKey
    from devserver.local_convex import local_convex

    tenant = f'exec-budget-{secrets.token_hex(3)}'
    t0 = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
    records = [
        ExecutionContent.build(
            key=ExecutionKey.of(tenant, 'w', str(uuid_lib.UUID(int=n + 1))),
            process_label='PwCalculation',
            kind='calcjob',
            state='finished',
            exit_status=400,
            exit_message=f'{n:04d} ' + 'x' * 990,
            structures_in=[f's{n:04d}-{i:03d}' for i in range(15)],
            created_at=t0,
            modified_at=t0,
        )
        for n in range(200)
    ]
    with local_convex(write_bytes_per_second=256 * 1024) as server:
        with ConvexStore(server.url, server.deploy_key, throttle_patience=60) as store:
            results = store.executions.put_many(records)
            assert [r.status for r in results] == ['created'] * 200
            assert store.executions.bytes_per_call < 256 * 1024
            listed = store.executions.list(tenant, 'w', limit=200)
            assert len(listed.items) == 200
        stats = server_stats(server)
    assert stats['throttled'] > 0 and stats['calls']['executions:putExecutions'] >= 2
