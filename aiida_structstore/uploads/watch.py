"""The loop of ``uploads import`` (until no upload is pending) and ``uploads watch`` (until stopped).

:class:`UploadLoop` claims and imports uploads one after the other through an :class:`~.importer.UploadImporter`.
When none is pending, ``watch`` looks again after ``interval`` seconds, or at once when :meth:`UploadLoop.wake` is
called; a store that cannot be reached is tried again after a wait that doubles up to :data:`MAX_RETRY_INTERVAL`.
``request_stop`` (called on SIGTERM/SIGINT by the command) ends the loop after the upload in progress.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.exceptions import StructStoreError
from .importer import UploadImporter, UploadOutcome

__all__ = ('MAX_RETRY_INTERVAL', 'LoopStats', 'UploadLoop', 'claimer_id')

LOGGER = logging.getLogger(__name__)
#: The longest wait between two looks at a store that fails.
MAX_RETRY_INTERVAL = 60.0


def claimer_id() -> str:
    """Who claims: host, process id and a random part (a restarted process on the same host is another claimer)."""
    return f'{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}'


@dataclass
class LoopStats:
    """What the loop has done so far, by outcome status."""

    counts: dict[str, int] = field(default_factory=lambda: {'imported': 0, 'failed': 0, 'lost': 0, 'error': 0})
    store_errors: int = 0
    last_error: str | None = None


class UploadLoop:
    """Claims and imports uploads until none is pending (:meth:`drain`) or until stopped (:meth:`run`)."""

    def __init__(
        self,
        importer: UploadImporter,
        *,
        interval: float = 2.0,
        stop: threading.Event | None = None,
        on_outcome: Callable[[UploadOutcome], None] | None = None,
    ) -> None:
        self.importer = importer
        self.interval = interval
        self.stop = stop or threading.Event()
        self.on_outcome = on_outcome
        self.stats = LoopStats()
        self._wake = threading.Event()

    def wake(self) -> None:
        """Look for pending uploads now (for a caller that learns of a new upload)."""
        self._wake.set()

    def request_stop(self) -> None:
        """End the loop after the upload in progress (safe from a signal handler)."""
        self.stop.set()
        self._wake.set()

    def drain(self) -> list[UploadOutcome]:
        """Import uploads until none is pending or the loop is stopped; the outcomes in order. Store errors while
        claiming propagate."""
        outcomes = []
        while not self.stop.is_set():
            outcome = self.importer.import_next()
            if outcome is None:
                break
            self.stats.counts[outcome.status] = self.stats.counts.get(outcome.status, 0) + 1
            outcomes.append(outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
        return outcomes

    def run(self) -> None:
        """Import as uploads come, until :attr:`stop` is set."""
        delay = self.interval
        while not self.stop.is_set():
            try:
                self.drain()
            except (StructStoreError, OSError) as exc:
                self.stats.store_errors += 1
                self.stats.last_error = f'{type(exc).__name__}: {exc}'
                LOGGER.warning('cannot claim uploads (%s); trying again in %.0f s', self.stats.last_error, delay)
                self._pause(delay)
                delay = min(delay * 2, MAX_RETRY_INTERVAL)
                continue
            delay = self.interval
            self._pause(self.interval)

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if woken or stopped."""
        if not self.stop.is_set():
            self._wake.wait(seconds)
        self._wake.clear()
