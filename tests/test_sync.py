"""Incremental sync: select, diff, batch, track; unchanged nodes cost no write; one bad node never stops the rest."""

from __future__ import annotations

import secrets

import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_structstore.core.exceptions import BackendUnavailableError, InvalidInputError
from aiida_structstore.core.structures import StructureKey
from aiida_structstore.store.convex import ConvexStore
from aiida_structstore.structures.projection import structure_content
from aiida_structstore.structures.sync import sync_structures
from aiida_structstore.tracking import EXTRA_PREFIX, PROJECTION_VERSION, target_extra


@pytest.fixture
def structures(generate_structure):
    """A group of 12 stored structures (silicon and Fe2O3), labelled s0..s11."""
    group = orm.Group(label=f'sync-{secrets.token_hex(4)}').store()
    nodes = []
    for index in range(12):
        node = generate_structure('fe2o3' if index % 3 == 0 else 'silicon')
        node.label = f's{index}'
        nodes.append(node.store())
    group.add_nodes(nodes)
    return group, nodes


@pytest.fixture
def tenant() -> str:
    return f't-{secrets.token_hex(4)}'


def entry_of(node, store, tenant, workspace):
    """The remembered projection of ``node`` into the target, read fresh from the database."""
    return orm.load_node(node.pk).base.extras.get(target_extra(store.store_id, tenant, workspace), None)


def sync(store, tenant, workspace='w', **kwargs):
    return sync_structures(store, tenant_id=tenant, workspace_id=workspace, progress=False, **kwargs)


def test_second_sync_writes_nothing(convex_backend, structures, tenant):
    group, nodes = structures
    first = sync(convex_backend, tenant, 'w1', group=group, batch_size=5)
    assert (first.selected, first.new, first.updated, first.unchanged, first.failed) == (12, 12, 0, 0, 0)
    records = {i.key.structure_id: i for i in convex_backend.structures.iter_workspace(tenant, 'w1')}
    assert set(records) == {node.uuid for node in nodes}
    calls = convex_backend.transport.calls
    again = sync(convex_backend, tenant, 'w1', group=group)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 12)
    assert convex_backend.transport.calls == calls  # an unchanged re-sync makes no call
    after = {i.key.structure_id: i for i in convex_backend.structures.iter_workspace(tenant, 'w1')}
    assert {k: v.updated_at for k, v in after.items()} == {k: v.updated_at for k, v in records.items()}
    entry = entry_of(nodes[0], convex_backend, tenant, 'w1')
    assert entry['content_hash'] == records[nodes[0].uuid].content_hash
    assert entry['instance'] == convex_backend.instance
    assert entry['projection'] == PROJECTION_VERSION


def test_records_are_projected_from_exactly_what_the_orm_reads(memory_backend, tenant):
    """The sync reads attributes as JSON text (for speed): every float, integer and name comes out as the ORM has it."""
    node = orm.StructureData(cell=[[0.1 + 0.2, 0, 0], [1e-17, 1 / 3, 0], [0, 2.0000000000000004, 12345.678901234567]])
    node.append_atom(position=(0.1, 1 / 3, 2 / 3), symbols='Fe', name='Fe\u00e9')
    node.append_atom(position=(5e-324, 0.5, 1.7976931348623157e308 / 1e308), symbols=('Fe', 'Co'), weights=(0.5, 0.3))
    node.base.attributes.set('note', {'n': 2**62 + 1, 's': 'tab\tquote"'})
    node.store()
    report = sync(memory_backend, tenant, nodes=[node.pk])
    assert (report.new, report.failed) == (1, 0)
    key = StructureKey.of(tenant, 'w', node.uuid)
    expected = structure_content(orm.load_node(node.pk).base.attributes.all, key=key, node_uuid=node.uuid)
    record = memory_backend.structures.get(key)
    assert record.structure == expected.structure
    assert record.cif == expected.cif
    assert record.structure['lattice_vectors'][1][1] == orm.load_node(node.pk).cell[1][1]


