"""The AiiDA side of uploads: claim the files users uploaded through the API, import them with provenance into AiiDA,
project the structures into the upload's workspace, and mark the uploads imported or failed (docs/uploads-aiida.md).

:mod:`.importer` imports one claimed upload exactly once; :mod:`.watch` is the loop of ``uploads import`` and
``uploads watch``; :mod:`.workchain` the optional work chain on each imported structure; :mod:`.settings` the
``STRUCTURE_STORE_UPLOADS_*`` settings.
"""
