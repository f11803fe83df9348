"""Fixtures of the end-to-end tests: a one-node Slurm cluster, a pw.x code on it, and the AiiDA daemon started in an
environment that has the store settings.

The Slurm cluster is started by the ``slurm`` fixture (``scripts/services.sh slurm``) and stopped afterwards if it was
not already running. The daemon is the session's (``store_daemon`` in tests/conftest.py).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import time

import pytest
from aiida import orm

ROOT = pathlib.Path(__file__).resolve().parents[2]
PSEUDO = pathlib.Path('/usr/share/espresso/pseudo/Si.pz-vbc.UPF')


def _slurm_up() -> bool:
    result = subprocess.run(['sinfo', '-h', '-o', '%T'], capture_output=True, text=True, check=False)
    return result.returncode == 0 and any(s in result.stdout for s in ('idle', 'mixed', 'alloc'))


@pytest.fixture(scope='session')
def slurm():
    """The one-node Slurm cluster: started once (if it is not running) for the session, stopped at its end."""
    missing = [tool for tool in ('sinfo', 'slurmctld', 'slurmd', 'munged', 'pw.x') if shutil.which(tool) is None]
    if missing or not PSEUDO.exists():
        reason = f'the real stack is not installed ({", ".join(missing) or PSEUDO}): bash .ci/run installs it'
        if os.environ.get('CI') == 'true':
            pytest.fail(reason)  # in CI the stack must be there: a skip would hide a broken install
        pytest.skip(reason)
    started = not _slurm_up()
    if started:
        subprocess.run(['bash', str(ROOT / 'scripts' / 'services.sh'), 'slurm'], check=True)
    yield
    if started:
        subprocess.run(['bash', str(ROOT / 'scripts' / 'services.sh'), 'stop-slurm'], check=True)


@pytest.fixture
def slurm_computer(slurm, tmp_path_factory):
    """A computer on the one-node Slurm cluster (``core.slurm`` over ``core.local``), polled every second."""
    computer = orm.Computer(
        label=f'slurm-{time.time_ns()}',
        hostname='localhost',
        transport_type='core.local',
        scheduler_type='core.slurm',
        workdir=str(tmp_path_factory.mktemp('slurm-work')),
    ).store()
    computer.set_minimum_job_poll_interval(1.0)
    computer.set_default_mpiprocs_per_machine(1)
    computer.set_prepend_text('export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1')
    computer.configure(safe_interval=0.1)
    return computer


@pytest.fixture
def pw_code(slurm_computer):
    """Debian's pw.x on the Slurm computer."""
    return orm.InstalledCode(
        label='pw',
        computer=slurm_computer,
        filepath_executable=shutil.which('pw.x'),
        default_calc_job_plugin='quantumespresso.pw',
    ).store()


@pytest.fixture
def add_code(slurm_computer):
    """bash on the Slurm computer, for aiida-core's ``core.arithmetic.add`` calculation."""
    return orm.InstalledCode(
        label='add',
        computer=slurm_computer,
        filepath_executable='/bin/bash',
        default_calc_job_plugin='core.arithmetic.add',
    ).store()


@pytest.fixture
def daemon(store_daemon):
    """The AiiDA daemon, started in an environment that has the store settings (as users start it)."""
    return store_daemon
