"""The uploads routes: hand in a CIF or pw.x input for import into AiiDA, and follow its status.

``POST /api/structures/uploads?kind=cif|pw&filename=...[&structure_id=...][&workspace=...]`` takes the file as the raw
request body (``Content-Type`` ``application/octet-stream``, ``text/*``, ``chemical/x-cif``, or none), or as the part
``file`` of a ``multipart/form-data`` body (``curl -F file=@si.cif -F kind=cif``; ``kind``, ``filename`` and
``structure_id`` may then be form fields, and the file part's name is the default file name). The body is read with a
hard cap (``STRUCTURE_API_MAX_UPLOAD_BYTES``, at most the store's raw input limit; a multipart body 64 KiB more): a
``Content-Length`` over it is refused before anything is read, and a body that grows past it is refused as soon as it
does, so no more than the cap is ever held in memory (a multipart file over 1 MB waits in a temporary file). It answers
201 with the new upload, or 200 with the upload of the same bytes that the workspace already has. ``GET
/api/structures/uploads/{upload_id}`` and ``GET /api/structures/uploads`` (newest first, ``?status=``) give the status,
with an ``ETag`` answered by 304 on ``If-None-Match``, as the executions routes; the list also says whether the caller
may upload into the workspace (``may_upload``, and ``upload_refused``: the message an upload would get), so that a
client (the viewer) offers an upload only to a token that grants it.

Reading needs what every route needs (a bearer token that grants the workspace); uploading needs more: the token's
upload claim (``STRUCTURE_API_UPLOAD_CLAIM``, default ``upload_workspaces``) must name the workspace, and the token must
have a subject (``sub``), which the upload records as who uploaded it. Errors: 400 (a body that is not what it claims, a
malformed multipart body), 403 (no upload right), 404 (another tenant's or workspace's upload, exactly as a missing
one), 409 (the same bytes uploaded already as another kind or for another structure id), 413 (too large), 415 (a content
type that is not a file), 422 (a bad kind, file name or id, or an empty file); each with one message.

These routes are mounted before the structures routes: ``/api/structures/uploads`` is never read as the structure
``uploads``.

This module imports no AiiDA module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.types import Message

from ..core.exceptions import ConflictError, InvalidInputError, LimitExceededError
from ..core.uploads import UploadKey, UploadRecord
from ..core.values import canonical_json
from ..store import Store
from .auth import Principal
from .context import ReadContext, Scope, http_errors
from .cursors import bad_cursor, listing_of
from .structures import CACHE_HEADERS, conditional

__all__ = ('UploadDetail', 'UploadPageBody', 'create_uploads_router')

#: Content types a file may be sent as (besides none at all): what browsers and curl send for a CIF or a text file.
FILE_TYPES = ('application/octet-stream', 'chemical/x-cif', 'application/x-cif')
#: Bytes a multipart body may carry beyond the file: boundaries, part headers and the small text fields.
MULTIPART_OVERHEAD = 64 * 1024
UPLOAD_ID_PATH = Path(description='The upload id (from the answer to the upload)', min_length=1, max_length=128)


class UploadDetail(BaseModel):
    """An upload and where it stands: ``pending`` → ``importing`` → ``imported`` (``result_structure_id``) or
    ``failed`` (``message``)."""

    upload_id: str
    workspace: str
    filename: str
    kind: Literal['cif', 'pw']
    status: Literal['pending', 'importing', 'imported', 'failed']
    size: int
    sha256: str
    uploaded_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    structure_id: str | None = None
    result_structure_id: str | None = None
    node_uuid: str | None = None
    message: str | None = None
    attempts: int = 0

    @classmethod
    def of(cls, record: UploadRecord) -> UploadDetail:
        return cls(
            upload_id=record.key.upload_id,
            workspace=record.key.workspace_id,
            **record.model_dump(
                include={
                    'filename',
                    'kind',
                    'status',
                    'size',
                    'sha256',
                    'uploaded_by',
                    'created_at',
                    'updated_at',
                    'structure_id',
                    'result_structure_id',
                    'node_uuid',
                    'message',
                    'attempts',
                }
            ),
        )

    def etag(self) -> str:
        digest = hashlib.sha256(canonical_json(self.model_dump(mode='json')).encode()).hexdigest()
        return f'"{digest[:32]}-upload"'


class UploadPageBody(BaseModel):
    """One page of a workspace's uploads, newest first, and whether the caller may upload into the workspace
    (``may_upload``; if not, ``upload_refused`` is the message an upload would be refused with), so that a client
    offers an upload only to a token that grants it."""

    workspace: str
    items: list[UploadDetail]
    next_cursor: str | None = None
    may_upload: bool = False
    upload_refused: str | None = None


def upload_refusal(principal: Principal, workspace_id: str, upload_claim: str) -> str | None:
    """Why ``principal`` may not upload into ``workspace_id`` (the 403 message), or None when it may."""
    if not principal.may_upload(workspace_id):
        return (
            f'this token does not grant uploads into workspace {workspace_id!r} '
            f'(its {upload_claim!r} claim must name it)'
        )
    if not principal.subject:
        return 'uploading needs a token with a subject ("sub"): who uploaded is recorded'
    return None


def _require(kind: str | None, filename: str | None) -> tuple[str, str]:
    if kind is None:
        raise HTTPException(422, 'say what the file is: kind=cif or kind=pw')
    if filename is None:
        raise HTTPException(422, 'the upload needs a file name (filename=...)')
    return kind, filename


def _media_type(request: Request) -> str | None:
    header = request.headers.get('content-type')
    return header.split(';', 1)[0].strip().lower() if header else None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read with a hard cap of ``limit`` bytes (413 as soon as it is passed)."""
    too_large = HTTPException(413, f'the file is larger than the limit of {limit} bytes')
    declared = request.headers.get('content-length')
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise HTTPException(400, 'Content-Length is not a number') from None
        if length > limit:
            raise too_large
    body = bytearray()
    try:
        async for piece in request.stream():
            if len(body) + len(piece) > limit:
                raise too_large
            body += piece
    except ClientDisconnect:
        raise HTTPException(400, 'the client disconnected before the whole body arrived') from None
    if declared is not None and len(body) != int(declared):
        raise HTTPException(400, f'the body has {len(body)} bytes, not the {declared} its Content-Length declares')
    return bytes(body)


