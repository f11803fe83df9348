"""``structstore.project``: project a namespace of structures into the store, as a step of any workflow.

Each structure is projected by the ``structstore.project_structure`` calcfunction (so every write has its own
provenance node and receipt). The work chain also records its own execution and its caller's (the workflow it is a
step of) in the same tenant and workspace, once the structures are projected and again when it terminates, so the
application shows which workflow produced the structures and how it is doing (``record_executions``, default on;
docs/executions.md). Structures created by the import calcfunctions are projected with their raw file and
parameters. The work chain checkpoints after the step: if a daemon worker dies, the step runs again, and since every
write is idempotent the store ends in the same state (records already written report ``unchanged``).

Usage inside another work chain::

    from aiida_structstore.workflows.project import ProjectStructuresWorkChain

    def project(self):
        inputs = {
            'structures': {'input': self.inputs.structure, 'relaxed': self.ctx.relax.outputs.output_structure},
            'tenant_id': orm.Str('acme'),
            'workspace_id': orm.Str('relaxations'),
        }
        return ToContext(projection=self.submit(ProjectStructuresWorkChain, **inputs))
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import WorkChain

from ..calculations.functions.project_structure import project_structure, projection_inputs
from ..core.exceptions import InvalidInputError, OwnershipError, StructStoreError
from .inputs import include_raw_input, invalid_id, target_ids, target_inputs


def _validate(inputs, _):
    """Refuse an empty namespace, ids for names that are not structures, and invalid ids, before anything runs."""
    structures = inputs.get('structures', {})
    if 'structures' in inputs and not structures:
        return 'the `structures` namespace is empty'
    unknown = sorted(set(inputs.get('structure_ids', {})) - set(structures))
    if unknown:
        return f'`structure_ids` names structures that are not in `structures`: {", ".join(unknown)}'
    values = target_ids(inputs)
    values += [(f'structure_ids.{name}', node.value) for name, node in inputs.get('structure_ids', {}).items()]
    return invalid_id(values)


class ProjectStructuresWorkChain(WorkChain):
    """Project every structure of the ``structures`` namespace into one tenant and workspace of the store."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace(
            'structures', valid_type=orm.StructureData, dynamic=True, help='The structures to project, by name.'
        )
        target_inputs(spec)
        spec.input_namespace(
            'structure_ids',
            valid_type=orm.Str,
            dynamic=True,
            required=False,
            help='Structure ids by name (default: the node UUID).',
        )
        include_raw_input(spec)
        spec.input(
            'replace_owner',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help='Replace a record of another node under the same structure id (default: fail instead).',
        )
        spec.input(
            'record_executions',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(True),
            help='Record the execution of this work chain and of its caller in the same tenant and workspace.',
        )
        spec.inputs.validator = _validate
        spec.output_namespace('receipts', valid_type=orm.Dict, dynamic=True, help='One receipt per structure.')
        spec.outline(cls.project)
        spec.exit_code(201, 'ERROR_INVALID_STRUCTURE', message='The store refused the record of {names}: {error}')
        spec.exit_code(
            202, 'ERROR_STRUCTURE_ID_TAKEN', message="The structure id of {names} holds another node's record: {error}"
        )
        spec.exit_code(300, 'ERROR_PROJECTION_FAILED', message='Projecting {names} failed: {error}')

    def project(self):
        """Project each structure with the ``structstore.project_structure`` calcfunction; report and stop at the
        first failure (2xx: the input cannot be projected; 300: the store failed)."""
        structures = dict(self.inputs.structures)
        ids = dict(self.inputs.get('structure_ids', {}))
        for name, structure in sorted(structures.items()):
            inputs = projection_inputs(
                structure,
                self.inputs.tenant_id,
                self.inputs.workspace_id,
                structure_id=ids.get(name),
                include_raw=self.inputs.include_raw.value,
                replace_owner=self.inputs.replace_owner.value,
            )
            try:
                outputs = project_structure(**inputs, metadata={'call_link_label': f'project_{name}'})
            except StructStoreError as exc:
                self.report(f'projection of {name}<{structure.pk}> failed: {exc}')
                if isinstance(exc, OwnershipError):
                    return self.exit_codes.ERROR_STRUCTURE_ID_TAKEN.format(names=name, error=str(exc))
                if isinstance(exc, InvalidInputError):
                    return self.exit_codes.ERROR_INVALID_STRUCTURE.format(names=name, error=str(exc))
                return self.exit_codes.ERROR_PROJECTION_FAILED.format(names=name, error=str(exc))
            receipt = outputs['receipt']
            self.out(f'receipts.{name}', receipt)
            self.report(
                f'{name}<{structure.pk}> → {receipt["tenant_id"]}/{receipt["workspace_id"]}/'
                f'{receipt["structure_id"]}: {receipt["status"]}'
            )
        self._record_executions()

    def on_terminated(self):
        """Record the final state of this work chain (and its caller's current one)."""
        super().on_terminated()
        self._record_executions()

    def _record_executions(self) -> None:
        """Push the execution records of this work chain and its caller. A failure is logged, never raised: the
        structures are what this step is for, and the next sync or the watcher records the executions anyway."""
        try:
            if not self.inputs.record_executions.value:
                return
            from ..executions.sync import record_processes

            caller = self.node.caller
            pks = [self.node.pk] + ([caller.pk] if caller is not None else [])
            report = record_processes(self.inputs.tenant_id.value, self.inputs.workspace_id.value, pks)
            for pk, message in report.failures:
                self.logger.warning('execution record of process %s not written: %s', pk, message)
        except Exception as exc:
            self.logger.warning('execution records not written: %s: %s', type(exc).__name__, exc)
