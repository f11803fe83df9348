"""The store: one object per deployment, composed of one collection per record kind.

``store.structures`` (:class:`~aiida_structstore.store.structures.StructureStore`), ``store.executions``
(:class:`~aiida_structstore.store.executions.ExecutionStore`) and ``store.uploads``
(:class:`~aiida_structstore.store.uploads.UploadStore`) each keep their own contract; the store itself owns what
they share: the connection (closed with the store), which deployment it is (:attr:`Store.store_id`) and which data it
holds (:attr:`Store.instance`). A backend composes its collections over one transport, as maggma keeps one ``Store``
per collection; no class inherits from two record kinds.

This module imports no AiiDA module.
"""

from __future__ import annotations

from types import TracebackType
from typing import ClassVar

from .executions import ExecutionStore
from .structures import StructureStore
from .uploads import UploadStore

__all__ = ('Store',)


class Store:
    """A structure store and what it holds beside the structures, over one connection.

    Use it as a context manager, or call :meth:`close` when done.
    """

    #: The backend name used by ``STRUCTURE_STORE_BACKEND``.
    backend: ClassVar[str]
    #: Whether the data outlives this process. Projections into a store that does not are not remembered on AiiDA
    #: nodes (they would describe a store that no longer exists).
    persistent: ClassVar[bool] = True

    #: The structure records (:class:`~aiida_structstore.store.structures.StructureStore`).
    structures: StructureStore
    #: The execution records of the processes that took or produced them.
    executions: ExecutionStore
    #: Files the application's users uploaded, waiting to be imported into AiiDA (docs/uploads.md).
    uploads: UploadStore

    @property
    def store_id(self) -> str:
        """Identifies the deployment behind the store, never a secret (for Convex a digest of the URL): projections
        remembered on AiiDA nodes name the store they went to by it."""
        return f'{self.backend}:{id(self):x}'

    @property
    def instance(self) -> str:
        """Identifies the data in the store: it changes when the data is lost (a wiped deployment), so projections
        remembered on AiiDA nodes are only trusted for the same ``store_id`` and ``instance``. Read once per store
        object; :meth:`current_instance` asks again."""
        return self.store_id

    def current_instance(self) -> str:
        """The instance id as the store has it now (see :attr:`instance`)."""
        return self.instance

    def forget_instance(self) -> None:
        """Read the instance id from the store again on next use of :attr:`instance` (after it changed: the data was
        lost, and a long-running writer goes on with the new instance)."""

    def close(self) -> None:
        """Release resources (connections). The store is not usable afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
