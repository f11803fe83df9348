"""The shape of each Convex function's reply, checked before the client reads it.

A deployment running other functions than this version's (an older or newer ``convex/``, another application's
functions under the same names), or anything between the client and the deployment, can answer
``{"status": "success", "value": ...}`` with a value of another shape. Each function the client calls has its reply
type here (:data:`REPLIES`, by function path); :meth:`.transport.ConvexTransport.call` checks every reply against it
and turns a mismatch into one :class:`~aiida_structstore.core.exceptions.BackendError` that names the function and
what was wrong (never the value itself, which could be large or private). The types list the fields the client
reads; other fields are kept as they are.

This module imports no AiiDA module.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

__all__ = ('REPLIES', 'describe')

_SHAPE = ConfigDict(extra='allow', strict=True)


@with_config(_SHAPE)
class _Source(TypedDict):
    kind: str
    filename: str | None
    uploaded_by: NotRequired[str]


@with_config(_SHAPE)
class _Summary(TypedDict):
    """A record's summary fields (``toSummary`` in ``convex/structures.ts``)."""

    tenant_id: str
    workspace_id: str
    structure_id: str
    source: _Source
    summary: dict[str, Any]
    node_uuid: str | None
    content_hash: str
    chunk_count: float
    raw_size: float | None
    raw_sha256: str | None
    created_at: float
    updated_at: float


@with_config(_SHAPE)
class _PartMeta(TypedDict):
    name: str
    size: float
    sha256: str
    chunk_count: float


@with_config(_SHAPE)
class _Record(_Summary):
    """A whole committed record (``getStructure``)."""

    generation: str
    parts: list[_PartMeta]
    cif: str | None
    structure: str | None
    params: str | None


@with_config(_SHAPE)
class _SummaryPage(TypedDict):
    page: list[_Summary]
    isDone: bool
    continueCursor: str


@with_config(_SHAPE)
class _QueryPage(_SummaryPage):
    rowsRead: float
    itemCursors: list[str]
    # With withStructures: each item's payload text, False when chunked, None when there is none.
    structures: NotRequired[list[str | Literal[False] | None]]


@with_config(_SHAPE)
class _PutItem(TypedDict):
    structure_id: str
    status: Literal['created', 'updated', 'unchanged', 'conflict']
    chunk_count: float
    garbage: bool


@with_config(_SHAPE)
class _Staged(TypedDict):
    received: float
    committed: bool


@with_config(_SHAPE)
class _Chunk(TypedDict):
    chunk_index: float
    text: str


@with_config(_SHAPE)
class _ChunkPage(TypedDict):
    chunks: list[_Chunk]
    next_index: float | None


@with_config(_SHAPE)
class _StructureHash(TypedDict):
    structure_id: str
    content_hash: str


@with_config(_SHAPE)
class _Removed(TypedDict):
    existed: bool
    garbage: bool


@with_config(_SHAPE)
class _Collected(TypedDict):
    deleted: float
    done: bool


@with_config(_SHAPE)
class _StatsPage(TypedDict):
    count: float
    committed_chunks: float
    chunk_sets: list[Any]
    isDone: bool
    continueCursor: str


@with_config(_SHAPE)
class _Execution(TypedDict):
    """An execution record (``convex/executions.ts``); its other fields are checked by ``ExecutionRecord``."""

    tenant_id: str
    workspace_id: str
    process_uuid: str
    exit_status: float | None
    created_at: float
    modified_at: float
    updated_at: float


@with_config(_SHAPE)
class _ExecutionPage(TypedDict):
    page: list[_Execution]
    isDone: bool
    continueCursor: str


@with_config(_SHAPE)
class _ExecutionPut(TypedDict):
    process_uuid: str
    status: Literal['created', 'updated', 'unchanged', 'stale', 'deferred']


@with_config(_SHAPE)
class _ExecutionHash(TypedDict):
    process_uuid: str
    content_hash: str


@with_config(_SHAPE)
class _ExecutionRemoved(TypedDict):
    existed: bool


@with_config(_SHAPE)
class _Upload(TypedDict):
    """An upload (``convex/uploads.ts``); its other fields are checked by ``UploadRecord``."""

    tenant_id: str
    workspace_id: str
    upload_id: str
    size: float
    attempts: float
    created_at: float
    updated_at: float
    claim_expires_at: float | None


@with_config(_SHAPE)
class _UploadCreated(TypedDict):
    record: _Upload
    created: bool


@with_config(_SHAPE)
class _UploadPage(TypedDict):
    page: list[_Upload]
    isDone: bool
    continueCursor: str


@with_config(_SHAPE)
class _UploadChunkPage(_ChunkPage):
    encoding: Literal['utf-8', 'base64']
    size: float
    sha256: str
    stored_size: float
    stored_sha256: str
    chunk_count: float


#: The reply type of every function the client calls, by path.
REPLIES: dict[str, TypeAdapter] = {
    path: TypeAdapter(shape)
    for path, shape in {
        'structures:putBatch': list[_PutItem],
        'structures:stageChunks': _Staged,
        'structures:getStructure': _Record | None,
        'structures:getStructures': list[_Record | None],
        'structures:readChunks': _ChunkPage,
        'structures:listStructures': _SummaryPage,
        'structures:contentHashes': list[_StructureHash],
        'structures:removeStructure': _Removed,
        'structures:collectGarbage': _Collected,
        'structures:storageStats': _StatsPage,
        'structures:getInstance': str | None,
        'structures:ensureInstance': str,
        'optimade:queryStructures': _QueryPage,
        'executions:putExecutions': list[_ExecutionPut],
        'executions:getExecution': _Execution | None,
        'executions:listExecutions': _ExecutionPage,
        'executions:listExecutionsOfStructure': _ExecutionPage,
        'executions:executionHashes': list[_ExecutionHash],
        'executions:removeExecution': _ExecutionRemoved,
        'uploads:createUpload': _UploadCreated,
        'uploads:stageUploadChunks': _Staged,
        'uploads:getUpload': _Upload | None,
        'uploads:readUploadChunks': _UploadChunkPage | None,
        'uploads:listUploads': _UploadPage,
        'uploads:claimUpload': _Upload | None,
        'uploads:renewUpload': _Upload,
        'uploads:completeUpload': _Upload,
        'uploads:failUpload': _Upload,
        'uploads:collectUploadGarbage': _Collected,
    }.items()
}


def describe(error: ValidationError, limit: int = 3) -> str:
    """What was wrong, in one line: where in the value and why, without the value itself."""
    problems = []
    for item in error.errors(include_input=False, include_url=False)[:limit]:
        where = '.'.join(str(part) for part in item['loc']) or 'the value'
        problems.append(f'{where}: {item["msg"]}')
    more = error.error_count() - limit
    return '; '.join(problems) + (f' (and {more} more)' if more > 0 else '')
