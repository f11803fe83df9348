"""The application-facing modules import no AiiDA module (checked in a fresh interpreter)."""

from __future__ import annotations

import pathlib
import pkgutil
import subprocess
import sys

import pytest

AIIDA_FREE = [
    'aiida_structstore.core',
    'aiida_structstore.core.structures',
    'aiida_structstore.core.values',
    'aiida_structstore.core.chunking',
    'aiida_structstore.store',
    'aiida_structstore.store.memory',
    'aiida_structstore.store.settings',
    'aiida_structstore.store.convex',
    'aiida_structstore.store.convex.executions',
    'aiida_structstore.store.executions',
    'aiida_structstore.executions',
    'aiida_structstore.core.executions',
    'aiida_structstore.core.limits',
    'aiida_structstore.core.exceptions',
    'aiida_structstore.api',
]
# Every module of the read API (found, not listed, so that a new module is checked too).
API_DIR = pathlib.Path(__file__).resolve().parent.parent / 'aiida_structstore' / 'api'
AIIDA_FREE += sorted(module.name for module in pkgutil.walk_packages([str(API_DIR)], 'aiida_structstore.api.'))


@pytest.mark.parametrize('module', AIIDA_FREE)
def test_module_imports_no_aiida(module):
    code = (
        'import sys, importlib\n'
        f'importlib.import_module({module!r})\n'
        "loaded = sorted(m for m in sys.modules if m == 'aiida' or m.startswith('aiida.'))\n"
        'print(loaded)\n'
        'sys.exit(1 if loaded else 0)\n'
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f'{module} imported AiiDA modules: {result.stdout}{result.stderr}'
