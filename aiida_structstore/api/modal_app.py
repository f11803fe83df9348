"""The read API as a Modal app: ``modal deploy -m aiida_structstore.api.modal_app`` (see ``docs/deploy.md``).

One web function, :data:`api`, serves :func:`~aiida_structstore.api.app.create_app` with ``@modal.asgi_app()``. It
is stateless: every setting comes from the environment, which the Modal secret :data:`SECRET_NAME` fills
(``CONVEX_URL``, ``CONVEX_DEPLOY_KEY``, ``STRUCTURE_API_JWT_SECRET`` or ``STRUCTURE_API_JWKS_URL``, ...); the store
opens on the first request, and nothing is kept between containers (no volume, no local database).

The image is built from this source checkout: :func:`build_image` copies the files a wheel is built from
(``pyproject.toml``, ``README.md``, ``convex/limits.json``, ``aiida_structstore/`` with the built viewer bundle)
into the image and installs the package with its ``api`` extra there (the package is not on PyPI yet). The
function runs the installed package (``include_source=False``): what runs is what the image installed.

Deploy-time choices come from the environment of ``modal deploy``, never from the secret:

| variable | default | meaning |
|---|---|---|
| ``STRUCTSTORE_MODAL_APP`` | ``aiida-structstore`` | the Modal app's name |
| ``STRUCTSTORE_MODAL_SECRET`` | ``aiida-structstore`` | the Modal secret holding the settings |
| ``STRUCTSTORE_MODAL_DOMAINS`` | (none) | custom domains of the web endpoint, comma-separated |

``python -m aiida_structstore.api.modal_app check FILE`` checks, offline, the dotenv file the secret is created from
(``modal secret create --from-dotenv FILE``) as a container will read it, and the image definition (:func:`main`).

Importing this module needs ``modal`` (the ``modal`` extra) but no Modal account, credentials or network; nothing
else in the package imports it, so ``create_app`` and the API's cold start never load ``modal``. Inside a Modal
container the module is imported again from the installed package: there the image is not built (Modal only
checks the checkout when deploying from it).

This module imports no AiiDA module.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

try:
    import modal
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("the Modal app needs the 'modal' extra: pip install 'aiida-structstore[modal]'") from exc

from pydantic import ValidationError

from ..core.exceptions import ConfigurationError

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = (
    'APP_NAME',
    'DOMAINS',
    'PYTHON_VERSION',
    'REQUIRED_KEYS',
    'SECRET_NAME',
    'SOURCE_DIR',
    'api',
    'app',
    'asgi_app',
    'build_image',
    'check_secret',
    'deploy_options',
    'main',
    'package_files',
    'source_root',
)

#: The Python of the image (the version the tests run on).
PYTHON_VERSION = '3.11'
#: Where the image keeps the checkout's package files it installs from.
SOURCE_DIR = '/opt/aiida-structstore'
#: The keys the Modal secret must hold (Modal refuses the deploy otherwise); it also needs
#: ``STRUCTURE_API_JWT_SECRET`` or ``STRUCTURE_API_JWKS_URL``, which the app checks when a container starts.
REQUIRED_KEYS = ('CONVEX_URL', 'CONVEX_DEPLOY_KEY')
#: Requests one container serves at once (the routes run in the thread pool; Modal starts more containers beyond).
MAX_INPUTS = 32
#: The viewer bundle, built by ``npm run build:viewer`` and not committed: the image must have it.
VIEWER_BUNDLE = Path('aiida_structstore', 'api', 'static', 'viewer.js')
#: A DNS name, e.g. ``structures.example.org`` (no scheme, port or path).
DOMAIN_PATTERN = re.compile(r'(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}')
APP_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,63}')


def deploy_options(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The deploy-time choices (app name, secret name, custom domains) from ``environ`` (default: the environment);
    :class:`ConfigurationError` naming the variable for a value that cannot be right."""
    environ = os.environ if environ is None else environ
    options: dict[str, object] = {}
    for key, variable in (('app', 'STRUCTSTORE_MODAL_APP'), ('secret', 'STRUCTSTORE_MODAL_SECRET')):
        value = environ.get(variable, '').strip() or 'aiida-structstore'
        if APP_PATTERN.fullmatch(value) is None:
            raise ConfigurationError(
                f'{variable} must be a Modal name of letters, digits, ".", "_" and "-" (at most 64 characters)'
            )
        options[key] = value
    domains = [item.strip().lower() for item in environ.get('STRUCTSTORE_MODAL_DOMAINS', '').split(',')]
    domains = [item for item in domains if item]
    for domain in domains:
        if DOMAIN_PATTERN.fullmatch(domain) is None:
            raise ConfigurationError(
                f'STRUCTSTORE_MODAL_DOMAINS: {domain!r} is not a domain name such as structures.example.org '
                '(no scheme, port or path)'
            )
    options['domains'] = domains
    return options


