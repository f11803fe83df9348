"""Response bodies of the structures API (pydantic models; they are also the OpenAPI schema).

This module imports no AiiDA module.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from ..models import StructureRecord, StructureSummary

__all__ = ('RawInfo', 'SourceInfo', 'StructureDetail', 'StructureItem', 'StructurePage')


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
