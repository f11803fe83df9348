"""The uploads of a Convex store: the functions of ``convex/uploads.ts`` over the transport.

An upload of up to :data:`INLINE_CHUNK_BYTES` of stored text is created in one ``createUpload`` mutation, chunks and
record together; a larger one stages its chunks with ``stageUploadChunks`` (calls of at most
:data:`STAGE_CALL_BYTES`, under a fresh generation) and ``createUpload`` then commits it atomically. A claim, renewal,
completion or failure is one mutation each: Convex runs a mutation as one serializable transaction, which is what makes
a claim exclusive. Reads page through ``readUploadChunks`` and are verified against the stored text's size and
sha256, then the upload's.

This module imports no AiiDA module.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
from typing import Any

from ...core.chunking import join_chunks
from ...core.exceptions import BackendError, InvalidInputError, NotFoundError
from ...core.limits import CONVEX
from ...core.uploads import UploadKey, UploadPage, UploadRecord, decode_from_storage
from ..uploads import NewUpload, UploadStore
from .transport import ConvexTransport

__all__ = ('ConvexUploads',)

MODULE = 'uploads'
#: Stored text up to this size goes with the createUpload call itself; larger uploads are staged first. Half of a
#: deployment's write throughput per second, as the structures' batches: a larger call is refused as over it.
INLINE_CHUNK_BYTES = CONVEX['writeBytesPerSecond'] // 2
#: Bytes of chunks per stageUploadChunks call.
STAGE_CALL_BYTES = CONVEX['writeBytesPerSecond'] // 2
#: Bytes of chunks per readUploadChunks query.
READ_PAGE_BYTES = 8 * 1024 * 1024
#: Uploads per listUploads query (the function's own limit).
LIST_PAGE = 200


def _ms(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value / 1000, tz=dt.timezone.utc)


def _wrap_cursor(convex_cursor: str, status: str | None) -> str:
    return base64.urlsafe_b64encode(json.dumps([status or '', convex_cursor]).encode()).decode()


def _unwrap_cursor(cursor: str, status: str | None) -> str:
    try:
        listing, convex_cursor = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInputError(f'invalid page cursor {cursor[:40]!r}') from None
    if listing != (status or '') or not isinstance(convex_cursor, str):
        raise InvalidInputError('the page cursor belongs to another listing')
    return convex_cursor


class ConvexUploads(UploadStore):
    """The uploads of a :class:`~aiida_structstore.store.convex.ConvexStore`, over its transport."""

    def __init__(self, transport: ConvexTransport, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transport = transport

    def _call(self, kind: str, function: str, args: dict[str, Any]) -> Any:
        return self.transport.call(kind, function, args, module=MODULE)

    def _record(self, document: dict[str, Any], function: str) -> UploadRecord:
        with self.transport.reading(f'{MODULE}:{function}'):
            fields = dict(document)
            key = UploadKey.of(fields.pop('tenant_id'), fields.pop('workspace_id'), fields.pop('upload_id'))
            for name in ('size', 'attempts'):
                fields[name] = int(fields[name])
            for name in ('created_at', 'updated_at', 'claim_expires_at'):
                fields[name] = _ms(fields[name])
            return UploadRecord(key=key, **fields)

    @staticmethod
    def _key_args(key: UploadKey) -> dict[str, str]:
        return {'tenant_id': key.tenant_id, 'workspace_id': key.workspace_id, 'upload_id': key.upload_id}

    # -- creating ----------------------------------------------------------------------------------------------

    def _create(self, upload: NewUpload) -> tuple[UploadRecord, bool]:
        chunked = upload.stored.chunked
        chunks = [{'chunk_index': float(i), 'text': text} for i, text in enumerate(chunked.chunks)]
        generation = secrets.token_urlsafe(12)
        staged = chunked.size > INLINE_CHUNK_BYTES
        if staged:
            self._stage(upload.key, generation, chunks)
        reply = self._call(
            'mutation',
            'createUpload',
            {
                **self._key_args(upload.key),
                'filename': upload.filename,
                'kind': upload.kind,
                'size': float(upload.size),
                'sha256': upload.sha256,
                'encoding': upload.stored.encoding,
                'stored_size': float(chunked.size),
                'stored_sha256': chunked.sha256,
                'chunk_count': float(chunked.count),
                'generation': generation,
                'uploaded_by': upload.uploaded_by,
                'structure_id': upload.structure_id,
                'chunks': None if staged else chunks,
            },
        )
        return self._record(reply['record'], 'createUpload'), bool(reply['created'])

    def _stage(self, key: UploadKey, generation: str, chunks: list[dict[str, Any]]) -> None:
        group: list[dict[str, Any]] = []
        size = 0
        for chunk in [*chunks, None]:
            length = 0 if chunk is None else len(chunk['text'].encode('utf-8'))
            if group and (chunk is None or size + length > STAGE_CALL_BYTES):
                reply = self._call(
                    'mutation', 'stageUploadChunks', {**self._key_args(key), 'generation': generation, 'chunks': group}
                )
                if reply['committed']:
                    return  # another creator of the same bytes committed them meanwhile
                group, size = [], 0
            if chunk is not None:
                group.append(chunk)
                size += length

    # -- reading -----------------------------------------------------------------------------------------------

    def get(self, key: UploadKey) -> UploadRecord:
        document = self._call('query', 'getUpload', self._key_args(self._check_key(key)))
        if document is None:
            raise NotFoundError(f'no {key}')
        return self._record(document, 'getUpload')

    def list(
        self,
        tenant_id: str,
        workspace_id: str,
        *,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> UploadPage:
        self._check_list(tenant_id, workspace_id, status, limit)
        args: dict[str, Any] = {'tenant_id': tenant_id, 'workspace_id': workspace_id}
        if status is not None:
            args['status'] = status
        convex_cursor = None if cursor is None else _unwrap_cursor(cursor, status)
        items: list[UploadRecord] = []
        while True:
            paging = {'numItems': float(min(limit - len(items), LIST_PAGE)), 'cursor': convex_cursor}
            try:
                reply = self._call('query', 'listUploads', {**args, 'paginationOpts': paging})
            except BackendError as exc:
                if cursor is not None:
                    raise InvalidInputError(f'invalid page cursor {cursor[:40]!r}: {exc}') from None
                raise
            items.extend(self._record(document, 'listUploads') for document in reply['page'])
            convex_cursor = None if reply['isDone'] else reply['continueCursor']
            if convex_cursor is None or len(items) >= limit:
                next_cursor = None if convex_cursor is None else _wrap_cursor(convex_cursor, status)
                return UploadPage(items=tuple(items), next_cursor=next_cursor)

    def _read_chunk_page(self, key: UploadKey, from_index: int) -> tuple[list[tuple[int, str]], dict[str, Any]]:
        """One page of the upload's chunks, and its stored form (with ``next_index``)."""
        reply = self._call(
            'query',
            'readUploadChunks',
            {**self._key_args(key), 'from_index': float(from_index), 'max_bytes': float(READ_PAGE_BYTES)},
        )
        if reply is None:
            raise NotFoundError(f'no {key}')
        return [(int(chunk['chunk_index']), chunk['text']) for chunk in reply['chunks']], reply

    def read(self, key: UploadKey) -> bytes:
        key = self._check_key(key)
        pairs: list[tuple[int, str]] = []
        from_index: int | None = 0
        stored: dict[str, Any] = {}
        while from_index is not None:
            page, stored = self._read_chunk_page(key, from_index)
            pairs.extend(page)
            from_index = None if stored['next_index'] is None else int(stored['next_index'])
        text = join_chunks(
            pairs,
            expected_count=int(stored['chunk_count']),
            expected_size=int(stored['stored_size']),
            expected_sha256=stored['stored_sha256'],
            what=str(key),
        )
        return decode_from_storage(
            text, stored['encoding'], size=int(stored['size']), sha256=stored['sha256'], what=str(key)
        )

    # -- claiming ----------------------------------------------------------------------------------------------

    def _claim(
        self,
        *,
        claimer: str,
        lease_ms: int,
        token: str,
        tenant_id: str | None,
        workspace_id: str | None,
        max_attempts: int,
    ) -> UploadRecord | None:
        args: dict[str, Any] = {
            'claimer': claimer,
            'token': token,
            'lease_ms': float(lease_ms),
            'max_attempts': float(max_attempts),
        }
        if tenant_id is not None:
            args['tenant_id'] = tenant_id
        if workspace_id is not None:
            args['workspace_id'] = workspace_id
        # A claim sent again after a lost reply may leave an upload claimed under a token nobody holds: it is
        # claimable again when its lease expires, the same recovery as for an importer that stopped.
        document = self._call('mutation', 'claimUpload', args)
        return None if document is None else self._record(document, 'claimUpload')

    def _renew(self, key: UploadKey, claim: str, lease_ms: int) -> UploadRecord:
        document = self._call(
            'mutation', 'renewUpload', {**self._key_args(key), 'token': claim, 'lease_ms': float(lease_ms)}
        )
        return self._record(document, 'renewUpload')

    def _complete(self, key: UploadKey, claim: str, structure_id: str, node_uuid: str) -> UploadRecord:
        document = self._call(
            'mutation',
            'completeUpload',
            {**self._key_args(key), 'token': claim, 'structure_id': structure_id, 'node_uuid': node_uuid},
        )
        return self._record(document, 'completeUpload')

    def _fail(self, key: UploadKey, claim: str, message: str) -> UploadRecord:
        document = self._call('mutation', 'failUpload', {**self._key_args(key), 'token': claim, 'message': message})
        return self._record(document, 'failUpload')

    def collect_garbage(self, tenant_id: str, workspace_id: str, *, older_than_seconds: float = 3600.0) -> int:
        self._check_list(tenant_id, workspace_id, None, 1)
        deleted = 0
        while True:
            reply = self._call(
                'mutation',
                'collectUploadGarbage',
                {
                    'tenant_id': tenant_id,
                    'workspace_id': workspace_id,
                    'older_than_ms': float(max(0.0, older_than_seconds) * 1000),
                },
            )
            deleted += int(reply['deleted'])
            if reply['done']:
                return deleted
