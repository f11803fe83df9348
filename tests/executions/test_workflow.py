"""The ``structstore.project`` work chain records its own execution and its caller's."""

from __future__ import annotations

from aiida import orm
from aiida.engine import run_get_node

from aiida_structstore.core.executions import ExecutionKey

from .processes import StrainAndProjectWorkChain


def test_the_projection_step_records_itself_and_its_caller(convex_backend, generate_structure, tenant):
    structure = generate_structure('silicon').store()
    _, parent = run_get_node(
        StrainAndProjectWorkChain, structure=structure, tenant_id=orm.Str(tenant), workspace_id=orm.Str('wf')
    )
    assert parent.is_finished_ok
    step = next(n for n in parent.called if n.process_label == 'ProjectStructuresWorkChain')
    # `called` has no order: the strain calcfunction is the one that is not the step.
    strained = next(n for n in parent.called if n.pk != step.pk).outputs.result
    record = convex_backend.executions.get(ExecutionKey.of(tenant, 'wf', step.uuid))
    assert (record.state, record.exit_status, record.kind) == ('finished', 0, 'workchain')
    assert record.parent_uuid == parent.uuid
    assert record.structures_in == tuple(sorted([structure.uuid, strained.uuid]))
    caller = convex_backend.executions.get(ExecutionKey.of(tenant, 'wf', parent.uuid))
    # Recorded while it waited for the step; its final state is the watcher's or the next sync's to record.
    assert caller.state in ('waiting', 'running') and caller.exit_status is None
    assert caller.structures_in == (structure.uuid,)
    of_strained = convex_backend.executions.list(tenant, 'wf', structure_id=strained.uuid).items
    assert [r.key.process_uuid for r in of_strained] == [step.uuid]


def test_recording_can_be_turned_off(convex_backend, generate_structure, tenant):
    structure = generate_structure('silicon').store()
    _, parent = run_get_node(
        StrainAndProjectWorkChain,
        structure=structure,
        tenant_id=orm.Str(tenant),
        workspace_id=orm.Str('off'),
        record_executions=orm.Bool(False),
    )
    assert parent.is_finished_ok
    assert convex_backend.executions.list(tenant, 'off').items == ()
    assert len(list(convex_backend.structures.iter_workspace(tenant, 'off'))) == 2
