"""The execution part of the store contract: records of AiiDA processes beside the structures.

Every store (:class:`~aiida_structstore.store.base.Store`) holds one :class:`ExecutionStore`, as
``store.executions``, beside ``store.structures``: the application reads both through one ``open_store()``. Its verbs
are the structure collection's (``prepare``, ``put``, ``put_many``, ``get``, ``find``, ``list``, ``iter``,
``content_hashes``, ``delete``). Backends implement the primitives (``_put_prepared``, ``get``, ``list``,
``content_hashes``, ``delete``); validation and hashing happen once, here.

Invariants every backend keeps (``tests/store/test_contract_executions.py`` runs on all of them):

1. one record per ``(tenant_id, workspace_id, process_uuid)``;
2. writing the same content again is a no-op (``unchanged``);
3. a write never replaces a record of a later state: a content whose ``modified_at`` is older than the committed
   one's is ``stale`` and changes nothing, so events that arrive out of order, or a sync that read a process before
   the live path pushed its next state, never move a record backwards;
4. no call returns another tenant's or workspace's records; listing by structure returns only records that name
   that structure id among those they took or produced;
5. invalid input raises :class:`~aiida_structstore.core.exceptions.InvalidInputError` and writes nothing.

This module imports no AiiDA module.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..core.exceptions import InvalidInputError, NotFoundError
from ..core.executions import ExecutionContent, ExecutionKey, ExecutionPage, ExecutionPutResult, ExecutionRecord
from ..core.executions import execution_hash as compute_hash
from ..core.values import validate_id

__all__ = ('MAX_EXECUTION_PAGE', 'ExecutionStore', 'PreparedExecution')

#: The largest page of executions a listing returns.
MAX_EXECUTION_PAGE = 200


@dataclass(frozen=True)
class PreparedExecution:
    """A validated execution write: the content and its hash."""

    content: ExecutionContent
    content_hash: str

    @property
    def key(self) -> ExecutionKey:
        return self.content.key


class ExecutionStore(abc.ABC):
    """Execution records keyed by tenant, workspace and process UUID (see the module docstring)."""

    # -- writing -----------------------------------------------------------------------------------------------

    def prepare(self, content: ExecutionContent) -> PreparedExecution:
        """Validate ``content`` and compute its hash, without writing anything."""
        if not isinstance(content, ExecutionContent):
            raise InvalidInputError(f'content must be an ExecutionContent, got {type(content).__name__}')
        return PreparedExecution(content, compute_hash(content))

    def put_many(self, contents: Iterable[ExecutionContent]) -> list[ExecutionPutResult]:
        """Write many execution records, batched as the backend sees fit; every item is validated first, and a
        key that appears twice is refused (nothing is written)."""
        return self.put_prepared([self.prepare(content) for content in contents])

    def put_prepared(self, writes: Sequence[PreparedExecution]) -> list[ExecutionPutResult]:
        """Write records already validated by :meth:`prepare` (as :meth:`put_many` does)."""
        seen: set[ExecutionKey] = set()
        for write in writes:
            if write.key in seen:
                raise InvalidInputError(f'execution {write.key} appears more than once in one batch')
            seen.add(write.key)
        return self._put_prepared(writes) if writes else []

    def put(self, content: ExecutionContent) -> ExecutionPutResult:
        """Write one execution record (see :meth:`put_many`)."""
        return self.put_many([content])[0]

    @abc.abstractmethod
    def _put_prepared(self, writes: Sequence[PreparedExecution]) -> list[ExecutionPutResult]:
        """Commit validated writes, each atomically: ``unchanged`` for the same hash, ``stale`` for a content older
        (by ``modified_at``) than the committed one, else ``created``/``updated``."""

    # -- reading -----------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def get(self, key: ExecutionKey) -> ExecutionRecord:
        """The committed record under ``key``; :class:`NotFoundError` if there is none."""

    def find(self, key: ExecutionKey) -> ExecutionRecord | None:
        """The committed record under ``key``, or ``None``."""
        try:
            return self.get(key)
        except NotFoundError:
            return None

    @abc.abstractmethod
    def list(
        self,
        tenant_id: str,
        workspace_id: str,
        *,
        structure_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        modified_from: dt.datetime | None = None,
    ) -> ExecutionPage:
        """One page of a workspace's execution records, most recently modified (in AiiDA) first.

        With ``structure_id``, only the records of processes that took or produced that structure ("executions of
        this structure"); with ``modified_from`` (timezone-aware, inclusive), only those modified since then
        ("recently changed"). Pass the same arguments with each page's cursor.
        """

    def iter(self, tenant_id: str, workspace_id: str, **options) -> Iterator[ExecutionRecord]:
        """Every record :meth:`list` selects, page by page."""
        cursor = None
        while True:
            page = self.list(tenant_id, workspace_id, cursor=cursor, limit=MAX_EXECUTION_PAGE, **options)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def latest_modified(self, tenant_id: str, workspace_id: str) -> dt.datetime | None:
        """``modified_at`` of the most recently modified record of the workspace (``None`` if it has none): where
        an incremental projection catches up from."""
        page = self.list(tenant_id, workspace_id, limit=1)
        return page.items[0].modified_at if page.items else None

    @abc.abstractmethod
    def content_hashes(self, tenant_id: str, workspace_id: str, process_uuids: Sequence[str]) -> dict[str, str]:
        """``{process_uuid: content_hash}`` for those of ``process_uuids`` that have a record."""

    # -- deleting ----------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def delete(self, key: ExecutionKey) -> bool:
        """Delete the record under ``key`` (and its structure links); return whether there was one."""

    # -- helpers for backends ----------------------------------------------------------------------------------

    @staticmethod
    def _check_execution_list(
        tenant_id: str, workspace_id: str, structure_id: str | None, limit: int, modified_from: dt.datetime | None
    ) -> None:
        validate_id(tenant_id, 'tenant_id')
        validate_id(workspace_id, 'workspace_id')
        if structure_id is not None:
            validate_id(structure_id, 'structure_id')
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_EXECUTION_PAGE:
            raise InvalidInputError(f'page limit must be an integer from 1 to {MAX_EXECUTION_PAGE}, got {limit!r}')
        if modified_from is not None and (not isinstance(modified_from, dt.datetime) or modified_from.tzinfo is None):
            raise InvalidInputError(f'modified_from must be a timezone-aware datetime, got {modified_from!r}')

    @staticmethod
    def _check_key(key: object) -> ExecutionKey:
        if not isinstance(key, ExecutionKey):
            raise InvalidInputError(f'key must be an ExecutionKey, got {type(key).__name__}')
        return key

    @staticmethod
    def _check_uuids(tenant_id: str, workspace_id: str, process_uuids: Sequence[str]) -> list[str]:
        """The UUIDs in canonical form (validating scope and every UUID)."""
        return [ExecutionKey.of(tenant_id, workspace_id, uuid).process_uuid for uuid in process_uuids]
