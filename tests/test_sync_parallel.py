"""The parallel sync: ``structstore.sync`` cuts a selection into slices that daemon workers sync at the same time."""

from __future__ import annotations

import re
import secrets

import pytest
from aiida import orm
from aiida.engine import ProcessState
from aiida.plugins import WorkflowFactory

from aiida_structstore.structures.verify import verify_workspace
from aiida_structstore.tracking import target_extra

SyncWorkChain = WorkflowFactory('structstore.sync')

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def two_workers(convex_backend, store_daemon):
    """The daemon with two workers, started with the store settings in its environment."""
    assert store_daemon.get_numprocesses()['numprocesses'] == 2
    return store_daemon


@pytest.mark.slow
def test_slices_run_by_two_workers_sync_everything_once(
    two_workers, submit_and_await, convex_backend, generate_structure, run_cli_command
):
    tenant = f'par-{secrets.token_hex(3)}'
    group = orm.Group(label=f'parallel-{tenant}').store()
    names = ('silicon', 'fe2o3', 'alloy', 'vacancy')
    nodes = [generate_structure(names[i % 4]).store() for i in range(60)]
    group.add_nodes(nodes)
    inputs = {
        'tenant_id': orm.Str(tenant),
        'workspace_id': orm.Str('w'),
        'group': orm.Str(group.label),
        'parts': orm.Int(4),
        'batch_size': orm.Int(7),
    }
    node = submit_and_await(SyncWorkChain, timeout=300, **inputs)
    assert node.is_finished_ok, node.exit_message
    report = node.outputs.report.get_dict()
    assert (report['selected'], report['new'], report['failed']) == (60, 60, 0)
    slices = [n for n in node.called if n.process_label == 'SyncSliceWorkChain']
    assert len(slices) == 4 and sum(p.outputs.report['selected'] for p in slices) == 60
    check = verify_workspace(convex_backend, tenant, 'w')
    assert (check.checked, check.matching, check.remembered, check.problems) == (60, 60, 60, [])
    for structure in nodes:
        assert orm.load_node(structure.pk).base.extras.get(target_extra(convex_backend.store_id, tenant, 'w'))

    again = submit_and_await(SyncWorkChain, timeout=300, **inputs)
    assert again.outputs.report['unchanged'] == 60 and again.outputs.report['new'] == 0

    # The same through the CLI: it submits and returns the work chain's pk.
    from aiida_structstore.cli import cmd_structstore

    result = run_cli_command(cmd_structstore, ['sync', '-G', group.label, '-t', tenant, '-w', 'cli', '--parts', '3'])
    pk = int(re.search(r'SyncWorkChain<(\d+)>', result.output).group(1))
    node = submit_and_await(orm.load_node(pk), timeout=300)
    assert node.outputs.report['new'] == 60
    assert len(list(convex_backend.structures.iter_workspace(tenant, 'cli', page_size=100))) == 60


def test_invalid_inputs_are_refused_before_anything_runs(convex_backend):
    from aiida.engine import run_get_node

    with pytest.raises(ValueError, match='workspace_id'):
        run_get_node(SyncWorkChain, tenant_id=orm.Str('t'), workspace_id=orm.Str('a/b'))
    with pytest.raises(ValueError, match='parts must be from 1 to 1000'):
        run_get_node(SyncWorkChain, tenant_id=orm.Str('t'), workspace_id=orm.Str('w'), parts=orm.Int(0))
    _, node = run_get_node(SyncWorkChain, tenant_id=orm.Str('t'), workspace_id=orm.Str('w'), group=orm.Str('nope-x'))
    assert node.exit_status == 201


def test_a_failed_node_fails_the_work_chain_with_its_reason(convex_backend, generate_structure):
    from aiida.engine import run_get_node

    tenant = f'parf-{secrets.token_hex(3)}'
    group = orm.Group(label=f'parallel-fail-{tenant}').store()
    bad = generate_structure()
    bad.label = 'not an id'
    group.add_nodes([generate_structure().store(), bad.store()])
    _, node = run_get_node(
        SyncWorkChain,
        tenant_id=orm.Str(tenant),
        workspace_id=orm.Str('w'),
        group=orm.Str(group.label),
        id_template=orm.Str('{label}x'),
        parts=orm.Int(2),
    )
    assert node.exit_status == 301
    assert node.outputs.report['failed'] == 1
    assert "character ' ' is not allowed" in node.outputs.report['failures'][0][1]
    assert node.process_state is ProcessState.FINISHED
