"""Security headers on every response of the read API: :class:`SecurityHeadersMiddleware`.

Every response (the read API, OPTIMADE, the viewer, the docs, errors included) carries
``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer`` and a
Content-Security-Policy with ``frame-ancestors 'none'``:

* API answers (JSON, CIF, XYZ, raw text): :data:`API_POLICY`, ``default-src 'none'``: nothing they hold may load or
  run anything, even if a browser is tricked into rendering one;
* the viewer (``/viewer/...``): :data:`VIEWER_POLICY`, its own files only (``'self'``), no inline script or style,
  no ``eval``; 3Dmol.js draws with WebGL on a canvas, which needs no more;
* the interactive API docs (``/docs``, ``/redoc``): only ``frame-ancestors 'none'`` (they load Swagger UI and ReDoc
  from a CDN with inline scripts).

A header a route sets itself is kept. An application that mounts :func:`~aiida_structstore.api.create_router` in its
own app adds the middleware there: ``app.add_middleware(SecurityHeadersMiddleware)``.

This module imports no AiiDA module.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ('API_POLICY', 'DOCS_POLICY', 'VIEWER_POLICY', 'SecurityHeadersMiddleware', 'security_headers')

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
VIEWER_POLICY = '; '.join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
DOCS_POLICY = "frame-ancestors 'none'"
COMMON_HEADERS = {
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
}
DOCS_PATHS = ('/docs', '/docs/oauth2-redirect', '/redoc')


def security_headers(path: str, *, viewer_prefix: str = '/viewer') -> dict[str, str]:
    """The headers of a response to ``path`` (relative to the app's root)."""
    if path == viewer_prefix or path.startswith(f'{viewer_prefix}/'):
        policy = VIEWER_POLICY
    elif path in DOCS_PATHS:
        policy = DOCS_POLICY
    else:
        policy = API_POLICY
    return {**COMMON_HEADERS, 'Content-Security-Policy': policy}


class SecurityHeadersMiddleware:
    """Adds :func:`security_headers` to every HTTP response that does not set them itself (pure ASGI: streaming
    responses pass through untouched)."""

    def __init__(self, app: ASGIApp, *, viewer_prefix: str = '/viewer') -> None:
        self.app = app
        self.viewer_prefix = viewer_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        path = scope.get('path', '')
        root = scope.get('root_path', '')
        if root and path.startswith(root):
            path = path[len(root) :]
        extra = security_headers(path or '/', viewer_prefix=self.viewer_prefix)

        async def send_with_headers(message: Message) -> None:
            if message['type'] == 'http.response.start':
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
