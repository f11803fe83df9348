"""Store fixtures: ``store`` is parametrized over every backend, so the contract suite runs on each of them.

A backend joins the contract suite by adding a ``param`` here and a branch in ``store``; tests are never copied.
"""

from __future__ import annotations

import os
import secrets

import pytest

from aiida_structstore.core.structures import Source, StructureContent, StructureKey
from aiida_structstore.store import MemoryStore
from aiida_structstore.store.convex import ConvexStore
from aiida_structstore.store.memory import MemoryStructures

#: ``convex-deployment`` runs when ``CONVEX_URL`` and ``CONVEX_DEPLOY_KEY`` point to a real deployment that has the
#: functions of ``convex/`` deployed (see docs/convex-projection.md; ``STRUCTURE_STORE_FUNCTION_PREFIX`` if they are
#: the app-side functions of the mounted component); it is skipped otherwise. ``convex-local`` is the local server
#: in the standalone layout, ``convex-component`` in the component layout (an app mounting convex/ as a component).
BACKENDS = ['memory', 'convex-local', 'convex-component', 'convex-deployment']


@pytest.fixture(params=BACKENDS)
def store(request):
    """A store of each backend. Tests isolate themselves with unique tenant ids (the ``tenant`` fixture)."""
    if request.param == 'memory':
        with MemoryStore() as s:
            yield s
    elif request.param == 'convex-local':
        # The contract is checked on a server that also checks each of its index lookups against a full scan.
        server = request.getfixturevalue('verifying_convex_server')
        with ConvexStore(server.url, server.deploy_key) as s:
            yield s
    elif request.param == 'convex-component':
        server = request.getfixturevalue('verifying_convex_component_server')
        with ConvexStore(server.url, server.deploy_key, function_prefix=server.function_prefix) as s:
            yield s
    elif request.param == 'convex-deployment':
        url, key = os.environ.get('CONVEX_URL'), os.environ.get('CONVEX_DEPLOY_KEY')
        if not (url and key):
            pytest.skip('set CONVEX_URL and CONVEX_DEPLOY_KEY to run the contract suite on a real deployment')
        prefix = os.environ.get('STRUCTURE_STORE_FUNCTION_PREFIX', '')
        with ConvexStore(url, key, function_prefix=prefix) as s:
            yield s
    else:  # pragma: no cover - every param above has a branch
        raise AssertionError(request.param)


@pytest.fixture
def tenant() -> str:
    """A tenant id unique to the test, so backends that keep data between tests stay isolated."""
    return f't-{secrets.token_hex(4)}'


@pytest.fixture
def make_content(tenant):
    """Return a factory of valid :class:`StructureContent` objects."""

    def factory(structure_id: str = 's1', *, workspace: str = 'ws', tenant_id: str | None = None, **fields):
        fields.setdefault('source', Source(kind='cif', filename='x.cif'))
        fields.setdefault('cif', f'data_{structure_id}\n_cell_length_a 5.43\n')
        fields.setdefault(
            'structure',
            {
                'elements': ['Si'],
                'nelements': 1,
                'nsites': 2,
                'chemical_formula_reduced': 'Si',
                'cartesian_site_positions': [[0.0, 0.0, 0.0], [1.3575, 1.3575, 1.3575]],
            },
        )
        key = StructureKey.of(tenant_id or tenant, workspace, structure_id)
        return StructureContent(key=key, **fields)

    return factory


@pytest.fixture
def corrupt_chunks(monkeypatch):
    """Return ``corrupt(store, change)``: from then on, raw chunk texts read by ``store`` pass through ``change``."""

    def corrupt(store, change):
        if isinstance(store, MemoryStore):
            original = MemoryStructures._chunks_of
            monkeypatch.setattr(
                MemoryStructures, '_chunks_of', staticmethod(lambda entry: [(i, change(t)) for i, t in original(entry)])
            )
        else:
            original = type(store.structures)._read_chunk_page
            monkeypatch.setattr(
                type(store.structures),
                '_read_chunk_page',
                lambda self, *a, **k: (
                    [(i, change(t)) for i, t in original(self, *a, **k)[0]],
                    original(self, *a, **k)[1],
                ),
            )

    return corrupt
