"""OPTIMADE over the projection: each workspace served as an OPTIMADE API behind the read API's tokens.

* :mod:`.fields` — the properties served and the entry documents built from records;
* :mod:`.filters` — the filter language (the ``optimade`` package's grammar and MongoDB transformer, with literal
  string operators), its limits, what is pushed to the store's indexes;
* :mod:`.evaluate` — the small, total evaluator of compiled filters on entry documents (to be ported to Convex);
* :mod:`.query` — selecting a workspace's matching entries, and what it costs;
* :mod:`.app` — the routes (``/versions``, ``/v1/info``, ``/v1/info/structures``, ``/v1/structures``,
  ``/v1/structures/{id}``, ``/v1/links``), mounted at ``/optimade``.

See ``docs/optimade.md``. This package imports no AiiDA module.
"""

from __future__ import annotations

from .app import create_optimade_app

__all__ = ('create_optimade_app',)
