"""Response bodies of the structures and executions API (pydantic models; they are also the OpenAPI schema).

This module imports no AiiDA module.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from ..core.executions import ExecutionRecord
from ..core.structures import StructureRecord, StructureSummary

__all__ = (
    'ExecutionDetail',
    'ExecutionPageBody',
    'RawInfo',
    'SchedulerInfo',
    'SourceInfo',
    'StructureDetail',
    'StructureItem',
    'StructurePage',
)


class SourceInfo(BaseModel):
    """Where the structure came from: the kind of input (``cif``, ``pw-input``, ``aiida``) and its file name."""

    kind: str
    filename: str | None = None


class StructureItem(BaseModel):
    """One structure of a workspace listing: its id and summary fields."""

    id: str
    chemical_formula_reduced: str | None = None
    elements: list[str] = Field(default_factory=list)
    nsites: int | None = None
    source: SourceInfo
    updated_at: dt.datetime

    @classmethod
    def of(cls, summary: StructureSummary) -> StructureItem:
        fields = summary.summary
        return cls(
            id=summary.key.structure_id,
            chemical_formula_reduced=fields.get('chemical_formula_reduced'),
            elements=list(fields.get('elements') or []),
            nsites=fields.get('nsites'),
            source=SourceInfo(kind=summary.source.kind, filename=summary.source.filename),
            updated_at=summary.updated_at,
        )


class StructurePage(BaseModel):
    """A page of a workspace listing, most recently updated first; pass ``next_cursor`` as ``cursor`` for more."""

    workspace: str
    items: list[StructureItem]
    next_cursor: str | None = None


class RawInfo(BaseModel):
    """The raw input's size and sha256 (read it from ``/raw``)."""

    size: int
    sha256: str
    chunk_count: int


class StructureDetail(BaseModel):
    """A record without its raw text, with where it came from; ``views`` are the formats ``/view`` can give."""

    id: str
    workspace: str
    source: SourceInfo
    aiida_node_uuid: str | None = None
    summary: dict[str, Any]
    structure: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    views: list[str]
    raw: RawInfo | None = None
    content_hash: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, record: StructureRecord) -> StructureDetail:
        return cls(
            id=record.key.structure_id,
            workspace=record.key.workspace_id,
            source=SourceInfo(kind=record.source.kind, filename=record.source.filename),
            aiida_node_uuid=record.node_uuid,
            summary=record.summary,
            structure=record.structure,
            params=record.params,
            views=(['cif'] if record.cif is not None else []) + (['json', 'xyz'] if record.structure else []),
            raw=None
            if record.raw_sha256 is None
            else RawInfo(size=record.raw_size or 0, sha256=record.raw_sha256, chunk_count=record.chunk_count),
            content_hash=record.content_hash,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class SchedulerInfo(BaseModel):
    """Where a calculation job ran: the scheduler plugin, its job id and the last job state AiiDA saw."""

    type: str
    job_id: str | None = None
    state: str | None = None


class ExecutionDetail(BaseModel):
    """An AiiDA process as the application sees it: what it is, its state, how it ended, where it ran, and the
    structures of the workspace it took and produced. ``roles`` (in a structure's listing) says how it relates to
    that structure: ``input``, ``output`` or both."""

    uuid: str
    workspace: str
    process_label: str
    process_type: str | None = None
    kind: str
    state: str
    exit_status: int | None = None
    exit_message: str | None = None
    computer: str | None = None
    hostname: str | None = None
    scheduler: SchedulerInfo | None = None
    parent_uuid: str | None = None
    structures_in: list[str]
    structures_out: list[str]
    structures_truncated: bool = False
    roles: list[str] | None = None
    created_at: dt.datetime
    modified_at: dt.datetime
    content_hash: str

    @classmethod
    def of(cls, record: ExecutionRecord, structure_id: str | None = None) -> ExecutionDetail:
        scheduler = record.scheduler
        return cls(
            uuid=record.key.process_uuid,
            workspace=record.key.workspace_id,
            process_label=record.process_label,
            process_type=record.process_type,
            kind=record.kind,
            state=record.state,
            exit_status=record.exit_status,
            exit_message=record.exit_message,
            computer=record.computer,
            hostname=record.hostname,
            scheduler=None if scheduler is None else SchedulerInfo(**scheduler.model_dump()),
            parent_uuid=record.parent_uuid,
            structures_in=list(record.structures_in),
            structures_out=list(record.structures_out),
            structures_truncated=record.structures_truncated,
            roles=None if structure_id is None else record.roles(structure_id),
            created_at=record.created_at,
            modified_at=record.modified_at,
            content_hash=record.content_hash,
        )


class ExecutionPageBody(BaseModel):
    """The executions of one structure, most recently modified first; pass ``next_cursor`` as ``cursor`` for more."""

    workspace: str
    structure_id: str
    items: list[ExecutionDetail]
    next_cursor: str | None = None
