"""Execution records from real processes: projection, selection (linked, group, descendants), incremental by
modification time, idempotent, per-process failures, and nothing sensitive in a record."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_structstore.core.executions import ExecutionContent, ExecutionKey
from aiida_structstore.executions.sync import EXECUTION_PROJECTION_VERSION, sync_executions
from aiida_structstore.structures.sync import sync_structures
from aiida_structstore.tracking import target_extra

from .processes import StrainWorkChain, crash, fail_reading, strain


@pytest.fixture
def tenant() -> str:
    return f't-{secrets.token_hex(4)}'


def sync_structs(store, tenant, nodes, workspace='w'):
    report = sync_structures(
        store, tenant_id=tenant, workspace_id=workspace, nodes=[n.pk for n in nodes], progress=False
    )
    assert report.ok, report.failures


def record_of(store, tenant, node, workspace='w'):
    return store.executions.get(ExecutionKey.of(tenant, workspace, node.uuid))


@pytest.fixture
def workflow(generate_structure):
    """A stored silicon structure and a finished StrainWorkChain on it (which called ``strain``)."""
    structure = generate_structure('silicon').store()
    _, node = run_get_node(StrainWorkChain, structure=structure)
    assert node.is_finished_ok
    child = node.called[0]
    return structure, node, child, node.outputs.strained


def test_linked_processes_and_what_they_called(convex_backend, workflow, tenant):
    structure, chain, child, strained = workflow
    sync_structs(convex_backend, tenant, [structure, strained])
    report = sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', linked=True)
    assert report.ok, report.failures
    assert (report.new, report.updated, report.unchanged) == (2, 0, 0)
    top = record_of(convex_backend, tenant, chain)
    assert (top.kind, top.state, top.exit_status, top.process_label) == ('workchain', 'finished', 0, 'StrainWorkChain')
    assert top.structures_in == (structure.uuid,) and top.structures_out == (strained.uuid,)
    assert top.parent_uuid is None and top.scheduler is None and top.computer is None and top.hostname is None
    assert top.created_at == chain.ctime.replace(microsecond=chain.ctime.microsecond // 1000 * 1000)
    called = record_of(convex_backend, tenant, child)
    assert (called.kind, called.parent_uuid, called.process_label) == ('calcfunction', chain.uuid, 'strain')
    assert called.structures_in == (structure.uuid,) and called.structures_out == (strained.uuid,)
    of_input = convex_backend.executions.list(tenant, 'w', structure_id=structure.uuid).items
    assert {r.key.process_uuid for r in of_input} == {chain.uuid, child.uuid}
    # The projection is remembered on the process nodes, next to the engine's own extras.
    extras = orm.load_node(chain.pk).base.extras.all
    entry = extras[target_extra(convex_backend.store_id, tenant, 'w')]
    assert entry['content_hash'] == top.content_hash and entry['projection'] == EXECUTION_PROJECTION_VERSION
    assert entry['instance'] == convex_backend.instance
    assert '_aiida_hash' in extras


def test_a_second_sync_writes_nothing_and_calls_nothing(convex_backend, workflow, tenant):
    structure, *_ = workflow
    sync_structs(convex_backend, tenant, [structure])
    first = sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', linked=True)
    assert first.new == 2
    calls = convex_backend.transport.calls
    again = sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', linked=True)
    assert (again.new, again.updated, again.unchanged, again.failed) == (0, 0, 2, 0)
    assert convex_backend.transport.calls == calls


def test_incremental_by_modification_time(convex_backend, workflow, generate_structure, tenant):
    structure, _chain, *_ = workflow
    sync_structs(convex_backend, tenant, [structure])
    sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', linked=True)
    _, later = run_get_node(strain, structure=structure)
    report = sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', linked=True, since='auto')
    assert report.since is not None and report.since < later.mtime
    assert report.selected == 3 and report.considered <= 3 and report.new == 1
    assert record_of(convex_backend, tenant, later).structures_in == (structure.uuid,)
    # Nothing changed since: nothing is considered beyond the margin, nothing is written.
    calls = convex_backend.transport.calls
    quiet = sync_executions(
        convex_backend, tenant_id=tenant, workspace_id='w', linked=True, since=dt.datetime.now(dt.timezone.utc)
    )
    assert (quiet.considered, quiet.new, quiet.updated) == (0, 0, 0)
    assert convex_backend.transport.calls == calls


def test_a_structure_projected_later_is_linked_by_the_next_incremental_sync(convex_backend, workflow, tenant):
    structure, chain, _child, strained = workflow
    sync_structs(convex_backend, tenant, [structure])
    sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', linked=True)
    assert record_of(convex_backend, tenant, chain).structures_out == ()
    sync_structs(convex_backend, tenant, [strained])  # the processes' modification times do not change
    report = sync_executions(
        convex_backend,
        tenant_id=tenant,
        workspace_id='w',
        linked=True,
        since=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5),
    )
    assert report.updated == 2, report.as_dict()
    assert record_of(convex_backend, tenant, chain).structures_out == (strained.uuid,)
    assert [r.key.process_uuid for r in convex_backend.executions.list(tenant, 'w', structure_id=strained.uuid).items]


def test_failed_and_excepted_processes(convex_backend, generate_structure, tenant):
    structure = generate_structure('silicon').store()
    _, failed = run_get_node(fail_reading, structure=structure)
    with pytest.raises(RuntimeError):
        run_get_node(crash, structure=structure)
    excepted = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'attributes.process_label': 'crash'})
    excepted = max((row[0] for row in excepted.iterall()), key=lambda node: node.pk)
    sync_structs(convex_backend, tenant, [structure])
    report = sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', processes=[failed.pk, excepted.pk])
    assert report.new == 2
    record = record_of(convex_backend, tenant, failed)
    assert (record.state, record.exit_status) == ('finished', 400)
    assert record.exit_message == 'could not read <path> on the cluster'
    record = record_of(convex_backend, tenant, excepted)
    assert record.state == 'excepted' and record.structures_in == (structure.uuid,)


def test_a_group_selects_its_processes_and_all_they_called(convex_backend, workflow, tenant):
    _, chain, child, _ = workflow
    group = orm.Group(label=f'exec-{secrets.token_hex(4)}').store()
    group.add_nodes(chain)
    report = sync_executions(convex_backend, tenant_id=tenant, workspace_id='g', group=group)
    assert (report.selected, report.new) == (2, 2)
    assert record_of(convex_backend, tenant, child, 'g').parent_uuid == chain.uuid
    # No structure of this workspace was projected: the records name none.
    assert record_of(convex_backend, tenant, chain, 'g').structures_in == ()


def test_memory_store_compares_with_its_own_hashes(memory_backend, workflow, tenant):
    _structure, chain, *_ = workflow
    first = sync_executions(memory_backend, tenant_id=tenant, workspace_id='w', processes=[chain.pk])
    assert first.new == 2  # the work chain and the calcfunction it called
    again = sync_executions(memory_backend, tenant_id=tenant, workspace_id='w', processes=[chain.pk])
    assert (again.new, again.unchanged) == (0, 2)
    assert target_extra(memory_backend.store_id, tenant, 'w') not in orm.load_node(chain.pk).base.extras.all


def test_bad_selections_are_refused(convex_backend, generate_structure, tenant):
    from aiida_structstore.core.exceptions import InvalidInputError

    structure = generate_structure('silicon').store()
    with pytest.raises(InvalidInputError, match='not process nodes'):
        sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', processes=[structure.pk])
    with pytest.raises(InvalidInputError, match='select processes'):
        sync_executions(convex_backend, tenant_id=tenant, workspace_id='w')
    with pytest.raises(InvalidInputError, match='since'):
        sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', linked=True, since=dt.datetime(2025, 1, 1))
    with pytest.raises(InvalidInputError, match='workspace_id'):
        sync_executions(convex_backend, tenant_id=tenant, workspace_id='../w', linked=True)


def test_a_copied_projection_does_not_count(convex_backend, workflow, tenant):
    """``clone()`` copies extras (aiida-quantumespresso makes output structures so): the clone's copy of the
    original's remembered projection links nothing and selects nothing."""
    structure, *_ = workflow
    sync_structs(convex_backend, tenant, [structure])
    clone = structure.clone().store()
    assert target_extra(convex_backend.store_id, tenant, 'w') in clone.base.extras.all
    _, on_clone = run_get_node(StrainWorkChain, structure=clone)
    report = sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', linked=True)
    assert report.selected == 2  # the work chain on the original and what it called; nothing on the clone
    assert convex_backend.executions.find(ExecutionKey.of(tenant, 'w', on_clone.uuid)) is None
    report = sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', processes=[on_clone.pk])
    assert record_of(convex_backend, tenant, on_clone).structures_in == ()


