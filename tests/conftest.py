"""Shared test configuration.

The AiiDA test profile runs on PostgreSQL (``core.psql_dos``) by default, as users run it; ``--db-backend sqlite``
switches to ``core.sqlite_dos`` for quick local runs. The PostgreSQL database is created on the running server
(``AIIDA_TEST_PG_*`` variables, default ``127.0.0.1:5432`` as user ``postgres`` with trust authentication) and dropped
at the end of the session: pgtest's temporary cluster cannot run as root, and CI runs as root.
"""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

# The repository root, so that `devserver` (the local Convex server launcher, the PostgreSQL helper) imports.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from devserver.postgres import RunningServerCluster, port_open

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


#: Fixtures that need RabbitMQ (the profile's broker, the daemon, a RabbitMQ node of the test's own).
RMQ_FIXTURES = {
    'broker',
    'rabbitmq_node',
    'daemon',
    'store_daemon',
    'daemon_environment',
    'started_daemon_client',
    'submit_and_await',
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the fixtures they use (``requires_rmq``, ``requires_slurm`` and ``browser``, see pyproject.toml),
    keep the ones that share a machine-wide service or a browser on one xdist worker (``xdist_group``, with
    ``--dist loadgroup``), and run the modules with slow tests first, so that parallel workers end together. Every
    worker orders the same way (the order depends on the collected tests only)."""
    for item in items:
        names = set(getattr(item, 'fixturenames', ()))
        if names & RMQ_FIXTURES:
            item.add_marker(pytest.mark.requires_rmq)
        if 'slurm' in names:
            # One Slurm cluster per machine: its fixture starts and stops it, so its tests share one worker.
            item.add_marker(pytest.mark.requires_slurm)
            item.add_marker(pytest.mark.xdist_group('slurm'))
        if 'browser' in names:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.xdist_group('browser'))  # one Chromium, not one per worker
    first = {item.path for item in items if item.get_closest_marker('slow') or item.get_closest_marker('xdist_group')}
    items.sort(key=lambda item: item.path not in first)  # stable: the order within a module stays


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    terminalreporter.write_line(f'AiiDA tests ran on storage backend {DB_BACKENDS[config.getoption("--db-backend")]}')


@pytest.fixture(scope='session')
def convex_server():
    """The local Convex server (an in-memory test double of Convex), started once per session (per xdist worker) on
    a free port. Its index lookups are not checked against full scans here (``verifying_convex_server`` does that):
    with the documents every test leaves, those scans made late tests slow."""
    from devserver.local_convex import local_convex

    with local_convex() as server:
        yield server


@pytest.fixture(scope='module')
def verifying_convex_server():
    """A local Convex server of the test module's own that checks every index lookup against a full table scan: for
    the tests whose subject is the server (tests/devserver) or the store contract (the contract suites)."""
    from devserver.local_convex import local_convex

    with local_convex(verify_indexes=True) as server:
        yield server


@pytest.fixture(scope='module')
def verifying_convex_component_server():
    """As ``verifying_convex_server``, in the component layout: an app that mounts convex/ as a component twice
    (``structstore/`` and ``structstore2/``, ``server.function_prefix`` is the first), for the contract suites."""
    from devserver.local_convex import local_convex

    with local_convex(verify_indexes=True, layout='component') as server:
        yield server


@pytest.fixture(scope='session')
def postgres_cluster():
    """Override aiida's fixture: create test databases on the running server, drop them afterwards."""
    cluster = RunningServerCluster(durable=False)
    yield cluster
    cluster.close()


@pytest.fixture(scope='session', autouse=True)
def aiida_profile(request, aiida_config, aiida_profile_factory, config_psql_dos, config_sqlite_dos):
    """The AiiDA test profile: ``core.psql_dos`` by default, ``core.sqlite_dos`` with ``--db-backend sqlite``."""
    backend = DB_BACKENDS[request.config.getoption('--db-backend')]
    storage_config = config_psql_dos() if backend == 'core.psql_dos' else config_sqlite_dos()
    # RabbitMQ (started by .ci/run) lets the end-to-end tests run the daemon; without it the profile has no broker.
    broker = 'core.rabbitmq' if port_open('127.0.0.1', 5672) else None
    with aiida_profile_factory(
        aiida_config, storage_backend=backend, storage_config=storage_config, broker_backend=broker
    ) as profile:
        yield profile


@pytest.fixture
def generate_structure():
    """Return a factory of unstored ``StructureData``: ``silicon``, ``fe2o3`` (Fe1/Fe2 kinds), ``alloy``,
    ``vacancy``, ``molecule`` (no periodicity, zero cell)."""

    def factory(name: str = 'silicon'):
        from aiida import orm

        if name == 'silicon':
            a = 5.43
            structure = orm.StructureData(cell=[[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])
            structure.append_atom(position=(0, 0, 0), symbols='Si')
            structure.append_atom(position=(a / 4, a / 4, a / 4), symbols='Si')
        elif name == 'fe2o3':
            # Four Fe (two magnetic sublattices Fe1/Fe2) and six O: Fe4O6, reduced Fe2O3.
            structure = orm.StructureData(cell=[[5.0, 0, 0], [0, 5.0, 0], [0, 0, 13.7]])
            for i, kind in enumerate(['Fe1', 'Fe2', 'Fe1', 'Fe2']):
                structure.append_atom(position=(0, 0, 3.4 * i), symbols='Fe', name=kind)
            for i in range(6):
                structure.append_atom(position=(2.5, 1.0 * i % 5, 2.2 * i), symbols='O')
        elif name == 'alloy':
            structure = orm.StructureData(cell=[[3.6, 0, 0], [0, 3.6, 0], [0, 0, 3.6]])
            structure.append_atom(position=(0, 0, 0), symbols=('Cu', 'Au'), weights=(0.75, 0.25), name='CuAu')
            structure.append_atom(position=(1.8, 1.8, 0), symbols='Cu')
        elif name == 'vacancy':
            structure = orm.StructureData(cell=[[4.2, 0, 0], [0, 4.2, 0], [0, 0, 4.2]])
            structure.append_atom(position=(0, 0, 0), symbols='Fe', weights=0.9, name='FeVac')
            structure.append_atom(position=(2.1, 2.1, 2.1), symbols='O')
        elif name == 'molecule':
            structure = orm.StructureData(cell=[[0, 0, 0], [0, 0, 0], [0, 0, 0]], pbc=(False, False, False))
            structure.append_atom(position=(0, 0, 0), symbols='O')
            structure.append_atom(position=(0.757, 0.586, 0), symbols='H')
            structure.append_atom(position=(-0.757, 0.586, 0), symbols='H')
        else:
            raise ValueError(name)
        return structure

    return factory


@pytest.fixture
def memory_backend(monkeypatch):
    """Select the in-memory store through the environment, emptied for the test."""
    from aiida_structstore.store import MemoryStore

    monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'memory')
    MemoryStore.shared().clear()
    yield MemoryStore.shared()
    MemoryStore.shared().clear()


@pytest.fixture
def convex_backend(monkeypatch, convex_server):
    """Select the local Convex server through the environment; yields a ConvexStore on it."""
    from aiida_structstore.store.convex import ConvexStore

    monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'convex')
    monkeypatch.setenv('CONVEX_URL', convex_server.url)
    monkeypatch.setenv('CONVEX_DEPLOY_KEY', convex_server.deploy_key)
    monkeypatch.delenv('STRUCTURE_STORE_FUNCTION_PREFIX', raising=False)
    with ConvexStore(convex_server.url, convex_server.deploy_key) as store:
        yield store


