"""Bearer-token authentication of the read API: who is calling, and which tenant and workspaces they may read.

Tokens are JWTs verified with PyJWT: HS256 with a shared secret (``STRUCTURE_API_JWT_SECRET``), or RS256/ES256 with
the public keys of the application's JWKS URL (``STRUCTURE_API_JWKS_URL``, fetched and cached by
:class:`jwt.PyJWKClient`). Signature, ``exp``, ``iss`` and ``aud`` are always checked; the tenant and the workspaces
come from the configured claims. The token's header decides which key verifies it: an HS256 token only ever meets
the secret, an RS256/ES256 token only ever the JWKS keys (no algorithm confusion), and only the key its ``kid``
selects when that key is of the algorithm's type (RSA for RS256, EC P-256 for ES256) and declares no other ``alg``.

Failures are :class:`AuthenticationError` with a message that names the problem, never the token or the secret.

This module imports no AiiDA module.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from ..core.exceptions import ConfigurationError, InvalidInputError, StructStoreError
from ..core.values import validate_id
from .settings import ApiSettings

__all__ = ('ASYMMETRIC_ALGORITHMS', 'AuthenticationError', 'Principal', 'TokenVerifier', 'mint_token')

ASYMMETRIC_ALGORITHMS = ('RS256', 'ES256')
#: The JWK key type (``kty``) each asymmetric algorithm needs.
KEY_TYPES = {'RS256': 'RSA', 'ES256': 'EC'}
#: The longest lifetime :func:`mint_token` gives a development token.
MAX_DEV_TOKEN_SECONDS = 24 * 3600


class AuthenticationError(StructStoreError):
    """No token, or a token that does not verify or lacks the claims the API needs (HTTP 401)."""


@dataclass(frozen=True)
class Principal:
    """A verified caller: the tenant and the workspaces the token grants (to read, and to upload into), and the
    token's subject."""

    tenant_id: str
    workspaces: tuple[str, ...]
    subject: str | None = None
    upload_workspaces: tuple[str, ...] = ()

    def may_read(self, workspace_id: str) -> bool:
        return workspace_id in self.workspaces

    def may_upload(self, workspace_id: str) -> bool:
        """Whether the token grants uploads into ``workspace_id``: it must name it in its upload claim (and may read
        it)."""
        return workspace_id in self.upload_workspaces and self.may_read(workspace_id)


