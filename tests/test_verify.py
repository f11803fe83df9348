"""``verify`` compares the store and AiiDA in both directions: lost, foreign and changed records are all found."""

from __future__ import annotations

import secrets

import pytest
from aiida import orm

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.core.structures import Source, StructureContent, StructureKey
from aiida_structstore.store.convex import ConvexStore
from aiida_structstore.structures.sync import sync_structures
from aiida_structstore.structures.verify import verify_workspace


@pytest.fixture
def synced(convex_backend, generate_structure):
    tenant = f't-{secrets.token_hex(4)}'
    nodes = [generate_structure(name).store() for name in ('silicon', 'fe2o3', 'alloy', 'vacancy')]
    report = sync_structures(convex_backend, tenant_id=tenant, workspace_id='w', nodes=[n.pk for n in nodes])
    assert report.new == 4
    return tenant, nodes


def test_a_faithful_store_verifies(convex_backend, synced):
    tenant, _ = synced
    report = verify_workspace(convex_backend, tenant, 'w')
    assert (report.checked, report.matching, report.remembered, report.missing, report.problems) == (4, 4, 4, 0, [])
    assert report.ok


def test_records_lost_by_the_store_are_found(convex_backend, synced):
    tenant, nodes = synced
    convex_backend.structures.delete(StructureKey.of(tenant, 'w', nodes[1].uuid))
    report = verify_workspace(convex_backend, tenant, 'w')
    assert (report.checked, report.matching, report.missing) == (3, 3, 1)
    assert report.problems == [
        (
            nodes[1].uuid,
            f'missing from the store: node {nodes[1].pk} ({nodes[1].uuid}) was projected here',
        )
    ]
    assert report.restore == [f'verdi data structstore sync -t {tenant} -w w --check-store -N {nodes[1].pk}']
    assert not report.ok


def test_a_record_without_a_node_is_not_a_match(convex_backend, synced):
    tenant, _ = synced
    convex_backend.structures.put(
        StructureContent(key=StructureKey.of(tenant, 'w', 'manual'), source=Source.of('cif'), cif='x')
    )
    report = verify_workspace(convex_backend, tenant, 'w')
    assert (report.checked, report.matching, report.without_node) == (5, 4, 1)
    assert report.problems[0][0] == 'manual' and 'has no AiiDA node' in report.problems[0][1]


def test_a_store_that_lost_everything_fails_verify(synced, run_cli_command, monkeypatch):
    """The deployment's data is gone (here: the in-memory server reset, a new empty deployment at the same URL, as a
    restart leaves it): every node that was projected is reported missing, and the command fails."""
    from devserver.local_convex import local_convex

    tenant, nodes = synced
    with local_convex() as server:
        with ConvexStore(server.url, server.deploy_key) as store:
            sync_structures(store, tenant_id=tenant, workspace_id='lost', nodes=[n.pk for n in nodes], progress=False)
        server.reset()
        monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'convex')
        monkeypatch.setenv('CONVEX_URL', server.url)
        monkeypatch.setenv('CONVEX_DEPLOY_KEY', server.deploy_key)
        result = run_cli_command(cmd_structstore, ['verify', '-t', tenant, '-w', 'lost'], raises=True)
        with ConvexStore(server.url, server.deploy_key) as store:
            report = verify_workspace(store, tenant, 'lost')
    assert (report.checked, report.remembered, report.missing) == (0, 4, 4)
    assert {structure_id for structure_id, _ in report.problems} == {n.uuid for n in nodes}
    assert '4 problems' in result.output


def test_nodes_remembering_another_target_are_not_counted(convex_backend, synced):
    tenant, _ = synced
    other = sync_structures(
        convex_backend,
        tenant_id=tenant,
        workspace_id='other',
        nodes=[orm.QueryBuilder().append(orm.StructureData).first(flat=True).pk],
        progress=False,
    )
    assert other.failed == 0
    report = verify_workspace(convex_backend, tenant, 'w')
    assert (report.remembered, report.missing) == (4, 0)


