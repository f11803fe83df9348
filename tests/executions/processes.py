"""Small real processes for the execution tests: they run in the test process (``run_get_node``) or, through the
daemon, by their module path (the daemon imports this module as ``tests.executions.processes``)."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode, WorkChain, calcfunction


@calcfunction
def strain(structure: orm.StructureData) -> orm.StructureData:
    """A new structure: the cell stretched by 1 %."""
    strained = orm.StructureData(cell=[[x * 1.01 for x in row] for row in structure.cell], pbc=structure.pbc)
    for site in structure.sites:
        strained.append_atom(
            position=[x * 1.01 for x in site.position], symbols=structure.get_kind(site.kind_name).symbol
        )
    return strained


@calcfunction
def fail_reading(structure: orm.StructureData) -> ExitCode:
    """Finishes with exit status 400 and a message naming a remote path (which the record must not show)."""
    return ExitCode(400, 'could not read /scratch/alice/aiida/ab/cd/aiida.out on the cluster')


@calcfunction
def crash(structure: orm.StructureData) -> orm.StructureData:
    """Raises: the process is excepted."""
    raise RuntimeError('the cluster went away')


class StrainWorkChain(WorkChain):
    """Strains a structure through ``strain`` and returns the result."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData)
        spec.output('strained', valid_type=orm.StructureData)
        spec.outline(cls.run_strain)

    def run_strain(self):
        self.out('strained', strain(self.inputs.structure))


class FailingWorkChain(WorkChain):
    """Finishes with exit status 400 and a message naming a remote path (which the record must not show)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData)
        spec.exit_code(400, 'ERROR_READING', message='could not read {path} on the cluster')
        spec.outline(cls.fail)

    def fail(self):
        return self.exit_codes.ERROR_READING.format(path='/scratch/alice/aiida/ab/cd/aiida.out')


def run_broadcasting(process, **inputs):
    """Run ``process`` (a process class) in this interpreter on the runner that has the profile's communicator, so
    that its state changes are broadcast as a daemon worker's are. (``aiida.engine.run`` uses a runner without a
    communicator since aiida-core 2.8: locally run processes broadcast nothing.)"""
    from aiida.manage import get_manager

    return get_manager().get_runner().run_get_node(process, **inputs)


class StrainAndProjectWorkChain(WorkChain):
    """Strains a structure, then projects the input and the strained structure with ``structstore.project``."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData)
        spec.input('tenant_id', valid_type=orm.Str)
        spec.input('workspace_id', valid_type=orm.Str)
        spec.input('record_executions', valid_type=orm.Bool, default=lambda: orm.Bool(True))
        spec.outline(cls.run_strain, cls.project, cls.check)
        spec.exit_code(401, 'ERROR_PROJECTION', message='the projection failed')

    def run_strain(self):
        self.ctx.strained = strain(self.inputs.structure)

    def project(self):
        from aiida.engine import ToContext

        from aiida_structstore.workflows.project import ProjectStructuresWorkChain

        inputs = {
            'structures': {'input': self.inputs.structure, 'strained': self.ctx.strained},
            'tenant_id': self.inputs.tenant_id,
            'workspace_id': self.inputs.workspace_id,
            'record_executions': self.inputs.record_executions,
        }
        return ToContext(projection=self.submit(ProjectStructuresWorkChain, **inputs))

    def check(self):
        if not self.ctx.projection.is_finished_ok:
            return self.exit_codes.ERROR_PROJECTION
