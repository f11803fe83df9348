"""The application-facing modules import no AiiDA module (checked in a fresh interpreter, one for all of them)."""

from __future__ import annotations

import json
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


#: Run in one fresh interpreter: import each module in turn and print, after each, the AiiDA modules loaded so far.
PROBE = """
import importlib, json, sys
loaded = {}
for module in sys.argv[1:]:
    try:
        importlib.import_module(module)
    except Exception as exc:
        loaded[module] = f'import failed: {exc!r}'
        continue
    loaded[module] = sorted(m for m in sys.modules if m == 'aiida' or m.startswith('aiida.'))
print(json.dumps(loaded))
"""


@pytest.fixture(scope='module')
def loaded_after() -> dict:
    """For each module, the AiiDA modules loaded once it and the modules before it were imported, in one fresh
    interpreter (one interpreter, not one per module: the first module that loads AiiDA fails, and every module that
    loads AiiDA itself fails too, since nothing unloads it)."""
    result = subprocess.run([sys.executable, '-c', PROBE, *AIIDA_FREE], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize('module', AIIDA_FREE)
def test_module_imports_no_aiida(module, loaded_after):
    assert loaded_after[module] == [], (
        f'{module} (or a module checked before it) imported AiiDA: {loaded_after[module]}'
    )
