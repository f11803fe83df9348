"""The live path on the real broker: state-change broadcasts become records; the watcher survives a broker outage
(its connection cut and refused, as in a restart) and a restart of the Convex deployment, and catches up from
modification times. Every wait is on the watcher's pushes (a condition), never on time."""

from __future__ import annotations

import contextlib
import secrets

import pytest

from aiida_structstore.core.executions import ExecutionKey
from aiida_structstore.executions.watch import ExecutionWatcher
from aiida_structstore.store.convex import ConvexStore
from aiida_structstore.structures.sync import sync_structures

from ..faults import FaultProxy
from ..tcp_proxy import TcpProxy
from .conftest import communicator_at
from .processes import FailingWorkChain, StrainWorkChain, run_broadcasting

pytestmark = pytest.mark.timeout(600)


def find(store, tenant, node, workspace='w'):
    return store.executions.find(ExecutionKey.of(tenant, workspace, node.uuid))


def finished(store, tenant, node, workspace='w'):
    record = find(store, tenant, node, workspace)
    return record is not None and record.state == 'finished'


@contextlib.contextmanager
def events_only_watcher(store, tenant, pushes, communicator):
    """A watcher on ``communicator`` that catches up only when it starts and when the broker comes back (no periodic
    catch-up), yielded once that first catch-up is done."""
    with ExecutionWatcher(
        store,
        tenant_id=tenant,
        workspace_id='w',
        linked=True,
        communicator=communicator,
        catch_up_interval=3600,
        on_push=pushes,
    ) as watcher:
        pushes.wait_for(lambda: watcher.stats.catch_ups >= 1, 'the first catch-up')
        yield watcher


@pytest.fixture
def structure(generate_structure, convex_backend, tenant):
    """A silicon structure synced into ``tenant``/``w`` of the session's server."""
    node = generate_structure('silicon').store()
    report = sync_structures(convex_backend, tenant_id=tenant, workspace_id='w', nodes=[node.pk], progress=False)
    assert report.ok
    return node


def test_broadcasts_become_records(broker, watch_store, convex_backend, structure, tenant, pushes):
    with ExecutionWatcher(
        watch_store, tenant_id=tenant, workspace_id='w', linked=True, catch_up_interval=3600, on_push=pushes
    ) as watcher:
        pushes.wait_for(lambda: watcher.stats.catch_ups >= 1, 'the first catch-up')
        _, chain = run_broadcasting(StrainWorkChain, structure=structure)
        _, failed = run_broadcasting(FailingWorkChain, structure=structure)
        child = chain.called[0]
        pushes.wait_for(
            lambda: all(finished(convex_backend, tenant, n) for n in (chain, child, failed)), 'three finished records'
        )
        assert watcher.stats.events >= 9  # created, running, finished of each process
        assert watcher.stats.catch_ups == 1  # the records came from the broadcasts
    record = find(convex_backend, tenant, chain)
    assert record.structures_in == (structure.uuid,) and record.process_label == 'StrainWorkChain'
    assert find(convex_backend, tenant, child).parent_uuid == chain.uuid
    record = find(convex_backend, tenant, failed)
    assert (record.state, record.exit_status) == ('finished', 400)
    assert record.exit_message == 'could not read <path> on the cluster'
    assert 'running' in pushes.states(chain.uuid) or 'created' in pushes.states(chain.uuid)
    assert pushes.states(chain.uuid)[-1] == 'finished'
    assert all(latency >= 0 for latency in watcher.stats.latencies)


def test_processes_outside_the_selection_are_left_out(
    broker, watch_store, convex_backend, structure, generate_structure, tenant, pushes
):
    other = generate_structure('silicon').store()  # never projected into the workspace
    with ExecutionWatcher(watch_store, tenant_id=tenant, workspace_id='w', linked=True, on_push=pushes) as watcher:
        _, outside = run_broadcasting(StrainWorkChain, structure=other)
        _, inside = run_broadcasting(StrainWorkChain, structure=structure)
        pushes.wait_for(lambda: finished(convex_backend, tenant, inside), 'the selected process')
        assert watcher.stats.events >= 6
    assert find(convex_backend, tenant, outside) is None


def test_a_watcher_started_later_catches_up(broker, watch_store, convex_backend, structure, tenant, pushes):
    _, before = run_broadcasting(StrainWorkChain, structure=structure)
    with ExecutionWatcher(watch_store, tenant_id=tenant, workspace_id='w', linked=True, on_push=pushes):
        pushes.wait_for(lambda: finished(convex_backend, tenant, before), 'the process that ran before the watcher')


@pytest.mark.slow
def test_survives_a_broker_outage_and_catches_up(broker, watch_store, convex_backend, structure, tenant, pushes):
    proxy = TcpProxy('127.0.0.1', int(broker.get_url().split('@')[-1].split('/')[0].split(':')[1].split('?')[0]))
    communicator = communicator_at(broker, proxy.port)
    try:
        with events_only_watcher(watch_store, tenant, pushes, communicator) as watcher:
            _, first = run_broadcasting(StrainWorkChain, structure=structure)
            pushes.wait_for(lambda: finished(convex_backend, tenant, first), 'a record through the proxy')
            events = watcher.stats.events

            proxy.cut()  # the broker is gone for the watcher: connection closed, reconnections refused
            _, during = run_broadcasting(StrainWorkChain, structure=structure)  # its broadcasts never reach the watcher
            assert watcher.stats.events == events
            proxy.restore()
            pushes.wait_for(lambda: finished(convex_backend, tenant, during), 'the catch-up after the reconnection')
            assert watcher.stats.reconnects >= 1 and watcher.stats.catch_ups >= 2

            _, after = run_broadcasting(StrainWorkChain, structure=structure)
            pushes.wait_for(lambda: finished(convex_backend, tenant, after), 'a broadcast after the reconnection')
            assert watcher.stats.events > events  # the subscription itself came back, not only the catch-up
    finally:
        communicator.close()
        proxy.close()


