"""The executions routes: the AiiDA processes that took or produced a structure, and one process by UUID.

Same rules as the structures routes (:mod:`.structures`): a bearer token, one workspace of the token's tenant
(``?workspace=``), 404 for another tenant's or workspace's data exactly as for missing data, ``Cache-Control:
private, no-cache``, ``Vary: Authorization``, and an ``ETag`` (from the record's content hash, or for a listing
from the hashes of its items) answered with 304 on ``If-None-Match``: a viewer that polls a running workflow costs
a 304 while nothing changed.

This module imports no AiiDA module.
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from ..core.exceptions import InvalidInputError
from ..core.executions import ExecutionKey
from ..store import Store
from .context import ReadContext, Scope, http_errors
from .cursors import bad_cursor, listing_of
from .schemas import ExecutionDetail, ExecutionPageBody
from .structures import CACHE_HEADERS, ID_PATH, conditional

__all__ = ('create_executions_router',)

UUID_PATH = Path(description='The AiiDA process UUID', min_length=32, max_length=36)


def create_executions_router(context: ReadContext) -> APIRouter:
    """``/api/structures/{id}/executions`` and ``/api/executions/{uuid}``, reading through ``context``."""
    router = APIRouter(tags=['executions'])
    scope_of = context.scope_dependency()
    store_of = context.store

    @router.get(
        '/api/structures/{structure_id}/executions',
        response_model=ExecutionPageBody,
        summary='The executions (AiiDA processes) that took or produced a structure, most recently modified first',
        responses={304: {'description': 'Not modified'}, 404: {'description': 'No such structure'}},
    )
    def executions_of_structure(
        request: Request,
        structure_id: str = ID_PATH,
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
        cursor: str | None = Query(None, description='`next_cursor` of the previous page, unchanged (opaque)'),
        limit: int = Query(50, ge=1, le=100, description='executions per page'),
    ) -> Response:
        key = scope.key(structure_id)
        listing = listing_of('executions', key.tenant_id, key.workspace_id, structure_id)
        store_cursor = context.cursors.unwrap(cursor, listing)
        with http_errors('executions'):
            if not store.structures.content_hashes(key.tenant_id, key.workspace_id, [structure_id]):
                raise HTTPException(404, f'no structure {key}')
            try:
                page = store.executions.list(
                    key.tenant_id, key.workspace_id, structure_id=structure_id, cursor=store_cursor, limit=limit
                )
            except InvalidInputError:
                if cursor is None:
                    raise
                raise bad_cursor() from None  # the store refused its own cursor: never show its text
        next_cursor = context.cursors.wrap(page.next_cursor, listing)
        digest = hashlib.sha256()
        for record in page.items:
            digest.update(f'{record.key.process_uuid}:{record.content_hash}\n'.encode())
        digest.update((next_cursor or '').encode())
        etag = f'"{digest.hexdigest()[:32]}-executions"'
        if (not_modified := conditional(request, etag)) is not None:
            return not_modified
        body = ExecutionPageBody(
            workspace=scope.workspace_id,
            structure_id=structure_id,
            items=[ExecutionDetail.of(record, structure_id) for record in page.items],
            next_cursor=next_cursor,
        )
        return Response(body.model_dump_json(), media_type='application/json', headers={**CACHE_HEADERS, 'ETag': etag})

    @router.get(
        '/api/executions/{process_uuid}',
        response_model=ExecutionDetail,
        summary='One execution: state, exit status and message, where it ran, the structures it took and produced',
        responses={304: {'description': 'Not modified'}, 404: {'description': 'No such execution'}},
    )
    def get_execution(
        request: Request,
        process_uuid: str = UUID_PATH,
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
    ) -> Response:
        try:
            key = ExecutionKey.of(scope.tenant_id, scope.workspace_id, process_uuid)
        except InvalidInputError as exc:
            raise HTTPException(422, str(exc)) from None
        with http_errors('execution'):
            record = store.executions.get(key)
        etag = f'"{record.content_hash[:32]}-execution"'
        if (not_modified := conditional(request, etag)) is not None:
            return not_modified
        body = ExecutionDetail.of(record).model_dump_json()
        return Response(body, media_type='application/json', headers={**CACHE_HEADERS, 'ETag': etag})

    return router
