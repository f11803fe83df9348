"""Which processes belong to a target: those of a group, given ones, or those that used its structures, with
everything they called.

A selection names its **roots**:

* ``group``: the processes in an AiiDA group;
* ``processes``: processes given by pk;
* ``linked``: the processes that took or produced a structure projected into the target (its extra is on the
  structure), that is the workflows and calculations that used synced structures.

and takes in every process a root called, at any depth (``CALL_CALC``/``CALL_WORK`` links): the calculation jobs
of a work chain belong to it even when they took no structure of the target.

Everything is answered with ``QueryBuilder`` queries that project ids only; no node is loaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiida import orm

from ..core.exceptions import InvalidInputError
from .projection import CALL_LINKS, INPUT_LINKS, OUTPUT_LINKS, batched

__all__ = ('ProcessSelection',)


def _ids(query: orm.QueryBuilder) -> set[int]:
    return {row[0] for row in query.iterall()}


def _linked(extra: str, among: Iterable[int] | None = None, projected_since_ms: int | None = None) -> set[int]:
    """Processes that took or produced a structure projected into the target (since the time, if given); an extra
    copied from another node by ``clone()`` does not count."""
    structure_filters: dict = {'extras': {'has_key': extra}}
    if projected_since_ms is not None:
        structure_filters = {f'extras.{extra}.projected_ms': {'>=': projected_since_ms}}
    found: set[int] = set()
    groups = [None] if among is None else list(batched(among))
    for pks in groups:
        for links, relation in ((INPUT_LINKS, 'with_incoming'), (OUTPUT_LINKS, 'with_outgoing')):
            query = orm.QueryBuilder()
            query.append(
                orm.StructureData,
                filters=structure_filters,
                tag='structure',
                project=['uuid', f'extras.{extra}.node_uuid'],
            )
            query.append(
                orm.ProcessNode,
                edge_filters={'type': {'in': links}},
                filters={} if pks is None else {'id': {'in': pks}},
                project=['id'],
                **{relation: 'structure'},
            )
            found |= {pk for uuid, owner, pk in query.iterall() if owner == uuid}
    return found


def descendants(roots: Iterable[int]) -> set[int]:
    """Every process called by one of ``roots``, at any depth (one query per level)."""
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        called: set[int] = set()
        for pks in batched(sorted(frontier)):
            query = orm.QueryBuilder()
            query.append(orm.ProcessNode, filters={'id': {'in': pks}}, tag='caller')
            query.append(
                orm.ProcessNode, with_incoming='caller', edge_filters={'type': {'in': CALL_LINKS}}, project=['id']
            )
            called |= _ids(query)
        frontier = called - found
        found |= frontier
    return found


def ancestors(pks: Iterable[int]) -> dict[int, set[int]]:
    """``{pk: the processes that called it, at any depth}`` (one query per level)."""
    parent_of: dict[int, int] = {}
    frontier = set(pks)
    while frontier:
        found: dict[int, int] = {}
        for group in batched(sorted(frontier)):
            query = orm.QueryBuilder()
            query.append(orm.ProcessNode, filters={'id': {'in': group}}, tag='called', project=['id'])
            query.append(
                orm.ProcessNode, with_outgoing='called', edge_filters={'type': {'in': CALL_LINKS}}, project=['id']
            )
            found.update({child: parent for child, parent in query.iterall()})
        parent_of.update(found)
        frontier = set(found.values()) - set(parent_of)
    result = {}
    for pk in pks:
        chain, current = set(), pk
        while current in parent_of and parent_of[current] not in chain:
            current = parent_of[current]
            chain.add(current)
        result[pk] = chain
    return result


@dataclass(frozen=True)
class ProcessSelection:
    """The processes of a target (see the module docstring); ``extra`` is the target's extra."""

    extra: str
    group: orm.Group | None = None
    processes: tuple[int, ...] = ()
    linked: bool = False
    _group: tuple[int, str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.group is None and not self.processes and not self.linked:
            raise InvalidInputError('select processes: a group, processes, or those linked to the synced structures')
        # The group's pk and label, read now: the ORM object belongs to the caller's thread and session, and the live
        # path evaluates the selection in its own thread.
        object.__setattr__(self, '_group', None if self.group is None else (self.group.pk, self.group.label))

    def describe(self) -> str:
        parts = []
        if self._group is not None:
            parts.append(f'group {self._group[1]!r}')
        if self.processes:
            parts.append(f'{len(self.processes)} processes')
        if self.linked:
            parts.append('the processes that used synced structures')
        return ' and '.join(parts)

    def roots(self, among: Iterable[int] | None = None) -> set[int]:
        """The roots of the selection (among ``among`` only, if given)."""
        among_list = None if among is None else sorted(set(among))
        found: set[int] = set()
        if self._group is not None:
            query = orm.QueryBuilder()
            query.append(orm.Group, filters={'id': self._group[0]}, tag='group')
            filters = {} if among_list is None else {'id': {'in': among_list}}
            query.append(orm.ProcessNode, with_group='group', filters=filters, project=['id'])
            found |= _ids(query)
        if self.processes:
            wanted = set(self.processes) if among_list is None else set(self.processes) & set(among_list)
            found |= wanted
        if self.linked:
            found |= _linked(self.extra, among_list)
        return found

    def all(self) -> set[int]:
        """Every selected process: the roots and all they called."""
        roots = self.roots()
        return roots | descendants(roots)

    def contains(self, pks: Iterable[int]) -> set[int]:
        """Those of ``pks`` that are selected: roots, or called (at any depth) by a root."""
        pks = set(pks)
        chains = ancestors(pks)
        roots = self.roots(pks | set().union(*chains.values()))
        return {pk for pk in pks if pk in roots or chains[pk] & roots}

    def changed_since(self, selected: set[int], since: dt.datetime) -> set[int]:
        """Those of ``selected`` modified at or after ``since``, or that took or produced a structure projected
        into the target at or after it (their records name it now)."""
        query = orm.QueryBuilder().append(orm.ProcessNode, filters={'mtime': {'>=': since}}, project=['id'])
        modified = _ids(query)
        projected = _linked(self.extra, projected_since_ms=int(since.timestamp() * 1000))
        return (modified | projected) & selected


def check_processes(pks: Iterable[int]) -> tuple[int, ...]:
    """``pks`` if every one is a stored process node; :class:`InvalidInputError` naming those that are not."""
    wanted = sorted(set(pks))
    found: set[int] = set()
    for group in batched(wanted):
        found |= _ids(orm.QueryBuilder().append(orm.ProcessNode, filters={'id': {'in': group}}, project=['id']))
    missing = [pk for pk in wanted if pk not in found]
    if missing:
        raise InvalidInputError(f'not process nodes: {", ".join(map(str, missing[:20]))}')
    return tuple(wanted)