def test_a_dry_run_counts_and_writes_nothing(convex_backend, workflow, tenant):
    """The executions sync has the structure sync's dry run (one engine): counts what would be written, writes
    nothing, remembers nothing; the real sync afterwards writes exactly that."""
    structure, chain, _child, strained = workflow
    sync_structs(convex_backend, tenant, [structure, strained])
    calls = convex_backend.transport.calls
    dry = sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', linked=True, dry_run=True)
    assert dry.ok and dry.dry_run and (dry.selected, dry.new, dry.updated, dry.unchanged) == (2, 2, 0, 0)
    assert convex_backend.transport.calls == calls  # not one write; nothing asked of the store either
    assert convex_backend.executions.find(ExecutionKey.of(tenant, 'w', chain.uuid)) is None
    assert target_extra(convex_backend.store_id, tenant, 'w') not in orm.load_node(chain.pk).base.extras.all
    real = sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', linked=True)
    assert (real.new, real.updated) == (dry.new, dry.updated)


def test_verify_both_ways(convex_backend, workflow, tenant):
    """``verify`` covers executions as it covers structures: a synced workspace matches; a record the store lost, a
    record changed behind AiiDA's back and a record of a process this profile does not have are each reported."""
    from aiida_structstore.executions.verify import verify_executions

    structure, chain, child, strained = workflow
    sync_structs(convex_backend, tenant, [structure, strained])
    assert sync_executions(convex_backend, tenant_id=tenant, workspace_id='w', linked=True).ok
    report = verify_executions(convex_backend, tenant, 'w')
    assert report.ok and (report.checked, report.matching, report.remembered, report.missing) == (2, 2, 2, 0)

    convex_backend.executions.delete(ExecutionKey.of(tenant, 'w', child.uuid))
    fields = record_of(convex_backend, tenant, chain).model_dump(exclude={'content_hash', 'updated_at'})
    later = fields['modified_at'] + dt.timedelta(seconds=1)  # a later state, so the store takes it
    convex_backend.executions.put(ExecutionContent(**{**fields, 'process_label': 'Renamed', 'modified_at': later}))
    stranger = ExecutionContent(
        **{**fields, 'key': ExecutionKey.of(tenant, 'w', '00000000-0000-4000-8000-000000000001')}
    )
    convex_backend.executions.put(stranger)
    report = verify_executions(convex_backend, tenant, 'w')
    problems = dict(report.problems)
    assert not report.ok and (report.checked, report.matching, report.missing) == (2, 0, 1)
    assert 'differs from its AiiDA process' in problems[chain.uuid]
    assert 'does not exist in this profile' in problems[stranger.key.process_uuid]
    assert 'missing from the store' in problems[child.uuid]
