"""Each workspace's projection as an OPTIMADE API (specification 1.2), under the read API and behind its tokens.

Mounted at ``/optimade`` by :func:`aiida_structstore.api.create_app` (built on the first request there):

* ``/optimade/versions`` and ``/optimade/v1/{info, info/structures, structures, structures/{id}, links}``: the
  workspace of the token (which must grant exactly one);
* ``/optimade/workspaces/{workspace}/versions`` and ``/optimade/workspaces/{workspace}/v1/...``: any workspace the
  token grants (a workspace it does not grant is 404, like a missing one).

Built on optimade-python-tools' server pieces, as its custom backends are: the entries are a
:class:`~.query.StructureCollection` (its ``EntryCollection`` over the store), the parameters its
``EntryListingQueryParams`` and ``SingleEntryQueryParams`` (``page_cursor`` as text, see :class:`ListingParams`,
checked with their ``check_params``), errors its ``OptimadeHTTPException`` subclasses, responses its models. The
routes are thin: scope the request to the token's workspace, ``find``, and build the response. Pieces of the
package not used, and why (each would lose a property of this API):

* its routers and ``routers.utils.get_entries`` / ``get_single_entry``: they read the global ``CONFIG`` and one
  collection per app from ``app.state`` (no per-request workspace), build links from ``config.base_url`` or the
  request's ``Host`` header, and always give ``data_available`` (``len(collection)``: a scan of the workspace);
* its middleware: ``CheckWronglyVersionedBaseUrls`` and ``HandleApiHint`` find the versioned base from
  ``config.base_url`` or the ``Host`` header, know one base URL (not ``/workspaces/<id>/v1``), and ``HandleApiHint``
  redirects to a URL built from ``Host``; ``AddWarnings`` replaces the process-wide ``warnings.showwarning`` for each
  request, so with requests served in parallel threads one tenant's warnings could reach another's response. The
  version check is :func:`unknown` here (553 for any other ``v<n>``), warnings are collected per request, the
  blocks that collect them taking turns (:func:`.filters.request_warnings`);
* its exception handlers (``exception_handlers``): importing that module imports its logger, which builds a
  ``ServerConfig()`` from the host's ``OPTIMADE_*`` variables and ``~/.optimade.json`` (an ``OPTIMADE_LICENSE`` URL is
  fetched over the network, and its failure makes the import fail), creates ``/var/log/optimade/`` with a log file and
  adds a stdout handler; and its handlers answer ``RequestValidationError`` with 500 (400 here), drop the
  ``WWW-Authenticate`` header of a 401, and return any other exception's text (here a 500 document without
  details). The package's ``OptimadeHTTPException`` errors, which the routes and the collection raise, are answered
  here as its handler answers them: their status, title and detail in an OPTIMADE error document.

Errors are OPTIMADE error documents with the status the specification prescribes (400 bad filter, parameter or page
cursor, 401 no or bad token, 403 page limit or offset over the maximum or a scan over its bound (:mod:`.query`), 404
no such entry, 501 a property this database does not hold, 553 an API version it does not serve), and 421 for a
request whose links cannot be built: absolute links come from ``STRUCTURE_API_PUBLIC_URL``, or from the request's
URL only when its host is loopback, never from another ``Host`` header. A record the models refuse is served with
its valid properties or left out, with a warning in ``meta.warnings`` (:func:`_resource`).

This module imports no AiiDA module.
"""

from __future__ import annotations

import datetime as dt
import inspect
import ipaddress
import re
from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from optimade.exceptions import NotFound, OptimadeHTTPException, VersionNotSupported
from optimade.models import (
    AvailableApiVersion,
    BaseInfoAttributes,
    BaseInfoResource,
    EntryInfoResource,
    EntryInfoResponse,
    ErrorResponse,
    InfoResponse,
    LinksResponse,
    OptimadeError,
    ResponseMeta,
    ResponseMetaQuery,
    StructureResource,
    StructureResponseMany,
    StructureResponseOne,
    ToplevelLinks,
    Warnings,
)
from optimade.server.query_params import EntryListingQueryParams, SingleEntryQueryParams
from pydantic import ValidationError
from starlette.datastructures import URL
from starlette.exceptions import HTTPException as StarletteHTTPException

