"""Store settings from the environment (pydantic-settings).

| variable | default | meaning |
|---|---|---|
| ``STRUCTURE_STORE_BACKEND`` | ``convex`` | ``convex`` or ``memory`` |
| ``CONVEX_URL`` | (none) | deployment URL, required for ``convex`` |
| ``CONVEX_DEPLOY_KEY`` | (none) | deploy (admin) key, required for ``convex``; never logged or shown |
| ``STRUCTURE_STORE_TIMEOUT`` | ``30`` | seconds per HTTP request to Convex |
| ``STRUCTURE_STORE_RETRIES`` | ``6`` | attempts per Convex call on connection errors, 429 and 5xx |
| ``STRUCTURE_STORE_ALLOW_HTTP`` | ``false`` | allow a plain ``http://`` URL to a host that is not this machine |
| ``STRUCTURE_STORE_WRITE_RATE`` | ``4194304`` | bytes/s the client writes at most (Convex's default; ``0``: unpaced) |
| ``STRUCTURE_STORE_FUNCTION_PREFIX`` | (empty) | standalone layout: empty; the component mounted as ``x``: ``x/`` |
| ``STRUCTURE_STORE_SETTINGS_FILE`` | ``~/.config/aiida-structstore/settings.env`` | dotenv file, see below |

The settings file holds the variables above in dotenv form; it is read if it exists and must not be readable by
group or others.

Variables set in the environment win over the settings file. The file is how AiiDA daemon workers get the Convex
settings without them entering the AiiDA profile configuration or the database.

Checks that keep the deploy key out of terminals, logs and the AiiDA database (:func:`check_deploy_key`,
:func:`check_url`): whitespace around the key (a trailing newline from a secrets file) is removed, and a key with
whitespace or control characters inside is refused; the URL must be ``http(s)://host[:port][/path]`` without user
credentials, query or fragment, and a plain ``http://`` URL must point to this machine unless
``STRUCTURE_STORE_ALLOW_HTTP`` is set (the deploy key would cross the network in clear text). No error message ever
quotes either value: a swapped URL and key would otherwise print the key.

This module imports no AiiDA module.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..core.exceptions import ConfigurationError
from ..core.limits import CONVEX

__all__ = (
    'BACKENDS',
    'DEFAULT_SETTINGS_FILE',
    'StoreSettings',
    'check_deploy_key',
    'check_function_prefix',
    'check_url',
    'load_settings',
    'read_settings',
    'settings_file',
)

BACKENDS = ('convex', 'memory')
DEFAULT_SETTINGS_FILE = Path('~/.config/aiida-structstore/settings.env')
SETTINGS_FILE_VARIABLE = 'STRUCTURE_STORE_SETTINGS_FILE'


class StoreSettings(BaseSettings):
    """The settings of the structure store. ``repr`` and errors never show the deploy key."""

    model_config = SettingsConfigDict(case_sensitive=False, extra='ignore', populate_by_name=True)

    backend: str = Field('convex', validation_alias=AliasChoices('STRUCTURE_STORE_BACKEND', 'backend'))
    convex_url: str | None = Field(None, validation_alias=AliasChoices('CONVEX_URL', 'convex_url'))
    convex_deploy_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices('CONVEX_DEPLOY_KEY', 'convex_deploy_key'), repr=False
    )
    timeout: float = Field(30.0, gt=0, validation_alias=AliasChoices('STRUCTURE_STORE_TIMEOUT', 'timeout'))
    retries: int = Field(6, ge=1, le=50, validation_alias=AliasChoices('STRUCTURE_STORE_RETRIES', 'retries'))
    allow_http: bool = Field(False, validation_alias=AliasChoices('STRUCTURE_STORE_ALLOW_HTTP', 'allow_http'))
    write_rate: float = Field(
        CONVEX['writeBytesPerSecond'], ge=0, validation_alias=AliasChoices('STRUCTURE_STORE_WRITE_RATE', 'write_rate')
    )
    #: Where the functions are deployed: ``''`` (standalone: ``structures:putBatch``) or ``<name>/`` (the app-side
    #: functions of the component mounted as ``<name>``: ``<name>/structures:putBatch``).
    function_prefix: str = Field(
        '', validation_alias=AliasChoices('STRUCTURE_STORE_FUNCTION_PREFIX', 'function_prefix')
    )
    #: Whether execution records carry the computer's host name (off: host names stay out of the application).
    execution_hostnames: bool = Field(
        False, validation_alias=AliasChoices('STRUCTURE_STORE_EXECUTION_HOSTNAMES', 'execution_hostnames')
    )

    def check(self) -> StoreSettings:
        """Raise :class:`ConfigurationError` if the settings cannot open a store; return ``self`` otherwise."""
        backend = (self.backend or '').strip().lower()
        if backend not in BACKENDS:
            valid = ', '.join(BACKENDS)
            raise ConfigurationError(
                f'STRUCTURE_STORE_BACKEND={self.backend!r} is not a known backend; valid backends: {valid}'
            )
        if backend == 'convex':
            missing = [
                name
                for name, value in (('CONVEX_URL', self.convex_url), ('CONVEX_DEPLOY_KEY', self.convex_deploy_key))
                if value is None or not (value.get_secret_value() if isinstance(value, SecretStr) else value).strip()
            ]
            if missing:
                raise ConfigurationError(
                    f'STRUCTURE_STORE_BACKEND=convex requires {" and ".join(missing)} to be set '
                    f'(in the environment or in ${SETTINGS_FILE_VARIABLE}); '
                    'set STRUCTURE_STORE_BACKEND=memory for an in-memory store'
                )
            check_url(self.convex_url or '', allow_http=self.allow_http)
            check_deploy_key(self.convex_deploy_key)  # type: ignore[arg-type]
            check_function_prefix(self.function_prefix)
        return self


#: A function prefix: folders of the app's convex/ folder, each ending in ``/`` (Convex module paths).
FUNCTION_PREFIX_PATTERN = re.compile(r'(?:[A-Za-z0-9_]+/){1,8}')


def check_function_prefix(prefix: str) -> str:
    """The function prefix (``''`` or ``<name>/``, see :class:`StoreSettings`); refuse one that is no folder path of
    a Convex app (the message shows it: a prefix is no secret)."""
    value = prefix.strip()
    if value and not FUNCTION_PREFIX_PATTERN.fullmatch(value):
        shown = value if len(value) <= 80 else f'{value[:80]}...'
        raise ConfigurationError(
            f'STRUCTURE_STORE_FUNCTION_PREFIX={shown!r} is not a function prefix: leave it empty for the standalone '
            'layout, or give the folder of the app-side functions of the mounted component ending in "/" '
            '(letters, digits and _, e.g. "structstore/"); see docs/convex-projection.md'
        )
    return value


def check_deploy_key(key: SecretStr | str) -> SecretStr:
    """The deploy key without surrounding whitespace; refuse one that cannot be sent in an HTTP header.

    A key read from a file or a secret store often ends in a newline: sent as is, the HTTP library refuses the header
    and quotes it in its error. The message never contains the key.
    """
    value = (key.get_secret_value() if isinstance(key, SecretStr) else str(key)).strip()
    if not value:
        raise ConfigurationError('CONVEX_DEPLOY_KEY is empty')
    bad = next((i for i, c in enumerate(value) if not ('!' <= c <= '~')), None)
    if bad is not None:
        raise ConfigurationError(
            f'CONVEX_DEPLOY_KEY has a space, control or non-ASCII character at position {bad + 1} of {len(value)}; '
            'a deploy key is printable ASCII without spaces (copy it again from the Convex dashboard)'
        )
    if value.startswith(('http://', 'https://')):
        raise ConfigurationError('CONVEX_DEPLOY_KEY looks like a URL: are CONVEX_URL and CONVEX_DEPLOY_KEY swapped?')
    return SecretStr(value)


def _is_loopback(host: str) -> bool:
    if host == 'localhost' or host.endswith('.localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, allow_http: bool = False) -> str:
    """The deployment URL without surrounding whitespace and trailing ``/``; refuse anything else than
    ``http(s)://host[:port][/path]``. The message never quotes the value (it might be the deploy key)."""
    value = url.strip()
    if not value.startswith(('http://', 'https://')):
        hint = ' (it looks like a deploy key: are CONVEX_URL and CONVEX_DEPLOY_KEY swapped?)' if '|' in value else ''
        raise ConfigurationError(f'CONVEX_URL must start with https:// or http://{hint}')
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigurationError('CONVEX_URL is not a valid URL (bad host or port)') from None
    if parts.username is not None or parts.password is not None or '@' in parts.netloc:
        raise ConfigurationError(
            'CONVEX_URL must not contain a user name or password; the deploy key goes in CONVEX_DEPLOY_KEY'
        )
    if not parts.hostname or any(not ('!' <= c <= '~') for c in value):
        raise ConfigurationError('CONVEX_URL is not a valid URL (no host, or spaces or control characters)')
    if parts.query or parts.fragment:
        raise ConfigurationError('CONVEX_URL must not have a query (?...) or fragment (#...)')
    if parts.scheme == 'http' and not allow_http and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            'CONVEX_URL is a plain http:// URL to another machine: the deploy key would cross the network '
            'unencrypted. Use https://, or set STRUCTURE_STORE_ALLOW_HTTP=true on a trusted network'
        )
    return value.rstrip('/')


def settings_file() -> Path | None:
    configured = os.environ.get(SETTINGS_FILE_VARIABLE)
    path = Path(configured or DEFAULT_SETTINGS_FILE).expanduser()
    if not path.exists():
        if configured:
            raise ConfigurationError(f'{SETTINGS_FILE_VARIABLE} points to {path}, which does not exist')
        return None
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f'settings file {path} is accessible by group or others (mode {stat.filemode(mode)}); '
            f'it may hold the deploy key: run `chmod 600 {path}`'
        )
    return path


def load_settings(**overrides: object) -> StoreSettings:
    """Read the settings from the settings file and the environment (and ``overrides``), and check them."""
    return read_settings(**overrides).check()


def read_settings(**overrides: object) -> StoreSettings:
    """Read the settings as :func:`load_settings` does, without checking that they can open a store (for the
    settings that do not concern opening it, such as ``execution_hostnames``)."""
    try:
        settings = StoreSettings(_env_file=settings_file(), **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        # Name the variables, never echo input values: one of them may be the deploy key.
        problems = '; '.join(f'{".".join(str(p) for p in e["loc"])}: {e["msg"]}' for e in exc.errors())
        raise ConfigurationError(f'invalid structure store settings: {problems}') from None
    return settings
