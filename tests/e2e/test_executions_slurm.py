"""Execution records of calculation jobs on Slurm that fail and that are killed, followed by the watcher from the
daemon's broadcasts: the records show AiiDA's state and exit status, and the Slurm job id."""

from __future__ import annotations

import secrets

import pytest
from aiida import orm
from aiida.engine import submit
from aiida.engine.processes import control
from aiida.plugins import CalculationFactory

from aiida_structstore.core.executions import ExecutionKey
from aiida_structstore.executions.sync import sync_executions
from aiida_structstore.executions.watch import ExecutionWatcher
from aiida_structstore.store.convex import ConvexStore

from ..executions.conftest import Pushes

pytestmark = pytest.mark.timeout(600)
ArithmeticAdd = CalculationFactory('core.arithmetic.add')


@pytest.fixture
def watched(daemon, convex_server, convex_backend):
    """A watcher of the processes of a new group, and a function that submits into that group."""
    tenant = f'e2e-{secrets.token_hex(3)}'
    group = orm.Group(label=f'e2e-executions-{tenant}').store()
    pushes = Pushes()
    with (
        ConvexStore(convex_server.url, convex_server.deploy_key) as store,
        # A job's Slurm state (queued, running) changes without a broadcast: the watcher's periodic catch-up finds
        # it. Every second here, not every minute (the default), so the tests wait for the catch-up, not the clock.
        ExecutionWatcher(
            store, tenant_id=tenant, workspace_id='jobs', group=group, on_push=pushes, catch_up_interval=1.0
        ) as watcher,
    ):

        def submit_into_group(builder):
            node = submit(builder)
            group.add_nodes(node)
            # Broadcasts that came before the node joined the group were left out; a catch-up finds them.
            watcher.request_catch_up()
            return node

        def record(node):
            return convex_backend.executions.find(ExecutionKey.of(tenant, 'jobs', node.uuid))

        yield submit_into_group, record, pushes, watcher


def add_builder(code, x, y, prepend_text=''):
    builder = ArithmeticAdd.get_builder()
    builder.code = code
    builder.x, builder.y = orm.Int(x), orm.Int(y)
    builder.metadata.options = {
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
        'max_wallclock_seconds': 600,
        'prepend_text': prepend_text,
    }
    return builder


@pytest.mark.slow
def test_a_failed_calculation_on_slurm(watched, add_code):
    submit_into_group, record, pushes, _ = watched
    node = submit_into_group(add_builder(add_code, 1, -3))  # a negative sum: exit status 410
    pushes.wait_for(lambda: (r := record(node)) is not None and r.state == 'finished', 'the finished record')
    result = record(node)
    assert orm.load_node(node.pk).exit_status == 410
    assert (result.state, result.exit_status) == ('finished', 410)
    assert result.exit_message == ArithmeticAdd.exit_codes.ERROR_NEGATIVE_NUMBER.message
    assert result.scheduler.type == 'core.slurm' and result.scheduler.job_id == orm.load_node(node.pk).get_job_id()
    assert result.computer == add_code.computer.label and result.hostname is None
    assert 'waiting' in pushes.states(node.uuid)


@pytest.mark.slow
def test_host_names_only_when_configured(watched, add_code, convex_backend, monkeypatch):
    submit_into_group, record, pushes, _ = watched
    node = submit_into_group(add_builder(add_code, 1, 1))
    pushes.wait_for(lambda: (r := record(node)) is not None and r.state == 'finished', 'the finished record')
    assert record(node).hostname is None
    tenant = record(node).key.tenant_id
    report = sync_executions(
        convex_backend, tenant_id=tenant, workspace_id='hosts', processes=[node.pk], hostnames=True
    )
    assert report.new == 1
    shown = convex_backend.executions.get(ExecutionKey.of(tenant, 'hosts', node.uuid))
    assert shown.hostname == add_code.computer.hostname == 'localhost'


@pytest.mark.slow
def test_a_killed_calculation_on_slurm(watched, add_code):
    submit_into_group, record, pushes, _ = watched
    node = submit_into_group(add_builder(add_code, 1, 2, prepend_text='sleep 600'))

    def running_on_slurm():
        r = record(node)
        return r is not None and r.scheduler is not None and r.scheduler.state == 'running'

    pushes.wait_for(running_on_slurm, 'the job running on Slurm')
    job_id = record(node).scheduler.job_id
    assert job_id == orm.load_node(node.pk).get_job_id()
    control.kill_processes([orm.load_node(node.pk)], timeout=60)
    pushes.wait_for(lambda: record(node).state == 'killed', 'the killed record')
    killed = record(node)
    assert orm.load_node(node.pk).is_killed
    assert (killed.state, killed.exit_status) == ('killed', orm.load_node(node.pk).exit_status)
    assert killed.scheduler.job_id == job_id
