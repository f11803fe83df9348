"""``structstore-optimade-get``: optimade-python-tools' ``optimade-get`` with this API's bearer token.

``optimade-get`` has no option for a request header, and every route of this API needs ``Authorization: Bearer
<token>``. This command is ``optimade-get`` itself (the same options, the same client, the same output) with the
header added to each request: the token comes from ``STRUCTURE_API_TOKEN`` (or ``--token``, which other users of the
machine can see in the process list). Run it as ``structstore-optimade-get`` or ``python -m
aiida_structstore.api.optimade_get``. It needs optimade-python-tools' client (``pip install 'optimade[http-client]'``).

This module imports no AiiDA module.
"""

from __future__ import annotations

import os
import sys

__all__ = ('main',)

TOKEN_VARIABLE = 'STRUCTURE_API_TOKEN'  # noqa: S105 - the variable's name, not a token


def _command():
    import click

    try:
        from optimade.client import cli
    except ImportError as exc:  # the client's own dependencies (rich, ...) are an extra of optimade
        raise SystemExit(
            f"error: structstore-optimade-get needs optimade-python-tools' client ({exc.name} is missing): "
            "pip install 'optimade[http-client]'"
        ) from None

    def run(token: str | None, **options) -> None:
        token = (token or os.environ.get(TOKEN_VARIABLE) or '').strip()
        if not token:
            raise click.UsageError(f'no token: set {TOKEN_VARIABLE} (e.g. from structstore-dev-token) or pass --token')
        if any(character.isspace() for character in token) or token.lower().startswith('bearer'):
            raise click.UsageError(f'{TOKEN_VARIABLE} must be the token alone (no "Bearer", no spaces)')
        cli._get(**options, headers={'Authorization': f'Bearer {token}'})

    token_option = click.Option(
        ['--token'],
        default=None,
        help=f'the bearer token (default: ${TOKEN_VARIABLE}; the variable keeps it out of the process list)',
    )
    return click.Command(
        'structstore-optimade-get',
        params=[*cli.get.params, token_option],
        callback=run,
        help="optimade-get with the bearer token of the aiida-structstore API. BASE_URL: the API's "
        '/optimade (or /optimade/workspaces/<workspace>).',
    )


def main(argv: list[str] | None = None) -> None:
    _command().main(args=argv, prog_name='structstore-optimade-get')


if __name__ == '__main__':
    main(sys.argv[1:])
