"""The Convex limits (:mod:`aiida_structstore.limits`), where the store's modules have always found them.

This module imports no AiiDA module.
"""

from ..limits import CONVEX, PROTOCOL

__all__ = ('CONVEX', 'PROTOCOL')