def _advice(output: str) -> list[list[str]]:
    """The restore commands ``verify`` printed, as arguments of ``verdi data structstore``."""
    import shlex

    prefix = 'to write the records again: verdi data structstore '
    return [shlex.split(line.split(prefix, 1)[1]) for line in output.splitlines() if prefix in line]


@pytest.mark.parametrize('way', ['default', 'label-template', 'many', 'project'])
def test_the_advice_after_delete_restores_the_records(
    convex_backend, generate_structure, run_cli_command, way, monkeypatch
):
    """After ``delete``, a plain ``sync`` trusts what the nodes remember and writes nothing; the commands ``verify``
    prints write the missing records again (with the id template and raw option they were synced with), and then
    ``verify`` passes. Every step is a real ``verdi data structstore`` command."""
    import aiida_structstore.structures.verify as verify_module

    tenant = f't-{secrets.token_hex(4)}'
    target = ['-t', tenant, '-w', 'w']
    nodes = []
    for index, name in enumerate(('silicon', 'fe2o3', 'alloy')):
        node = generate_structure(name)
        node.label = f'lab{index}-{tenant}'
        nodes.append(node.store())
    pks = [str(node.pk) for node in nodes]
    if way == 'project':
        for node in nodes:
            run_cli_command(cmd_structstore, ['project', node.pk, *target, '--structure-id', f'p-{node.pk}'])
        ids = [f'p-{node.pk}' for node in nodes]
    else:
        template = ['--id-template', '{label}', '--no-raw'] if way == 'label-template' else []
        run_cli_command(cmd_structstore, ['sync', *target, *template, '-N', *pks])
        ids = [node.label for node in nodes] if template else [node.uuid for node in nodes]
    if way == 'many':
        monkeypatch.setattr(verify_module, 'RESTORE_BY_PK', 1)
    run_cli_command(cmd_structstore, ['delete', ids[0], ids[2], *target, '--force'])

    result = run_cli_command(cmd_structstore, ['verify', *target], raises=True)
    assert 'missing from the store' in result.output
    if way != 'project':
        run_cli_command(cmd_structstore, ['sync', *target, *template, '-N', *pks])
        assert convex_backend.structures.find(StructureKey.of(tenant, 'w', ids[0])) is None  # a plain sync does not
    commands = _advice(result.output)
    if way == 'project':
        assert [command[0] for command in commands] == ['project', 'project']
    else:
        assert len(commands) == 1 and '--check-store' in commands[0]
        assert ('--filters' in commands[0]) == (way == 'many')
        assert ('{label}' in commands[0]) == ('--no-raw' in commands[0]) == (way == 'label-template')
    for command in commands:
        run_cli_command(cmd_structstore, command)

    run_cli_command(cmd_structstore, ['verify', *target])
    assert {r.key.structure_id for r in convex_backend.structures.iter_workspace(tenant, 'w')} == set(ids)


def test_the_advice_for_a_record_that_differs_restores_it(convex_backend, generate_structure, run_cli_command):
    """A record edited in the store (same node, other content): a plain sync trusts what the node remembers; the
    command ``verify`` prints writes the node's record again."""
    tenant = f't-{secrets.token_hex(4)}'
    target = ['-t', tenant, '-w', 'w']
    nodes = [generate_structure(name).store() for name in ('silicon', 'fe2o3')]
    run_cli_command(cmd_structstore, ['sync', *target, '-N', *(node.pk for node in nodes)])
    key = StructureKey.of(tenant, 'w', nodes[1].uuid)
    original = convex_backend.structures.get(key)
    convex_backend.structures.put(original.to_content().model_copy(update={'cif': 'tampered'}))

    result = run_cli_command(cmd_structstore, ['verify', *target], raises=True)
    assert f'differs from its AiiDA node {nodes[1].pk}' in result.output
    (command,) = _advice(result.output)
    assert command == ['sync', *target, '--check-store', '-N', str(nodes[1].pk)]
    run_cli_command(cmd_structstore, command)
    assert convex_backend.structures.get(key).content_hash == original.content_hash
    run_cli_command(cmd_structstore, ['verify', *target])
