"""What a sync did, and what a verification found: one report each for every record kind (structures, executions).

This module imports no AiiDA module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

__all__ = ('MAX_REPORTED_FAILURES', 'SyncReport', 'VerifyReport')

#: Failures (and dry-run notes) kept in the report with their messages; all failures are counted.
MAX_REPORTED_FAILURES = 100


@dataclass
class SyncReport:
    """What a sync (or, with ``dry_run``, what it would do; or one push of the live path) did.

    ``selected`` nodes were chosen, ``considered`` of them looked at (fewer with an incremental ``since``), and each
    considered node ended ``new``, ``updated``, ``unchanged``, ``stale`` (the store holds a later state: executions
    only) or ``failed``. A sync that had to stop as a whole (the store lost its data during it) is ``aborted``, with
    the reason; ``new`` and ``updated`` then count what the store holds, and ``lost`` what this sync wrote into the
    data the store lost.
    """

    tenant_id: str
    workspace_id: str
    dry_run: bool = False
    selected: int = 0
    considered: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    failed: int = 0
    #: Records this sync wrote that the store lost with its data during the sync (not in ``new``/``updated``).
    lost: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    #: Why the sync stopped as a whole (``None``: it did not).
    aborted: str | None = None
    #: For an incremental sync: the time it caught up from.
    since: dt.datetime | None = None
    seconds: float = 0.0
    #: The contents projected, and those written (created or updated), when the caller asked to keep them (the live
    #: path notifies about them); not summed by :meth:`add`.
    projected: list[Any] = field(default_factory=list, repr=False)
    written_contents: list[Any] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.aborted is None

    @property
    def written(self) -> int:
        return self.new + self.updated

    def fail(self, pk: int, message: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append((pk, message))

    def note(self, pk: int, message: str) -> None:
        if len(self.notes) < MAX_REPORTED_FAILURES:
            self.notes.append((pk, message))

    def abort(self, message: str) -> None:
        """The sync as a whole failed: it stops, and nothing more is counted or remembered."""
        self.aborted = message

    def add(self, other: SyncReport) -> None:
        """Count ``other``'s outcome into this report."""
        for name in ('considered', 'new', 'updated', 'unchanged', 'stale', 'lost'):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for pk, message in other.failures:
            self.fail(pk, message)
        self.failed += other.failed - len(other.failures)
        for pk, message in other.notes:
            self.note(pk, message)
        self.aborted = self.aborted or other.aborted

    def as_dict(self) -> dict[str, Any]:
        return {
            'tenant_id': self.tenant_id,
            'workspace_id': self.workspace_id,
            'dry_run': self.dry_run,
            'selected': self.selected,
            'considered': self.considered,
            'new': self.new,
            'updated': self.updated,
            'unchanged': self.unchanged,
            'stale': self.stale,
            'failed': self.failed,
            'lost': self.lost,
            'aborted': self.aborted,
            'since': None if self.since is None else self.since.isoformat(),
            'seconds': round(self.seconds, 3),
        }


@dataclass
class VerifyReport:
    """What a verification of a workspace against AiiDA found. ``ok`` is true only if every record matches its node
    and every node remembered as projected has its record."""

    checked: int = 0
    matching: int = 0
    without_node: int = 0
    remembered: int = 0
    missing: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    #: The commands that write the missing records again (a plain ``sync`` trusts what the nodes remember).
    restore: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems
