"""The benchmark suite runs end to end at a small size (its figures are in docs/performance.md, not asserted)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(600)


@pytest.mark.slow
def test_the_benchmark_suite_runs(tmp_path):
    out = tmp_path / 'bench.json'
    command = [sys.executable, str(ROOT / 'benchmarks' / 'bench_sync.py'), '--sizes', '300', '--repeat', '1']
    command += ['--quick', '--rss-sizes', '300', '--json', str(out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row['run']: row for row in json.loads(out.read_text())['rows']}
    assert rows['first sync → counting sink (unpaced)']['calls_per_1000'] > 0
    assert rows['peak RSS of `verdi data structstore sync`, N=300']['peak_rss_mib'] > 0
    assert any(run.startswith('parallel sync') for run in rows)


@pytest.mark.slow
def test_the_reader_benchmark_runs(tmp_path):
    out = tmp_path / 'readers.json'
    command = [sys.executable, str(ROOT / 'benchmarks' / 'bench_readers.py'), '--sizes', '400', '800']
    command += ['--symmetric', '1000', '--pw-sizes', '400', '--coincident', '500', '--repeat', '1', '--json', str(out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads(out.read_text())['rows']
    assert [row['kind'] for row in rows] == ['cif-p1', 'cif-p1', 'cif-fm3m', 'pw', 'cif-coincident']
    assert all(row['seconds'] > 0 for row in rows)


@pytest.mark.slow
def test_the_read_benchmark_runs(tmp_path):
    """benchmarks/bench_read.py at a small size, without ``verdi restapi`` (aiida-core's ``rest`` extra is not a test
    dependency): the workloads, the calls per request and the isolation run."""
    out = tmp_path / 'read.json'
    command = [sys.executable, str(ROOT / 'benchmarks' / 'bench_read.py'), '--sizes', '150,300', '--requests', '2']
    command += ['--no-restapi', '--concurrency', '1,2', '--json', str(out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {row['workload'] for row in report['rows']} == {'cif', 'page', 'filter', 'listing'}
    assert all(count >= 1 for _, _, count in report['calls'])
    assert 'another tenant' in result.stdout


@pytest.mark.slow
def test_the_layout_benchmark_runs(tmp_path):
    """benchmarks/bench_layouts.py at a small size: both layouts of the local server, every step, one table."""
    command = [sys.executable, str(ROOT / 'benchmarks' / 'bench_layouts.py'), '--records', '50', '--repeat', '1']
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '| put_many |' in result.stdout
    assert '| query (pages of 100) |' in result.stdout


@pytest.mark.slow
def test_the_upload_store_benchmark_runs(tmp_path):
    command = [sys.executable, str(ROOT / 'benchmarks' / 'bench_upload_store.py'), '--count', '20', '--no-large']
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'claim, read, complete (2 importers)' in result.stdout