def test_the_memory_store_is_not_remembered_and_compared_by_hash(memory_backend, structures):
    group, nodes = structures
    assert sync(memory_backend, 'acme', group=group).new == 12
    assert not [k for k in orm.load_node(nodes[0].pk).base.extras.keys() if k.startswith(EXTRA_PREFIX)]
    calls = []
    original = memory_backend.structures.put_prepared
    memory_backend.structures.put_prepared = lambda writes, **kw: calls.append(len(writes)) or original(writes, **kw)
    try:
        report = sync(memory_backend, 'acme', group=group)
    finally:
        del memory_backend.structures.put_prepared
    assert report.unchanged == 12
    assert calls == []
    for _ in range(3):  # runs into the same process's store never add extras
        sync(memory_backend, 'acme', group=group)
    assert not [k for k in orm.load_node(nodes[0].pk).base.extras.keys() if k.startswith(EXTRA_PREFIX)]


def test_targets_are_tracked_per_workspace(convex_backend, structures, tenant):
    group, nodes = structures
    for workspace in ('w1', 'w2'):
        assert sync(convex_backend, tenant, workspace, group=group).new == 12
    entries = [entry_of(nodes[3], convex_backend, tenant, w) for w in ('w1', 'w2')]
    assert [e['workspace_id'] for e in entries] == ['w1', 'w2']
    assert all(e['store'] == convex_backend.store_id for e in entries)


def test_other_extras_are_kept(convex_backend, structures, tenant):
    group, nodes = structures
    nodes[0].base.extras.set('project', {'owner': 'me'})
    sync(convex_backend, tenant, group=group)
    extras = orm.load_node(nodes[0].pk).base.extras.all
    assert extras['project'] == {'owner': 'me'}
    assert '_aiida_hash' in extras
    assert target_extra(convex_backend.store_id, tenant, 'w') in extras


def test_an_extra_set_after_the_sync_read_the_batch_is_kept(convex_backend, structures, tenant, monkeypatch):
    """The extras are merged in the database, never written back from the copy read at the start of the batch."""
    import aiida_structstore.sync.engine as engine_module

    group, nodes = structures
    original = engine_module._write
    pks = [node.pk for node in nodes]  # read here: ORM objects of this thread are not for the sync's writer thread

    def write_then_the_user_edits(adapter, changed, check_instance):
        written = original(adapter, changed, check_instance)
        # Between the sync's read of the batch and its update of the extras, the user and another sync write.
        for pk in pks:
            orm.load_node(pk).base.extras.set('note', f'user {pk}')
        return written

    sync(convex_backend, tenant, 'other', group=group)
    monkeypatch.setattr(engine_module, '_write', write_then_the_user_edits)
    sync(convex_backend, tenant, 'w', group=group)
    for node in nodes:
        extras = orm.load_node(node.pk).base.extras.all
        assert extras['note'] == f'user {node.pk}'
        assert extras[target_extra(convex_backend.store_id, tenant, 'w')]['structure_id'] == node.uuid
        assert extras[target_extra(convex_backend.store_id, tenant, 'other')]['structure_id'] == node.uuid


def test_check_store_finds_what_the_store_lost(convex_backend, structures, tenant):
    group, nodes = structures
    sync(convex_backend, tenant, group=group)
    convex_backend.structures.delete(StructureKey.of(tenant, 'w', nodes[0].uuid))
    edited = convex_backend.structures.get(StructureKey.of(tenant, 'w', nodes[1].uuid)).to_content()
    convex_backend.structures.put(edited.model_copy(update={'cif': 'tampered'}))
    trusting = sync(convex_backend, tenant, group=group)
    assert trusting.unchanged == 12
    checking = sync(convex_backend, tenant, group=group, check_store=True)
    assert (checking.new, checking.updated, checking.unchanged) == (1, 1, 10)
    assert convex_backend.structures.get(StructureKey.of(tenant, 'w', nodes[1].uuid)).cif != 'tampered'


def test_dry_run_writes_nothing(convex_backend, structures, tenant):
    group, nodes = structures
    report = sync(convex_backend, tenant, group=group, dry_run=True)
    assert (report.new, report.failed) == (12, 0)
    assert convex_backend.structures.list(tenant, 'w').items == ()
    assert entry_of(nodes[0], convex_backend, tenant, 'w') is None


def test_dry_run_reports_convex_limits(memory_backend):
    big = orm.StructureData(cell=[[100, 0, 0], [0, 100, 0], [0, 0, 100]])
    for i in range(9000):
        big.append_atom(position=(i * 0.01, 0, 0), symbols='H')
    big.store()
    report = sync(memory_backend, 'acme', 'big', nodes=[big.pk], dry_run=True)
    notes = ' '.join(note for _, note in report.notes)
    assert '9000 sites, over the 8192-element Convex array limit' in notes
    assert 'cif is 475 KiB: stored in chunks' in notes