class TokenVerifier:
    """Verifies bearer tokens against the configured secret or JWKS URL (see the module docstring)."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings.check()
        self._secret = settings.jwt_secret
        self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300) if settings.jwks_url else None

    def __repr__(self) -> str:
        return f'TokenVerifier(issuer={self.settings.issuer!r}, jwks_url={self.settings.jwks_url!r})'

    def _key(self, token: str) -> tuple[Any, list[str]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthenticationError('the bearer token is not a JWT') from None
        algorithm = header.get('alg')
        if algorithm == 'HS256' and self._secret is not None:
            return self._secret.get_secret_value(), ['HS256']
        if algorithm in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            try:
                jwk = self._jwks.get_signing_key_from_jwt(token)
            except jwt.PyJWKClientConnectionError:
                raise AuthenticationError('the signing keys (JWKS) could not be fetched; try again later') from None
            except jwt.PyJWKClientError as exc:
                raise AuthenticationError(f'no JWKS key verifies this token: {exc}') from None
            except jwt.PyJWTError:
                raise AuthenticationError('no JWKS key verifies this token') from None
            if jwk.key_type != KEY_TYPES[algorithm] or jwk.algorithm_name != algorithm:
                # PyJWT would hand an RSA key to the EC verifier (or the reverse) and fail with a TypeError.
                raise AuthenticationError(
                    f'the token algorithm {algorithm} does not fit the JWKS key {jwk.key_id!r} '
                    f'(key type {jwk.key_type}, algorithm {jwk.algorithm_name})'
                )
            return jwk.key, [algorithm]
        accepted = (['HS256'] if self._secret is not None else []) + (
            list(ASYMMETRIC_ALGORITHMS) if self._jwks is not None else []
        )
        raise AuthenticationError(f'token algorithm {algorithm!r} is not accepted (accepted: {", ".join(accepted)})')

    def verify(self, token: str) -> Principal:
        """Return the caller that ``token`` proves, or raise :class:`AuthenticationError`."""
        if not token:
            raise AuthenticationError('no bearer token')
        key, algorithms = self._key(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway,
                options={'require': ['exp', 'iss', 'aud']},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError('the token has expired') from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError(
                f'the token is not for this API (audience must be {self.settings.audience!r})'
            ) from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError(f'the token was not issued by {self.settings.issuer!r}') from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f'the token has no {exc.claim!r} claim') from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError('the token signature does not verify') from None
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f'the token is invalid: {exc}') from None
        except (jwt.PyJWTError, TypeError, ValueError):
            # A key PyJWT cannot use for this token: never a 500.
            raise AuthenticationError('the token could not be verified with the selected key') from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        tenant_claim, workspaces_claim = self.settings.tenant_claim, self.settings.workspaces_claim
        tenant = claims.get(tenant_claim)
        if not isinstance(tenant, str):
            raise AuthenticationError(f'the token has no tenant claim {tenant_claim!r}')
        workspaces = _id_list(claims.get(workspaces_claim))
        if not workspaces:
            raise AuthenticationError(f'the token has no workspaces claim {workspaces_claim!r} (a list of ids)')
        upload_claim = self.settings.upload_claim
        uploads = _id_list(claims.get(upload_claim)) if upload_claim in claims else []
        if uploads is None:
            raise AuthenticationError(f'the upload claim {upload_claim!r} must be a list of workspace ids')
        try:
            validate_id(tenant, f'tenant claim {tenant_claim!r}')
            for workspace in workspaces:
                validate_id(workspace, f'workspaces claim {workspaces_claim!r}')
            for workspace in uploads:
                validate_id(workspace, f'upload claim {upload_claim!r}')
        except ValueError as exc:
            raise AuthenticationError(str(exc)) from None
        subject = claims.get('sub')
        return Principal(
            tenant,
            tuple(dict.fromkeys(workspaces)),
            subject if isinstance(subject, str) else None,
            tuple(w for w in dict.fromkeys(uploads) if w in workspaces),
        )


def _id_list(value: object) -> list[str] | None:
    """A claim's list of ids: a JSON list of strings, or one string of ids separated by spaces or commas."""
    if isinstance(value, str):
        value = [w for w in re.split(r'[\s,]+', value) if w]
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        return None
    return value


def mint_token(
    settings: ApiSettings,
    tenant_id: str,
    workspaces: Sequence[str],
    *,
    seconds: int = 3600,
    subject: str = 'dev',
    upload: Sequence[str] = (),
) -> str:
    """Return a short-lived HS256 development token for ``tenant_id`` and ``workspaces``, signed with the secret;
    ``upload`` lists the workspaces (of ``workspaces``) it also grants uploads into."""
    if settings.jwt_secret is None:
        raise ConfigurationError('minting a development token needs STRUCTURE_API_JWT_SECRET (HS256)')
    settings.check()
    validate_id(tenant_id, 'tenant')
    if not workspaces:
        raise InvalidInputError('a development token needs at least one workspace')
    for workspace in workspaces:
        validate_id(workspace, 'workspace')
    for workspace in upload:
        if workspace not in workspaces:
            raise InvalidInputError(f"upload workspace {workspace!r} is not one of the token's workspaces")
    if not 0 < seconds <= MAX_DEV_TOKEN_SECONDS:
        raise InvalidInputError(f'token lifetime must be 1 to {MAX_DEV_TOKEN_SECONDS} seconds, got {seconds}')
    now = dt.datetime.now(dt.timezone.utc)
    claims = {
        'iss': settings.issuer,
        'aud': settings.audience,
        'sub': subject,
        'iat': now,
        'exp': now + dt.timedelta(seconds=seconds),
        'jti': secrets.token_hex(8),
        settings.tenant_claim: tenant_id,
        settings.workspaces_claim: list(workspaces),
    }
    if upload:
        claims[settings.upload_claim] = list(upload)
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm='HS256')
