"""A sync killed with SIGKILL at chosen points, again and again, then run to the end, leaves exactly the expected
state: every record equal to its node, every raw input intact, no orphan chunk or upload (without a ``gc``), and
each node remembering exactly its one current projection.

The points are chosen by the fault proxy between the sync (a ``verdi`` process) and the local Convex server, from
the conversation itself, so no kill depends on timing:

* ``after-a-batch``: before the second ``putBatch`` of the run is forwarded (a batch is written and remembered);
* ``mid-staging``: before the second ``stageChunks`` call of a large upload is forwarded (half of it is staged);
* ``staged-not-committed``: before the ``putBatch`` that would commit a staged upload is forwarded;
* ``committed-not-remembered``: after a ``putBatch`` ran, before its reply reaches the sync (written, not remembered).
"""

from __future__ import annotations

import os
import pathlib
import secrets
import signal
import subprocess
import sys

import pytest
from aiida import orm
from aiida.manage.configuration import get_config

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.core.structures import StructureKey
from aiida_structstore.structures.sync import sync_structures
from aiida_structstore.structures.verify import verify_workspace
from aiida_structstore.tracking import PROJECTION_VERSION, target_extra

from .faults import FaultProxy

pytestmark = pytest.mark.timeout(900)

POINTS = ('after-a-batch', 'mid-staging', 'staged-not-committed', 'committed-not-remembered')
EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / 'examples' / 'cif'


class Killer:
    """A proxy hook that SIGKILLs the sync at its point, once, and drops every request after that."""

    def __init__(self, point: str) -> None:
        self.point = point
        self.pid: int | None = None
        self.killed = False
        self.calls: dict[str, int] = {}
        self.staged = False

    def kill(self) -> str:
        os.kill(self.pid, signal.SIGKILL)
        self.killed = True
        return 'drop'

    def __call__(self, phase: str, function: str) -> str | None:
        if self.killed:
            return 'drop'
        name = function.split(':')[-1]
        if phase == 'request':
            self.calls[name] = self.calls.get(name, 0) + 1
            if name == 'stageChunks':
                self.staged = True
        if self.point == 'after-a-batch' and phase == 'request' and name == 'putBatch' and self.calls[name] == 2:
            return self.kill()
        if self.point == 'mid-staging' and phase == 'request' and name == 'stageChunks' and self.calls[name] == 2:
            return self.kill()
        if self.point == 'staged-not-committed' and phase == 'request' and name == 'putBatch' and self.staged:
            return self.kill()
        if self.point == 'committed-not-remembered' and phase == 'reply' and name == 'putBatch':
            return self.kill()
        return None


@pytest.fixture(scope='module')
def convex_server():
    """This module's own local Convex server, without the documents the rest of the session left in its server.

    It used to be needed for the index check (every lookup again as a full scan), which the session's server no
    longer makes: with the thousands of lookups a 1,000-record sync makes and the session's documents, a lookup took
    longer than the 1 s client timeout these tests use. The index maps are checked against scans by tests/devserver
    and the store contract suites (``verifying_convex_server``).
    """
    from devserver.local_convex import local_convex

    with local_convex() as server:
        yield server


@pytest.fixture(scope='module')
def imported(tmp_path_factory):
    """30 structures imported from CIF files with provenance: 5 with a 5 MB raw input (staged uploads), 8 with a
    0.7 MB one (two chunks), the rest small."""
    from aiida.common import AttributeDict
    from aiida.manage.configuration import get_profile
    from click.testing import CliRunner

    folder = tmp_path_factory.mktemp('killed-cifs')
    text = (EXAMPLES / 'si.cif').read_text()
    files = []
    for index in range(30):
        lines = 80_000 if index % 6 == 0 else 12_000 if index % 3 == 1 else 0
        comments = ''.join(f'# {index:02d} comment line {i:08d} {"x" * 40}\n' for i in range(lines))
        path = folder / f'si-{index:02d}.cif'
        path.write_text(text + comments)
        files.append(path)
    group = f'killed-{secrets.token_hex(4)}'
    obj = AttributeDict({'config': get_config(), 'profile': get_profile()})
    result = CliRunner().invoke(cmd_structstore, ['import', *map(str, files), '-G', group], obj=obj)
    assert result.exit_code == 0, result.output
    return orm.load_group(group)


def run_sync(profile, proxy_url, deploy_key, group, workspace, killer):
    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    env = {
        **os.environ,
        'AIIDA_PATH': str(pathlib.Path(get_config().dirpath).parent),
        'STRUCTURE_STORE_BACKEND': 'convex',
        'CONVEX_URL': proxy_url,
        'CONVEX_DEPLOY_KEY': deploy_key,
        'STRUCTURE_STORE_RETRIES': '2',
    }
    command = [str(verdi), '-p', profile, 'data', 'structstore', 'sync', '-G', group.label, '-t', 'killed']
    command += ['-w', workspace, '--batch-size', '3']
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killer.pid = process.pid
    output, _ = process.communicate(timeout=300)
    return process.returncode, output.decode(errors='replace')


