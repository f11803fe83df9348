"""The work chain hook: a configured work chain submitted to the daemon on each structure imported from an upload.

Off unless ``--workchain`` or ``STRUCTURE_STORE_UPLOADS_WORKCHAIN`` names one: an ``aiida.workflows`` entry point or
``module:Class``. Its inputs:

* ``structstore.pw_base_project``: the ``base`` namespace from ``PwBaseWorkChain.get_builder_from_protocol`` (code,
  structure, protocol, overrides), the upload's tenant and workspace, and the structure id as the id prefix, so the
  input and relaxed structures are projected beside the upload's;
* a work chain with ``get_builder_from_protocol`` (``quantumespresso.pw.base``, ...): that, with the code, the
  structure, the protocol and the overrides;
* any other: ``structure`` set to the structure, the overrides as further inputs.

A work chain is submitted once per structure: if a process of the same type already takes the structure as its
input (an importer that crashed after submitting, before it marked the upload), it is not submitted again. Its
execution state then shows through the executions feature (``executions watch`` / ``sync`` with ``--linked``).
"""

from __future__ import annotations

import importlib
from typing import Any

from aiida import orm

from ..core.exceptions import ConfigurationError

__all__ = ('WorkchainHook', 'load_workchain')


def load_workchain(name: str) -> type:
    """The work chain class of an entry point name or ``module:Class``; :class:`ConfigurationError` if none."""
    from aiida.engine import WorkChain

    try:
        if ':' in name and not name.startswith('aiida.'):
            module, _, attribute = name.partition(':')
            cls = getattr(importlib.import_module(module), attribute)
        else:
            from aiida.plugins import WorkflowFactory

            cls = WorkflowFactory(name)
    except Exception as exc:
        raise ConfigurationError(
            f'cannot load the uploads work chain {name!r}: {exc} (give an aiida.workflows entry point such as '
            'structstore.pw_base_project, or module:Class)'
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, WorkChain)):
        raise ConfigurationError(f'the uploads work chain {name!r} is not a WorkChain class')
    return cls


class WorkchainHook:
    """Builds and submits the configured work chain for a structure (see the module docstring)."""

    def __init__(
        self, name: str, *, code: str | None = None, protocol: str = 'fast', overrides: dict | None = None
    ) -> None:
        self.name = name
        self.cls = load_workchain(name)
        self.protocol = protocol
        self.overrides = overrides or {}
        self.code = None
        if self._needs_code():
            if not code:
                raise ConfigurationError(
                    f'the uploads work chain {name!r} builds its inputs from a protocol and needs a code: '
                    'set STRUCTURE_STORE_UPLOADS_WORKCHAIN_CODE or --workchain-code'
                )
            try:
                self.code = orm.load_code(code)
            except Exception as exc:
                raise ConfigurationError(f'the uploads work chain code {code!r}: {exc}') from None

    def _is_pw_base_project(self) -> bool:
        from ..workflows.pw import PwBaseProjectWorkChain

        return issubclass(self.cls, PwBaseProjectWorkChain)

    def _needs_code(self) -> bool:
        return self._is_pw_base_project() or hasattr(self.cls, 'get_builder_from_protocol')

    def builder(self, structure: orm.StructureData, tenant_id: str, workspace_id: str, structure_id: str):
        """The work chain's builder for ``structure``."""
        if self._is_pw_base_project():
            from ..workflows.pw import PwBaseWorkChain

            base = PwBaseWorkChain.get_builder_from_protocol(
                self.code, structure, protocol=self.protocol, overrides=self.overrides or None
            )
            builder = self.cls.get_builder()
            inputs = base._inputs(prune=True)
            inputs.pop('clean_workdir', None)  # not exposed: the outer work chain keeps its working directories
            builder.base = inputs
            builder.tenant_id = orm.Str(tenant_id)
            builder.workspace_id = orm.Str(workspace_id)
            builder.id_prefix = orm.Str(structure_id)
            return builder
        if hasattr(self.cls, 'get_builder_from_protocol'):
            return self.cls.get_builder_from_protocol(
                self.code, structure, protocol=self.protocol, overrides=self.overrides or None
            )
        builder = self.cls.get_builder()
        builder.structure = structure
        for port, value in self.overrides.items():
            builder[port] = value
        return builder

    def existing(self, structure: orm.StructureData) -> orm.WorkChainNode | None:
        """A process of this work chain's type that already takes ``structure`` as an input (at any depth of its
        input namespaces)."""
        process_type = self._process_type()
        incoming = structure.base.links.get_outgoing(node_class=orm.WorkChainNode).all_nodes()
        matching = [node for node in incoming if node.process_type == process_type]
        return min(matching, key=lambda node: node.pk) if matching else None

    def _process_type(self) -> str:
        return self.cls.build_process_type()

    def submit_once(self, structure: orm.StructureData, record: Any, structure_id: str) -> int:
        """Submit the work chain on ``structure`` unless one already takes it; return the process's pk."""
        from aiida.engine import submit

        existing = self.existing(structure)
        if existing is not None:
            return existing.pk
        builder = self.builder(structure, record.key.tenant_id, record.key.workspace_id, structure_id)
        node = submit(builder)
        return node.pk
