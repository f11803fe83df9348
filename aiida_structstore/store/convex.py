"""The Convex backend (not available yet: it lands with the "Convex projection" work)."""

from __future__ import annotations

from ..exceptions import BackendUnavailableError


class ConvexStore:
    @classmethod
    def from_settings(cls, settings):
        raise BackendUnavailableError(
            'the convex backend is not available yet in this version of aiida-structstore; '
            'set STRUCTURE_STORE_BACKEND=memory'
        )
