"""``structstore.pw_base_project``: a Quantum ESPRESSO ``PwBaseWorkChain`` followed by the projection step.

The documented example of ``structstore.project`` as a step of another workflow: it runs a ``PwBaseWorkChain``
(for instance a ``relax``), then projects its input structure and, when there is one, its relaxed output structure
into the store, with ids ``<prefix>-input`` and ``<prefix>-relaxed``. It runs under the daemon; the daemon workers
need the store settings in their environment (see docs/workflows.md).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain
from aiida.plugins import WorkflowFactory

from .inputs import invalid_id, target_ids, target_inputs
from .project import ProjectStructuresWorkChain

PwBaseWorkChain = WorkflowFactory('quantumespresso.pw.base')


def _validate(inputs, _):
    """Refuse invalid ids before the calculation runs (the projection is the last step)."""
    values = target_ids(inputs)
    if 'id_prefix' in inputs:
        values.append(('id_prefix', f'{inputs["id_prefix"].value}-relaxed'))
    return invalid_id(values)


class PwBaseProjectWorkChain(WorkChain):
    """Run a ``PwBaseWorkChain``, then project its input and output structures into the store."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(PwBaseWorkChain, namespace='base', exclude=('clean_workdir',))
        target_inputs(spec)
        spec.input(
            'id_prefix',
            valid_type=orm.Str,
            required=False,
            help='Prefix of the structure ids (default: the UUID of this work chain).',
        )
        spec.inputs.validator = _validate
        spec.expose_outputs(PwBaseWorkChain, namespace='base')
        spec.output_namespace('receipts', valid_type=orm.Dict, dynamic=True, help='One receipt per structure.')
        spec.outline(cls.run_base, cls.inspect_base, cls.project, cls.results)
        spec.exit_code(401, 'ERROR_BASE_FAILED', message='The PwBaseWorkChain failed with exit status {status}.')
        spec.exit_code(402, 'ERROR_PROJECTION_FAILED', message='The projection failed with exit status {status}.')

    def run_base(self):
        """Submit the ``PwBaseWorkChain``."""
        inputs = self.exposed_inputs(PwBaseWorkChain, namespace='base')
        return ToContext(base=self.submit(PwBaseWorkChain, **inputs))

    def inspect_base(self):
        """Stop if the calculation failed; expose its outputs."""
        if not self.ctx.base.is_finished_ok:
            return self.exit_codes.ERROR_BASE_FAILED.format(status=self.ctx.base.exit_status)
        self.out_many(self.exposed_outputs(self.ctx.base, PwBaseWorkChain, namespace='base'))

    def project(self):
        """Submit ``structstore.project`` for the input structure and, if there is one, the relaxed structure."""
        prefix = self.inputs.id_prefix.value if 'id_prefix' in self.inputs else self.node.uuid
        structures = {'input': self.inputs.base.pw.structure}
        if 'output_structure' in self.ctx.base.outputs:
            structures['relaxed'] = self.ctx.base.outputs.output_structure
        inputs = {
            'structures': structures,
            'structure_ids': {name: orm.Str(f'{prefix}-{name}') for name in structures},
            'tenant_id': self.inputs.tenant_id,
            'workspace_id': self.inputs.workspace_id,
        }
        return ToContext(projection=self.submit(ProjectStructuresWorkChain, **inputs))

    def results(self):
        """Pass the receipts on; fail if the projection failed."""
        if not self.ctx.projection.is_finished_ok:
            return self.exit_codes.ERROR_PROJECTION_FAILED.format(status=self.ctx.projection.exit_status)
        self.out_many({f'receipts.{k}': v for k, v in self.ctx.projection.outputs.receipts.items()})
