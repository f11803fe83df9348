"""What every route of the read API depends on: the verified caller, the workspace in scope, and the store.

A :class:`ReadContext` is created once per app (or per router an application mounts). It holds the token verifier
and one store, opened on first use with :func:`~aiida_structstore.store.open_store` (so ``STRUCTURE_STORE_BACKEND``
selects the backend as everywhere else) and closed with the context. Nothing else is kept between requests: the API
is stateless and can run on a serverless host.

This module imports no AiiDA module.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..core.exceptions import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    StructStoreError,
)
from ..core.structures import StructureKey
from ..core.values import validate_id
from ..store import Store, open_store
from .auth import AuthenticationError, Principal, TokenVerifier
from .cursors import CursorCodec
from .settings import ApiSettings, load_api_settings

__all__ = ('ReadContext', 'Scope', 'http_errors')

LOGGER = logging.getLogger(__name__)
_BEARER = HTTPBearer(auto_error=False, description='A JWT naming the tenant and the workspaces the caller may read.')


@dataclass(frozen=True)
class Scope:
    """The tenant and the one workspace a request reads."""

    tenant_id: str
    workspace_id: str

    def key(self, structure_id: str) -> StructureKey:
        try:
            return StructureKey.of(self.tenant_id, self.workspace_id, structure_id)
        except InvalidInputError as exc:
            raise HTTPException(422, str(exc)) from None


def unauthorized(message: str, *, invalid: bool = True) -> HTTPException:
    challenge = 'Bearer error="invalid_token"' if invalid else 'Bearer'
    return HTTPException(401, message, headers={'WWW-Authenticate': challenge})


@contextlib.contextmanager
def http_errors(what: str = 'structure') -> Iterator[None]:
    """Turn the store's errors into HTTP errors with a clear message (store details that may be internal are logged,
    not returned)."""
    try:
        yield
    except NotFoundError as exc:
        raise HTTPException(404, str(exc) or f'{what} not found') from None
    except InvalidInputError as exc:
        raise HTTPException(422, str(exc)) from None
    except IntegrityError as exc:
        LOGGER.error('integrity check failed: %s', exc)
        raise HTTPException(500, f'the stored {what} failed its integrity check; it was not returned') from None
    except BackendUnavailableError as exc:
        LOGGER.error('store unavailable: %s', exc)
        raise HTTPException(503, 'the structure store is unavailable; try again later') from None
    except (BackendError, ConfigurationError, StructStoreError) as exc:
        LOGGER.error('store error: %s', exc)
        raise HTTPException(502, 'the structure store failed to answer') from None


class ReadContext:
    """The token verifier and the store of one read API (see the module docstring)."""

    def __init__(self, settings: ApiSettings | None = None, *, store: Store | None = None) -> None:
        self.settings = (settings or load_api_settings()).check()
        self.verifier = TokenVerifier(self.settings)
        secret = self.settings.jwt_secret
        self.cursors = CursorCodec(secret.get_secret_value() if secret is not None else None)
        self._store = store
        self._owns_store = store is None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f'ReadContext(verifier={self.verifier!r}, store={self._store!r})'

    def store(self) -> Store:
        """The store, opened on first use (a FastAPI dependency)."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    try:
                        self._store = open_store()
                    except ConfigurationError as exc:
                        LOGGER.error('cannot open the structure store: %s', exc)
                        raise HTTPException(503, 'the structure store is not configured') from None
        return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None and self._owns_store:
                self._store.close()
                self._store = None

    def principal(self, credentials: HTTPAuthorizationCredentials | None = Depends(_BEARER)) -> Principal:  # noqa: B008
        """The verified caller (a FastAPI dependency): 401 without a valid bearer token."""
        if credentials is None:
            raise unauthorized('sign in: this API needs an "Authorization: Bearer <token>" header', invalid=False)
        try:
            return self.verifier.verify(credentials.credentials)
        except AuthenticationError as exc:
            raise unauthorized(str(exc)) from None

    def scope(self, principal: Principal, workspace: str | None) -> Scope:
        """The tenant and workspace a request reads: ``workspace`` if the token grants it, else 404 as if missing."""
        if workspace is None:
            if len(principal.workspaces) != 1:
                raise HTTPException(
                    422,
                    'this token grants several workspaces: choose one with ?workspace= '
                    f'({", ".join(principal.workspaces)})',
                )
            return Scope(principal.tenant_id, principal.workspaces[0])
        try:
            validate_id(workspace, 'workspace')
        except InvalidInputError as exc:
            raise HTTPException(422, str(exc)) from None
        if not principal.may_read(workspace):
            # The same answer as for a workspace without records: another tenant's ids must not be discoverable.
            raise HTTPException(404, f'no workspace {workspace!r}')
        return Scope(principal.tenant_id, workspace)

    def scope_dependency(self):
        """A FastAPI dependency giving the :class:`Scope` from the token and the ``workspace`` query parameter."""

        def dependency(
            principal: Principal = Depends(self.principal),  # noqa: B008
            workspace: str | None = Query(
                None, description='The workspace to read; may be left out when the token grants only one.'
            ),
        ) -> Scope:
            return self.scope(principal, workspace)

        return dependency
