"""Shared test configuration.

The AiiDA test profile runs on PostgreSQL (``core.psql_dos``) by default, as users run it; ``--db-backend sqlite``
switches to ``core.sqlite_dos`` for quick local runs. The PostgreSQL database is created on the running server
(``AIIDA_TEST_PG_*`` variables, default ``127.0.0.1:5432`` as user ``postgres`` with trust authentication) and dropped
at the end of the session: pgtest's temporary cluster cannot run as root, and CI runs as root.
"""

from __future__ import annotations

import os
import secrets

import pytest

pytest_plugins = ['aiida.tools.pytest_fixtures']

DB_BACKENDS = {'psql': 'core.psql_dos', 'sqlite': 'core.sqlite_dos'}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        '--db-backend',
        action='store',
        default='psql',
        choices=sorted(DB_BACKENDS),
        help='AiiDA storage backend of the test profile (default: psql, i.e. core.psql_dos)',
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f'aiida test profile storage: {DB_BACKENDS[config.getoption("--db-backend")]}'


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    terminalreporter.write_line(f'AiiDA tests ran on storage backend {DB_BACKENDS[config.getoption("--db-backend")]}')


class RunningServerCluster:
    """Stand-in for aiida's pgtest-based ``PostgresCluster``: databases on the running PostgreSQL server."""

    def __init__(self) -> None:
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
        username = database_username or 'structstore_test'
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


@pytest.fixture(scope='session')
def convex_server():
    """The local Convex server (an in-memory test double of Convex), started once per session on a free port."""
    from .convex_server import local_convex

    with local_convex() as server:
        yield server


@pytest.fixture(scope='session')
def postgres_cluster():
    """Override aiida's fixture: create test databases on the running server, drop them afterwards."""
    cluster = RunningServerCluster()
    yield cluster
    cluster.close()


@pytest.fixture(scope='session', autouse=True)
def aiida_profile(request, aiida_config, aiida_profile_factory, config_psql_dos, config_sqlite_dos):
    """The AiiDA test profile: ``core.psql_dos`` by default, ``core.sqlite_dos`` with ``--db-backend sqlite``."""
    backend = DB_BACKENDS[request.config.getoption('--db-backend')]
    storage_config = config_psql_dos() if backend == 'core.psql_dos' else config_sqlite_dos()
    with aiida_profile_factory(aiida_config, storage_backend=backend, storage_config=storage_config) as profile:
        yield profile
