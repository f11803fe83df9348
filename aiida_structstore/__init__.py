"""aiida-structstore: project AiiDA ``StructureData`` into Convex, an application-facing structure store.

The package is layered so that the application side never needs AiiDA:

* :mod:`aiida_structstore.models`, :mod:`aiida_structstore.chunking` and :mod:`aiida_structstore.store`
  import no AiiDA module;
* ``tools`` (file readers), ``projection``, ``calculations``, ``workflows`` and ``cli`` are the AiiDA side.
"""

__version__ = '0.1.0'
