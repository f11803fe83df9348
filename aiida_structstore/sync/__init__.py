"""The one sync engine (:mod:`.engine`: select → project → diff → write → remember) and its reports
(:mod:`.report`), shared by every record kind; each kind's adapter is in its own package
(:mod:`aiida_structstore.structures.sync`, :mod:`aiida_structstore.executions.sync`)."""

from .engine import Item, Projected, SyncAdapter, run_sync
from .report import MAX_REPORTED_FAILURES, SyncReport, VerifyReport

__all__ = ('MAX_REPORTED_FAILURES', 'Item', 'Projected', 'SyncAdapter', 'SyncReport', 'VerifyReport', 'run_sync')
