"""Settings of the AiiDA side of uploads (``verdi data structstore uploads``), from the environment and the store's
settings file (``STRUCTURE_STORE_SETTINGS_FILE``), as the store's own settings.

| variable | default | meaning |
|---|---|---|
| ``STRUCTURE_STORE_UPLOADS_GROUP`` | ``structstore/uploads`` | group the imported structures are added to |
| ``STRUCTURE_STORE_UPLOADS_LEASE`` | ``120`` | seconds a claim lasts without renewal (renewed while importing) |
| ``STRUCTURE_STORE_UPLOADS_INTERVAL`` | ``2`` | seconds ``uploads watch`` waits between looks when none is pending |
| ``STRUCTURE_STORE_UPLOADS_WORKCHAIN`` | (none: off) | work chain submitted on each imported structure |
| ``STRUCTURE_STORE_UPLOADS_WORKCHAIN_CODE`` | (none) | code label (``pw@cluster``) for a work chain with a protocol |
| ``STRUCTURE_STORE_UPLOADS_WORKCHAIN_PROTOCOL`` | ``fast`` | protocol of ``get_builder_from_protocol`` |
| ``STRUCTURE_STORE_UPLOADS_WORKCHAIN_OVERRIDES`` | (none) | JSON: overrides of the protocol's inputs |

The work chain is an entry point of ``aiida.workflows`` (``structstore.pw_base_project``, ``quantumespresso.pw.base``)
or ``module:Class``. This module imports no AiiDA module.
"""

from __future__ import annotations

import json

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..core.exceptions import ConfigurationError
from ..store.settings import settings_file

__all__ = ('DEFAULT_GROUP', 'UploadSettings', 'read_upload_settings')

DEFAULT_GROUP = 'structstore/uploads'


def _alias(name: str) -> AliasChoices:
    return AliasChoices(f'STRUCTURE_STORE_UPLOADS_{name.upper()}', name)


class UploadSettings(BaseSettings):
    """What ``uploads import`` and ``uploads watch`` do when no option says otherwise."""

    model_config = SettingsConfigDict(case_sensitive=False, extra='ignore', populate_by_name=True)

    group: str = Field(DEFAULT_GROUP, min_length=1, validation_alias=_alias('group'))
    lease: float = Field(120.0, ge=1, le=86400, validation_alias=_alias('lease'))
    interval: float = Field(2.0, gt=0, le=3600, validation_alias=_alias('interval'))
    workchain: str | None = Field(None, validation_alias=_alias('workchain'))
    workchain_code: str | None = Field(None, validation_alias=_alias('workchain_code'))
    workchain_protocol: str = Field('fast', min_length=1, validation_alias=_alias('workchain_protocol'))
    workchain_overrides: dict | None = Field(None, validation_alias=_alias('workchain_overrides'))

    @field_validator('workchain', 'workchain_code', mode='before')
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator('workchain_overrides', mode='before')
    @classmethod
    def _json(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f'not valid JSON: {exc}') from None
        if value is not None and not isinstance(value, dict):
            raise ValueError('must be a JSON object')
        return value


def _variable(loc: tuple) -> str:
    """The environment variable of an error's location (pydantic gives the alias that was read, or the field)."""
    name = '.'.join(str(part) for part in loc).upper()
    return name if name.startswith('STRUCTURE_STORE_UPLOADS_') else f'STRUCTURE_STORE_UPLOADS_{name}'


def read_upload_settings(**overrides: object) -> UploadSettings:
    """The upload settings from the settings file and the environment (``overrides`` win)."""
    try:
        return UploadSettings(_env_file=settings_file(), **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = '; '.join(f'{_variable(e["loc"])}: {e["msg"]}' for e in exc.errors())
        raise ConfigurationError(f'invalid upload settings: {problems}') from None
