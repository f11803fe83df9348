"""End to end on the real stack: AiiDA on PostgreSQL with the daemon and RabbitMQ, pw.x on a one-node Slurm cluster,
the structures projected into Convex (the local Convex server) by the ``structstore.project`` step.

Needs: RabbitMQ, slurm-wlm + munge and quantum-espresso (Debian packages), all installed by ``.ci/run``. The Slurm
cluster is started by the ``slurm`` fixture (``scripts/services.sh slurm``) and stopped afterwards if it was not
already running.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import time

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import DataFactory, WorkflowFactory

from aiida_structstore.models import StructureKey
from aiida_structstore.projection.optimade import optimade_fields

ROOT = pathlib.Path(__file__).resolve().parents[2]
PSEUDO = pathlib.Path('/usr/share/espresso/pseudo/Si.pz-vbc.UPF')

pytestmark = pytest.mark.timeout(600)


def _slurm_up() -> bool:
    result = subprocess.run(['sinfo', '-h', '-o', '%T'], capture_output=True, text=True, check=False)
    return result.returncode == 0 and any(s in result.stdout for s in ('idle', 'mixed', 'alloc'))


@pytest.fixture(scope='module')
def slurm():
    missing = [tool for tool in ('sinfo', 'slurmctld', 'slurmd', 'munged', 'pw.x') if shutil.which(tool) is None]
    if missing or not PSEUDO.exists():
        reason = f'the real stack is not installed ({", ".join(missing) or PSEUDO}): bash .ci/run installs it'
        if os.environ.get('CI') == 'true':
            pytest.fail(reason)  # in CI the stack must be there: a skip would hide a broken install
        pytest.skip(reason)
    started = not _slurm_up()
    if started:
        subprocess.run(['bash', str(ROOT / 'scripts' / 'services.sh'), 'slurm'], check=True)
    yield
    if started:
        subprocess.run(['bash', str(ROOT / 'scripts' / 'services.sh'), 'stop-slurm'], check=True)


@pytest.fixture
def pw_code(slurm, tmp_path_factory):
    computer = orm.Computer(
        label=f'slurm-{time.time_ns()}',
        hostname='localhost',
        transport_type='core.local',
        scheduler_type='core.slurm',
        workdir=str(tmp_path_factory.mktemp('slurm-work')),
    ).store()
    computer.set_minimum_job_poll_interval(1.0)
    computer.set_default_mpiprocs_per_machine(1)
    computer.set_prepend_text('export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1')
    computer.configure(safe_interval=0.1)
    return orm.InstalledCode(
        label='pw',
        computer=computer,
        filepath_executable=shutil.which('pw.x'),
        default_calc_job_plugin='quantumespresso.pw',
    ).store()


@pytest.fixture
def daemon(convex_backend, daemon_environment, started_daemon_client):
    """The AiiDA daemon, started in an environment that has the store settings (as users start it)."""
    return started_daemon_client


def test_relax_on_slurm_then_project(daemon, submit_and_await, pw_code, convex_backend, convex_server):
    UpfData = DataFactory('pseudo.upf')  # noqa: N806
    structure = orm.StructureData(cell=[[-2.7, 0, 2.7], [0, 2.7, 2.7], [-2.7, 2.7, 0]])
    structure.append_atom(position=(0, 0, 0), symbols='Si')
    structure.append_atom(position=(1.40, 1.35, 1.35), symbols='Si')  # displaced: the relax moves it back
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([2, 2, 2])
    builder = WorkflowFactory('structstore.pw_base_project').get_builder()
    builder.base.pw.code = pw_code
    builder.base.pw.structure = structure
    builder.base.pw.parameters = orm.Dict(
        {'CONTROL': {'calculation': 'relax'}, 'SYSTEM': {'ecutwfc': 12.0}, 'ELECTRONS': {'conv_thr': 1e-8}}
    )
    builder.base.pw.pseudos = {'Si': UpfData(PSEUDO)}
    builder.base.kpoints = kpoints
    builder.base.pw.metadata.options = {
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
        'max_wallclock_seconds': 600,
        'withmpi': False,
    }
    builder.tenant_id = orm.Str('e2e')
    builder.workspace_id = orm.Str('slurm')
    builder.id_prefix = orm.Str('si-relax')

    node = submit_and_await(builder, timeout=300)
    assert node.is_finished_ok, f'{node.exit_status}: {node.exit_message}'

    # The calculation ran through Slurm.
    calcjob = next(n for n in node.called_descendants if isinstance(n, orm.CalcJobNode))
    assert calcjob.get_job_id()
    assert calcjob.computer.scheduler_type == 'core.slurm'
    relaxed = node.outputs.base.output_structure
    assert relaxed.uuid != structure.uuid

    # Both structures are in the store, read back through the store, and match the nodes.
    for name, source_node in (('input', structure), ('relaxed', relaxed)):
        record = convex_backend.get(StructureKey.of('e2e', 'slurm', f'si-relax-{name}'))
        assert record.node_uuid == source_node.uuid
        assert record.structure == optimade_fields(source_node.base.attributes.all)
        assert record.summary['chemical_formula_reduced'] == 'Si'
        assert record.cif.startswith(f'# aiida-structstore projection of StructureData {source_node.uuid}')
        receipt = node.outputs.receipts[name]
        assert receipt['content_hash'] == record.content_hash
        # Provenance: the receipt was created by a project_structure calcfunction whose input is the structure.
        creator = receipt.creator
        assert creator.process_label == 'project_structure'
        inputs = {link.link_label: link.node for link in creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC)}
        assert inputs['structure'].uuid == source_node.uuid
    moved = record.structure['cartesian_site_positions'][1]
    assert moved != pytest.approx([1.40, 1.35, 1.35], abs=1e-4)

    # No secret anywhere in the graph.
    from tests.test_secrets import database_text

    dump = database_text()
    assert convex_server.deploy_key not in dump
    assert convex_server.url not in dump