def test_invalid_ids_fail_per_node_and_the_rest_goes_on(memory_backend, structures):
    group, nodes = structures
    nodes[4].label = 'not a valid id'
    report = sync(memory_backend, 'acme', group=group, id_template='{label}')
    assert (report.new, report.failed) == (11, 1)
    assert report.failures[0][0] == nodes[4].pk
    assert "character ' ' is not allowed" in report.failures[0][1]
    assert not report.ok


def legacy_import(structure: orm.StructureData, filename: str) -> orm.StructureData:
    """The provenance an import calcfunction leaves (file in, structure out), as older versions left it for files
    with names that are refused today."""
    import io

    file = orm.SinglefileData(io.BytesIO(b'data_x\n'), filename=filename).store()
    process = orm.CalcFunctionNode()
    process.set_process_type('aiida.calculations:structstore.import_cif')
    process.base.links.add_incoming(file, LinkType.INPUT_CALC, 'file')
    process.store()
    structure.base.links.add_incoming(process, LinkType.CREATE, 'structure')
    return structure.store()


@pytest.mark.parametrize('filename', ['tab\there.cif', 'evil\u202efic.cif'])
def test_one_node_with_a_bad_file_name_fails_alone(memory_backend, generate_structure, filename):
    group = orm.Group(label=f'bad-name-{secrets.token_hex(4)}').store()
    good = [generate_structure().store() for _ in range(14)]
    bad = legacy_import(generate_structure('alloy'), filename)
    group.add_nodes([*good[:7], bad, *good[7:]])
    report = sync(memory_backend, 'acme', group=group, batch_size=20)
    assert (report.new, report.failed) == (14, 1)
    assert report.failures[0][0] == bad.pk
    assert 'control or formatting character' in report.failures[0][1]
    assert {i.key.structure_id for i in memory_backend.structures.iter_workspace('acme', 'w')} == {n.uuid for n in good}


def test_duplicate_ids_in_one_batch_fail(memory_backend, structures):
    group, nodes = structures
    nodes[1].label = 's0'
    report = sync(memory_backend, 'acme', group=group, id_template='{label}')
    assert report.failed == 1
    assert f'also the id of node {nodes[0].pk}' in report.failures[0][1]


@pytest.mark.parametrize('batch_size', [1, 5, 12])
def test_id_collisions_across_batches_never_overwrite(convex_backend, structures, tenant, batch_size):
    group, nodes = structures
    nodes[9].label = 's2'  # s2 and s9 give the same id; with small batches they meet in different batches
    report = sync(convex_backend, tenant, group=group, id_template='{label}', batch_size=batch_size)
    assert report.failed == 1
    pk, message = report.failures[0]
    assert pk == nodes[9].pk
    assert nodes[2].uuid in message and nodes[9].uuid in message
    assert convex_backend.structures.get(StructureKey.of(tenant, 'w', 's2')).node_uuid == nodes[2].uuid
    assert entry_of(nodes[9], convex_backend, tenant, 'w') is None


def test_id_collision_with_an_earlier_sync_never_overwrites(convex_backend, generate_structure, tenant):
    first, second = generate_structure().store(), generate_structure('fe2o3').store()
    first.label = second.label = 'same'
    assert sync(convex_backend, tenant, nodes=[first.pk], id_template='{label}').new == 1
    report = sync(convex_backend, tenant, nodes=[second.pk], id_template='{label}')
    assert report.failed == 1 and first.uuid in report.failures[0][1]
    assert convex_backend.structures.get(StructureKey.of(tenant, 'w', 'same')).node_uuid == first.uuid
    assert sync(convex_backend, tenant, nodes=[first.pk], id_template='{label}').unchanged == 1


def test_selection_by_nodes_and_filters(memory_backend, structures):
    _, nodes = structures
    report = sync(memory_backend, 'acme', nodes=[nodes[0].pk, nodes[1].uuid])
    assert report.new == 2
    report = sync(memory_backend, 'acme', 'f', filters={'uuid': {'in': [nodes[5].uuid, nodes[6].uuid]}})
    assert report.new == 2


