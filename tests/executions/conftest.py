"""Fixtures of the execution tests: the broker, a watcher's own store, and waiting on the watcher's pushes."""

from __future__ import annotations

import secrets
import threading
from urllib.parse import urlsplit, urlunsplit

import pytest

from aiida_structstore.store.convex import ConvexStore

#: How long a wait for the watcher may take before the test fails (a guard against hanging, not a timed assertion).
WAIT_SECONDS = 120


@pytest.fixture
def tenant() -> str:
    return f't-{secrets.token_hex(4)}'


@pytest.fixture
def broker(aiida_profile):
    """The profile's RabbitMQ broker (the live path needs one)."""
    from aiida.manage import get_manager

    if get_manager().get_profile().process_control_backend is None:
        pytest.skip('the live path needs RabbitMQ (bash scripts/services.sh rabbitmq)')
    return get_manager().get_broker()


@pytest.fixture
def watch_store(convex_server):
    """A store of its own for the watcher's thread, on the session's local Convex server."""
    with ConvexStore(convex_server.url, convex_server.deploy_key) as store:
        yield store


class Pushes:
    """Collects the watcher's push reports; :meth:`wait_for` waits (on a condition, no polling) until a predicate
    about the store holds after a push."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.reports: list = []

    def __call__(self, report) -> None:
        with self.condition:
            if report is not None:
                self.reports.append(report)
            self.condition.notify_all()

    def states(self, uuid: str) -> list[str]:
        """The states written for a process, in order."""
        with self.condition:
            return [c.state for r in self.reports for c in r.written_contents if c.key.process_uuid == uuid]

    def wait_for(self, predicate, what: str) -> None:
        with self.condition:
            assert self.condition.wait_for(predicate, WAIT_SECONDS), f'the watcher never got there: {what}'


@pytest.fixture
def pushes() -> Pushes:
    return Pushes()


def communicator_at(broker, port: int):
    """A communicator like the profile's (same exchanges, same messages) that connects to ``127.0.0.1:port``: a proxy
    in front of the profile's broker, or a broker of its own."""
    from aiida.brokers.rabbitmq.utils import get_launch_queue_name, get_message_exchange_name, get_task_exchange_name
    from aiida.manage import get_manager
    from aiida.orm.utils import serialize
    from kiwipy.rmq import RmqThreadCommunicator

    url = urlsplit(broker.get_url())
    netloc = url.netloc.rsplit('@', 1)
    netloc[-1] = f'127.0.0.1:{port}'
    prefix = f'aiida-{get_manager().get_profile().uuid}'
    return RmqThreadCommunicator.connect(
        connection_params={'url': urlunsplit(url._replace(netloc='@'.join(netloc)))},
        message_exchange=get_message_exchange_name(prefix),
        encoder=lambda obj: serialize.serialize(obj, encoding='utf-8'),
        decoder=serialize.deserialize_unsafe,
        task_exchange=get_task_exchange_name(prefix),
        task_queue=get_launch_queue_name(prefix),
        testing_mode=get_manager().get_profile().is_test_profile,
    )


@pytest.fixture
def rabbitmq_node():
    """A RabbitMQ node of the test's own (see ``tests/rabbitmq_node.py``), stopped and removed afterwards."""
    import os

    from ..rabbitmq_node import RabbitMQNode

    try:
        node = RabbitMQNode()
    except RuntimeError as exc:
        if os.environ.get('CI') == 'true':
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    node.start()
    yield node
    node.close()
