"""The Convex store: one deployment (cloud, ``npx convex dev``, the local test double) as a :class:`Store`.

It composes the structure records (:mod:`.structures`), the execution records (:mod:`.executions`) and the uploads
(:mod:`.uploads`) over one transport (:mod:`.transport`: HTTP, retries, pacing, secrets), and knows which deployment
it is and which data it holds (the instance id the deployment keeps in its ``instance`` table).

This module imports no AiiDA module.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, ClassVar

from pydantic import SecretStr

from ...core.chunking import DEFAULT_CHUNK_BYTES
from ..base import Store
from ..settings import StoreSettings
from .executions import ConvexExecutions
from .structures import ConvexStructures
from .transport import ConvexTransport
from .uploads import ConvexUploads

__all__ = ('ConvexStore',)


class ConvexStore(Store):
    """Structures and executions in a Convex deployment (see the module docstring)."""

    backend: ClassVar[str] = 'convex'

    def __init__(
        self, url: str, deploy_key: SecretStr | str, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, **options: Any
    ) -> None:
        """``options`` are the transport's (:class:`.transport.ConvexTransport`): timeout, retries, write rate, ..."""
        self.transport = ConvexTransport(url, deploy_key, **options)
        self.structures = ConvexStructures(self.transport, chunk_bytes=chunk_bytes)
        self.executions = ConvexExecutions(self.transport)
        self.uploads = ConvexUploads(self.transport, chunk_bytes=chunk_bytes)
        self._instance: str | None = None

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> ConvexStore:
        settings.check()
        assert settings.convex_url is not None and settings.convex_deploy_key is not None
        return cls(
            settings.convex_url,
            settings.convex_deploy_key,
            timeout=settings.timeout,
            retries=settings.retries,
            allow_http=settings.allow_http,
            write_rate=settings.write_rate,
            function_prefix=settings.function_prefix,
        )

    def __repr__(self) -> str:
        # Neither the URL nor the key: a repr can end up in a log or in AiiDA's database.
        return f'ConvexStore({self.store_id})'

    @property
    def store_id(self) -> str:
        # A digest, not the URL: the deployment URL must not end up in AiiDA's database. Two mounts of the component
        # in one deployment are two stores; the standalone layout keeps the digest of the URL alone.
        where = self.transport.url + (f'#{self.transport.function_prefix}' if self.transport.function_prefix else '')
        return f'convex:{hashlib.sha256(where.encode()).hexdigest()[:16]}'

    @property
    def instance(self) -> str:
        if self._instance is None:
            self._instance = self.current_instance()
        return self._instance

    def forget_instance(self) -> None:
        self._instance = None

    def current_instance(self) -> str:
        instance = self.transport.call('query', 'getInstance', {})
        if instance is None:
            instance = self.transport.call('mutation', 'ensureInstance', {'candidate': secrets.token_hex(8)})
        return str(instance)

    def close(self) -> None:
        self.transport.close()
