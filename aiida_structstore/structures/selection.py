"""Which structures a sync selects: ``StructureData`` nodes (all, a group, given pks or UUIDs, and/or ``QueryBuilder``
filters that can only narrow the selection), read as rows ``[pk, uuid, label, extra?]`` straight from the database
in pages after the last pk seen (keyset paging), without loading ORM nodes."""

from __future__ import annotations

import uuid as uuid_lib
from collections.abc import Iterator, Sequence
from typing import Any

from aiida import orm
from aiida.manage import get_manager

from ..core.exceptions import InvalidInputError

__all__ = ('count_selected', 'pages', 'rows', 'select_structures')


def select_structures(
    *,
    group: orm.Group | None = None,
    nodes: Sequence[int | str] | None = None,
    filters: dict[str, Any] | None = None,
    after_id: int | None = None,
    limit: int | None = None,
    extra: str | None = None,
) -> orm.QueryBuilder:
    """A query of the selected ``StructureData`` rows: ``id``, ``uuid``, ``label`` and, if given, the extra ``extra``.

    ``filters`` are combined with ``and``: they narrow the selection and can never widen it beyond
    ``StructureData`` (a filter on ``node_type`` alone would replace the type restriction).
    """
    query = orm.QueryBuilder()
    clauses: list[dict[str, Any]] = [filters] if filters else []
    if nodes is not None:
        pks = [n for n in nodes if isinstance(n, int)]
        uuids = []
        for value in (n for n in nodes if not isinstance(n, int)):
            try:
                uuids.append(str(uuid_lib.UUID(str(value))))
            except ValueError:
                raise InvalidInputError(f'node {value!r} is neither a pk nor a UUID') from None
        either = ([{'id': {'in': pks}}] if pks else []) + ([{'uuid': {'in': uuids}}] if uuids else [])
        clauses.append({'or': either or [{'id': {'in': [-1]}}]})
    if after_id is not None:
        clauses.append({'id': {'>': after_id}})
    node_filters = {'and': clauses} if clauses else {}
    # Only the one extra: the whole of ``extras`` (aiida's own ``_aiida_hash`` among them) costs a conversion per row.
    project = ['id', 'uuid', 'label', *([f'extras.{extra}'] if extra else [])]
    if group is not None:
        query.append(orm.Group, filters={'id': group.pk}, tag='group')
        query.append(orm.StructureData, with_group='group', filters=node_filters, tag='structure', project=project)
    else:
        query.append(orm.StructureData, filters=node_filters, tag='structure', project=project)
    query.order_by({'structure': {'id': 'asc'}})
    if limit is not None:
        query.limit(limit)
    return query


def count_selected(**selection: Any) -> int:
    """The number of selected structures; invalid ``filters`` raise :class:`InvalidInputError` naming the problem."""
    storage = get_manager().get_profile_storage()
    try:
        # In a savepoint: a statement the database refuses then rolls back only itself, never the session's
        # transaction (inside a daemon worker, that holds other processes' nodes).
        with storage.transaction():
            return select_structures(**selection).count()
    except InvalidInputError:
        raise
    except Exception as exc:  # QueryBuilder and the database report bad filters in many ways
        message = ' '.join(str(exc).split())[:300]
        filters = selection.get('filters')
        raise InvalidInputError(f'invalid filters {filters!r}: {type(exc).__name__}: {message}') from None


def rows(query: orm.QueryBuilder) -> list[list[Any]]:
    """All rows of ``query`` as plain values."""
    return [list(row) for row in query.iterall()]


def pages(batch_size: int, **selection: Any) -> Iterator[list[list[Any]]]:
    """The selected rows, ``batch_size`` at a time, each page a fresh query after the last id seen (keyset paging).

    Nothing is held open between pages, so the extras written after each page are committed safely.
    """
    after_id = None
    while True:
        page = rows(select_structures(after_id=after_id, limit=batch_size, **selection))
        if not page:
            return
        yield page
        after_id = page[-1][0]