from ... import __version__
from ...store import Store
from ..auth import Principal
from ..context import ReadContext, Scope
from ..structures import CACHE_HEADERS
from .fields import (
    API_VERSION,
    DEFAULT_PAGE_LIMIT,
    IMPLEMENTATION,
    MAX_PAGE_LIMIT,
    PROVIDER,
    PROVIDER_FIELDS,
    SCHEMA_URL,
    SERVED_FIELDS,
    entry_properties,
    server_config,
)
from .filters import FilterError, request_warnings
from .query import StructureCollection

__all__ = ('API_VERSION', 'MAX_PAGE_LIMIT', 'ListingParams', 'create_optimade_app')

MAJOR = f'v{API_VERSION.split(".")[0]}'
MEDIA_TYPE = 'application/vnd.api+json'


class MisdirectedRequest(OptimadeHTTPException):
    """421: the request's links cannot be built (no public URL and a host that is not loopback)."""

    status_code = 421
    title = 'Misdirected Request'


def _listing_signature() -> inspect.Signature:
    """``EntryListingQueryParams``' parameters with ``page_cursor`` as this API's opaque text, and this API's
    default ``page_limit``."""
    signature = inspect.signature(EntryListingQueryParams.__init__)
    cursor = Annotated[str | None, Query(description='the page_cursor of links.next, unchanged (opaque)')]
    parameters = []
    for parameter in list(signature.parameters.values())[1:]:  # without self
        if parameter.name == 'page_cursor':
            parameter = parameter.replace(annotation=cursor, default=None)
        elif parameter.name == 'page_limit':
            parameter = parameter.replace(default=DEFAULT_PAGE_LIMIT)
        parameters.append(parameter)
    return signature.replace(parameters=parameters)


class ListingParams(EntryListingQueryParams):
    """The package's listing parameters; ``page_cursor`` is this API's signed cursor (text), which it serves, and
    ``page_above``/``page_below`` are not served (a warning says they were ignored)."""

    unsupported_params = ['page_above', 'page_below']

    def __init__(self, **values: Any) -> None:
        cursor = values.pop('page_cursor', None)
        super().__init__(**values)
        self.page_cursor = cursor


ListingParams.__signature__ = _listing_signature()  # what FastAPI reads the query parameters from


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
        raise MisdirectedRequest(NO_PUBLIC_URL)
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
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=CACHE_HEADERS)


def _json_many(meta: ResponseMeta, data: list[dict[str, Any]], next_link: str | None) -> Response:
    """A ``StructureResponseMany`` of resources already validated and dumped one by one by :func:`_resource`: the
    response model is not built around them again (that would validate and dump every entry a second time, about a
    fifth of a page's time); its other members are checked by validating the response with no entries."""
    links = ToplevelLinks(next=next_link)
    body = StructureResponseMany(meta=meta, data=[], links=links).model_dump(
        mode='json', exclude_unset=True, by_alias=True
    )
    body['data'] = data
    # orjson: a page of 100 entries with positions is encoded in about 0.2 ms instead of 5 ms.
    return Response(orjson.dumps(body), media_type=MEDIA_TYPE, headers=CACHE_HEADERS)


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


def _resource(entry: dict[str, Any], fields: list[str] | None, notes: list[tuple[str, str]]) -> dict[str, Any] | None:
    """The resource of an entry (as the collection's ``find`` maps it back: ``id``, ``type``, ``attributes``; or
    its flat document) with the attributes ``fields`` (``None``: all served).

    One odd record never breaks a response: species no site uses are left out (they describe nothing, and the
    models require ``implicit_atoms`` otherwise), properties the OPTIMADE models refuse are served as null, and an
    entry that still cannot be served is left out (``None``); either way with a warning in ``notes``.
    """
    entry_id = entry['id']
    given = entry['attributes'] if isinstance(entry.get('attributes'), dict) else entry
    attributes = {name: given.get(name) for name in SERVED_FIELDS if name not in ('id', 'type')}
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


def _checked(params: Any, request: Request, mapper: Any) -> list[str]:
    """Run the package's ``check_params`` on the request's query (400 for a parameter nobody defines); its warnings
    (another provider's parameter, one not served here), collected for this request."""
    with request_warnings() as caught:
        params.check_params(request.query_params, mapper)
    return [str(getattr(w.message, 'detail', None) or w.message) for w in caught]


