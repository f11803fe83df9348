"""A RabbitMQ node of its own, on free ports, that a test can stop and start again: a real broker restart without
touching the machine's broker (which other processes, daemons and benchmarks use).

Uses Debian's ``rabbitmq-server`` and ``rabbitmqctl`` (installed by ``.ci/run``); every wait is ``rabbitmqctl``'s own
(``wait``, ``stop``), which return when the node is up or gone.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from .ports import free_port


class RabbitMQNode:
    def __init__(self) -> None:
        if shutil.which('rabbitmq-server') is None or shutil.which('rabbitmqctl') is None:
            raise RuntimeError('rabbitmq-server is not installed (bash .ci/run installs it)')
        self.name = f'structstore-{secrets.token_hex(3)}@localhost'
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix='structstore-rabbitmq-'))
        if os.geteuid() == 0:  # the broker runs as the rabbitmq user
            shutil.chown(self.base, 'rabbitmq', 'rabbitmq')
        self.env = {
            **os.environ,
            'RABBITMQ_NODENAME': self.name,
            'RABBITMQ_NODE_PORT': str(self.port),
            'RABBITMQ_DIST_PORT': str(free_port()),
            'RABBITMQ_MNESIA_BASE': str(self.base / 'mnesia'),
            'RABBITMQ_LOG_BASE': str(self.base / 'log'),
            'RABBITMQ_PID_FILE': str(self.base / 'pid'),
            'RABBITMQ_ENABLED_PLUGINS_FILE': str(self.base / 'plugins'),
            'RABBITMQ_CONFIG_FILE': str(self.base / 'rabbitmq'),
        }

    def _ctl(self, *args: str) -> None:
        subprocess.run(['rabbitmqctl', '-n', self.name, *args], env=self.env, check=True, capture_output=True)

    def start(self) -> None:
        """Start the node and return once it accepts connections."""
        subprocess.run(['rabbitmq-server', '-detached'], env=self.env, check=True, capture_output=True, cwd=self.base)
        # `wait` follows the pid file: it returns once the node wrote it and the broker application is running.
        self._ctl('wait', self.env['RABBITMQ_PID_FILE'], '--timeout', '120')

    def stop(self) -> None:
        """Stop the node (the Erlang VM too) and return once it is gone."""
        self._ctl('stop')

    def close(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.base, ignore_errors=True)
