"""Each workspace's projection as an OPTIMADE API (specification 1.2), under the read API and behind its tokens.

Mounted at ``/optimade`` by :func:`aiida_structstore.api.create_app`:

* ``/optimade/versions`` and ``/optimade/v1/{info, info/structures, structures, structures/{id}, links}``: the
  workspace of the token (which must grant exactly one);
* ``/optimade/workspaces/{workspace}/versions`` and ``/optimade/workspaces/{workspace}/v1/...``: any workspace the
  token grants (a workspace it does not grant is 404, like a missing one).

Responses are built from the ``optimade`` package's models; errors are OPTIMADE error documents with the status
the specification prescribes (400 bad filter, parameter or page cursor, 401 no or bad token, 403 page limit or
offset over the maximum or a scan over its bound (:mod:`.query`),
404 no such entry, 501 a property this database does not hold, 553 an API version it does not serve), and 421
for a request whose links cannot be built: absolute links come from ``STRUCTURE_API_PUBLIC_URL``, or from the
request's URL only when its host is loopback, never from another ``Host`` header. A record the models refuse is
served with its valid properties or left out, with a warning in ``meta.warnings`` (:func:`_resource`).

This module imports no AiiDA module.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Sequence
from typing import Any

import optimade
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from optimade.models import (
    AvailableApiVersion,
    BaseInfoAttributes,
    BaseInfoResource,
    EntryInfoResource,
    EntryInfoResponse,
    ErrorResponse,
    Implementation,
    InfoResponse,
    LinksResponse,
    OptimadeError,
    Provider,
    ResponseMeta,
    ResponseMetaQuery,
    StructureResource,
    StructureResponseMany,
    StructureResponseOne,
    ToplevelLinks,
    Warnings,
)
from pydantic import ValidationError
from starlette.datastructures import URL
from starlette.exceptions import HTTPException as StarletteHTTPException

from ... import __version__
from ...core.exceptions import BackendError, InvalidInputError
from ...store import Store
from ..auth import Principal
from ..context import ReadContext, Scope, http_errors
from ..cursors import MAX_CURSOR_LENGTH, CursorCodec, bad_cursor, listing_of
from ..structures import CACHE_HEADERS
from .fields import PAYLOAD_FIELDS, PREFIX, PROVIDER_FIELDS, SERVED_FIELDS, document, entry_properties
from .filters import FilterError, compile_filter
from .query import MAX_PAGE_OFFSET, parse_sort, plan_request, walk

__all__ = ('API_VERSION', 'MAX_PAGE_LIMIT', 'create_optimade_app')

API_VERSION = optimade.__api_version__
MAJOR = f'v{API_VERSION.split(".")[0]}'
DEFAULT_PAGE_LIMIT = 20
MAX_PAGE_LIMIT = 100
MEDIA_TYPE = 'application/vnd.api+json'
#: The JSON schema of the responses, reported in ``meta.schema``.
SCHEMA_URL = f'https://schemas.optimade.org/openapi/v{API_VERSION.rsplit(".", 1)[0]}/optimade.json'
PROVIDER = Provider(
    name='aiida-structstore',
    description='Structures projected from AiiDA provenance graphs into an application store',
    prefix=PREFIX,
    homepage='https://github.com/aiida-structstore/aiida-structstore',
)
IMPLEMENTATION = Implementation(
    name='aiida-structstore',
    version=__version__,
    homepage='https://github.com/aiida-structstore/aiida-structstore',
    source_url='https://github.com/aiida-structstore/aiida-structstore',
)
#: Standard structure properties (of the specification) that the records do not hold: returned as null when asked.
_ALL_STANDARD = frozenset(StructureResource.model_fields['attributes'].annotation.model_fields)


class OptimadeHTTPError(HTTPException):
    """An error with an OPTIMADE title."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(status, detail)
        self.title = title


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


_LOCAL_HOSTS = frozenset({'localhost', 'testserver'})
NO_PUBLIC_URL = (
    "this server's public URL is not configured: set STRUCTURE_API_PUBLIC_URL to the URL clients use "
    "(absolute links are never built from the request's Host header)"
)


