"""Projection: ``StructureData`` attributes → the application-facing record (OPTIMADE fields, kind-preserving CIF).

Everything here works on the plain attribute dictionary of a ``StructureData`` node (``cell``, ``pbc1..3``,
``kinds``, ``sites``), so a sync can project thousands of nodes straight from a ``QueryBuilder`` projection without
loading ORM objects, and so the same code serves a single stored node (``node.base.attributes.all``).
"""

from .cif import write_cif
from .optimade import optimade_fields
from .record import default_structure_id, structure_content

__all__ = ('default_structure_id', 'optimade_fields', 'structure_content', 'write_cif')
