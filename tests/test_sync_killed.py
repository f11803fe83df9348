"""A sync killed with SIGKILL at random points, then run again, ends in exactly the expected state."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest
from aiida import orm
from aiida.manage.configuration import get_config

from aiida_structstore.projection.nodes import EXTRA_KEY, PROJECTION_VERSION
from aiida_structstore.sync import sync_structures
from aiida_structstore.verify import verify_workspace

pytestmark = pytest.mark.timeout(600)


def test_sync_survives_sigkill(aiida_profile, convex_backend, convex_server, generate_structure):
    group = orm.Group(label=f'killed-{time.time_ns()}').store()
    names = ['silicon', 'fe2o3', 'alloy', 'vacancy']
    group.add_nodes([generate_structure(names[i % 4]).store() for i in range(240)])
    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    env = {
        **os.environ,
        'AIIDA_PATH': str(pathlib.Path(get_config().dirpath).parent),
        'STRUCTURE_STORE_BACKEND': 'convex',
        'CONVEX_URL': convex_server.url,
        'CONVEX_DEPLOY_KEY': convex_server.deploy_key,
    }
    command = [
        str(verdi),
        '-p',
        aiida_profile.name,
        'data',
        'structstore',
        'sync',
        '-G',
        group.label,
        '-t',
        'killed',
        '-w',
        'w',
        '--batch-size',
        '20',
    ]
    rng = random.Random(20261125)
    kills = 0
    for _ in range(4):
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(rng.uniform(1.5, 5.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 1, 'the sync finished before it could be killed: use more structures'
    # The killed runs did work: some records and remembered projections exist already.
    assert 0 < len(list(convex_backend.iter_workspace('killed', 'w', page_size=200))) <= 240

    report = sync_structures(convex_backend, tenant_id='killed', workspace_id='w', group=group, progress=False)
    assert report.ok
    assert report.new + report.updated + report.unchanged == 240

    # The store holds exactly the group's structures, each equal to its node, and no stray chunk.
    records = {r.key.structure_id: r for r in convex_backend.iter_workspace('killed', 'w', page_size=200)}
    assert set(records) == {node.uuid for node in group.nodes}
    check = verify_workspace(convex_backend, 'killed', 'w')
    assert (check.checked, check.ok, check.problems) == (240, 240, [])
    convex_backend.collect_garbage('killed', 'w', older_than_seconds=0)
    stats = convex_backend.storage_stats('killed', 'w')
    assert stats['records'] == 240
    assert stats['chunk_sets'] == []
    assert stats['chunks'] == stats['committed_chunks']
    # Every node remembers exactly one, current projection into this target.
    for node in group.nodes:
        entries = [e for e in node.base.extras.get(EXTRA_KEY) if e['tenant_id'] == 'killed']
        assert len(entries) == 1
        assert entries[0]['content_hash'] == records[node.uuid].content_hash
        assert entries[0]['projection'] == PROJECTION_VERSION
    again = sync_structures(convex_backend, tenant_id='killed', workspace_id='w', group=group, progress=False)
    assert again.unchanged == 240
