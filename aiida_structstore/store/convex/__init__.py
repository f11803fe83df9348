"""The Convex backend: :class:`ConvexStore` (:mod:`.store`) over the HTTP transport of :mod:`.transport`.

This package imports no AiiDA module.
"""

from .store import INLINE_BYTES, ConvexStore
from .transport import DEFAULT_WRITE_RATE

__all__ = ('DEFAULT_WRITE_RATE', 'INLINE_BYTES', 'ConvexStore')
