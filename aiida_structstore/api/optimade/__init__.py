"""OPTIMADE over the projection: each workspace served as an OPTIMADE API behind the read API's tokens.

* :mod:`.fields` — the properties served and the entry documents built from records;
* :mod:`.filters` — the filter language (the ``optimade`` package's grammar and MongoDB transformer, with literal
  string operators), its limits, what is pushed to the store's indexes;
* :mod:`aiida_structstore.core.query` — the query language compiled filters are written in, its small, total
  evaluator and the entry documents it runs on (shared with the store, which serves queries from its indexes);
* :mod:`.query` — selecting a workspace's matching entries, and what it costs;
* :mod:`.app` — the routes (``/versions``, ``/v1/info``, ``/v1/info/structures``, ``/v1/structures``,
  ``/v1/structures/{id}``, ``/v1/links``), mounted at ``/optimade``.

See ``docs/optimade.md``. This package imports no AiiDA module.
"""

from __future__ import annotations

from .app import create_optimade_app

__all__ = ('create_optimade_app',)
