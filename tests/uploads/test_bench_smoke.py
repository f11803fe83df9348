"""benchmarks/bench_uploads.py runs end to end at a small size (its figures are in docs/performance.md)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_uploads_benchmark_runs(tmp_path, request):
    if request.config.getoption('--db-backend') != 'psql':
        pytest.skip('the benchmark makes a PostgreSQL profile')
    command = [sys.executable, str(ROOT / 'benchmarks' / 'bench_uploads.py'), '--backlog', '3', '--trickle', '2']
    command += ['--intervals', '0.2']
    env = {key: value for key, value in os.environ.items() if not key.startswith('AIIDA_')}
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith('| backlog ') for line in lines), result.stdout
    assert any(line.startswith('| one by one ') for line in lines), result.stdout
