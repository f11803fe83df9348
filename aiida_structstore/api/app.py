"""The read API as an app: :func:`create_app` (for ``uvicorn``, a serverless host, or tests).

An application that has its own FastAPI app mounts the routes instead::

    from aiida_structstore.api import ReadContext, create_router

    context = ReadContext()          # settings from the environment
    app.include_router(create_router(context))

This module imports no AiiDA module.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..store import Store
from .context import ReadContext
from .executions import create_executions_router
from .security import SecurityHeadersMiddleware, security_headers
from .settings import ApiSettings
from .structures import create_structures_router

__all__ = ('STATIC', 'create_app', 'create_router')

LOGGER = logging.getLogger(__name__)
#: The viewer's files: ``index.html`` and the bundle ``viewer.js`` built by ``npm run build:viewer``.
STATIC = Path(__file__).resolve().parent / 'static'


def create_router(context: ReadContext) -> APIRouter:
    """Every route of the read API (``/api/...``), reading through ``context``."""
    router = APIRouter()
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
    """The read API with the viewer at ``/viewer/`` and OPTIMADE at ``/optimade``. ``store`` defaults to
    ``open_store()`` on first use."""
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
        from .optimade import create_optimade_app

        app.mount('/optimade', create_optimade_app(context))
    if context.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=context.settings.cors_origins,
            allow_methods=['GET'],
            allow_headers=['Authorization', 'If-None-Match'],
            expose_headers=['ETag', 'X-Content-SHA256'],
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
