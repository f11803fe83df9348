"""Syncs that run at the same time as each other and as a user editing extras lose nothing.

The interleaving that used to lose data is forced, not hoped for: the fault proxy holds sync A's write reply (A has
read its batch and written it, and has not yet recorded it on the nodes) while the user edits extras and sync B runs
to its end; then A goes on.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import subprocess
import sys
import threading

import pytest
from aiida import orm
from aiida.manage.configuration import get_config

from aiida_structstore.store.convex import ConvexStore
from aiida_structstore.structures.sync import sync_structures
from aiida_structstore.structures.verify import verify_workspace
from aiida_structstore.tracking import target_extra

from .faults import FaultProxy

pytestmark = pytest.mark.timeout(600)


def start_sync(profile, url, deploy_key, group, tenant, workspace) -> subprocess.Popen:
    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    env = {
        **os.environ,
        'AIIDA_PATH': str(pathlib.Path(get_config().dirpath).parent),
        'STRUCTURE_STORE_BACKEND': 'convex',
        'CONVEX_URL': url,
        'CONVEX_DEPLOY_KEY': deploy_key,
        'STRUCTURE_STORE_TIMEOUT': '300',
    }
    command = [str(verdi), '-p', profile, 'data', 'structstore', 'sync', '-G', group.label, '-t', tenant]
    return subprocess.Popen(
        [*command, '-w', workspace], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.fixture
def group(generate_structure):
    group = orm.Group(label=f'concurrent-{secrets.token_hex(4)}').store()
    names = ('silicon', 'fe2o3', 'alloy', 'vacancy')
    group.add_nodes([generate_structure(names[i % 4]).store() for i in range(100)])
    return group


@pytest.mark.slow
@pytest.mark.parametrize('other_workspace', ['b', 'a'], ids=['other-target', 'same-target'])
def test_a_sync_held_mid_batch_keeps_user_extras_and_another_syncs_work(
    aiida_profile, convex_server, group, other_workspace
):
    held, release = threading.Event(), threading.Event()
    tenant = f'conc-{secrets.token_hex(3)}'

    def hold_first_write_reply(phase, function):
        if phase == 'reply' and function.endswith(':putBatch') and not held.is_set():
            held.set()
            release.wait(300)

    # Both syncs and the checks go through the proxy: one URL, so one store id for all of them.
    with FaultProxy(convex_server.url) as proxy, ConvexStore(proxy.url, convex_server.deploy_key) as store:
        proxy.hook = hold_first_write_reply
        sync_a = start_sync(aiida_profile.name, proxy.url, convex_server.deploy_key, group, tenant, 'a')
        try:
            assert held.wait(120), 'sync A never wrote'
            # While A waits for its reply: the user edits extras, and sync B runs from start to end.
            for node in group.nodes:
                node.base.extras.set('note', f'edited {node.pk}')
            report_b = sync_structures(
                store, tenant_id=tenant, workspace_id=other_workspace, group=group, progress=False
            )
            assert report_b.ok and report_b.selected == 100
        finally:
            release.set()
            output, _ = sync_a.communicate(timeout=300)
        assert sync_a.returncode == 0, output

        for node in group.nodes:
            extras = orm.load_node(node.pk).base.extras.all
            assert extras['note'] == f'edited {node.pk}'
            for workspace in {'a', other_workspace}:
                assert extras[target_extra(store.store_id, tenant, workspace)]['structure_id'] == node.uuid
        for workspace in {'a', other_workspace}:
            check = verify_workspace(store, tenant, workspace)
            assert (check.checked, check.matching, check.remembered, check.problems) == (100, 100, 100, [])


@pytest.mark.slow
def test_two_syncs_of_one_target_at_once(aiida_profile, convex_backend, convex_server, group):
    tenant = f'both-{secrets.token_hex(3)}'
    syncs = [start_sync(aiida_profile.name, convex_server.url, convex_server.deploy_key, group, tenant, 'w')]
    syncs.append(start_sync(aiida_profile.name, convex_server.url, convex_server.deploy_key, group, tenant, 'w'))
    outputs = [s.communicate(timeout=300)[0] for s in syncs]
    assert [s.returncode for s in syncs] == [0, 0], outputs
    check = verify_workspace(convex_backend, tenant, 'w')
    assert (check.checked, check.matching, check.remembered, check.problems) == (100, 100, 100, [])
    again = sync_structures(convex_backend, tenant_id=tenant, workspace_id='w', group=group)
    assert again.unchanged == 100