@pytest.mark.slow
def test_survives_a_restart_of_the_broker(
    broker, rabbitmq_node, watch_store, convex_backend, structure, tenant, pushes
):
    """A real restart of a broker of the test's own (the whole node stopped, then started again): the watcher's
    connection comes back by itself, the broadcast queue and its binding are declared again, what changed meanwhile is
    caught up, and later broadcasts arrive again."""
    from aiida.engine import run_get_node
    from aiida.manage import get_manager

    watcher_communicator = communicator_at(broker, rabbitmq_node.port)
    runner_communicator = communicator_at(broker, rabbitmq_node.port)
    runner = get_manager().create_runner(communicator=runner_communicator, with_persistence=False)
    try:
        with events_only_watcher(watch_store, tenant, pushes, watcher_communicator) as watcher:
            _, first = runner.run_get_node(StrainWorkChain, structure=structure)
            pushes.wait_for(lambda: finished(convex_backend, tenant, first), 'a record from the own broker')
            events = watcher.stats.events

            rabbitmq_node.stop()
            # While the broker is down, processes go on (this one broadcasts nothing, as its broadcasts would be lost).
            _, during = run_get_node(StrainWorkChain, structure=structure)
            rabbitmq_node.start()
            pushes.wait_for(lambda: finished(convex_backend, tenant, during), 'the catch-up after the restart')
            assert watcher.stats.reconnects >= 1 and watcher.stats.events == events

            _, after = runner.run_get_node(StrainWorkChain, structure=structure)
            pushes.wait_for(lambda: finished(convex_backend, tenant, after), 'a broadcast after the restart')
            assert watcher.stats.events > events
    finally:
        # Not runner.close(): it would close the event loop it shares with every runner of this interpreter.
        runner_communicator.close()
        watcher_communicator.close()


@pytest.mark.slow
def test_survives_a_store_outage(broker, convex_server, generate_structure, tenant, pushes):
    down = {'on': False}
    with FaultProxy(convex_server.url) as proxy:
        proxy.hook = lambda phase, function: 'drop' if down['on'] and phase == 'request' else None
        with ConvexStore(proxy.url, convex_server.deploy_key, retries=2, backoff_max=0.05) as store:
            # Through the proxy the deployment has another URL, so another store id: sync the structure there.
            structure = generate_structure('silicon').store()
            assert sync_structures(store, tenant_id=tenant, workspace_id='w', nodes=[structure.pk], progress=False).ok
            watcher = ExecutionWatcher(
                store, tenant_id=tenant, workspace_id='w', linked=True, retry_interval=0.2, on_push=pushes
            )
            with watcher:
                pushes.wait_for(lambda: watcher.stats.catch_ups >= 1, 'the first catch-up')
                down['on'] = True
                _, during = run_broadcasting(StrainWorkChain, structure=structure)
                pushes.wait_for(lambda: watcher.stats.store_errors >= 1, 'a push that failed')
                down['on'] = False
                # The work is kept and pushed again once the store answers.
                pushes.wait_for(lambda: finished(store, tenant, during), 'the record after the outage')
                assert watcher.stats.written >= 2


@pytest.mark.slow
def test_survives_a_restart_of_the_deployment_that_lost_its_data(broker, generate_structure, pushes):
    """The local Convex server restarted on the same URL is a new, empty deployment (a new instance id): the
    watcher writes every selected process into it again."""
    from devserver.local_convex import local_convex

    tenant = f't-{secrets.token_hex(4)}'
    with local_convex() as server:
        port, key = server.url.rsplit(':', 1)[1], server.deploy_key
        reader = ConvexStore(server.url, key)
        structure = generate_structure('silicon').store()
        assert sync_structures(reader, tenant_id=tenant, workspace_id='w', nodes=[structure.pk], progress=False).ok
        store = ConvexStore(server.url, key, retries=2, backoff_max=0.05)
        watcher = ExecutionWatcher(
            store, tenant_id=tenant, workspace_id='w', linked=True, retry_interval=0.2, on_push=pushes
        )
        watcher.start()
        _, first = run_broadcasting(StrainWorkChain, structure=structure)
        pushes.wait_for(lambda: finished(reader, tenant, first), 'the first record')
    try:
        _, during = run_broadcasting(StrainWorkChain, structure=structure)  # the deployment is down
        pushes.wait_for(lambda: watcher.stats.store_errors >= 1, 'a push that failed')
        with local_convex(port=int(port), deploy_key=key) as server:
            fresh = ConvexStore(server.url, key)
            pushes.wait_for(
                lambda: finished(fresh, tenant, first) and finished(fresh, tenant, during), 'both records, again'
            )
            # The structure's projection went to the lost instance: the records name no structure now.
            assert find(fresh, tenant, first).structures_in == ()
            fresh.close()
            # Its data lost once more (a reset: the same as a restart, without the downtime), and nothing changed
            # meanwhile: nothing looks changed to the watcher, but the next catch-up notices the new instance and
            # writes everything again.
            server.reset()
            fresh = ConvexStore(server.url, key)
            watcher.request_catch_up()
            pushes.wait_for(
                lambda: finished(fresh, tenant, first) and finished(fresh, tenant, during), 'both records, once more'
            )
            fresh.close()
    finally:
        watcher.stop()
        store.close()
        reader.close()
