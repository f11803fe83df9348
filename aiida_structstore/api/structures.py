"""The structures routes: list a workspace, read one record, view it as CIF, JSON or XYZ, stream its raw input.

Every route needs a bearer token (:mod:`.auth`) and reads one workspace of the token's tenant (``?workspace=``,
optional when the token grants one). A structure of another tenant or workspace is 404, exactly like a missing one.
Responses are ``Cache-Control: private, no-cache`` and ``Vary: Authorization``; single-record responses carry an
``ETag`` derived from the record's content hash and answer ``If-None-Match`` with 304.

This module imports no AiiDA module.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from ..core.exceptions import InvalidInputError
from ..core.query import Bound, QueryPlan
from ..core.structures import Page, Source, StructureKey, StructureRecord
from ..core.values import canonical_json
from ..store import Store
from ..store.structures import RawStream
from .context import ReadContext, Scope, http_errors
from .cursors import bad_cursor, listing_of
from .downloads import cif_name, content_disposition, raw_name
from .formats import write_xyz
from .schemas import StructureDetail, StructureItem, StructurePage
from .search import Search

__all__ = ('CACHE_HEADERS', 'ID_PATH', 'MEDIA_TYPES', 'conditional', 'create_structures_router', 'etag_matches')

LOGGER = logging.getLogger(__name__)

CACHE_HEADERS = {'Cache-Control': 'private, no-cache', 'Vary': 'Authorization'}
MEDIA_TYPES = {'cif': 'chemical/x-cif', 'json': 'application/json', 'xyz': 'chemical/x-xyz'}
#: Bytes per piece of a streamed raw input (chunks are re-cut so that no piece is larger).
STREAM_PIECE_BYTES = 256 * 1024
ID_PATH = Path(description='The structure id', min_length=1, max_length=128)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (weak comparison, RFC 9110 section 13.1.2)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == '*':
        return True
    bare = etag.removeprefix('W/')
    return any(tag.strip().removeprefix('W/') == bare for tag in if_none_match.split(','))


def _etag(content_hash: str, variant: str) -> str:
    return f'"{content_hash[:32]}-{variant}"'


def conditional(request: Request, etag: str) -> Response | None:
    """A 304 answer if the request's ``If-None-Match`` matches ``etag``, else ``None``."""
    if etag_matches(request.headers.get('if-none-match'), etag):
        return Response(status_code=304, headers={**CACHE_HEADERS, 'ETag': etag})
    return None


def _encoded(stream: RawStream) -> Iterator[bytes]:
    """The stream's chunks as UTF-8 pieces, the last piece held back until the whole input has verified.

    An integrity failure therefore always ends the response short of its ``Content-Length``: no client can take a
    torn body for a complete one.
    """
    held: bytes | None = None
    try:
        for text in stream:
            data = text.encode('utf-8')
            for start in range(0, len(data), STREAM_PIECE_BYTES):
                if held is not None:
                    yield held
                held = data[start : start + STREAM_PIECE_BYTES]
    except Exception:
        LOGGER.exception('raw input of %s failed verification; the response was cut short', stream.key)
        raise
    if held is not None:
        yield held