def _routes(app: FastAPI, prefix: str, scope_of, store_of, entries: StructureCollection) -> None:
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
        params: ListingParams = Depends(),  # noqa: B008
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
    ) -> Response:
        _root_url(request)  # 421 before any work when the links cannot be built
        notes = _checked(params, request, entries.resource_mapper)
        collection = entries.scoped(store, scope)
        results, _, more, _, _ = collection.find(params)
        page = collection.page
        entry_notes: list[tuple[str, str]] = []
        data = [
            resource
            for resource in (_resource(entry, page.fields, entry_notes) for entry in results or [])
            if resource is not None
        ]
        next_link = None
        if more:
            next_url = _public_url(request).remove_query_params(['page_number', 'page_offset', 'page_cursor'])
            next_link = str(
                next_url.include_query_params(
                    **{name: values[0] for name, values in collection.get_next_query_params(params, results).items()}
                )
            )
        counts: dict[str, Any] = {}
        if page.returned is not None:
            counts['data_returned'] = page.returned
            if page.compiled.query is None:
                counts['data_available'] = page.returned
        meta = _meta(
            request,
            warnings_=[*page.compiled.warnings, *notes, *page.notes, *entry_notes],
            more_data_available=more,
            **counts,
        )
        return _json_many(meta, data, next_link)

    @app.get(f'{base}/structures/{{entry_id}}', include_in_schema=prefix == '')
    def structure(
        request: Request,
        entry_id: str = Path(min_length=1, max_length=128),
        params: SingleEntryQueryParams = Depends(),  # noqa: B008
        scope: Scope = Depends(scope_of),  # noqa: B008
        store: Store = Depends(store_of),  # noqa: B008
    ) -> Response:
        _root_url(request)  # 421 before any work when the links cannot be built
        notes = _checked(params, request, entries.resource_mapper)
        collection = entries.scoped(store, scope, entry_id)
        result, _, _, _, _ = collection.find(params)
        if not isinstance(result, dict):  # pragma: no cover - a missing entry is 404 from the store
            raise NotFound(detail=f'no structure {entry_id!r}')
        entry_notes: list[tuple[str, str]] = []
        data = _resource(result, collection.page.fields, entry_notes)
        meta = _meta(
            request, warnings_=[*notes, *collection.page.notes, *entry_notes], data_returned=int(data is not None)
        )
        return _json(StructureResponseOne(meta=meta, data=data, links=ToplevelLinks(next=None)))


def create_optimade_app(context: ReadContext) -> FastAPI:
    """The OPTIMADE sub-application (mount it at ``/optimade``), reading through ``context``."""
    app = FastAPI(title='aiida-structstore OPTIMADE API', version=__version__, docs_url=None, redoc_url=None)
    app.state.public_url = context.settings.public_url
    app.state.config = server_config()  # read by the package's exception handlers

    def token_scope(principal: Principal = Depends(context.principal)) -> Scope:  # noqa: B008
        if len(principal.workspaces) != 1:
            raise FilterError(
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

    entries = StructureCollection(context.cursors)
    _routes(app, '', token_scope, context.store, entries)
    _routes(app, '/workspaces/{workspace}', path_scope, context.store, entries)

    @app.get('/{path:path}', include_in_schema=False)
    def unknown(request: Request, path: str) -> Response:
        """The version check of this API's base URLs (the package's middleware knows one base URL)."""
        match = _VERSIONED.match(path)
        if match is not None and match.group('version') != MAJOR:
            raise VersionNotSupported(detail=f'API version {match.group("version")} is not served; use {MAJOR}')
        raise NotFound(detail=f'no such endpoint: {request.url.path}')

    @app.exception_handler(OptimadeHTTPException)
    async def optimade_error(request: Request, exc: OptimadeHTTPException) -> Response:
        # The package's errors (and this API's, its subclasses): their status, title and detail, as its handler does.
        return _error(request, exc.status_code, exc.title, str(exc.detail), exc.headers)

    @app.exception_handler(NotImplementedError)
    async def not_implemented(request: Request, exc: NotImplementedError) -> Response:
        return _error(request, 501, 'Not Implemented', str(exc) or 'not implemented')

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = _TITLES.get(exc.status_code, 'Error')
        return _error(request, exc.status_code if exc.status_code != 422 else 400, title, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = '; '.join(f'{".".join(map(str, e["loc"][1:]))}: {e["msg"]}' for e in exc.errors())
        return _error(request, 400, 'Bad Request', f'invalid query parameter: {problems}')

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        # An OPTIMADE error document without details (the exception is logged by the server).
        return _error(request, 500, 'Internal Server Error', 'the server failed to answer this request')

    return app