def source_root() -> Path:
    """The source checkout this module is in (the folder holding ``pyproject.toml``)."""
    return Path(__file__).resolve().parent.parent.parent


def package_files(root: Path) -> Callable[[Path], bool]:
    """The ``ignore`` predicate of the checkout's copy: ``True`` (left out) for everything but the files a wheel is
    built from (``pyproject.toml``, ``README.md``, ``convex/limits.json`` and ``aiida_structstore/``, without
    ``__pycache__``). Modal passes paths relative to ``root``."""
    kept_files = {Path('pyproject.toml'), Path('README.md'), Path('convex', 'limits.json')}
    kept_dirs = {Path('convex')}

    def ignore(path: Path) -> bool:
        path = Path(path)
        if path.is_absolute():
            path = path.relative_to(root)
        if path in kept_files or path in kept_dirs:
            return False
        parts = path.parts
        if not parts or parts[0] != 'aiida_structstore':
            return True
        return '__pycache__' in parts or path.suffix in ('.pyc', '.pyo')

    return ignore


def build_image(root: Path) -> modal.Image:
    """The image: Debian slim with Python :data:`PYTHON_VERSION`, the dependencies of the package and its ``api``
    extra (from ``pyproject.toml``), the checkout's package files under :data:`SOURCE_DIR`, and
    ``pip install '<SOURCE_DIR>[api]'``. :class:`ConfigurationError` when ``root`` is not a
    checkout of this package or the viewer bundle is not built."""
    pyproject = root / 'pyproject.toml'
    if not pyproject.is_file() or "name = 'aiida-structstore'" not in pyproject.read_text(encoding='utf-8'):
        raise ConfigurationError(
            f'deploy the Modal app from a source checkout of aiida-structstore: {pyproject} is missing or is not '
            "this package's (the image installs the package from the checkout)"
        )
    for needed in (Path('README.md'), Path('convex', 'limits.json')):
        if not (root / needed).is_file():
            raise ConfigurationError(f'the checkout has no {needed}: the image cannot build the package without it')
    if not (root / VIEWER_BUNDLE).is_file():
        raise ConfigurationError(
            f'the viewer bundle {VIEWER_BUNDLE} is not built: run `npm ci && npm run build:viewer` before deploying'
        )
    return (
        modal.Image.debian_slim(python_version=PYTHON_VERSION)
        # The dependencies first, in a layer Modal keeps until pyproject.toml changes: a deploy after a code change
        # rebuilds only the two layers below, which install nothing else.
        .pip_install_from_pyproject(str(pyproject), optional_dependencies=['api'])
        .add_local_dir(root, SOURCE_DIR, copy=True, ignore=package_files(root))
        .pip_install(f'{SOURCE_DIR}[api]')
    )


def asgi_app() -> FastAPI:
    """The ASGI app the Modal function serves: :func:`create_app` with every setting from the environment."""
    from .app import create_app

    return create_app()


try:
    _options = deploy_options()
    # Deploying (or importing locally): the image is defined from the checkout, and checked. In a Modal container
    # the image was built already and the checkout is not there: the definition is only a placeholder.
    image = build_image(source_root()) if modal.is_local() else modal.Image.debian_slim(python_version=PYTHON_VERSION)
except ConfigurationError as exc:
    if __name__ == '__main__':
        print(f'error: {exc}', file=sys.stderr)
        raise SystemExit(2) from None
    raise

APP_NAME: str = _options['app']  # type: ignore[assignment]
SECRET_NAME: str = _options['secret']  # type: ignore[assignment]
DOMAINS: list[str] = _options['domains']  # type: ignore[assignment]

app = modal.App(APP_NAME, image=image)


@app.function(
    secrets=[modal.Secret.from_name(SECRET_NAME, required_keys=list(REQUIRED_KEYS))],
    # The deploy-time choices go with the function, so that the container defines the same app and endpoint.
    env={
        'STRUCTSTORE_MODAL_APP': APP_NAME,
        'STRUCTSTORE_MODAL_SECRET': SECRET_NAME,
        'STRUCTSTORE_MODAL_DOMAINS': ','.join(DOMAINS),
    },
    include_source=False,
)
@modal.concurrent(max_inputs=MAX_INPUTS)
@modal.asgi_app(custom_domains=DOMAINS or None)
def api() -> FastAPI:
    """The read API, the viewer and OPTIMADE, served at ``https://<workspace>--<app>-api.modal.run``."""
    return asgi_app()


