"""The live path: follow AiiDA's process state changes as they happen and push the execution records.

Every process broadcasts each state change over RabbitMQ (kiwipy) with the subject ``state_changed.<from>.<to>``
and its pk as sender. :class:`ExecutionWatcher` subscribes to them with a ``kiwipy.BroadcastFilter`` on the
profile's communicator (or one it is given), and a worker thread turns them into records:

1. the broadcast callback only notes the pk (it runs on the communicator's thread, which must not wait);
2. the worker takes every pk noted so far (bursts become one batch), keeps those of the selection (a group, given
   processes, or those that used the target's structures, with all they called), and pushes them as the sync
   does (:func:`~.sync.sync_processes`: project, diff with what the node remembers, write the changed records, one
   mutation per batch, remember);
3. when a process of this package that projects structures (``structstore.project_structure``, the
   ``structstore.project`` work chain, a sync) is among them, the processes linked to the structures it projected
   are pushed too: their records now name those structures.

It survives what can go away:

* **the broker**: kiwipy's connection is robust (aio-pika reconnects, restores the broadcast queue and its
  consumer); broadcasts sent while it was down are lost, so on every reconnection the watcher **catches up** from
  modification times (the selected processes modified, or linked to structures projected, since shortly before the
  last successful push);
* **the store**: a push that fails after the store's own retries is kept and tried again (every
  ``retry_interval`` seconds, each failure doubling it up to :data:`MAX_RETRY_INTERVAL`), then a catch-up covers
  what changed meanwhile; a store whose instance id changed (its data was lost, as when the local test server
  restarts), noticed after a write or at any catch-up, gets every selected process again;
* anything missed otherwise: a catch-up also runs every ``catch_up_interval`` seconds.

On start it catches up from the newest record the workspace holds (``since='auto'``), so a watcher started after a
pause writes what changed meanwhile. ``stats`` counts events, pushes, records written and the latency from a
state change (the node's modification time) to its record committed in the store.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import kiwipy
from aiida import orm

from ..core.exceptions import BackendUnavailableError, StructStoreError
from ..store.base import Store
from ..sync import SyncReport
from .projection import ProjectionTarget
from .selection import ProcessSelection, check_processes
from .sync import MARGIN, sync_processes

__all__ = ('MAX_RETRY_INTERVAL', 'ExecutionWatcher', 'WatchStats')

LOGGER = logging.getLogger(__name__)
#: The longest wait between two attempts to push to a store that fails.
MAX_RETRY_INTERVAL = 60.0
#: Subjects of AiiDA's state-change broadcasts.
SUBJECT = 'state_changed.*'
#: Process types whose completion projected structures: the processes linked to those structures are pushed again.
PROJECTING = ('structstore.project', 'project_structure', 'structstore.sync', 'sync_part')


@dataclass
class WatchStats:
    """What the watcher has done so far (read it from another thread: values only grow)."""

    events: int = 0
    pushes: int = 0
    written: int = 0
    catch_ups: int = 0
    reconnects: int = 0
    failures: int = 0
    store_errors: int = 0
    #: Seconds from a process's state change (its node's modification time) to its record committed, most recent last.
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=10_000))
    last_error: str | None = None


class ExecutionWatcher:
    """Follows state changes and pushes execution records into one target (see the module docstring).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. ``on_push`` (if given) is called from the
    worker thread after each round of work, once :attr:`stats` counts it: with the
    :class:`~.sync.SyncReport` of each push, or with ``None`` after a round that failed (for callers that
    wait on progress).
    """

    def __init__(
        self,
        store: Store,
        *,
        tenant_id: str,
        workspace_id: str,
        group: orm.Group | None = None,
        processes: Sequence[int] = (),
        linked: bool = False,
        communicator: kiwipy.Communicator | None = None,
        catch_up_interval: float = 60.0,
        retry_interval: float = 2.0,
        hostnames: bool = False,
        on_push: Any = None,
    ) -> None:
        self.target = ProjectionTarget(store, tenant_id, workspace_id, hostnames=hostnames)
        self.selection = ProcessSelection(
            self.target.extra, group=group, processes=check_processes(processes), linked=linked
        )
        self.catch_up_interval = catch_up_interval
        self.retry_interval = retry_interval
        self.on_push = on_push
        self.stats = WatchStats()
        self._communicator = communicator
        self._subscriber: str | None = None
        self._condition = threading.Condition()
        self._pending: set[int] = set()
        self._catch_up: bool | str = 'auto'  # False, True (since the watermark) or 'all'/'auto'
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._since: dt.datetime | None = None  # the watermark: catch-ups look again from here

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> ExecutionWatcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Subscribe to the state-change broadcasts and start the worker (which first catches up)."""
        if self._communicator is None:
            from aiida.manage import get_manager

            self._communicator = get_manager().get_communicator()
        subscriber = kiwipy.BroadcastFilter(self._on_broadcast, subject=SUBJECT)
        self._subscriber = self._communicator.add_broadcast_subscriber(subscriber)
        self._watch_reconnections()
        self._thread = threading.Thread(target=self._run, name='structstore-executions-watch', daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Unsubscribe and stop the worker (a push in progress is finished first)."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._subscriber is not None and self._communicator is not None:
            try:
                self._communicator.remove_broadcast_subscriber(self._subscriber)
            except Exception as exc:  # the connection may be gone; nothing is left to remove then
                LOGGER.info('could not remove the broadcast subscriber: %s', exc)
            self._subscriber = None
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def request_catch_up(self, everything: bool = False) -> None:
        """Ask the worker to catch up from the watermark (or to push every selected process)."""
        with self._condition:
            self._catch_up = 'all' if everything else (self._catch_up or True)
            self._condition.notify_all()

    # -- callbacks (on the communicator's thread: note and return) ---------------------------------------------

    def _on_broadcast(self, _communicator, _body, sender=None, subject=None, correlation_id=None) -> None:
        if not isinstance(sender, int):
            return
        with self._condition:
            self.stats.events += 1
            self._pending.add(sender)
            self._condition.notify_all()

    def _watch_reconnections(self) -> None:
        """Catch up whenever the broker connection comes back (broadcasts sent meanwhile were lost)."""
        # kiwipy does not expose it: its RabbitMQ communicator holds an aio-pika RobustConnection.
        connection = getattr(getattr(self._communicator, '_communicator', None), '_connection', None)
        callbacks = getattr(connection, 'reconnect_callbacks', None)
        if callbacks is None:
            LOGGER.warning('cannot watch the broker connection; relying on catch-ups every %ss', self.catch_up_interval)
            return

        def reconnected(*_args: Any) -> None:
            self.stats.reconnects += 1
            LOGGER.info('the broker connection is back: catching up')
            self.request_catch_up()

        callbacks.add(reconnected)

    # -- the worker --------------------------------------------------------------------------------------------

    def _take(self, timeout: float) -> tuple[set[int], bool | str] | None:
        """Wait for work (events or a catch-up) for up to ``timeout`` seconds; ``None`` when stopping."""
        with self._condition:
            if not (self._pending or self._catch_up or self._stopping):
                self._condition.wait(timeout)
            if self._stopping:
                return None
            pks, catch_up = self._pending, self._catch_up
            self._pending, self._catch_up = set(), False
            return pks, catch_up

    def _give_back(self, pks: set[int], catch_up: bool | str) -> None:
        with self._condition:
            self._pending |= pks
            if catch_up == 'all' or self._catch_up == 'all':
                self._catch_up = 'all'
            else:
                self._catch_up = self._catch_up or catch_up

    def _run(self) -> None:
        next_catch_up = time.monotonic() + self.catch_up_interval
        delay = self.retry_interval
        while True:
            work = self._take(max(0.0, next_catch_up - time.monotonic()))
            if work is None:
                return
            pks, catch_up = work
            if time.monotonic() >= next_catch_up:
                catch_up = catch_up or True
            if not pks and not catch_up:
                continue
            started = dt.datetime.now(dt.timezone.utc)
            try:
                reports = self._push(pks, catch_up)
            except Exception as exc:  # never let the worker die: keep the work, try again later
                if not isinstance(exc, (BackendUnavailableError, StructStoreError, OSError)):
                    LOGGER.exception('pushing execution records failed')
                self._failed(exc, pks, catch_up)
                self._notify([None])
                with self._condition:
                    if not self._stopping:
                        self._condition.wait(delay)
                delay = min(delay * 2, MAX_RETRY_INTERVAL)
                continue
            delay = self.retry_interval
            if catch_up:
                # Catch-ups cover what changed since shortly before the previous one started: contiguous, whatever
                # the events in between did.
                self.stats.catch_ups += 1
                next_catch_up = time.monotonic() + self.catch_up_interval
                self._since = started - MARGIN
            self._notify(reports)

    def _notify(self, reports: list[SyncReport | None]) -> None:
        if self.on_push is not None:
            for report in reports:
                self.on_push(report)

    def _failed(self, exc: BaseException, pks: set[int], catch_up: bool | str) -> None:
        self.stats.store_errors += 1
        self.stats.last_error = f'{type(exc).__name__}: {exc}'
        LOGGER.warning('execution records not pushed (%s); trying again', self.stats.last_error)
        # What changed while the store was away is found by a catch-up from the last successful push.
        self._give_back(pks, catch_up or True)

    def _push(self, pks: set[int], catch_up: bool | str) -> list[SyncReport]:
        store = self.target.store
        candidates = set(pks)
        if catch_up and store.persistent and store.current_instance() != store.instance:
            # The store lost its data since this watcher last wrote (what the nodes remember is of the old instance,
            # so nothing would look changed): write every selected process into the new instance.
            store.forget_instance()
            catch_up = 'all'
        if catch_up == 'auto':
            latest = store.executions.latest_modified(self.target.tenant_id, self.target.workspace_id)
            self._since = None if latest is None else latest - MARGIN
            catch_up = 'all' if latest is None else True
        if catch_up == 'all':
            candidates |= self.selection.all()
        elif catch_up:
            selected = self.selection.all()
            candidates |= selected if self._since is None else self.selection.changed_since(selected, self._since)
        selected = self.selection.contains(candidates) if candidates else set()
        reports = [self._push_selected(sorted(selected))]
        if reports[-1].aborted:
            # The store lost its data (a new instance): write every selected process into the new one.
            store.forget_instance()
            reports.append(self._push_selected(sorted(self.selection.all())))
        contents = [content for report in reports for content in report.projected]
        projecting = [c for c in contents if c.process_type and any(p in c.process_type for p in PROJECTING)]
        if projecting:
            since = min(c.modified_at for c in projecting) - MARGIN
            linked = self.selection.changed_since(self.selection.all(), since) - set(selected)
            if linked:
                reports.append(self._push_selected(sorted(linked)))
        self.stats.failures += sum(report.failed for report in reports)
        return reports

    def _push_selected(self, pks: list[int]) -> SyncReport:
        report = sync_processes(self.target, pks)
        committed = time.time()
        self.stats.pushes += 1
        self.stats.written += report.written
        for content in report.written_contents:
            self.stats.latencies.append(committed - content.modified_at.timestamp())
        return report
