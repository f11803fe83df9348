"""Stores: the contract (:class:`Store`, composed of ``store.structures`` and ``store.executions``), its backends,
and :func:`open_store`.

This package imports no AiiDA module: the application can read projections without an AiiDA profile.
"""

from __future__ import annotations

from .base import Store
from .executions import ExecutionStore
from .memory import MemoryStore
from .settings import BACKENDS, StoreSettings, load_settings
from .structures import StructureStore
from .uploads import UploadStore

__all__ = (
    'BACKENDS',
    'ExecutionStore',
    'MemoryStore',
    'Store',
    'StoreSettings',
    'StructureStore',
    'UploadStore',
    'load_settings',
    'open_store',
)


def open_store(settings: StoreSettings | None = None, **overrides: object) -> Store:
    """Open the store selected by ``STRUCTURE_STORE_BACKEND`` (default ``convex``).

    ``memory`` returns this process's shared in-memory store. ``convex`` needs ``CONVEX_URL`` and
    ``CONVEX_DEPLOY_KEY``; a missing one raises :class:`~aiida_structstore.core.exceptions.ConfigurationError`
    naming it.
    """
    settings = (settings or load_settings(**overrides)).check()
    backend = settings.backend.strip().lower()
    if backend == 'memory':
        return MemoryStore.shared()
    from .convex import ConvexStore

    return ConvexStore.from_settings(settings)