def create_structures_router(context: ReadContext) -> APIRouter:
    """The ``/api/structures`` routes, reading through ``context``."""
    router = APIRouter(prefix='/api/structures', tags=['structures'])
    scope_of = context.scope_dependency()
    store_of = context.store

    def source_of(key: StructureKey, content_hash: str, store: Store) -> Source | None:
        """The source of the committed version ``content_hash`` of ``key``, read from its summary (one index row,
        without the payload); ``None`` if another version was committed in between."""
        bound = Bound(key.structure_id)
        plan = QueryPlan(index='structure_id', lower=bound, upper=bound)
        with http_errors():
            page = store.structures.query(key.tenant_id, key.workspace_id, plan=plan, limit=1)
        found = next((item for item in page.items if item.key == key), None)
        return found.source if found is not None and found.content_hash == content_hash else None

    def search_page(store: Store, scope: Scope, search: Search, cursor: str | None, limit: int) -> Page:
        """A page of ``search``: one item more is asked for, so that a page that ends the results has no next
        cursor (a store may give one after a full page with nothing behind it)."""
        page = store.structures.query(
            scope.tenant_id,
            scope.workspace_id,
            plan=search.plan(),
            filter=search.filter(),
            cursor=cursor,
            limit=limit + 1,
        )
        if len(page.items) > limit:
            return Page(items=page.items[:limit], next_cursor=page.cursors[limit - 1])
        return page

    def record_of(structure_id: str, scope: Scope, store: Store) -> StructureRecord:
        key = scope.key(structure_id)
        with http_errors():
            return store.structures.get(key)

    @router.get(
        '',
        response_model=StructurePage,
        summary='List the structures of a workspace, or search them',
        description='Most recently updated first; with `id_prefix`, `formula` or `elements` (any combination) the '
        'matching structures in structure id order. Pass `next_cursor` back as `cursor`, with the same search.',
    )
    def list_structures(
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
        cursor: str | None = Query(None, description='`next_cursor` of the previous page, unchanged (opaque)'),
        limit: int = Query(50, ge=1, le=200, description='structures per page'),
        id_prefix: str | None = Query(None, description='only ids that start with this text'),
        formula: str | None = Query(None, description='only this reduced formula (`Fe2O3`; `O3Fe2` is the same)'),
        elements: str | None = Query(None, description='only structures with all these elements (`Fe,O`)'),
    ) -> Response:
        search = Search.of(id_prefix, formula, elements)
        listing = listing_of('structures', scope.tenant_id, scope.workspace_id)
        if search is not None:
            listing = listing_of('structures-search', scope.tenant_id, scope.workspace_id, search.listing())
        store_cursor = context.cursors.unwrap(cursor, listing)
        with http_errors('page'):
            try:
                if search is None:
                    page = store.structures.list(scope.tenant_id, scope.workspace_id, cursor=store_cursor, limit=limit)
                else:
                    page = search_page(store, scope, search, store_cursor, limit)
            except InvalidInputError:
                if cursor is None:
                    raise
                raise bad_cursor() from None  # the store refused its own cursor: never show its text
        body = StructurePage(
            workspace=scope.workspace_id,
            items=[StructureItem.of(item) for item in page.items],
            next_cursor=context.cursors.wrap(page.next_cursor, listing),
        )
        return Response(body.model_dump_json(), media_type='application/json', headers=CACHE_HEADERS)

    @router.get(
        '/{structure_id}',
        response_model=StructureDetail,
        summary='One structure: payload, CIF, parameters and provenance, without the raw input',
        responses={304: {'description': 'Not modified'}, 404: {'description': 'No such structure'}},
    )
    def get_structure(
        request: Request,
        structure_id: str = ID_PATH,
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
    ) -> Response:
        record = record_of(structure_id, scope, store)
        etag = _etag(record.content_hash, 'record')
        if (not_modified := conditional(request, etag)) is not None:
            return not_modified
        body = StructureDetail.of(record).model_dump_json()
        return Response(body, media_type='application/json', headers={**CACHE_HEADERS, 'ETag': etag})

    @router.get(
        '/{structure_id}/view',
        summary='The structure as CIF (chemical/x-cif), its JSON payload, or extended XYZ',
        responses={
            200: {'content': {media: {} for media in MEDIA_TYPES.values()}},
            304: {'description': 'Not modified'},
            404: {'description': 'No such structure, or no CIF for a structure without a cell'},
        },
    )
    def view_structure(
        request: Request,
        structure_id: str = ID_PATH,
        format: Literal['cif', 'json', 'xyz'] = Query('cif', description='cif, json or xyz'),
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
    ) -> Response:
        record = record_of(structure_id, scope, store)
        etag = _etag(record.content_hash, format)
        if (not_modified := conditional(request, etag)) is not None:
            return not_modified
        if format == 'cif':
            if record.cif is None:
                raise HTTPException(404, f'structure {structure_id!r} has no CIF: its cell has no volume')
            body = record.cif
        elif record.structure is None:
            raise HTTPException(404, f'structure {structure_id!r} has no structure payload')
        elif format == 'json':
            body = canonical_json(record.structure)
        else:
            formula = record.summary.get('chemical_formula_reduced', '')
            with http_errors():
                body = write_xyz(record.structure, comment=f'{structure_id} {formula}'.strip())
        headers = {**CACHE_HEADERS, 'ETag': etag}
        if format == 'cif':
            headers['Content-Disposition'] = content_disposition(cif_name(record.source, structure_id), structure_id)
        return Response(body.encode('utf-8'), media_type=MEDIA_TYPES[format], headers=headers)

    @router.get(
        '/{structure_id}/raw',
        summary='The raw input (the imported file), reassembled, verified and streamed',
        response_class=StreamingResponse,
        responses={
            200: {'content': {'text/plain': {}}},
            304: {'description': 'Not modified'},
            404: {'description': 'No such structure, or it has no raw input'},
        },
    )
    def raw_input(
        request: Request,
        structure_id: str = ID_PATH,
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
    ) -> Response:
        key = scope.key(structure_id)
        with http_errors():
            stream = store.structures.open_raw(key)
        if stream is None:
            raise HTTPException(404, f'structure {structure_id!r} has no raw input')
        etag = _etag(stream.content_hash, 'raw')
        if (not_modified := conditional(request, etag)) is not None:
            return not_modified
        name = raw_name(source_of(key, stream.content_hash, store), structure_id)
        headers = {
            **CACHE_HEADERS,
            'ETag': etag,
            'Content-Length': str(stream.size),
            'X-Content-SHA256': stream.sha256,
            'Content-Disposition': content_disposition(name, structure_id),
        }
        return StreamingResponse(_encoded(stream), media_type='text/plain; charset=utf-8', headers=headers)

    return router
