"""The application's read side: an authenticated, stateless FastAPI service over the structure store, and a viewer.

Install with the ``api`` extra (``pip install 'aiida-structstore[api]'``). Nothing here imports AiiDA: the service
reads only through :func:`aiida_structstore.store.open_store`, so it runs where no AiiDA profile exists (a container,
a serverless host). See ``docs/api.md``.

* :func:`create_app` — the app (``structstore-api`` runs it with uvicorn);
* :func:`create_router` with a :class:`ReadContext` — the routes, for an application's own FastAPI app;
* :class:`ApiSettings` — token verification and CORS settings from the environment;
* :func:`mint_token` — a short-lived development token (``structstore-dev-token``).

The Modal deployment is :mod:`aiida_structstore.api.modal_app` (``modal`` extra, ``docs/deploy.md``); nothing here
imports it.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import jwt  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"the read API needs the 'api' extra: pip install 'aiida-structstore[api]' ({exc.name} is missing)"
    ) from exc

from .app import create_app, create_router
from .auth import AuthenticationError, Principal, TokenVerifier, mint_token
from .context import ReadContext
from .settings import ApiSettings, load_api_settings

__all__ = (
    'ApiSettings',
    'AuthenticationError',
    'Principal',
    'ReadContext',
    'TokenVerifier',
    'create_app',
    'create_router',
    'load_api_settings',
    'mint_token',
)
