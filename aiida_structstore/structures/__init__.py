"""Structures on the AiiDA side: ``StructureData`` → the application-facing record, and many of them into a store.

* :mod:`.projection`, :mod:`.optimade`, :mod:`.cif`: attributes → record content (OPTIMADE fields, kind-preserving
  CIF);
* :mod:`.selection`: which nodes a sync selects (a group, nodes, filters), read in keyset pages;
* :mod:`.sync`: incremental, batched, idempotent projection of many nodes (``verdi data structstore sync``);
* :mod:`.verify`: the store against AiiDA, both ways.

The projection works on the plain attribute dictionary of a ``StructureData`` node (``cell``, ``pbc1..3``,
``kinds``, ``sites``), so a sync can project thousands of nodes straight from a ``QueryBuilder`` projection without
loading ORM objects, and so the same code serves a single stored node (``node.base.attributes.all``).
"""

from .cif import write_cif
from .optimade import optimade_fields
from .projection import default_structure_id, structure_content

__all__ = ('default_structure_id', 'optimade_fields', 'structure_content', 'write_cif')
