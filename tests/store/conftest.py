"""Store fixtures: ``store`` is parametrized over every backend, so the contract suite runs on each of them.

A backend joins the contract suite by adding a ``param`` here and a branch in ``store``; tests are never copied.
"""

from __future__ import annotations

import secrets

import pytest

from aiida_structstore.models import Source, StructureContent, StructureKey
from aiida_structstore.store import MemoryStore

BACKENDS = ['memory']


@pytest.fixture(params=BACKENDS)
def store(request):
    """A fresh, empty store of each backend."""
    if request.param == 'memory':
        with MemoryStore() as s:
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
