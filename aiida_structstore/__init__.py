"""aiida-structstore: project AiiDA ``StructureData`` into Convex, an application-facing structure store.

The flow file → node → record → store → API shows in the packages, and the application side never needs AiiDA:

* ``core``: the records of every kind (structures, executions), ids and value rules, chunking of raw text, the
  Convex limits and the one error hierarchy; imports no AiiDA module and no backend;
* ``store``: the store contract, its backends (memory, Convex) and settings; imports no AiiDA module;
* ``api``: the application's read side (FastAPI, OPTIMADE, viewer); imports no AiiDA module;
* the AiiDA side: ``tools`` (file readers: text → nodes), ``structures`` and ``executions`` (each: projection of
  nodes into records, selection, sync, verification), ``tracking`` (the extras that remember what was projected
  where), ``calculations``, ``workflows`` and ``cli`` (the entry points).
"""

__version__ = '0.1.0'
