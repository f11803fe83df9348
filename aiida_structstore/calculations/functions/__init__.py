"""Calcfunctions: one per module, registered under ``aiida.calculations`` with the ``structstore.`` prefix.

* ``structstore.import_cif`` (:mod:`.import_cif`): CIF file → ``StructureData`` (one per data block);
* ``structstore.import_pw_input`` (:mod:`.import_pw_input`): pw.x input → ``StructureData``, ``Dict``, ``KpointsData``;
* ``structstore.project_structure`` (:mod:`.project_structure`): ``StructureData`` → a record in the store.

Helpers of the imports: :mod:`.outputs` (many outputs stored in bulk inside the caller's transaction) and
:mod:`.interrupted` (unfinished imports whose runner is gone).
"""