def _is_local(host: str | None) -> bool:
    """Whether ``host`` is a loopback address, ``localhost`` or the test client's ``testserver``."""
    if not host:
        return False
    if host.lower() in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip('[]')).is_loopback
    except ValueError:
        return False


def _app_path(request: Request) -> str:
    """The request's path below the read API's root (``/optimade/...``)."""
    path, root = request.url.path, request.scope.get('app_root_path', '')
    return path[len(root) :] if root and path.startswith(root) else path


def _root_url(request: Request) -> str:
    """The URL of the read API's root: ``STRUCTURE_API_PUBLIC_URL``, or the request's own URL on a loopback host;
    any other host is refused (421), since the ``Host`` header is the client's to choose."""
    public = getattr(request.app.state, 'public_url', None)
    if public:
        return public
    url = request.url
    if not _is_local(url.hostname):
        raise OptimadeHTTPError(421, 'Misdirected Request', NO_PUBLIC_URL)
    host = f'[{url.hostname}]' if ':' in (url.hostname or '') else url.hostname
    return f'{url.scheme}://{host}{f":{url.port}" if url.port else ""}{request.scope.get("app_root_path", "")}'


def _versioned_base(request: Request) -> str:
    """The public versioned base URL of the request (``.../optimade[/workspaces/<id>]/v1``)."""
    path = _app_path(request)
    return _root_url(request) + path[: path.rindex(f'/{MAJOR}/') + len(MAJOR) + 1]


def _public_url(request: Request) -> URL:
    """The request's URL under the public base (for ``links.next``)."""
    query = request.url.query
    return URL(_root_url(request) + _app_path(request) + (f'?{query}' if query else ''))


def _meta(request: Request, *, warnings_: Sequence[str | tuple[str, str]] = (), **values: Any) -> ResponseMeta:
    """The ``meta`` of a response; ``warnings_`` are details (titled "Filter warning") or ``(title, detail)``."""
    path = _app_path(request)
    representation = path[path.rindex(f'/{MAJOR}/') + len(MAJOR) + 1 :]
    if request.url.query:
        representation += f'?{request.url.query}'
    return ResponseMeta(
        query=ResponseMetaQuery(representation=representation),
        api_version=API_VERSION,
        time_stamp=_now(),
        provider=PROVIDER,
        implementation=IMPLEMENTATION,
        warnings=[
            Warnings(title=title, detail=detail)
            for title, detail in (w if isinstance(w, tuple) else ('Filter warning', w) for w in warnings_)
        ]
        or None,
        schema=SCHEMA_URL,
        **{'more_data_available': False, **values},
    )


def _json(model: Any, status: int = 200) -> Response:
    body = model.model_dump(mode='json', exclude_unset=True, by_alias=True)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=CACHE_HEADERS)


def _error(request: Request, status: int, title: str, detail: str, headers: dict | None = None) -> Response:
    meta = ResponseMeta(
        query=ResponseMetaQuery(
            representation=request.url.path + (f'?{request.url.query}' if request.url.query else '')
        ),
        api_version=API_VERSION,
        more_data_available=False,
        time_stamp=_now(),
        provider=PROVIDER,
        implementation=IMPLEMENTATION,
        schema=SCHEMA_URL,
    )
    body = ErrorResponse(meta=meta, errors=[OptimadeError(status=str(status), title=title, detail=detail)])
    response = _json(body, status)
    response.headers.update(headers or {})
    return response


_VERSIONED = re.compile(r'(?:workspaces/[^/]+/)?(?P<version>v[0-9]+)(?:/|$)')
_TITLES = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    421: 'Misdirected Request',
    422: 'Bad Request',
}


def _response_fields(value: str | None) -> tuple[list[str] | None, list[str]]:
    """The attributes to return (``None``: all served ones) and warnings for other providers' fields."""
    if value is None:
        return None, []
    names, notes = [], []
    for name in (part.strip() for part in value.split(',')):
        if not name or name in ('id', 'type'):
            continue
        if name in SERVED_FIELDS or name in _ALL_STANDARD:
            names.append(name)
        elif name.startswith('_') and not name.startswith(f'_{PREFIX}_'):
            notes.append(f"response field '{name}' belongs to another provider; it was ignored")
        else:
            raise OptimadeHTTPError(400, 'Bad Request', f"unknown response field '{name}'")
    return names, notes


