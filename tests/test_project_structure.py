"""The ``structstore.project_structure`` calcfunction and the ``structstore.project`` work chain."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.manage.caching import enable_caching
from aiida.plugins import CalculationFactory, WorkflowFactory

from aiida_structstore.core.exceptions import OwnershipError
from aiida_structstore.core.structures import StructureKey
from aiida_structstore.tracking import EXTRA_PREFIX, target_extra

project_structure = CalculationFactory('structstore.project_structure')
ProjectStructuresWorkChain = WorkflowFactory('structstore.project')


def inputs(structure, workspace='ws', **extra):
    return {'structure': structure, 'tenant_id': orm.Str('tenant'), 'workspace_id': orm.Str(workspace), **extra}


def test_projects_with_a_receipt(memory_backend, generate_structure):
    structure = generate_structure('fe2o3').store()
    results, node = project_structure.run_get_node(**inputs(structure))
    receipt = results['receipt'].get_dict()
    assert receipt['structure_id'] == structure.uuid
    assert receipt['status'] == 'created'
    assert receipt['backend'] == 'memory'
    record = memory_backend.structures.get(StructureKey.of('tenant', 'ws', structure.uuid))
    assert record.content_hash == receipt['content_hash']
    assert record.node_uuid == structure.uuid
    assert record.source.kind == 'aiida'
    assert record.summary['chemical_formula_reduced'] == 'Fe2O3'
    assert [s['name'] for s in record.structure['species']] == ['Fe1', 'Fe2', 'O']
    assert 'Fe1' in record.cif and 'Fe2' in record.cif
    assert node.base.caching.is_valid_cache is False
    # The in-memory store is gone with the process: nothing is remembered on the node.
    assert not [name for name in orm.load_node(structure.pk).base.extras.keys() if name.startswith(EXTRA_PREFIX)]


def test_projection_into_convex_is_remembered_next_to_other_extras(convex_backend, generate_structure):
    structure = generate_structure('fe2o3').store()
    structure.base.extras.set('mine', 1)
    results, _ = project_structure.run_get_node(**inputs(structure, 'remembered'))
    entry = orm.load_node(structure.pk).base.extras.get(target_extra(convex_backend.store_id, 'tenant', 'remembered'))
    assert (entry['tenant_id'], entry['workspace_id'], entry['content_hash']) == (
        'tenant',
        'remembered',
        results['receipt']['content_hash'],
    )
    assert entry['instance'] == convex_backend.instance
    assert orm.load_node(structure.pk).base.extras.get('mine') == 1


def test_another_nodes_record_is_an_error_unless_replaced(memory_backend, generate_structure):
    first, second = generate_structure().store(), generate_structure('alloy').store()
    project_structure.run_get_node(**inputs(first, structure_id=orm.Str('latest')))
    with pytest.raises(OwnershipError, match=f'{first.uuid}.*{second.uuid}'):
        project_structure.run_get_node(**inputs(second, structure_id=orm.Str('latest')))
    assert memory_backend.structures.get(StructureKey.of('tenant', 'ws', 'latest')).node_uuid == first.uuid
    results, _ = project_structure.run_get_node(
        **inputs(second, structure_id=orm.Str('latest'), replace_owner=orm.Bool(True))
    )
    assert results['receipt']['status'] == 'updated'
    assert memory_backend.structures.get(StructureKey.of('tenant', 'ws', 'latest')).node_uuid == second.uuid


def test_never_served_from_the_cache(memory_backend, generate_structure):
    """With caching on, a second identical projection must still write (it is a side effect)."""
    structure = generate_structure().store()
    with enable_caching():
        _, first_node = project_structure.run_get_node(**inputs(structure))
        memory_backend.clear()  # the store was rebuilt: the write must happen again
        second, second_node = project_structure.run_get_node(**inputs(structure))
    assert second_node.base.caching.get_cache_source() is None
    assert second_node.pk != first_node.pk
    assert second['receipt']['status'] == 'created'
    assert memory_backend.structures.find(StructureKey.of('tenant', 'ws', structure.uuid)) is not None


def test_structure_id_raw_and_parameters(memory_backend, generate_structure, tmp_path):
    path = tmp_path / 'si.in'
    path.write_bytes(b'&CONTROL\n/\n! raw input kept byte for byte \r\n')
    raw = orm.SinglefileData(path).store()
    parameters = orm.Dict({'SYSTEM': {'celldm(1)': 10.26, 'ibrav': 2}})
    structure = generate_structure().store()
    project_structure.run_get_node(
        **inputs(
            structure, structure_id=orm.Str('si-scf'), raw=raw, parameters=parameters, source_kind=orm.Str('pw-input')
        )
    )
    key = StructureKey.of('tenant', 'ws', 'si-scf')
    record = memory_backend.structures.get(key)
    assert record.params == {'SYSTEM': {'celldm(1)': 10.26, 'ibrav': 2}}
    assert record.source.kind == 'pw-input'
    assert record.source.filename == 'si.in'
    assert memory_backend.structures.get_raw(key).encode() == path.read_bytes()


def test_invalid_structure_id_fails_and_writes_nothing(memory_backend, generate_structure):
    structure = generate_structure().store()
    with pytest.raises(Exception, match='structure_id'):
        project_structure(**inputs(structure, structure_id=orm.Str('../etc/passwd')))
    assert memory_backend.structures.list('tenant', 'ws').items == ()


def test_work_chain_projects_a_namespace_and_is_idempotent(memory_backend, generate_structure):
    structures = {'input': generate_structure('silicon').store(), 'relaxed': generate_structure('fe2o3').store()}
    wc_inputs = {
        'structures': structures,
        'tenant_id': orm.Str('tenant'),
        'workspace_id': orm.Str('wf'),
        'structure_ids': {'relaxed': orm.Str('relaxed-fe2o3')},
    }
    results, node = run_get_node(ProjectStructuresWorkChain, **wc_inputs)
    assert node.is_finished_ok, node.exit_status
    assert set(results['receipts']) == {'input', 'relaxed'}
    assert results['receipts']['relaxed']['structure_id'] == 'relaxed-fe2o3'
    assert {i.key.structure_id for i in memory_backend.structures.iter_workspace('tenant', 'wf')} == {
        structures['input'].uuid,
        'relaxed-fe2o3',
    }
    # Running the same step again (as after a daemon restart) changes nothing.
    results, node = run_get_node(ProjectStructuresWorkChain, **wc_inputs)
    assert {r['status'] for r in results['receipts'].values()} == {'unchanged'}
    assert len(list(memory_backend.structures.iter_workspace('tenant', 'wf'))) == 2


@pytest.mark.parametrize(
    ('inputs', 'match'),
    [
        (lambda: {'workspace_id': orm.Str('bad workspace')}, "character ' ' is not allowed"),
        (lambda: {'structures': {}}, 'namespace is empty'),
        (lambda: {'structure_ids': {'b': orm.Str('x')}}, 'names structures that are not in `structures`: b'),
        (lambda: {'structure_ids': {'a': orm.Str('x/y')}}, "structure_ids.a 'x/y' is invalid"),
    ],
)
def test_work_chain_refuses_invalid_inputs_before_running(memory_backend, generate_structure, inputs, match):
    arguments = {
        'structures': {'a': generate_structure().store()},
        'tenant_id': orm.Str('tenant'),
        'workspace_id': orm.Str('w'),
        **inputs(),
    }
    with pytest.raises(ValueError, match=match):
        run_get_node(ProjectStructuresWorkChain, **arguments)
    assert not list(memory_backend.structures.iter_workspace('tenant', 'w'))


def test_work_chain_exit_code_for_a_taken_id(memory_backend, generate_structure):
    first, second = generate_structure().store(), generate_structure('alloy').store()
    common = {'tenant_id': orm.Str('tenant'), 'workspace_id': orm.Str('taken')}
    run_get_node(ProjectStructuresWorkChain, structures={'a': first}, structure_ids={'a': orm.Str('x')}, **common)
    _, node = run_get_node(
        ProjectStructuresWorkChain, structures={'a': second}, structure_ids={'a': orm.Str('x')}, **common
    )
    assert node.exit_status == ProjectStructuresWorkChain.exit_codes.ERROR_STRUCTURE_ID_TAKEN.status
    assert first.uuid in node.exit_message
    _, node = run_get_node(
        ProjectStructuresWorkChain,
        structures={'a': second},
        structure_ids={'a': orm.Str('x')},
        replace_owner=orm.Bool(True),
        **common,
    )
    assert node.is_finished_ok


def test_work_chain_exit_code_when_the_store_fails(monkeypatch, generate_structure):
    monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'convex')
    monkeypatch.setenv('CONVEX_URL', 'http://127.0.0.1:9')
    monkeypatch.setenv('CONVEX_DEPLOY_KEY', 'key')
    monkeypatch.setenv('STRUCTURE_STORE_RETRIES', '1')
    _, node = run_get_node(
        ProjectStructuresWorkChain,
        structures={'a': generate_structure().store()},
        tenant_id=orm.Str('tenant'),
        workspace_id=orm.Str('w'),
    )
    assert node.exit_status == ProjectStructuresWorkChain.exit_codes.ERROR_PROJECTION_FAILED.status