@pytest.fixture(scope='session')
def convex_component_server():
    """The local Convex server in the component layout (an app mounting convex/ as a component twice), started once
    per session (per xdist worker) on a free port."""
    from devserver.local_convex import local_convex

    with local_convex(layout='component') as server:
        yield server


@pytest.fixture
def convex_component_backend(monkeypatch, convex_component_server):
    """As ``convex_backend``, on the component mounted as ``structstore`` (``STRUCTURE_STORE_FUNCTION_PREFIX``)."""
    from aiida_structstore.store.convex import ConvexStore

    server = convex_component_server
    monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'convex')
    monkeypatch.setenv('CONVEX_URL', server.url)
    monkeypatch.setenv('CONVEX_DEPLOY_KEY', server.deploy_key)
    monkeypatch.setenv('STRUCTURE_STORE_FUNCTION_PREFIX', server.function_prefix)
    with ConvexStore(server.url, server.deploy_key, function_prefix=server.function_prefix) as store:
        yield store


#: The store settings the running daemon was started with (``None``: not started by ``store_daemon``).
_daemon_settings: dict[str, str | None] = {'url': None}


def _stop_daemon(daemon_client) -> None:
    """Stop the daemon if it runs. Circus answers once every worker has exited; on a busy machine that took longer
    than the client's default wait (``daemon.timeout``, 20 s), so the wait here is a guard against a hang, longer."""
    if daemon_client.is_daemon_running:
        daemon_client.stop_daemon(wait=True, timeout=180)
    _daemon_settings['url'] = None


@pytest.fixture(scope='session')
def daemon_client(aiida_profile):
    """Override aiida's fixture: the same client, and the daemon stopped at the end of the session with
    ``_stop_daemon``'s longer wait."""
    from aiida.engine.daemon import get_daemon_client

    client = get_daemon_client(aiida_profile.name)
    yield client
    _stop_daemon(client)


