"""The Convex backend: :class:`ConvexStore` (:mod:`.store`) composes the structure records (:mod:`.structures`) and
the execution records (:mod:`.executions`) over the HTTP transport of :mod:`.transport`.

This package imports no AiiDA module.
"""

from .store import ConvexStore
from .structures import ConvexStructures
from .transport import DEFAULT_WRITE_RATE

__all__ = ('DEFAULT_WRITE_RATE', 'ConvexStore', 'ConvexStructures')
