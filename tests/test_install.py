"""The install line of docs/api.md from a checkout, as written: ``pip install '.[api]'`` in a fresh copy of the
repository's files (what a clone holds: the files git tracks, no build outputs).

pip resolves it for real (``--dry-run``: the project is built as pip builds it, in an isolated build environment
that fetches hatchling from the package index; the dependencies come from this environment, where they are
installed already), and the wheel built from the copy holds the read API, its viewer page and the console scripts.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PIP = [sys.executable, '-m', 'pip', '--disable-pip-version-check']

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope='module')
def checkout(tmp_path_factory) -> pathlib.Path:
    """The tracked files of the repository, copied as they are in the work tree (a fresh clone, without .git)."""
    target = tmp_path_factory.mktemp('checkout') / 'aiida-structstore'
    listed = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split('\0')):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def documented_installs() -> list[str]:
    """The requirements of the ``pip install '…'`` commands of docs/api.md (the page that says how to install)."""
    return re.findall(r"pip install '([^']+)'", (ROOT / 'docs' / 'api.md').read_text(encoding='utf-8'))


def test_docs_install_from_the_checkout():
    # Not from the package index: the package is not published there (yet).
    assert documented_installs() and all(requirement.startswith('.[') for requirement in documented_installs())


@pytest.mark.parametrize('requirement', documented_installs())
def test_the_documented_install_resolves_from_a_checkout(checkout, tmp_path, requirement):
    report = tmp_path / 'report.json'
    command = [*PIP, 'install', '--dry-run', '--quiet', '--report', str(report), requirement]
    result = subprocess.run(command, cwd=checkout, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    installs = {item['metadata']['name']: item for item in json.loads(report.read_text())['install']}
    extras = requirement.partition('[')[2].rstrip(']').split(',')
    assert installs['aiida-structstore'].get('requested_extras') == extras
    assert set(extras) <= set(installs['aiida-structstore']['metadata']['provides_extra'])


def test_the_wheel_from_a_checkout_holds_the_api_and_its_scripts(checkout, tmp_path):
    command = [*PIP, 'wheel', '--quiet', '--no-deps', '--wheel-dir', str(tmp_path), '.']
    result = subprocess.run(command, cwd=checkout, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [wheel] = tmp_path.glob('aiida_structstore-*.whl')
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [entry_points] = [name for name in names if name.endswith('.dist-info/entry_points.txt')]
        scripts = archive.read(entry_points).decode()
    assert {'aiida_structstore/api/app.py', 'aiida_structstore/api/static/index.html'} <= names
    assert 'aiida_structstore/core/convex_limits.json' in names
    assert 'structstore-api = aiida_structstore.api.cli:serve' in scripts
    assert 'structstore-dev-token = aiida_structstore.api.cli:dev_token' in scripts
