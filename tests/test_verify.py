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
            f'missing from the store: node {nodes[1].pk} ({nodes[1].uuid}) was projected here (sync it again)',
        )
    ]
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
