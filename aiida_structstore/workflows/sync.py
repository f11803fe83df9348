"""``structstore.sync``: a sync of many structures split into slices that AiiDA daemon workers run in parallel.

A user with a million structures runs it with as many daemon workers as they have cores to spare, on one machine
or on several that share the profile's PostgreSQL and RabbitMQ (``verdi daemon incr``). The selection (all
structures, a group, and/or QueryBuilder filters) is split into ``parts`` slices of consecutive pks with about the
same number of structures each; each slice is one ``structstore.sync_slice`` work chain, submitted at once, so each
worker takes one, and each runs the ``structstore.sync_part`` calcfunction (the sync of the slice, with its report
as provenance). The work chain ends with the summed report.

Each slice is an ordinary incremental sync, so running the work chain again skips what is unchanged, and a slice
whose worker died is simply run again by the next run. Daemon workers read the store settings from their
environment or the settings file (docs/workflows.md).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain

from ..calculations.functions.sync_part import sync_part
from ..structures.projection import DEFAULT_ID_TEMPLATE, render_structure_id
from ..structures.selection import count_selected, select_structures
from .inputs import include_raw_input, invalid_id, target_ids, target_inputs

REPORT_FIELDS = ('selected', 'new', 'updated', 'unchanged', 'failed')


def _validate(inputs, _):
    """Refuse invalid ids, templates, filters and sizes before anything runs."""
    problem = invalid_id(target_ids(inputs))
    if problem:
        return problem
    if 'id_template' in inputs:
        try:
            render_structure_id(inputs['id_template'].value, uuid='00000000-0000-0000-0000-000000000000', pk=1)
        except ValueError as exc:
            return str(exc)
    if 'parts' in inputs and not 1 <= inputs['parts'].value <= 1000:
        return f'parts must be from 1 to 1000, got {inputs["parts"].value}'
    if 'batch_size' in inputs and not 1 <= inputs['batch_size'].value <= 5000:
        return f'batch_size must be from 1 to 5000, got {inputs["batch_size"].value}'
    return None


class SyncSliceWorkChain(WorkChain):
    """Sync one slice of structures (run by ``structstore.sync``; one daemon worker runs one slice)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        target_inputs(spec)
        spec.input('selection', valid_type=orm.Dict, help='pk_min, pk_max, and optionally group (pk) and filters.')
        spec.input('options', valid_type=orm.Dict, help='id_template, include_raw and batch_size of the sync.')
        spec.output('report', valid_type=orm.Dict, help='The report of the sync of the slice.')
        spec.outline(cls.sync)

    def sync(self):
        """Run the ``structstore.sync_part`` calcfunction for the slice."""
        outputs = sync_part(
            tenant_id=self.inputs.tenant_id,
            workspace_id=self.inputs.workspace_id,
            selection=self.inputs.selection,
            options=self.inputs.options,
            metadata={'call_link_label': 'sync'},
        )
        self.out('report', outputs['report'])


