"""Imports that an earlier run left unfinished: the import calcfunctions' nodes still Created or Running although
the operating-system process that ran them is gone.

``verdi data structstore import`` runs each calcfunction inside one database transaction, so a run of it that is
killed leaves nothing. A calcfunction called some other way (a script, a work chain in a daemon worker) stores its
outputs one by one after its body returns, and a kill in between leaves a Running process with part of its outputs
and no group. Such a run records which process runs it (:func:`mark_runner`), so that a later import can tell a
live run from a dead one (:func:`find_interrupted`). Nodes from versions before the mark are taken as dead when
unfinished.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import socket

from aiida import orm

__all__ = ('IMPORT_PROCESS_TYPES', 'RUNNER_EXTRA', 'UnfinishedImport', 'find_interrupted', 'mark_runner')

IMPORT_PROCESS_TYPES = (
    'aiida.calculations:structstore.import_cif',
    'aiida.calculations:structstore.import_pw_input',
)
#: Extra of an import process node run outside a transaction: ``host``, ``boot`` (boot id), ``pid``, ``start``.
RUNNER_EXTRA = 'structstore_runner'


@dataclasses.dataclass(frozen=True)
class UnfinishedImport:
    """An unfinished import process whose runner is gone, and how many outputs it had stored."""

    pk: int
    outputs: int


def _boot_id() -> str:
    try:
        return pathlib.Path('/proc/sys/kernel/random/boot_id').read_text().strip()
    except OSError:
        return ''


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks after boot, from ``/proc``), ``None`` if no such process;
    ``''`` where ``/proc`` is not available but the process exists."""
    try:
        text = pathlib.Path(f'/proc/{pid}/stat').read_text()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ''
    return text.rsplit(')', 1)[1].split()[19]  # field 22; the command name in parentheses may hold spaces


def _runner() -> dict:
    return {'host': socket.gethostname(), 'boot': _boot_id(), 'pid': os.getpid(), 'start': _start_time(os.getpid())}


def mark_runner() -> None:
    """Record on the running import's node which process runs it, unless a transaction hides the node anyway."""
    from aiida.engine import Process
    from aiida.manage import get_manager

    process = Process.current()
    if process is None or get_manager().get_profile_storage().in_transaction:
        return
    process.node.base.extras.set(RUNNER_EXTRA, _runner())


def _gone(runner: dict | None) -> bool:
    """Whether the process that ran an import is gone; ``False`` where this host cannot tell (another host)."""
    if not runner:
        return True  # run by a version that did not mark its runs
    if runner.get('host') != socket.gethostname():
        return False
    if runner.get('boot') != _boot_id():
        return True  # the machine restarted since
    start = _start_time(int(runner['pid']))
    return start is None or (start != '' and start != runner.get('start'))


def find_interrupted() -> list[UnfinishedImport]:
    """The import processes left unfinished by a runner that is gone, oldest first."""
    builder = orm.QueryBuilder().append(
        orm.CalcFunctionNode,
        tag='process',
        filters={
            'process_type': {'in': list(IMPORT_PROCESS_TYPES)},
            'or': [{'attributes': {'!has_key': 'sealed'}}, {'attributes.sealed': False}],
        },
        project=['id', f'extras.{RUNNER_EXTRA}'],
    )
    found = [pk for pk, runner in builder.all() if _gone(runner)]
    if not found:
        return []
    outputs = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'id': {'in': found}}, tag='p', project='id')
    outputs.append(orm.Data, with_incoming='p', project='id')
    counts = dict.fromkeys(found, 0)
    for pk, _ in outputs.iterall():
        counts[pk] += 1
    return [UnfinishedImport(pk, counts[pk]) for pk in sorted(found)]
