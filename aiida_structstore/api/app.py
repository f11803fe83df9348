"""The read API as an app: :func:`create_app` (for ``uvicorn``, a serverless host, or tests).

An application that has its own FastAPI app mounts the routes instead::

    from aiida_structstore.api import ReadContext, create_router

    context = ReadContext()          # settings from the environment
    app.include_router(create_router(context))

OPTIMADE is mounted lazily (:class:`LazyMount`): ``create_app`` imports neither the ``optimade`` package nor its
parser (``lark``); the sub-application is built on the first request under ``/optimade``. A serverless host that
starts a process per cold request pays for OPTIMADE only when OPTIMADE is asked for (``docs/performance.md``).

This module imports no AiiDA module.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from .. import __version__
from ..store import Store
from .context import ReadContext
from .executions import create_executions_router
from .security import SecurityHeadersMiddleware, security_headers
from .settings import ApiSettings
from .structures import create_structures_router
from .uploads import create_uploads_router

__all__ = ('STATIC', 'LazyMount', 'create_app', 'create_router')

LOGGER = logging.getLogger(__name__)
#: The viewer's files: ``index.html`` and the bundle ``viewer.js`` built by ``npm run build:viewer``.
STATIC = Path(__file__).resolve().parent / 'static'


class LazyMount:
    """An ASGI app that builds the app it serves on its first request (once, under a lock) and then forwards to it.

    The build runs in the thread pool, so the imports it does never block the event loop; requests that arrive while
    it runs wait for the one build. A build that fails is retried by the next request (each gets the error).
    """

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f'LazyMount({getattr(self._build, "__qualname__", self._build)!r}, built={self._app is not None})'

    @property
    def built(self) -> bool:
        return self._app is not None

    def _get(self) -> ASGIApp:
        with self._lock:
            if self._app is None:
                self._app = self._build()
            return self._app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        app = self._app
        if app is None:
            app = await run_in_threadpool(self._get)
        await app(scope, receive, send)


def _optimade_app(context: ReadContext) -> ASGIApp:
    from .optimade import create_optimade_app  # imports the optimade package and lark: on first use only

    return create_optimade_app(context)


def create_router(context: ReadContext) -> APIRouter:
    """Every route of the read API (``/api/...``), reading through ``context``."""
    router = APIRouter()
    # Before the structures routes, so that /api/structures/uploads is never taken for a structure id.
    router.include_router(create_uploads_router(context))
    router.include_router(create_structures_router(context))
    router.include_router(create_executions_router(context))
    return router


def create_app(
    settings: ApiSettings | None = None,
    *,
    store: Store | None = None,
    viewer: bool = True,
    optimade: bool = True,
) -> FastAPI:
    """The read API with the viewer at ``/viewer/`` and OPTIMADE at ``/optimade`` (built on its first request, see
    :class:`LazyMount`). ``store`` defaults to ``open_store()`` on first use."""
    context = ReadContext(settings, store=store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        context.close()

    app = FastAPI(
        title='aiida-structstore read API',
        version=__version__,
        description='Structures projected from AiiDA, read from the structure store. Every route needs a bearer token.',
        lifespan=lifespan,
    )
    app.state.read_context = context
    app.include_router(create_router(context))
    if optimade:
        app.mount('/optimade', LazyMount(lambda: _optimade_app(context)))
    if context.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=context.settings.cors_origins,
            allow_methods=['GET', 'POST'],  # POST: uploads only
            allow_headers=['Authorization', 'If-None-Match', 'Content-Type'],
            expose_headers=['ETag', 'X-Content-SHA256', 'Location'],
        )
    # Outermost of the middlewares: every answer gets the headers, CORS preflights and errors included.
    app.add_middleware(SecurityHeadersMiddleware)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Answered outside the middlewares (by Starlette's ServerErrorMiddleware): the headers are set here.
        return JSONResponse(
            {'detail': 'internal server error'}, status_code=500, headers=security_headers(request.url.path)
        )

    if viewer:
        if not (STATIC / 'viewer.js').exists():
            LOGGER.warning('the viewer bundle %s is missing: run `npm run build:viewer`', STATIC / 'viewer.js')
        app.mount('/viewer', StaticFiles(directory=STATIC, html=True), name='viewer')

        @app.get('/', include_in_schema=False)
        def root() -> RedirectResponse:
            return RedirectResponse('/viewer/')

    return app
