"""Console scripts of the read API: ``structstore-api`` runs it, ``structstore-dev-token`` mints a development token.

Both read their settings from the environment (and the store's settings file) like the app itself; errors are
printed as one line naming the problem, never with a secret's value.

This module imports no AiiDA module.
"""

from __future__ import annotations

import argparse
import sys

from ..core.exceptions import StructStoreError

__all__ = ('dev_token', 'serve')


def _fail(message: str) -> None:
    print(f'error: {message}', file=sys.stderr)
    raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='structstore-api',
        description='Run the aiida-structstore read API and viewer. Settings come from the environment: '
        'STRUCTURE_STORE_BACKEND, CONVEX_URL, CONVEX_DEPLOY_KEY for the store; STRUCTURE_API_JWT_SECRET or '
        'STRUCTURE_API_JWKS_URL for tokens; STRUCTURE_API_PUBLIC_URL for links (see docs/api.md).',
    )
    parser.add_argument('--host', default='127.0.0.1', help='interface to listen on (default: %(default)s)')
    parser.add_argument('--port', type=int, default=8000, help='port to listen on (default: %(default)s)')
    parser.add_argument(
        '--public-url',
        help='the URL clients reach the API at, the base of absolute links (default: STRUCTURE_API_PUBLIC_URL, '
        'else http://HOST:PORT, with 127.0.0.1 or ::1 for a wildcard HOST)',
    )
    parser.add_argument('--log-level', default='info', choices=['critical', 'error', 'warning', 'info', 'debug'])
    return parser


def _listen_url(host: str, port: int) -> str:
    """``http://host:port`` for the address the server listens on (a wildcard address: loopback)."""
    if host in ('', '0.0.0.0'):  # noqa: S104 - a comparison, not a bind
        host = '127.0.0.1'
    elif host == '::':
        host = '::1'
    return f'http://{f"[{host}]" if ":" in host else host}:{port}'


def _settings(argv: list[str] | None):
    """The parsed arguments' settings: ``--public-url``, else ``STRUCTURE_API_PUBLIC_URL``, else the listen URL."""
    from .settings import load_api_settings

    args = _parser().parse_args(argv)
    settings = load_api_settings(**({'public_url': args.public_url} if args.public_url else {}))
    if settings.public_url is None:
        settings = load_api_settings(public_url=_listen_url(args.host, args.port))
        if args.host in ('', '0.0.0.0', '::'):  # noqa: S104 - a comparison, not a bind
            print(
                f'warning: links point to {settings.public_url}; set STRUCTURE_API_PUBLIC_URL (or --public-url) '
                'to the URL clients use',
                file=sys.stderr,
            )
    return settings, args


def serve(argv: list[str] | None = None) -> None:
    """Run the read API (and the viewer at /viewer/) with uvicorn."""
    import uvicorn

    from .app import create_app

    try:
        settings, args = _settings(argv)
        app = create_app(settings)
    except StructStoreError as exc:
        _fail(str(exc))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


def dev_token(argv: list[str] | None = None) -> None:
    """Print a short-lived HS256 development token for a tenant and its workspaces."""
    parser = argparse.ArgumentParser(
        prog='structstore-dev-token',
        description='Mint a short-lived development token (HS256, signed with STRUCTURE_API_JWT_SECRET) and print '
        'it. Use it as "Authorization: Bearer <token>", or open the viewer at /viewer/#token=<token>.',
    )
    parser.add_argument('-t', '--tenant', required=True, help='tenant id')
    parser.add_argument('-w', '--workspace', action='append', required=True, help='workspace id (repeat for several)')
    parser.add_argument('--minutes', type=int, default=60, help='lifetime in minutes, at most 1440 (default: 60)')
    parser.add_argument('--subject', default='dev', help='the token subject (default: %(default)s)')
    parser.add_argument(
        '--upload',
        action='store_true',
        help='also grant uploads into the workspaces (the upload claim; see docs/uploads.md)',
    )
    args = parser.parse_args(argv)

    from .auth import mint_token
    from .settings import load_api_settings

    try:
        token = mint_token(
            load_api_settings(),
            args.tenant,
            args.workspace,
            seconds=args.minutes * 60,
            subject=args.subject,
            upload=args.workspace if args.upload else (),
        )
    except (StructStoreError, ValueError) as exc:
        _fail(str(exc))
    print(token)