@pytest.mark.usefixtures('structures')
def test_filters_cannot_widen_the_selection_beyond_structures(memory_backend):
    orm.Dict({'not': 'a structure'}).store()
    everything = orm.QueryBuilder().append(orm.StructureData).count()
    cases = [({'node_type': {'like': '%'}}, everything), ({'or': [{'node_type': {'like': 'data.core.dict.%'}}]}, 0)]
    for filters, selected in cases:
        assert sync(memory_backend, 'acme', 'wide', filters=filters, dry_run=True).selected == selected


@pytest.mark.parametrize(
    ('filters', 'match'),
    [
        ({'id': {'nope': 1}}, 'invalid filters'),
        ({'no_such_column': 1}, 'invalid filters'),
        ({'uuid': {'like': 5}}, 'invalid filters'),
        (['not', 'a', 'dict'], 'must be a JSON object'),
    ],
)
def test_bad_filters_are_one_clear_error(memory_backend, filters, match):
    with pytest.raises(InvalidInputError, match=match):
        sync(memory_backend, 'acme', filters=filters)
    assert orm.QueryBuilder().append(orm.StructureData).count() >= 0  # the session is usable afterwards


def test_interrupted_sync_resumes(convex_backend, structures, tenant):
    group, _ = structures
    original = convex_backend.structures.put_prepared
    calls = {'n': 0}

    def failing(writes, **kwargs):
        calls['n'] += 1
        if calls['n'] == 2:
            raise BackendUnavailableError('connection lost')
        return original(writes, **kwargs)

    convex_backend.structures.put_prepared = failing
    try:
        with pytest.raises(BackendUnavailableError):
            sync(convex_backend, tenant, group=group, batch_size=5)
    finally:
        del convex_backend.structures.put_prepared
    report = sync(convex_backend, tenant, group=group, batch_size=5)
    assert (report.new, report.unchanged) == (7, 5)
    assert len(list(convex_backend.structures.iter_workspace(tenant, 'w'))) == 12


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'tenant_id': 'a/b'}, 'tenant_id'),
        ({'batch_size': 0}, 'batch_size'),
        ({'id_template': '{nope}'}, 'template'),
        ({'id_template': '{uuid.__class__}'}, 'template'),
        ({'id_template': '{pk:x<500}'}, 'structure_id'),
    ],
)
def test_bad_arguments(memory_backend, kwargs, match):
    arguments = {'tenant_id': 'acme', 'workspace_id': 'w', 'progress': False, **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        sync_structures(memory_backend, **arguments)


def test_unchanged_nodes_are_decided_from_extras_alone(convex_backend, structures, tenant, monkeypatch):
    group, _ = structures
    sync(convex_backend, tenant, group=group)
    import aiida_structstore.structures.sync as sync_module

    def no_loading(pks):
        raise AssertionError(f'attributes of {len(pks)} unchanged nodes were loaded')

    monkeypatch.setattr(sync_module, '_attributes', no_loading)
    assert sync(convex_backend, tenant, group=group).unchanged == 12


def test_outdated_projection_entry_is_recomputed_not_rewritten(convex_backend, structures, tenant):
    group, nodes = structures
    sync(convex_backend, tenant, group=group)
    node = orm.load_node(nodes[2].pk)
    name = target_extra(convex_backend.store_id, tenant, 'w')
    node.base.extras.set(name, {**node.base.extras.get(name), 'projection': 0})  # remembered by older rules
    before = convex_backend.structures.get(StructureKey.of(tenant, 'w', node.uuid)).updated_at
    report = sync(convex_backend, tenant, group=group)
    assert (report.new, report.updated, report.unchanged) == (0, 0, 12)
    assert convex_backend.structures.get(StructureKey.of(tenant, 'w', node.uuid)).updated_at == before
    assert entry_of(node, convex_backend, tenant, 'w')['projection'] == PROJECTION_VERSION


def test_a_store_that_lost_its_data_is_noticed(structures, tenant):
    """The store's data is lost between two runs (a wiped deployment; here the in-memory server reset, a new empty
    deployment at the same URL): the projections remembered on the nodes no longer count, and the next sync writes
    everything again."""
    from devserver.local_convex import local_convex

    group, nodes = structures
    with local_convex() as server:
        with ConvexStore(server.url, server.deploy_key) as store:
            assert sync(store, tenant, group=group).new == 12
            lost = store.instance
        server.reset()
        with ConvexStore(server.url, server.deploy_key) as store:
            report = sync(store, tenant, group=group)
            assert (report.new, report.unchanged, report.failed) == (12, 0, 0)
            assert entry_of(nodes[0], store, tenant, 'w')['instance'] == store.instance != lost


def test_a_store_that_loses_its_data_during_a_sync_aborts_it(structures, tenant, monkeypatch):
    """The deployment is wiped between two batches (the local server reset, as a lost deployment): the sync stops as
    aborted, says so, counts as written only what the store holds (the second batch, written into the new instance)
    and as lost the first batch, remembers nothing of the batch written into the new instance, and the next sync
    writes everything again."""
    import aiida_structstore.sync.engine as engine_module
    from devserver.local_convex import local_convex

    group, nodes = structures
    original = engine_module._write
    batches: list[int] = []

    with local_convex() as server, ConvexStore(server.url, server.deploy_key) as store:

        def write_then_wipe(adapter, changed, check_instance):
            written = original(adapter, changed, check_instance)
            batches.append(len(changed))
            if len(batches) == 1:  # after the first batch is committed and checked: a new, empty deployment
                server.reset()
            return written

        monkeypatch.setattr(engine_module, '_write', write_then_wipe)
        report = sync(store, tenant, group=group, batch_size=4)
        assert report.aborted is not None and 'lost its data' in report.aborted and not report.ok
        assert batches == [4, 4] and (report.new, report.lost, report.failed) == (4, 4, 0)
        assert '4 records this sync wrote are gone' in report.aborted
        remembered = [entry_of(node, store, tenant, 'w') for node in nodes]
        assert sum(entry is not None for entry in remembered) == 4  # the first batch only, of the old instance
        store.forget_instance()
        monkeypatch.undo()
        again = sync(store, tenant, group=group, batch_size=4)
        # The wiped first batch and the never-written third are new; the second is in the new instance already.
        assert again.ok and (again.new, again.unchanged) == (8, 4)


def test_a_clone_is_projected_although_it_carries_the_originals_extra(convex_backend, structures, tenant):
    """``clone()`` copies extras: with an id template that gives the clone the original's id, the clone's copy of the
    remembered projection must not make it look projected (its record would silently be the original's)."""
    _, nodes = structures
    original = nodes[0]
    first = sync(convex_backend, tenant, 'clones', nodes=[original.pk], id_template='{label}')
    assert first.new == 1
    clone = original.clone().store()
    report = sync(convex_backend, tenant, 'clones', nodes=[clone.pk], id_template='{label}')
    assert report.unchanged == 0 and report.failed == 1  # the id belongs to the original: refused, not skipped
    assert original.uuid in report.failures[0][1] and clone.uuid in report.failures[0][1]


def test_the_summary_after_a_lost_store_says_what_was_written(structures, tenant, monkeypatch, run_cli_command):
    """``verdi data structstore sync`` while the store loses its data after the first of three batches: the summary
    counts as new only the records the store holds, and as lost those it wrote into the lost data."""
    import aiida_structstore.sync.engine as engine_module
    from aiida_structstore.cli import cmd_structstore
    from devserver.local_convex import local_convex

    group, _ = structures
    original = engine_module._write
    batches: list[int] = []
    with local_convex() as server:

        def write_then_wipe(adapter, changed, check_instance):
            written = original(adapter, changed, check_instance)
            batches.append(len(changed))
            if len(batches) == 2:  # after the second batch is committed and checked
                server.reset()
            return written

        monkeypatch.setattr(engine_module, '_write', write_then_wipe)
        monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'convex')
        monkeypatch.setenv('CONVEX_URL', server.url)
        monkeypatch.setenv('CONVEX_DEPLOY_KEY', server.deploy_key)
        result = run_cli_command(
            cmd_structstore, ['sync', '-t', tenant, '-w', 'w', '-G', group.label, '--batch-size', '4'], raises=True
        )
        with ConvexStore(server.url, server.deploy_key) as store:
            held = sum(1 for _ in store.structures.iter_workspace(tenant, 'w'))
    assert batches == [4, 4, 4] and held == 4
    assert '8 records this sync wrote are gone' in result.output
    _, row = [line.split() for line in result.output.splitlines() if line.split()[:1] in (['selected'], ['12'])]
    assert row[:5] == ['12', '4', '0', '0', '0'] and row[5] == '8', result.output  # new 4, lost 8