def _resource(doc: dict[str, Any], fields: list[str] | None, notes: list[tuple[str, str]]) -> dict[str, Any] | None:
    """The resource of an entry's document with the attributes ``fields`` (``None``: all served).

    One odd record never breaks a response: species no site uses are left out (they describe nothing, and the
    models require ``implicit_atoms`` otherwise), properties the OPTIMADE models refuse are served as null, and an
    entry that still cannot be served is left out (``None``); either way with a warning in ``notes``.
    """
    entry_id = doc['id']
    attributes = {name: doc.get(name) for name in SERVED_FIELDS if name not in ('id', 'type')}
    species, at_sites = attributes.get('species'), attributes.get('species_at_sites')
    if isinstance(species, list) and isinstance(at_sites, list):
        used = set(at_sites)
        attributes['species'] = [item for item in species if not isinstance(item, dict) or item.get('name') in used]
    nulled: list[str] = []
    while True:
        try:
            resource = StructureResource(id=entry_id, type='structures', attributes=attributes)
            break
        except ValidationError as exc:
            errors = exc.errors()
            names = sorted({str(e['loc'][1]) for e in errors if len(e['loc']) > 1 and e['loc'][0] == 'attributes'})
            if nulled or not names or any(len(e['loc']) < 2 for e in errors) or 'last_modified' in names:
                reason = str(errors[0]['msg'])[:200] if errors else 'invalid'
                notes.append(
                    (
                        'Entry left out',
                        f'entry {entry_id!r} is not a valid OPTIMADE structure ({reason}); it was left out',
                    )
                )
                return None
            nulled = names
            attributes.update(dict.fromkeys(names))
    body = resource.model_dump(mode='json', exclude_unset=True)
    if fields is not None:
        body['attributes'] = {name: body['attributes'].get(name) for name in fields}
    shown = [name for name in nulled if fields is None or name in fields]
    if shown:
        notes.append(
            (
                'Invalid properties',
                f'entry {entry_id!r}: {", ".join(shown)} not valid OPTIMADE values; served as null',
            )
        )
    return body


def _cursor_state(payload: str) -> dict[str, Any]:
    """The state inside a page cursor (signed by this API, so malformed means another version's): 400 otherwise."""
    try:
        state = json.loads(payload)
    except ValueError:
        raise bad_cursor() from None
    if (
        not isinstance(state, dict)
        or set(state) != {'position', 'cursor', 'ahead'}
        or not isinstance(state['position'], int)
        or state['position'] < 0
        or not isinstance(state['cursor'], str | None)
        or not isinstance(state['ahead'], str | None)
    ):
        raise bad_cursor()
    return state


def _needs_payload(fields: list[str] | None) -> bool:
    return fields is None or bool(PAYLOAD_FIELDS & set(fields))