async def read_multipart(request: Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """The file of a ``multipart/form-data`` body (the part named ``file``) and its text fields (``kind``,
    ``filename``, ``structure_id``; the file part's own name is the default ``filename``), read with a hard cap: the
    body may be at most ``limit`` plus :data:`MULTIPART_OVERHEAD` bytes, the file at most ``limit``. A file larger than
    a megabyte waits in a temporary file while the body is parsed (Starlette's parser), never in memory."""
    too_large = HTTPException(413, f'the file is larger than the limit of {limit} bytes')
    cap = limit + MULTIPART_OVERHEAD
    declared = request.headers.get('content-length')
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise too_large
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message['type'] == 'http.request':
            received += len(message.get('body', b''))
            if received > cap:
                raise too_large
        return message

    try:
        form = await Request(request.scope, receive).form(max_files=1, max_fields=8)
    except MultiPartException as exc:
        raise HTTPException(400, f'the multipart body is not valid: {exc.message}') from None
    except StarletteHTTPException as exc:
        if exc.status_code != 400:  # our own 413
            raise
        raise HTTPException(400, f'the multipart body is not valid: {exc.detail}') from None
    try:
        part = form.get('file')
        if not isinstance(part, StarletteUploadFile):
            raise HTTPException(422, 'a multipart upload needs the file in a part named "file"')
        content = await part.read(limit + 1)
        if len(content) > limit:
            raise too_large
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        if part.filename and 'filename' not in fields:
            fields['filename'] = part.filename
        return content, fields
    finally:
        await form.close()


def create_uploads_router(context: ReadContext) -> APIRouter:
    """``/api/structures/uploads`` (POST, GET) and ``/api/structures/uploads/{id}`` (GET), through ``context``."""
    router = APIRouter(tags=['uploads'])
    scope_of = context.scope_dependency()
    store_of = context.store

    def upload_scope(
        principal: Principal = Depends(context.principal),  # noqa: B008
        workspace: str | None = Query(
            None, description='The workspace to upload into; may be left out when the token grants only one.'
        ),
    ) -> tuple[Scope, str]:
        scope = context.scope(principal, workspace)
        refused = upload_refusal(principal, scope.workspace_id, context.settings.upload_claim)
        if refused is not None:
            raise HTTPException(403, refused)
        return scope, principal.subject

    @router.post(
        '/api/structures/uploads',
        response_model=UploadDetail,
        status_code=201,
        summary='Upload a CIF or pw.x input (the raw request body) for import into AiiDA',
        openapi_extra={
            'requestBody': {
                'required': True,
                'description': 'The file, as the raw body, or as the part "file" of a multipart form',
                'content': {
                    **{
                        media_type: {'schema': {'type': 'string', 'format': 'binary'}}
                        for media_type in ('application/octet-stream', 'chemical/x-cif', 'text/plain')
                    },
                    'multipart/form-data': {
                        'schema': {
                            'type': 'object',
                            'required': ['file'],
                            'properties': {
                                'file': {'type': 'string', 'format': 'binary'},
                                'kind': {'type': 'string', 'enum': ['cif', 'pw']},
                                'filename': {'type': 'string'},
                                'structure_id': {'type': 'string'},
                            },
                        }
                    },
                },
            }
        },
        responses={
            200: {'description': 'These bytes were uploaded into the workspace already: that upload'},
            403: {'description': 'The token does not grant uploads into the workspace'},
            409: {'description': 'The same bytes were uploaded already as another kind or for another structure'},
            413: {'description': 'The file is too large'},
            415: {'description': 'The body is not sent as a file'},
        },
    )
    async def create_upload(
        request: Request,
        kind: str | None = Query(
            None, description='What the file is: `cif` or `pw` (a pw.x input); or a form field of a multipart body'
        ),
        filename: str | None = Query(
            None, description='The file name (no directory); a multipart body may give it with the file part'
        ),
        structure_id: str | None = Query(
            None, description='The structure id to import it under (default: chosen by the importer)'
        ),
        scoped: tuple[Scope, str] = Depends(upload_scope),
        store: Store = Depends(store_of),  # noqa: B008
    ) -> Response:
        scope, subject = scoped
        media_type = _media_type(request)
        limit = context.settings.max_upload_bytes
        if media_type == 'multipart/form-data':
            content, fields = await read_multipart(request, limit)
            kind = kind or fields.get('kind')
            filename = filename or fields.get('filename')
            structure_id = structure_id or fields.get('structure_id') or None
        elif media_type is None or media_type in FILE_TYPES or media_type.startswith('text/'):
            _require(kind, filename)  # before the body is read
            content = await read_body(request, limit)
        else:
            raise HTTPException(
                415,
                f'send the file as the raw request body (Content-Type {", ".join(FILE_TYPES)}, text/*, or none) or '
                f'as the part "file" of a multipart/form-data body, not as {media_type}',
            )
        kind, filename = _require(kind, filename)
        with http_errors('upload'):
            try:
                record, created = await run_in_threadpool(
                    store.uploads.create,
                    scope.tenant_id,
                    scope.workspace_id,
                    filename=filename,
                    kind=kind,
                    content=content,
                    uploaded_by=subject,
                    structure_id=structure_id,
                )
            except LimitExceededError as exc:
                raise HTTPException(413, str(exc)) from None
            except ConflictError as exc:
                raise HTTPException(409, str(exc)) from None
        body = UploadDetail.of(record)
        headers = {
            **CACHE_HEADERS,
            'ETag': body.etag(),
            'Location': f'/api/structures/uploads/{record.key.upload_id}?workspace={scope.workspace_id}',
        }
        return Response(
            body.model_dump_json(), status_code=201 if created else 200, media_type='application/json', headers=headers
        )

    @router.get(
        '/api/structures/uploads',
        response_model=UploadPageBody,
        summary="A workspace's uploads, newest first, and whether the caller may upload into it",
        responses={304: {'description': 'Not modified'}},
    )
    def list_uploads(
        request: Request,
        principal: Principal = Depends(context.principal),  # noqa: B008
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
        status: Literal['pending', 'importing', 'imported', 'failed'] | None = Query(
            None, description='Only the uploads in this state'
        ),
        cursor: str | None = Query(None, description='`next_cursor` of the previous page, unchanged (opaque)'),
        limit: int = Query(50, ge=1, le=200, description='uploads per page'),
    ) -> Response:
        listing = listing_of('uploads', scope.tenant_id, scope.workspace_id, status or '')
        store_cursor = context.cursors.unwrap(cursor, listing)
        with http_errors('uploads'):
            try:
                page = store.uploads.list(
                    scope.tenant_id, scope.workspace_id, status=status, cursor=store_cursor, limit=limit
                )
            except InvalidInputError:
                if cursor is None:
                    raise
                raise bad_cursor() from None
        body = UploadPageBody(
            workspace=scope.workspace_id,
            items=[UploadDetail.of(record) for record in page.items],
            next_cursor=context.cursors.wrap(page.next_cursor, listing),
            upload_refused=upload_refusal(principal, scope.workspace_id, context.settings.upload_claim),
        )
        body.may_upload = body.upload_refused is None
        text = body.model_dump_json()
        etag = f'"{hashlib.sha256(text.encode()).hexdigest()[:32]}-uploads"'
        if (not_modified := conditional(request, etag)) is not None:
            return not_modified
        return Response(text, media_type='application/json', headers={**CACHE_HEADERS, 'ETag': etag})

    @router.get(
        '/api/structures/uploads/{upload_id}',
        response_model=UploadDetail,
        summary='One upload: its status, and the structure it was imported as or why it failed',
        responses={304: {'description': 'Not modified'}, 404: {'description': 'No such upload'}},
    )
    def get_upload(
        request: Request,
        upload_id: str = UPLOAD_ID_PATH,
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
    ) -> Response:
        try:
            key = UploadKey.of(scope.tenant_id, scope.workspace_id, upload_id)
        except InvalidInputError as exc:
            raise HTTPException(422, str(exc)) from None
        with http_errors('upload'):
            record = store.uploads.get(key)
        body = UploadDetail.of(record)
        etag = body.etag()
        if (not_modified := conditional(request, etag)) is not None:
            return not_modified
        return Response(body.model_dump_json(), media_type='application/json', headers={**CACHE_HEADERS, 'ETag': etag})

    return router
