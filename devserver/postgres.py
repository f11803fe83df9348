"""AiiDA profiles on the running PostgreSQL server, for the tests and the benchmarks.

aiida-core's own fixtures start a temporary cluster with ``pgtest``, which cannot run as root (and CI runs as root):
:class:`RunningServerCluster` stands in for it and creates (and afterwards drops) databases on the server that runs
on this machine (``AIIDA_TEST_PG_HOST``, ``AIIDA_TEST_PG_PORT``, ``AIIDA_TEST_PG_USER``, ``AIIDA_TEST_PG_PASSWORD``;
default ``127.0.0.1:5432`` as ``postgres`` with trust authentication).
"""

from __future__ import annotations

import os
import secrets
import socket

__all__ = ('RunningServerCluster', 'port_open')


class RunningServerCluster:
    """Stand-in for aiida's pgtest-based ``PostgresCluster``: databases on the running PostgreSQL server."""

    def __init__(self, *, durable: bool = True) -> None:
        """``durable=False`` (tests): commits to the databases created return before the WAL is on disk."""
        self.durable = durable
        self.dsn = {
            'host': os.environ.get('AIIDA_TEST_PG_HOST', '127.0.0.1'),
            'port': int(os.environ.get('AIIDA_TEST_PG_PORT', '5432')),
            'user': os.environ.get('AIIDA_TEST_PG_USER', 'postgres'),
            'password': os.environ.get('AIIDA_TEST_PG_PASSWORD', ''),
        }
        self.databases: list[str] = []

    def _connect(self):
        import psycopg

        return psycopg.connect(dbname='postgres', autocommit=True, **self.dsn)

    def create_database(self, database_name=None, database_username=None, database_password=None) -> dict:
        from psycopg import sql

        name = database_name or f'structstore_test_{secrets.token_hex(6)}'
        # One role per xdist worker: workers that shared one would change each other's password.
        worker = os.environ.get('PYTEST_XDIST_WORKER')
        username = database_username or ('structstore_test' + (f'_{worker}' if worker else ''))
        password = database_password or secrets.token_hex(8)
        with self._connect() as conn:
            exists = conn.execute('SELECT 1 FROM pg_roles WHERE rolname = %s', (username,)).fetchone()
            if exists:
                conn.execute(
                    sql.SQL('ALTER ROLE {} WITH LOGIN CREATEDB PASSWORD {}').format(
                        sql.Identifier(username), sql.Literal(password)
                    )
                )
            else:
                conn.execute(
                    sql.SQL('CREATE ROLE {} WITH LOGIN CREATEDB PASSWORD {}').format(
                        sql.Identifier(username), sql.Literal(password)
                    )
                )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(name), sql.Identifier(username)
                )
            )
            if not self.durable:
                # A test database need not survive a crash of the server: commits return before the WAL is on disk
                # (every connection to it, the daemon's and subprocesses' too). Nothing else about a commit changes.
                # Benchmarks keep durable commits, as users have them.
                conn.execute(sql.SQL('ALTER DATABASE {} SET synchronous_commit TO off').format(sql.Identifier(name)))
        self.databases.append(name)
        return {
            'database_engine': 'postgresql_psycopg',
            'database_name': name,
            'database_username': username,
            'database_password': password,
            'database_hostname': self.dsn['host'],
            'database_port': self.dsn['port'],
        }

    def close(self) -> None:
        from psycopg import sql

        with self._connect() as conn:
            for name in self.databases:
                conn.execute('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s', (name,))
                conn.execute(sql.SQL('DROP DATABASE IF EXISTS {}').format(sql.Identifier(name)))
        self.databases.clear()


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0