def _routes(app: FastAPI, prefix: str, scope_of, store_of, cursors: CursorCodec) -> None:
    base = f'{prefix}/{MAJOR}'

    @app.get(f'{prefix}/versions', response_class=PlainTextResponse, include_in_schema=prefix == '')
    def versions() -> Response:
        return Response(f'version\n{MAJOR[1:]}\n', media_type='text/csv; header=present')

    @app.get(f'{base}/info', include_in_schema=prefix == '')
    def info(request: Request, scope: Scope = Depends(scope_of)) -> Response:  # noqa: B008
        _root_url(request)
        attributes = BaseInfoAttributes(
            api_version=API_VERSION,
            available_api_versions=[AvailableApiVersion(url=_versioned_base(request), version=API_VERSION)],
            formats=['json'],
            available_endpoints=['info', 'links', 'structures'],
            entry_types_by_format={'json': ['structures']},
            is_index=False,
        )
        return _json(
            InfoResponse(meta=_meta(request), data=BaseInfoResource(id='/', type='info', attributes=attributes))
        )

    @app.get(f'{base}/info/structures', include_in_schema=prefix == '')
    def info_structures(request: Request, scope: Scope = Depends(scope_of)) -> Response:  # noqa: B008
        _root_url(request)
        data = EntryInfoResource(
            id='structures',
            type='info',
            formats=['json'],
            description=f'Structures of workspace {scope.workspace_id}, projected from AiiDA. Provider fields: '
            + '; '.join(f'{name}: {field["description"]}' for name, field in PROVIDER_FIELDS.items()),
            properties=entry_properties(),
            output_fields_by_format={'json': list(SERVED_FIELDS)},
        )
        return _json(EntryInfoResponse(meta=_meta(request), data=data))

    @app.get(f'{base}/links', include_in_schema=prefix == '')
    def links(request: Request, scope: Scope = Depends(scope_of)) -> Response:  # noqa: B008
        _root_url(request)
        return _json(LinksResponse(meta=_meta(request, data_returned=0, data_available=0), data=[]))

    @app.get(f'{base}/structures', include_in_schema=prefix == '')
    def structures(
        request: Request,
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
        filter: str | None = Query(None, description='an OPTIMADE filter'),
        response_format: str = Query('json'),
        response_fields: str | None = Query(None),
        sort: str | None = Query(None),
        page_limit: int = Query(DEFAULT_PAGE_LIMIT, ge=1),
        page_offset: int = Query(0, ge=0),
        page_number: int | None = Query(None, ge=1),
        page_cursor: str | None = Query(None, description='the page_cursor of links.next, unchanged (opaque)'),
        email_address: str | None = Query(None),
        include: str | None = Query(None),
        api_hint: str | None = Query(None),
    ) -> Response:
        _root_url(request)  # 421 before any work when the links cannot be built
        if response_format != 'json':
            raise OptimadeHTTPError(400, 'Bad Request', f"response_format '{response_format}' is not served; use json")
        if page_limit > MAX_PAGE_LIMIT:
            raise OptimadeHTTPError(
                403, 'Forbidden', f'page_limit {page_limit} is over the maximum of {MAX_PAGE_LIMIT}'
            )
        if page_number is not None:
            page_offset = (page_number - 1) * page_limit
        if page_cursor is not None and (page_offset or page_number is not None):
            raise OptimadeHTTPError(
                400, 'Bad Request', 'page_cursor cannot be combined with page_offset or page_number'
            )
        if page_offset > MAX_PAGE_OFFSET:
            raise OptimadeHTTPError(
                403,
                'Forbidden',
                f'page_offset {page_offset} is over the maximum of {MAX_PAGE_OFFSET}; follow links.next',
            )
        sort_keys = parse_sort(sort)
        compiled = compile_filter(filter)
        fields, notes = _response_fields(response_fields)
        strategy = plan_request(compiled, sort_keys)
        # A cursor serves only the listing that issued it: same scope, same filter, same sort.
        listing = listing_of(
            'optimade',
            scope.tenant_id,
            scope.workspace_id,
            json.dumps(compiled.query, sort_keys=True, separators=(',', ':')),
            json.dumps(sort_keys),
        )
        state = _cursor_state(cursors.unwrap(page_cursor, listing)) if page_cursor is not None else None
        with http_errors('entries'):
            try:
                result = walk(
                    store,
                    scope,
                    compiled,
                    strategy,
                    offset=page_offset,
                    limit=page_limit,
                    state=state,
                    with_records=_needs_payload(fields),
                )
            except (InvalidInputError, BackendError):
                if state is None:
                    raise
                raise bad_cursor() from None  # the store refused its own cursor: never show its text
            records = dict(result.records)
            if _needs_payload(fields):
                # Entries read without their payload (a sort-only scan): their full records, in one call.
                missing = [
                    doc['id']
                    for doc in result.documents
                    if doc['id'] not in records and not PAYLOAD_FIELDS.intersection(doc)
                ]
                if missing:
                    keys = [scope.key(structure_id) for structure_id in missing]
                    records.update(
                        (record.key.structure_id, record)
                        for record in store.structures.get_many(keys)
                        if record is not None
                    )
        entry_notes: list[tuple[str, str]] = []
        data = []
        for doc in result.documents:
            record = records.get(doc['id'])
            resource = _resource(doc if record is None else document(record), fields, entry_notes)
            if resource is not None:
                data.append(resource)
        next_link = None
        if result.more:
            next_url = _public_url(request).remove_query_params(['page_number', 'page_offset', 'page_cursor'])
            wrapped = None
            if result.next_state is not None:
                wrapped = cursors.wrap(json.dumps(result.next_state, separators=(',', ':')), listing)
            if wrapped is not None and len(wrapped) <= MAX_CURSOR_LENGTH:
                next_link = str(next_url.include_query_params(page_cursor=wrapped))
            else:
                position = result.next_state['position'] if result.next_state else page_offset + len(result.documents)
                next_link = str(next_url.include_query_params(page_offset=position))
        counts: dict[str, Any] = {}
        if result.returned is not None:
            counts['data_returned'] = result.returned
            if compiled.query is None:
                counts['data_available'] = result.returned
        meta = _meta(
            request,
            warnings_=[*compiled.warnings, *notes, *entry_notes],
            more_data_available=result.more,
            **counts,
        )
        body = StructureResponseMany(meta=meta, data=data, links=ToplevelLinks(next=next_link))
        return _json(body)

    @app.get(f'{base}/structures/{{entry_id}}', include_in_schema=prefix == '')
    def structure(
        request: Request,
        entry_id: str = Path(min_length=1, max_length=128),
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
        response_format: str = Query('json'),
        response_fields: str | None = Query(None),
    ) -> Response:
        _root_url(request)  # 421 before any work when the links cannot be built
        if response_format != 'json':
            raise OptimadeHTTPError(400, 'Bad Request', f"response_format '{response_format}' is not served; use json")
        fields, notes = _response_fields(response_fields)
        key = scope.key(entry_id)
        with http_errors('entry'):
            record = store.structures.get(key)
        entry_notes: list[tuple[str, str]] = []
        data = _resource(document(record), fields, entry_notes)
        meta = _meta(request, warnings_=[*notes, *entry_notes], data_returned=1 if data is not None else 0)
        return _json(StructureResponseOne(meta=meta, data=data, links=ToplevelLinks(next=None)))


