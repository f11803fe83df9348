"""End to end on the real stack: AiiDA on PostgreSQL with the daemon and RabbitMQ, pw.x on a one-node Slurm cluster,
the structures projected into Convex (the local Convex server) by the ``structstore.project`` step, and the execution
records of the whole workflow followed live by the watcher from the daemon's broadcasts.

Needs: RabbitMQ, slurm-wlm + munge and quantum-espresso (Debian packages), all installed by ``.ci/run``; the fixtures
are in ``conftest.py``.
"""

from __future__ import annotations

import statistics

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import DataFactory, WorkflowFactory

from aiida_structstore.calculations.functions.project_structure import project_structure, projection_inputs
from aiida_structstore.core.executions import ExecutionKey
from aiida_structstore.core.structures import StructureKey
from aiida_structstore.executions.watch import ExecutionWatcher
from aiida_structstore.store.convex import ConvexStore
from aiida_structstore.structures.optimade import optimade_fields

from ..executions.conftest import Pushes
from .conftest import PSEUDO

pytestmark = pytest.mark.timeout(600)


@pytest.mark.slow
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

    # The user's structure is in the application before the relaxation starts, under the id the workflow gives it,
    # so the watcher follows every process that uses it from the start.
    project_structure(**projection_inputs(structure.store(), 'e2e', 'slurm', structure_id='si-relax-input'))
    pushes = Pushes()
    with (
        ConvexStore(convex_server.url, convex_server.deploy_key) as watch_store,
        ExecutionWatcher(
            watch_store, tenant_id='e2e', workspace_id='slurm', linked=True, catch_up_interval=3600, on_push=pushes
        ) as watcher,
    ):
        node = submit_and_await(builder, timeout=300)
        assert node.is_finished_ok, f'{node.exit_status}: {node.exit_message}'
        base = next(n for n in node.called if n.process_label == 'PwBaseWorkChain')
        # A relax may take more than one pw.x run: the last one made the relaxed structure.
        calcjob = base.outputs.output_structure.creator

        def record(process):
            return convex_backend.executions.find(ExecutionKey.of('e2e', 'slurm', process.uuid))

        def done() -> bool:
            records = [record(process) for process in (node, base, calcjob)]
            return all(r is not None and r.state == 'finished' for r in records) and records[1].structures_out == (
                'si-relax-relaxed',
            )

        pushes.wait_for(done, 'the workflow, the PwBaseWorkChain and the PwCalculation finished, relaxed linked')
        stats = watcher.stats

    # The PwBaseWorkChain went through waiting/running to finished, each state pushed from a broadcast.
    states = pushes.states(base.uuid)
    assert states[-1] == 'finished' and {'waiting', 'running'} & set(states[:-1]), states
    assert stats.catch_ups == 1 and stats.events >= 10  # the first catch-up only: the rest came from broadcasts
    base_record = record(base)
    assert (base_record.exit_status, base_record.parent_uuid) == (0, node.uuid)
    assert base_record.structures_in == ('si-relax-input',) and base_record.structures_out == ('si-relax-relaxed',)
    # The calculation ran on Slurm: its record carries the job id and scheduler state, the computer but no host name.
    calc_record = record(calcjob)
    assert calc_record.scheduler.type == 'core.slurm'
    assert calc_record.scheduler.job_id == calcjob.get_job_id()
    assert calc_record.computer == calcjob.computer.label and calc_record.hostname is None
    assert 'waiting' in pushes.states(calcjob.uuid)
    assert record(node).structures_out == ('si-relax-relaxed',)  # exposed from the PwBaseWorkChain
    of_relaxed = convex_backend.executions.list('e2e', 'slurm', structure_id='si-relax-relaxed').items
    assert {base.uuid, calcjob.uuid} <= {r.key.process_uuid for r in of_relaxed}
    latencies = sorted(stats.latencies)
    print(
        f'\nexecution records: {stats.events} broadcasts, {stats.pushes} pushes, {stats.written} records written, '
        f'{watch_store.transport.calls} Convex calls; state change → record committed: median '
        f'{statistics.median(latencies):.3f} s, max {latencies[-1]:.3f} s over {len(latencies)} writes'
    )

    # The calculation ran through Slurm.
    assert calcjob.get_job_id()
    assert calcjob.computer.scheduler_type == 'core.slurm'
    relaxed = node.outputs.base.output_structure
    assert relaxed.uuid != structure.uuid

    # Both structures are in the store, read back through the store, and match the nodes.
    for name, source_node in (('input', structure), ('relaxed', relaxed)):
        record = convex_backend.structures.get(StructureKey.of('e2e', 'slurm', f'si-relax-{name}'))
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