@pytest.fixture
def submit_and_await(started_daemon_client):
    """aiida's fixture (submit, then wait for a state), with a race fixed: it read the state twice per look
    (``process_state``, then ``is_excepted``), so a process that excepted between the two reads failed a wait for
    ``EXCEPTED``. Here each look reads the state once, and the next look comes when a process broadcasts a state
    change (``state_changed.*`` over RabbitMQ, as the executions watcher listens), not after a sleep; a look every
    5 s covers a broadcast missed while the subscription starts."""
    import inspect
    import threading
    import time

    import kiwipy
    from aiida.engine import Process, ProcessBuilder, ProcessState, submit
    from aiida.manage import get_manager
    from aiida.orm import ProcessNode

    def factory(submittable, state=ProcessState.FINISHED, timeout: int = 20, **kwargs):
        changed = threading.Event()
        communicator = get_manager().get_communicator()
        subscriber = communicator.add_broadcast_subscriber(
            kiwipy.BroadcastFilter(lambda *_: changed.set(), subject='state_changed.*')
        )
        try:
            if inspect.isclass(submittable) and issubclass(submittable, Process):
                node = submit(submittable, **kwargs)
            elif isinstance(submittable, ProcessBuilder):
                node = submit(submittable)
            elif isinstance(submittable, ProcessNode):
                node = submittable
            else:
                raise ValueError(f'type of submittable `{type(submittable)}` is not supported.')
            deadline = time.monotonic() + timeout
            while True:
                changed.clear()  # before the look: a change during it wakes the next wait
                current = node.process_state
                if current is state:
                    return node
                if current is ProcessState.EXCEPTED:
                    raise RuntimeError(f'The process excepted: {node.exception}')
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log = pathlib.Path(started_daemon_client.daemon_log_file).read_text(encoding='utf-8')
                    raise RuntimeError(f'Timed out waiting for state `{state}` (now `{current}`); daemon log:\n{log}')
                changed.wait(min(remaining, 5.0))
        finally:
            communicator.remove_broadcast_subscriber(subscriber)

    return factory


@pytest.fixture
def no_daemon(daemon_client):
    """No daemon runs during the test (the session's may have been started by an earlier test)."""
    _stop_daemon(daemon_client)


def _reset_this_process_broker() -> None:
    """After the daemon stopped: the workers' task queue went away with the last worker; this process's broker
    connection still believes it exists, and a submit before a new worker declares it again would be unroutable
    (NO_ROUTE). A new connection declares the queue itself."""
    from aiida.manage import get_manager

    get_manager().reset_runner()
    get_manager().reset_broker()


def _verdi_on_path(monkeypatch) -> None:
    """`verdi daemon start` needs the venv's bin/ on PATH (aiida looks for `verdi` when it is imported)."""
    bin_dir = pathlib.Path(sys.executable).parent
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    monkeypatch.setattr('aiida.engine.daemon.client.VERDI_BIN', str(bin_dir / 'verdi'))


def _skip_without_broker() -> None:
    from aiida.manage import get_manager

    if get_manager().get_profile().process_control_backend is None:
        pytest.skip('the daemon needs RabbitMQ (bash scripts/services.sh rabbitmq)')


@pytest.fixture
def daemon_environment(daemon_client, monkeypatch):
    """Make the next ``started_daemon_client`` (or ``submit_and_await``) start a fresh daemon in this test's
    environment, as a user runs ``verdi daemon start``; request it after the fixtures that set the environment.
    The daemon is stopped after the test. For tests whose subject is the daemon's environment; the others use
    ``store_daemon``."""
    _skip_without_broker()
    _stop_daemon(daemon_client)
    _reset_this_process_broker()
    _verdi_on_path(monkeypatch)
    yield
    _stop_daemon(daemon_client)


@pytest.fixture
def store_daemon(daemon_client, convex_server, convex_backend):
    """The AiiDA daemon with two workers, started (as users start it) in an environment that has the store settings
    of the session's local Convex server. One daemon for the whole session: started by the first test that asks,
    again only if another test stopped it (``daemon_environment`` does)."""
    _skip_without_broker()
    if not (daemon_client.is_daemon_running and _daemon_settings['url'] == convex_server.url):
        _stop_daemon(daemon_client)
        _reset_this_process_broker()
        with pytest.MonkeyPatch.context() as monkeypatch:
            _verdi_on_path(monkeypatch)
            monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'convex')
            monkeypatch.setenv('CONVEX_URL', convex_server.url)
            monkeypatch.setenv('CONVEX_DEPLOY_KEY', convex_server.deploy_key)
            monkeypatch.delenv('STRUCTURE_STORE_SETTINGS_FILE', raising=False)
            daemon_client.start_daemon(number_workers=2)
        _daemon_settings['url'] = convex_server.url
    assert daemon_client.is_daemon_running
    return daemon_client


@pytest.fixture
def run_cli_command():
    """Run a ``verdi data structstore`` command in-process; return the click result (asserts the exit code)."""
    from aiida.common import AttributeDict
    from aiida.manage.configuration import get_config, get_profile
    from click.testing import CliRunner

    def run(command, args, *, raises: bool = False, input: str | None = None):
        obj = AttributeDict({'config': get_config(), 'profile': get_profile()})
        result = CliRunner().invoke(command, [str(a) for a in args], obj=obj, input=input)
        if raises:
            assert result.exit_code != 0, result.output
        else:
            assert result.exit_code == 0, f'{result.output}\n{result.exception!r}'
        return result

    return run