def create_optimade_app(context: ReadContext) -> FastAPI:
    """The OPTIMADE sub-application (mount it at ``/optimade``), reading through ``context``."""
    app = FastAPI(title='aiida-structstore OPTIMADE API', version=__version__, docs_url=None, redoc_url=None)
    app.state.public_url = context.settings.public_url

    def token_scope(principal: Principal = Depends(context.principal)) -> Scope:  # noqa: B008
        if len(principal.workspaces) != 1:
            raise OptimadeHTTPError(
                400,
                'Bad Request',
                'this token grants several workspaces: use the base URL /optimade/workspaces/<workspace>/'
                f'{MAJOR} ({", ".join(principal.workspaces)})',
            )
        return context.scope(principal, None)

    def path_scope(
        workspace: str = Path(min_length=1, max_length=128),
        principal: Principal = Depends(context.principal),  # noqa: B008
    ) -> Scope:
        return context.scope(principal, workspace)

    _routes(app, '', token_scope, context.store, context.cursors)
    _routes(app, '/workspaces/{workspace}', path_scope, context.store, context.cursors)

    @app.get('/{path:path}', include_in_schema=False)
    def unknown(request: Request, path: str) -> Response:
        match = _VERSIONED.match(path)
        if match is not None and match.group('version') != MAJOR:
            raise OptimadeHTTPError(
                553, 'Version Not Supported', f'API version {match.group("version")} is not served; use {MAJOR}'
            )
        raise OptimadeHTTPError(404, 'Not Found', f'no such endpoint: {request.url.path}')

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = getattr(exc, 'title', None) or _TITLES.get(exc.status_code, 'Error')
        return _error(request, exc.status_code if exc.status_code != 422 else 400, title, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = '; '.join(f'{".".join(map(str, e["loc"][1:]))}: {e["msg"]}' for e in exc.errors())
        return _error(request, 400, 'Bad Request', f'invalid query parameter: {problems}')

    @app.exception_handler(FilterError)
    async def filter_error(request: Request, exc: FilterError) -> Response:
        return _error(request, exc.status, exc.title, exc.detail)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        # An OPTIMADE error document without details (the exception is logged by the server).
        return _error(request, 500, 'Internal Server Error', 'the server failed to answer this request')

    return app
