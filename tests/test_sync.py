"""Incremental sync: select, diff, batch, track; unchanged nodes cost no write."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_structstore.exceptions import BackendUnavailableError, InvalidInputError
from aiida_structstore.models import Source, StructureContent, StructureKey
from aiida_structstore.projection.nodes import EXTRA_KEY
from aiida_structstore.sync import sync_structures


@pytest.fixture
def structures(generate_structure):
    """A group of 12 stored structures (silicon and Fe2O3), labelled s0..s11."""
    group = orm.Group(label=f'sync-{orm.QueryBuilder().append(orm.Group).count()}').store()
    nodes = []
    for index in range(12):
        node = generate_structure('fe2o3' if index % 3 == 0 else 'silicon')
        node.label = f's{index}'
        nodes.append(node.store())
    group.add_nodes(nodes)
    return group, nodes


def test_second_sync_writes_nothing(convex_backend, structures, tenant_id='acme'):
    group, nodes = structures
    first = sync_structures(
        convex_backend, tenant_id=tenant_id, workspace_id='w1', group=group, batch_size=5, progress=False
    )
    assert (first.selected, first.new, first.updated, first.unchanged, first.failed) == (12, 12, 0, 0, 0)
    records = {i.key.structure_id: i for i in convex_backend.iter_workspace(tenant_id, 'w1')}
    assert set(records) == {node.uuid for node in nodes}
    calls = convex_backend.calls
    again = sync_structures(convex_backend, tenant_id=tenant_id, workspace_id='w1', group=group, progress=False)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 12)
    assert convex_backend.calls == calls  # the sync store is another client: check the records did not change
    after = {i.key.structure_id: i for i in convex_backend.iter_workspace(tenant_id, 'w1')}
    assert {k: v.updated_at for k, v in after.items()} == {k: v.updated_at for k, v in records.items()}
    assert (
        orm.load_node(nodes[0].pk).base.extras.get(EXTRA_KEY)[0]['content_hash'] == records[nodes[0].uuid].content_hash
    )


def test_second_sync_makes_no_store_call(memory_backend, structures):
    group, _ = structures
    sync_structures(memory_backend, tenant_id='acme', workspace_id='w', group=group, progress=False)
    calls = []
    original = memory_backend.put_prepared
    memory_backend.put_prepared = lambda writes: calls.append(len(writes)) or original(writes)
    try:
        report = sync_structures(memory_backend, tenant_id='acme', workspace_id='w', group=group, progress=False)
    finally:
        del memory_backend.put_prepared
    assert report.unchanged == 12
    assert calls == []


def test_targets_are_tracked_per_workspace(memory_backend, structures):
    group, nodes = structures
    for workspace in ('w1', 'w2'):
        report = sync_structures(memory_backend, tenant_id='acme', workspace_id=workspace, group=group, progress=False)
        assert report.new == 12
    targets = orm.load_node(nodes[3].pk).base.extras.get(EXTRA_KEY)
    assert sorted(t['workspace_id'] for t in targets) == ['w1', 'w2']
    assert all(t['store'] == memory_backend.identity for t in targets)


def test_other_extras_are_kept(memory_backend, structures):
    group, nodes = structures
    nodes[0].base.extras.set('project', {'owner': 'me'})
    sync_structures(memory_backend, tenant_id='acme', workspace_id='w', group=group, progress=False)
    extras = orm.load_node(nodes[0].pk).base.extras.all
    assert extras['project'] == {'owner': 'me'}
    assert '_aiida_hash' in extras
    assert EXTRA_KEY in extras


def test_check_store_finds_what_the_store_lost(memory_backend, structures):
    group, nodes = structures
    sync_structures(memory_backend, tenant_id='acme', workspace_id='w', group=group, progress=False)
    memory_backend.delete(StructureKey.of('acme', 'w', nodes[0].uuid))
    memory_backend.put(
        StructureContent(key=StructureKey.of('acme', 'w', nodes[1].uuid), source=Source(kind='cif'), cif='tampered')
    )
    trusting = sync_structures(memory_backend, tenant_id='acme', workspace_id='w', group=group, progress=False)
    assert trusting.unchanged == 12
    checking = sync_structures(
        memory_backend, tenant_id='acme', workspace_id='w', group=group, check_store=True, progress=False
    )
    assert (checking.new, checking.updated, checking.unchanged) == (1, 1, 10)
    assert memory_backend.get(StructureKey.of('acme', 'w', nodes[1].uuid)).cif != 'tampered'


def test_dry_run_writes_nothing(memory_backend, structures):
    group, nodes = structures
    report = sync_structures(
        memory_backend, tenant_id='acme', workspace_id='w', group=group, dry_run=True, progress=False
    )
    assert (report.new, report.failed) == (12, 0)
    assert memory_backend.list('acme', 'w').items == ()
    assert EXTRA_KEY not in orm.load_node(nodes[0].pk).base.extras.all


def test_dry_run_reports_convex_limits(memory_backend):
    big = orm.StructureData(cell=[[100, 0, 0], [0, 100, 0], [0, 0, 100]])
    for i in range(9000):
        big.append_atom(position=(i * 0.01, 0, 0), symbols='H')
    big.store()
    report = sync_structures(
        memory_backend, tenant_id='acme', workspace_id='big', nodes=[big.pk], dry_run=True, progress=False
    )
    notes = ' '.join(note for _, note in report.notes)
    assert '9000 sites, over the 8192-element Convex array limit' in notes
    assert 'cif is 475 KiB: stored in chunks' in notes


def test_invalid_ids_fail_per_node_and_the_rest_goes_on(memory_backend, structures):
    group, nodes = structures
    nodes[4].label = 'not a valid id'
    report = sync_structures(
        memory_backend, tenant_id='acme', workspace_id='w', group=group, id_template='{label}', progress=False
    )
    assert (report.new, report.failed) == (11, 1)
    assert report.failures[0][0] == nodes[4].pk
    assert "character ' ' is not allowed" in report.failures[0][1]
    assert not report.ok


def test_duplicate_ids_from_a_template_fail(memory_backend, structures):
    group, nodes = structures
    nodes[1].label = 's0'
    report = sync_structures(
        memory_backend, tenant_id='acme', workspace_id='w', group=group, id_template='{label}', progress=False
    )
    assert report.failed == 1
    assert 'also the id of node' in report.failures[0][1]


def test_selection_by_nodes_and_filters(memory_backend, structures):
    _, nodes = structures
    report = sync_structures(
        memory_backend, tenant_id='acme', workspace_id='w', nodes=[nodes[0].pk, nodes[1].uuid], progress=False
    )
    assert report.new == 2
    report = sync_structures(
        memory_backend,
        tenant_id='acme',
        workspace_id='f',
        filters={'uuid': {'in': [nodes[5].uuid, nodes[6].uuid]}},
        progress=False,
    )
    assert report.new == 2


def test_interrupted_sync_resumes(memory_backend, structures):
    group, _ = structures
    original = memory_backend.put_prepared
    calls = {'n': 0}

    def failing(writes):
        calls['n'] += 1
        if calls['n'] == 2:
            raise BackendUnavailableError('connection lost')
        return original(writes)

    memory_backend.put_prepared = failing
    try:
        with pytest.raises(BackendUnavailableError):
            sync_structures(
                memory_backend, tenant_id='acme', workspace_id='w', group=group, batch_size=5, progress=False
            )
    finally:
        del memory_backend.put_prepared
    report = sync_structures(
        memory_backend, tenant_id='acme', workspace_id='w', group=group, batch_size=5, progress=False
    )
    assert (report.new, report.unchanged) == (7, 5)
    assert len(list(memory_backend.iter_workspace('acme', 'w'))) == 12


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'tenant_id': 'a/b'}, 'tenant_id'),
        ({'batch_size': 0}, 'batch_size'),
        ({'id_template': '{nope}'}, 'template'),
    ],
)
def test_bad_arguments(memory_backend, kwargs, match):
    arguments = {'tenant_id': 'acme', 'workspace_id': 'w', 'progress': False, **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        sync_structures(memory_backend, **arguments)


def test_unchanged_nodes_are_decided_from_extras_alone(memory_backend, structures, monkeypatch):
    group, _ = structures
    sync_structures(memory_backend, tenant_id='acme', workspace_id='w', group=group, progress=False)
    import aiida_structstore.sync as sync_module

    def no_loading(pks):
        raise AssertionError(f'attributes of {len(pks)} unchanged nodes were loaded')

    monkeypatch.setattr(sync_module, '_attributes', no_loading)
    report = sync_structures(memory_backend, tenant_id='acme', workspace_id='w', group=group, progress=False)
    assert report.unchanged == 12


def test_outdated_projection_entry_is_recomputed_not_rewritten(memory_backend, structures):
    group, nodes = structures
    sync_structures(memory_backend, tenant_id='acme', workspace_id='w', group=group, progress=False)
    node = orm.load_node(nodes[2].pk)
    entries = node.base.extras.get(EXTRA_KEY)
    entries[0]['projection'] = 0  # remembered by older projection rules
    node.base.extras.set(EXTRA_KEY, entries)
    before = memory_backend.get(StructureKey.of('acme', 'w', node.uuid)).updated_at
    report = sync_structures(memory_backend, tenant_id='acme', workspace_id='w', group=group, progress=False)
    assert (report.new, report.updated, report.unchanged) == (0, 0, 12)
    assert memory_backend.get(StructureKey.of('acme', 'w', node.uuid)).updated_at == before
    from aiida_structstore.projection.nodes import PROJECTION_VERSION

    assert orm.load_node(node.pk).base.extras.get(EXTRA_KEY)[0]['projection'] == PROJECTION_VERSION