class SyncWorkChain(WorkChain):
    """Sync a selection of structures into the store in ``parts`` slices run by daemon workers in parallel."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        target_inputs(spec)
        spec.input('group', valid_type=orm.Str, required=False, help='Sync the structures of this group (label).')
        spec.input('filters', valid_type=orm.Dict, required=False, help='QueryBuilder filters on the StructureData.')
        spec.input('parts', valid_type=orm.Int, default=lambda: orm.Int(2), help='Slices run in parallel.')
        spec.input(
            'id_template',
            valid_type=orm.Str,
            default=lambda: orm.Str(DEFAULT_ID_TEMPLATE),
            help='Structure id of each node, from {uuid}, {pk} and {label}.',
        )
        include_raw_input(spec)
        spec.input(
            'batch_size', valid_type=orm.Int, default=lambda: orm.Int(1000), help='Nodes per batch of each slice.'
        )
        spec.inputs.validator = _validate
        spec.output('report', valid_type=orm.Dict, help='The summed report of the slices.')
        spec.outline(cls.split, cls.run_parts, cls.results)
        spec.exit_code(201, 'ERROR_NO_GROUP', message='There is no group with the label {label}.')
        spec.exit_code(202, 'ERROR_INVALID_FILTERS', message='The filters are invalid: {error}')
        spec.exit_code(300, 'ERROR_PART_EXCEPTED', message='Slices {parts} did not finish: {reason}')
        spec.exit_code(301, 'ERROR_NODES_FAILED', message='{failed} structures could not be projected.')

    def _selection(self) -> dict:
        group = None
        if 'group' in self.inputs:
            group = orm.Group.collection.get(label=self.inputs.group.value)
        filters = self.inputs.filters.get_dict() if 'filters' in self.inputs else None
        return {'group': group, 'filters': filters}

    def split(self):
        """Count the selection and cut it into slices of consecutive pks of about equal size."""
        from aiida.common.exceptions import NotExistent

        from ..core.exceptions import InvalidInputError

        try:
            selection = self._selection()
        except NotExistent:
            return self.exit_codes.ERROR_NO_GROUP.format(label=self.inputs.group.value)
        try:
            total = count_selected(**selection, nodes=None)
        except InvalidInputError as exc:
            return self.exit_codes.ERROR_INVALID_FILTERS.format(error=str(exc))
        parts = max(1, min(self.inputs.parts.value, total))
        # The first pk of each slice, found by offset (one query per slice; no list of all pks is held).
        starts = []
        for index in range(parts):
            query = select_structures(**selection).offset(total * index // parts).limit(1)
            row = query.first()
            if row is not None:
                starts.append(row[0])
        self.ctx.slices = [
            (start, (starts[i + 1] - 1) if i + 1 < len(starts) else None) for i, start in enumerate(starts)
        ]
        self.ctx.group_pk = selection['group'].pk if selection['group'] is not None else None
        self.report(f'{total} structures in {len(self.ctx.slices)} slices')

    def run_parts(self):
        """Submit one ``structstore.sync_slice`` per slice; the daemon workers run them in parallel."""
        options = {
            'id_template': self.inputs.id_template.value,
            'include_raw': self.inputs.include_raw.value,
            'batch_size': self.inputs.batch_size.value,
        }
        futures = {}
        for index, (pk_min, pk_max) in enumerate(self.ctx.slices):
            selection = {'pk_min': pk_min, 'pk_max': pk_max, 'group': self.ctx.group_pk}
            if 'filters' in self.inputs:
                selection['filters'] = self.inputs.filters.get_dict()
            futures[f'part_{index}'] = self.submit(
                SyncSliceWorkChain,
                tenant_id=self.inputs.tenant_id,
                workspace_id=self.inputs.workspace_id,
                selection=orm.Dict(selection),
                options=orm.Dict(options),
                metadata={'call_link_label': f'part_{index}'},
            )
        return ToContext(**futures)

    def results(self):
        """Sum the slices' reports; fail if a slice did not finish or a structure could not be projected."""
        total = dict.fromkeys(REPORT_FIELDS, 0)
        broken, failures = [], []
        for index in range(len(self.ctx.slices)):
            node = self.ctx[f'part_{index}']
            if not node.is_finished_ok:
                broken.append(index)
                continue
            report = node.outputs.report.get_dict()
            for name in REPORT_FIELDS:
                total[name] += report[name]
            failures.extend(report['failures'])
        total['failures'] = failures[:100]
        self.out('report', orm.Dict(total).store())
        if broken:
            reason = self.ctx[f'part_{broken[0]}'].exception or 'killed or failed'
            return self.exit_codes.ERROR_PART_EXCEPTED.format(parts=broken, reason=reason.strip().splitlines()[-1])
        if total['failed']:
            return self.exit_codes.ERROR_NODES_FAILED.format(failed=total['failed'])
        return None
