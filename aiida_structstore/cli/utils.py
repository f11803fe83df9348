"""Helpers shared by the commands: opening the store, turning package errors into ``echo_critical``."""

from __future__ import annotations

import contextlib
import functools

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
def opened_store():
    """The store from the environment, closed afterwards."""
    from ..store import open_store

    store = open_store()
    try:
        yield store
    finally:
        store.close()


def table(rows, headers) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt='simple')
