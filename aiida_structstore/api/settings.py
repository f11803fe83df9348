"""Settings of the read API (pydantic-settings), from the environment and the store's settings file.

| variable | default | meaning |
|---|---|---|
| ``STRUCTURE_API_JWT_SECRET`` | (none) | shared secret for HS256 tokens (at least 32 bytes); never logged or shown |
| ``STRUCTURE_API_JWKS_URL`` | (none) | the application's JWKS URL, for RS256/ES256 tokens |
| ``STRUCTURE_API_JWT_ISSUER`` | ``aiida-structstore`` | required ``iss`` of every token |
| ``STRUCTURE_API_JWT_AUDIENCE`` | ``aiida-structstore-api`` | required ``aud`` of every token |
| ``STRUCTURE_API_TENANT_CLAIM`` | ``tenant`` | the claim holding the caller's tenant id |
| ``STRUCTURE_API_WORKSPACES_CLAIM`` | ``workspaces`` | the claim listing the workspaces the caller may read |
| ``STRUCTURE_API_UPLOAD_CLAIM`` | ``upload_workspaces`` | the claim listing the workspaces the caller may upload into |
| ``STRUCTURE_API_MAX_UPLOAD_BYTES`` | 256 MiB | the largest upload accepted (at most the store's raw input limit) |
| ``STRUCTURE_API_LEEWAY`` | ``30`` | seconds of clock skew accepted on ``exp``/``nbf``/``iat`` |
| ``STRUCTURE_API_CORS_ORIGINS`` | (none) | origins allowed by CORS, separated by commas; CORS is off when empty |
| ``STRUCTURE_API_PUBLIC_URL`` | (none) | the URL clients reach the API at: the base of absolute links (see below) |

``STRUCTURE_API_PUBLIC_URL`` is ``http(s)://host[:port][/path]`` (``structstore-api`` defaults it from ``--host`` and
``--port``). Absolute links are never built from the request's ``Host`` header: without the setting the
OPTIMADE API builds them from the request only when its host is a loopback address (``localhost``, ``127.0.0.0/8``,
``::1``) or FastAPI's ``testserver``, and answers any other host with 421 Misdirected Request naming the variable.

The workspaces claim is a list of ids, or one string of ids separated by spaces or commas; so is the upload claim,
which grants uploads only into workspaces the workspaces claim grants too (docs/uploads.md). At least one of the
secret and the JWKS URL must be set: there is no anonymous access. The store itself is selected by the store's
variables (``STRUCTURE_STORE_BACKEND``, ``CONVEX_URL``, ``CONVEX_DEPLOY_KEY``, see
:mod:`aiida_structstore.store.settings`); both read the settings file ``STRUCTURE_STORE_SETTINGS_FILE`` if it exists.

This module imports no AiiDA module.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..core.exceptions import ConfigurationError
from ..core.uploads import MAX_UPLOAD_BYTES
from ..store.settings import settings_file

__all__ = ('MIN_SECRET_BYTES', 'ApiSettings', 'load_api_settings')

#: HS256 needs a key at least as long as its output (RFC 7518, section 3.2).
MIN_SECRET_BYTES = 32
CLAIM_PATTERN = re.compile(r'[A-Za-z_][A-Za-z0-9_:/.-]{0,127}')


def _alias(name: str, field: str) -> AliasChoices:
    return AliasChoices(f'STRUCTURE_API_{name}', field)


def _split(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(',') if item.strip()]
    return value


class ApiSettings(BaseSettings):
    """The settings of the read API. ``repr`` and errors never show the JWT secret."""

    model_config = SettingsConfigDict(case_sensitive=False, extra='ignore', populate_by_name=True)

    jwt_secret: SecretStr | None = Field(None, validation_alias=_alias('JWT_SECRET', 'jwt_secret'), repr=False)
    jwks_url: str | None = Field(None, validation_alias=_alias('JWKS_URL', 'jwks_url'))
    issuer: str = Field('aiida-structstore', min_length=1, validation_alias=_alias('JWT_ISSUER', 'issuer'))
    audience: str = Field('aiida-structstore-api', min_length=1, validation_alias=_alias('JWT_AUDIENCE', 'audience'))
    tenant_claim: str = Field('tenant', validation_alias=_alias('TENANT_CLAIM', 'tenant_claim'))
    workspaces_claim: str = Field('workspaces', validation_alias=_alias('WORKSPACES_CLAIM', 'workspaces_claim'))
    upload_claim: str = Field('upload_workspaces', validation_alias=_alias('UPLOAD_CLAIM', 'upload_claim'))
    max_upload_bytes: int = Field(
        MAX_UPLOAD_BYTES, ge=1, le=MAX_UPLOAD_BYTES, validation_alias=_alias('MAX_UPLOAD_BYTES', 'max_upload_bytes')
    )
    leeway: float = Field(30.0, ge=0, le=600, validation_alias=_alias('LEEWAY', 'leeway'))
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_alias('CORS_ORIGINS', 'cors_origins')
    )
    public_url: str | None = Field(None, validation_alias=_alias('PUBLIC_URL', 'public_url'))

    _split_origins = field_validator('cors_origins', mode='before')(_split)

    @field_validator('tenant_claim', 'workspaces_claim', 'upload_claim')
    @classmethod
    def _valid_claim(cls, value: str) -> str:
        if CLAIM_PATTERN.fullmatch(value) is None:
            raise ValueError(f'claim name {value!r} must match {CLAIM_PATTERN.pattern}')
        return value

    @field_validator('jwks_url')
    @classmethod
    def _valid_jwks_url(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(('https://', 'http://')):
            raise ValueError('must be an http:// or https:// URL')
        return value

    @field_validator('public_url')
    @classmethod
    def _valid_public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError('must be an http:// or https:// URL such as https://structures.example.org') from None
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise ValueError('must be an http:// or https:// URL such as https://structures.example.org')
        if parts.query or parts.fragment or parts.username is not None or parts.password is not None:
            raise ValueError('must be a plain base URL: no user, query or fragment')
        return value.rstrip('/')

    def check(self) -> ApiSettings:
        """Raise :class:`ConfigurationError` unless tokens can be verified; return ``self``."""
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret is not None else ''
        if not secret and not self.jwks_url:
            raise ConfigurationError(
                'the read API needs STRUCTURE_API_JWT_SECRET (HS256) or STRUCTURE_API_JWKS_URL (RS256/ES256) '
                'to verify bearer tokens; there is no anonymous access'
            )
        if secret and len(secret.encode('utf-8')) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f'STRUCTURE_API_JWT_SECRET is too short for HS256: use at least {MIN_SECRET_BYTES} bytes '
                '(e.g. `python -c "import secrets; print(secrets.token_urlsafe(48))"`)'
            )
        return self


def load_api_settings(**overrides: object) -> ApiSettings:
    """Read the API settings from the settings file and the environment (and ``overrides``), and check them."""
    try:
        settings = ApiSettings(_env_file=settings_file(), **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        # Name the variables, never echo input values: one of them may be the secret.
        problems = '; '.join(f'{".".join(str(p) for p in e["loc"])}: {e["msg"]}' for e in exc.errors())
        raise ConfigurationError(f'invalid read API settings: {problems}') from None
    return settings.check()