@pytest.mark.slow
def test_sync_killed_at_chosen_points_ends_in_the_exact_state(aiida_profile, convex_backend, convex_server, imported):
    group = imported
    nodes = list(group.nodes)
    workspaces = [f'w{secrets.token_hex(3)}']
    kills = dict.fromkeys(POINTS, 0)
    trial = 0
    with FaultProxy(convex_server.url) as proxy:
        while min(kills.values()) < 5:
            killer = Killer(POINTS[trial % len(POINTS)])
            proxy.hook = killer
            code, output = run_sync(
                aiida_profile.name, proxy.url, convex_server.deploy_key, group, workspaces[-1], killer
            )
            if killer.killed:
                assert code == -signal.SIGKILL, output
                kills[killer.point] += 1
            else:
                # The point was not reached: the run found nothing left to do there and finished the workspace.
                assert code == 0, output
                workspaces.append(f'w{secrets.token_hex(3)}')
            trial += 1
            assert trial < 80, f'kills did not accumulate: {kills}'
    assert sum(kills.values()) >= 20
    print(f'kills: {kills} in {trial} trials over {len(workspaces)} workspaces')

    store = convex_backend
    for workspace in workspaces:
        # Running the sync to its end, without any gc, gives exactly the expected state.
        report = sync_structures(store, tenant_id='killed', workspace_id=workspace, group=group, progress=False)
        assert report.ok, report.failures
        assert report.new + report.updated + report.unchanged == 30
        records = {r.key.structure_id: r for r in store.structures.iter_workspace('killed', workspace, page_size=100)}
        assert set(records) == {node.uuid for node in nodes}
        check = verify_workspace(store, 'killed', workspace)
        assert (check.checked, check.matching, check.remembered, check.problems) == (30, 30, 30, [])
        stats = store.structures.storage_stats('killed', workspace)
        assert stats['records'] == 30
        assert stats['chunk_sets'] == []  # no abandoned upload: each one was resumed and committed
        assert stats['chunks'] == stats['committed_chunks'] > 30  # and no orphan chunk; raw inputs are there
        for node in nodes:
            entry = node.base.extras.get(target_extra(store.store_id, 'killed', workspace))
            assert entry['content_hash'] == records[node.uuid].content_hash
            assert entry['projection'] == PROJECTION_VERSION
            assert entry['instance'] == store.instance
        big = max(nodes, key=lambda n: records[n.uuid].raw_size)
        raw = store.structures.get_raw(StructureKey.of('killed', workspace, big.uuid))
        assert len(raw.encode()) == records[big.uuid].raw_size > 5_000_000
        again = sync_structures(store, tenant_id='killed', workspace_id=workspace, group=group, progress=False)
        assert again.unchanged == 30


FAULTS = ('reset', 'delay:1.5', 'status:429', 'status:500', 'status:502', 'status:503', 'drop-reply', 'garble')


@pytest.mark.slow
def test_a_whole_sync_through_20_percent_faults_ends_in_the_exact_state(convex_server, generate_structure, tmp_path):
    """1,000 structures, a tenth of them imported with a two-chunk raw input, synced through a proxy that breaks one
    request in five (connection resets, timeouts, 429, 5xx, replies lost after the function ran, cut replies)."""
    from aiida.common import AttributeDict
    from aiida.manage.configuration import get_profile
    from click.testing import CliRunner

    from aiida_structstore.store.convex import ConvexStore

    text = (EXAMPLES / 'si.cif').read_text()
    files = []
    for index in range(100):
        path = tmp_path / f'raw-{index:03d}.cif'
        # About 90 KB: two chunks of the store's 64 KiB below (the same code paths as 512 KiB chunks, a tenth of the
        # bytes through the proxy and the write pacing).
        path.write_text(text + ''.join(f'# {index} line {i:08d} {"y" * 40}\n' for i in range(1_500)))
        files.append(path)
    label = f'faults-{secrets.token_hex(4)}'
    obj = AttributeDict({'config': get_config(), 'profile': get_profile()})
    result = CliRunner().invoke(cmd_structstore, ['import', *map(str, files), '-G', label], obj=obj)
    assert result.exit_code == 0, result.output
    group = orm.load_group(label)
    names = ('silicon', 'fe2o3', 'alloy', 'vacancy', 'molecule')
    for start in range(0, 900, 50):
        # Fifty at a time: each commit expires every node object the process holds (AiiDA's session), so holding
        # all 900 made storing them quadratic.
        group.add_nodes([generate_structure(names[i % 5]).store() for i in range(start, start + 50)])

    with (
        FaultProxy(convex_server.url) as proxy,
        ConvexStore(
            proxy.url, convex_server.deploy_key, chunk_bytes=64 * 1024, timeout=1.0, retries=12, backoff_max=0.05
        ) as store,
    ):
        proxy.chaos(0.2, FAULTS, seed=20261201)
        report = sync_structures(
            store, tenant_id='faults', workspace_id='w', group=group, batch_size=50, progress=False
        )
        assert report.ok, report.failures
        assert report.new + report.unchanged == 1000
        # Reading back goes through the same faults.
        records = {r.key.structure_id: r for r in store.structures.iter_workspace('faults', 'w', page_size=500)}
        assert set(records) == {node.uuid for node in group.nodes}
        assert sum(1 for r in records.values() if r.chunk_count >= 2) == 100
        check = verify_workspace(store, 'faults', 'w')  # every hash, and every raw input read back and checked
        assert (check.checked, check.matching, check.remembered, check.problems) == (1000, 1000, 1000, [])
        stats = store.structures.storage_stats('faults', 'w')
        assert stats['chunk_sets'] == []
        assert stats['chunks'] == stats['committed_chunks']
        again = sync_structures(store, tenant_id='faults', workspace_id='w', group=group, progress=False)
        assert again.unchanged == 1000
        injected = sum(proxy.injected.values())
        assert injected >= 20 and len(proxy.injected) >= 6, proxy.injected
        print(f'faults injected: {dict(proxy.injected)} in {len(proxy.requests)} requests')
