"""Store settings from the environment (pydantic-settings).

| variable | default | meaning |
|---|---|---|
| ``STRUCTURE_STORE_BACKEND`` | ``convex`` | ``convex`` or ``memory`` |
| ``CONVEX_URL`` | (none) | deployment URL, required for ``convex`` |
| ``CONVEX_DEPLOY_KEY`` | (none) | deploy (admin) key, required for ``convex``; never logged or shown |
| ``STRUCTURE_STORE_TIMEOUT`` | ``30`` | seconds per HTTP request to Convex |
| ``STRUCTURE_STORE_RETRIES`` | ``6`` | attempts per Convex call on connection errors, 429 and 5xx |
| ``STRUCTURE_STORE_SETTINGS_FILE`` | ``~/.config/aiida-structstore/settings.env`` | dotenv file, see below |

The settings file holds the variables above in dotenv form; it is read if it exists and must not be readable by
group or others.

Variables set in the environment win over the settings file. The file is how AiiDA daemon workers get the Convex
settings without them entering the AiiDA profile configuration or the database.

This module imports no AiiDA module.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..exceptions import ConfigurationError

__all__ = ('BACKENDS', 'DEFAULT_SETTINGS_FILE', 'StoreSettings', 'load_settings')

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
            url = (self.convex_url or '').strip()
            if not url.startswith(('http://', 'https://')):
                raise ConfigurationError(f'CONVEX_URL must be an http:// or https:// URL, got {url!r}')
        return self


def _settings_file() -> Path | None:
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
    try:
        settings = StoreSettings(_env_file=_settings_file(), **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        # Name the variables, never echo input values: one of them may be the deploy key.
        problems = '; '.join(f'{".".join(str(p) for p in e["loc"])}: {e["msg"]}' for e in exc.errors())
        raise ConfigurationError(f'invalid structure store settings: {problems}') from None
    return settings.check()