def _problems(exc: ValidationError) -> str:
    # Name the variables, never echo input values: one of them may be a secret.
    return '; '.join(f'{".".join(str(p) for p in e["loc"])}: {e["msg"]}' for e in exc.errors())


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """The process environment replaced by ``values`` (as a container sees the secret), restored afterwards."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_secret(values: Mapping[str, str | None]) -> list[str]:
    """Check the values meant for the Modal secret as a container reads them (from its environment only: no settings
    file, nothing of this machine's environment) without any network; return notes on what is left at its default.
    :class:`ConfigurationError` names the first problem, never a value. It replaces ``os.environ`` while it reads the
    settings: a command-line check, not for a process that serves requests."""
    from ..store.settings import StoreSettings
    from .settings import ApiSettings

    env = {name: value for name, value in values.items() if value is not None}
    missing = [name for name in REQUIRED_KEYS if not env.get(name, '').strip()]
    if missing:
        raise ConfigurationError(f'the Modal secret needs {" and ".join(missing)} (modal deploy refuses it without)')
    if 'STRUCTURE_STORE_SETTINGS_FILE' in env:
        raise ConfigurationError(
            'STRUCTURE_STORE_SETTINGS_FILE has no place in the Modal secret: a container has no settings file, '
            'put the variables themselves into the secret'
        )
    with _environment(env):
        try:
            store, api_settings = StoreSettings(_env_file=None), ApiSettings(_env_file=None)  # type: ignore[call-arg]
        except ValidationError as exc:
            raise ConfigurationError(f'invalid settings for the Modal secret: {_problems(exc)}') from None
    if store.backend.strip().lower() != 'convex':
        raise ConfigurationError(
            'STRUCTURE_STORE_BACKEND must be convex (or unset) on Modal: each container would otherwise serve an '
            'empty in-memory store of its own'
        )
    store.check()
    if _is_loopback(urlsplit(store.convex_url or '').hostname or ''):
        raise ConfigurationError(
            'CONVEX_URL points to this machine (a loopback address): a Modal container cannot reach it; use the '
            'deployment URL, e.g. https://happy-otter-123.convex.cloud'
        )
    api_settings.check()
    notes = []
    if api_settings.public_url is None:
        notes.append(
            'STRUCTURE_API_PUBLIC_URL is not set: OPTIMADE answers 421 until it is the URL clients use '
            '(the one `modal deploy` prints, or your custom domain)'
        )
    if not api_settings.cors_origins:
        notes.append(
            'STRUCTURE_API_CORS_ORIGINS is not set: only pages served by the API itself (the viewer) can call it '
            'from a browser'
        )
    if api_settings.jwks_url is None:
        notes.append('no STRUCTURE_API_JWKS_URL: only HS256 tokens signed with STRUCTURE_API_JWT_SECRET verify')
    return notes


def _is_loopback(host: str) -> bool:
    if host == 'localhost' or host.endswith('.localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    """``python -m aiida_structstore.api.modal_app check ENV_FILE``: check a dotenv file meant for
    ``modal secret create --from-dotenv`` and the deploy-time choices, offline; print what ``modal deploy`` would
    deploy (variable names, never values)."""
    from dotenv import dotenv_values

    parser = argparse.ArgumentParser(
        prog='python -m aiida_structstore.api.modal_app',
        description='Check, without a Modal account or network, what `modal deploy -m aiida_structstore.api.modal_app`'
        ' deploys, and a dotenv file meant for `modal secret create NAME --from-dotenv FILE` (docs/deploy.md).',
    )
    commands = parser.add_subparsers(dest='command', required=True)
    check = commands.add_parser('check', help='check the secret file and the image definition')
    check.add_argument('env_file', type=Path, help='the dotenv file the Modal secret is created from')
    args = parser.parse_args(argv)

    path: Path = args.env_file
    try:
        if not path.is_file():
            raise ConfigurationError(f'{path} does not exist or is not a file')
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f'{path} is accessible by group or others (mode {stat.filemode(mode)}); it holds the deploy key: '
                f'run `chmod 600 {path}`'
            )
        notes = check_secret(dotenv_values(path))
    except ConfigurationError as exc:
        print(f'error: {exc}', file=sys.stderr)
        raise SystemExit(2) from None
    names = sorted(name for name, value in dotenv_values(path).items() if value is not None)
    print(f'app {APP_NAME}: function api, secret {SECRET_NAME} ({", ".join(names)})')
    print(f'web endpoint: https://<workspace>--{APP_NAME}-api.modal.run' + ''.join(f', https://{d}' for d in DOMAINS))
    print(f"image: python {PYTHON_VERSION}, pip install '{SOURCE_DIR}[api]' from {source_root()}")
    for note in notes:
        print(f'note: {note}')
    print('ok')


if __name__ == '__main__':
    main()
