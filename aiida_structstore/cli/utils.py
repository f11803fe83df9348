"""Helpers shared by the commands: opening the store, turning package errors into ``echo_critical``, and the
process-wide settings a command may choose for its own process."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
from collections.abc import Iterator

from aiida.cmdline.utils import echo

from ..core.exceptions import StructStoreError


def store_errors(func):
    """Print a :class:`StructStoreError` through ``echo_critical`` (exit code 1) instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except StructStoreError as exc:
            echo.echo_critical(f'{type(exc).__name__}: {exc}')

    return wrapper


@contextlib.contextmanager
def opened_store(settings=None):
    """The store from the environment (or from ``settings``), closed afterwards."""
    from ..store import open_store

    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


def store_settings():
    """The store's settings from the environment and the settings file, read once by a command."""
    from ..store.settings import read_settings

    return read_settings()


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the garbage collector's first threshold while a command syncs, in the command's own process.

    Projecting allocates many small, short-lived, acyclic containers (positions, dicts of fields); with the default
    threshold (700) the collector runs thousands of times and walks every object the process holds (ORM session,
    caches), which measured at about 40 % of a sync's time. Reference counting frees these objects anyway. This is a
    setting of the whole process, so only a command (which owns its process) makes it, never the library: a daemon
    worker running a sync keeps its own.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def table(rows, headers) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt='simple')


#: Restore commands printed by ``verify`` at most (``project`` commands are one per node).
MAX_RESTORE_COMMANDS = 20


def echo_verify(report, what: str, node: str, nodes: str) -> None:
    """Print a verification's problems and its table; exit 1 if the store and AiiDA do not match."""
    for ident, problem in report.problems:
        echo.echo_error(f'{ident}: {problem}')
    echo.echo(
        table(
            [[report.checked, report.matching, report.without_node, report.remembered, report.missing]],
            ['records', f'match their {node}', f'without {node}', f'{nodes} projected here', 'missing from the store'],
        )
    )
    for command in report.restore[:MAX_RESTORE_COMMANDS]:
        echo.echo_report(f'to write the records again: {command}')
    if len(report.restore) > MAX_RESTORE_COMMANDS:
        echo.echo_report(f'... and {len(report.restore) - MAX_RESTORE_COMMANDS} more commands like these')
    if not report.ok:
        echo.echo_critical(f'{len(report.problems)} problems: the store and AiiDA do not match')
    echo.echo_success(f'{report.matching} {what} match their AiiDA {nodes}, and no projected {node} is missing')


class _NoStoreTraceback(logging.Filter):
    """Drops the traceback a process reports when it excepted on one of this package's errors (the command prints
    that error as one line); the process node's own log, written by another handler, keeps it."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if 'Traceback (most recent call last)' not in text:
            return True
        last = text.rstrip().rsplit('\n', 1)[-1]
        return not last.startswith('aiida_structstore.core.exceptions.')


@contextlib.contextmanager
def quiet_store_tracebacks() -> Iterator[None]:
    """While a calcfunction of this package runs from a command: its report of a store error's traceback is not
    printed on the console (the node's log keeps it), so that the command's one line is all the user sees."""
    # The console handlers (the node's log is written by AiiDA's database handler, which is left alone).
    handlers = [
        handler
        for name in ('aiida', 'verdi')
        for handler in logging.getLogger(name).handlers
        if type(handler).__name__ != 'DBLogHandler'
    ]
    quiet = _NoStoreTraceback()
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
