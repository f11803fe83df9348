"""The structure part of the store contract: :class:`StructureStore`, the structure records of one store.

Every store (:class:`~aiida_structstore.store.base.Store`) holds one, as ``store.structures``. Backends implement a
small set of primitives (``_put_prepared``, ``get``, ``get_raw``, ``list``, ``delete``, ``content_hashes``,
``collect_garbage``); validation, hashing and chunking happen once, here, so every backend computes the same content
hash and the same chunks for the same input.

Invariants every backend keeps (one contract test suite, ``tests/store/test_contract.py``, runs on all of them):

1. one committed record per ``(tenant_id, workspace_id, structure_id)``, belonging to the AiiDA node it came from
   (a write from another node is a conflict, never an overwrite, unless asked for);
2. writing the same content again is a no-op (``status == 'unchanged'``);
3. raw text read back is byte-identical to what was written and matches the committed size and sha256, or the read
   raises :class:`~aiida_structstore.core.exceptions.IntegrityError`; a write that fails half-way leaves the previously
   committed version readable;
4. no call returns another tenant's or workspace's data;
5. invalid input raises :class:`~aiida_structstore.core.exceptions.InvalidInputError` and writes nothing.

This module imports no AiiDA module.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.chunking import DEFAULT_CHUNK_BYTES, ChunkedText, split_text
from ..core.exceptions import InvalidInputError, LimitExceededError, NotFoundError, OwnershipError
from ..core.limits import CONVEX, PROTOCOL
from ..core.query import QueryError, QueryPlan, check_query
from ..core.structures import Page, PutResult, StructureContent, StructureKey, StructureRecord, content_hash
from ..core.values import ensure_text, validate_id

__all__ = (
    'INLINE_BYTES',
    'MAX_PAGE_SIZE',
    'MAX_PART_BYTES',
    'MAX_RAW_BYTES',
    'PreparedWrite',
    'RawStream',
    'StructureStore',
    'ownership_message',
)

#: The largest raw input accepted (UTF-8 bytes). pw.x inputs with explicit k-points or large cells reach tens of MB.
MAX_RAW_BYTES = 256 * 1024 * 1024
#: The largest CIF text, or JSON text of the structure payload or parameters, accepted (UTF-8 bytes).
MAX_PART_BYTES = 64 * 1024 * 1024
#: The largest page a listing returns.
MAX_PAGE_SIZE = 500
#: CIF, structure JSON and parameters JSON stay inline in a record while together they are at most this large (the
#: Convex functions' inline budget, halved); larger values go to chunks. A page of 200 records then reads at most
#: about 8 MiB, half of a Convex query's read limit.
INLINE_BYTES = PROTOCOL['maxInlineBytes'] // 2


@dataclass(frozen=True)
class PreparedWrite:
    """A validated write: the content, its raw input split into chunks, and the content hash."""

    content: StructureContent
    raw: ChunkedText | None
    content_hash: str

    @property
    def key(self) -> StructureKey:
        return self.content.key

    @property
    def chunk_count(self) -> int:
        return 0 if self.raw is None else self.raw.count


@dataclass(frozen=True)
class RawStream:
    """The raw input of one committed record, read chunk by chunk: for streaming it without holding it whole.

    ``size``, ``sha256`` and ``content_hash`` describe the committed version the chunks belong to. Iterating yields
    the texts in order, verified as they pass (:func:`~aiida_structstore.core.chunking.iter_verified`): a torn or
    corrupted read raises :class:`~aiida_structstore.core.exceptions.IntegrityError`, at the latest after the last
    chunk, so a consumer that has already sent earlier chunks must abort its response rather than finish it.
    """

    key: StructureKey
    size: int
    sha256: str
    chunk_count: int
    content_hash: str
    chunks: Iterator[str]

    @classmethod
    def of_record(cls, record: StructureRecord, chunks: Iterator[str]) -> RawStream:
        """The stream of ``record``'s raw input, read as ``chunks``."""
        return cls(
            key=record.key,
            size=record.raw_size or 0,
            sha256=record.raw_sha256 or '',
            chunk_count=record.chunk_count,
            content_hash=record.content_hash,
            chunks=chunks,
        )

    def __iter__(self) -> Iterator[str]:
        return self.chunks


def _part_sizes(content: StructureContent) -> Iterator[tuple[str, int]]:
    """The UTF-8 sizes of the record's text parts that are there: CIF, structure payload JSON, parameters JSON."""
    for name, text in (('cif', content.cif), ('structure', content.structure_json), ('params', content.params_json)):
        if text is not None:
            yield name, len(text.encode('utf-8'))


def ownership_message(key: StructureKey, writer: str | None, owner: str | None) -> str:
    """Why a write was refused: the key holds the record of another node."""

    def node(uuid: str | None) -> str:
        return f'AiiDA node {uuid}' if uuid else 'no AiiDA node'

    return (
        f'{key} holds the record of {node(owner)}; the record of {node(writer)} was not written over it '
        '(choose another structure id, or replace it explicitly)'
    )


class StructureStore(abc.ABC):
    """The structure records of a store: keyed by tenant, workspace and structure id, with chunked raw input.

    Reached as ``store.structures`` of a :class:`~aiida_structstore.store.base.Store`, which owns the connection.
    """

    def __init__(self, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.chunk_bytes = chunk_bytes

    # -- writing -----------------------------------------------------------------------------------------------

    def prepare(self, content: StructureContent, raw: str | bytes | None = None) -> PreparedWrite:
        """Validate ``content`` and ``raw`` and compute chunks and content hash, without writing anything."""
        if not isinstance(content, StructureContent):
            raise InvalidInputError(f'content must be a StructureContent, got {type(content).__name__}')
        for name, size in _part_sizes(content):
            if size > MAX_PART_BYTES:
                raise LimitExceededError(f'{content.key}: {name} is {size} bytes; the limit is {MAX_PART_BYTES} bytes')
        chunked = None
        if raw is not None:
            text = ensure_text(raw, f'{content.key}: raw input')
            size = len(text.encode('utf-8'))
            if size > MAX_RAW_BYTES:
                raise LimitExceededError(
                    f'{content.key}: raw input is {size} bytes; the limit is {MAX_RAW_BYTES} bytes'
                )
            chunked = split_text(text, self.chunk_bytes)
        digest = content_hash(content, chunked.size if chunked else None, chunked.sha256 if chunked else None)
        return PreparedWrite(content=content, raw=chunked, content_hash=digest)

    def put(
        self, content: StructureContent, raw: str | bytes | None = None, *, replace_owner: bool = False
    ) -> PutResult:
        """Write one record (and its raw input). Writing the same content again changes nothing.

        A record belongs to the AiiDA node it came from (``node_uuid``, or none): writing content of another node
        under its key raises :class:`OwnershipError` naming both, and changes nothing, unless ``replace_owner``.
        """
        result = self._put_prepared([self.prepare(content, raw)], replace_owner=replace_owner)[0]
        if result.status == 'conflict':
            raise OwnershipError(ownership_message(result.key, content.node_uuid, result.owner))
        return result

    def put_many(
        self, items: Iterable[tuple[StructureContent, str | bytes | None]], *, replace_owner: bool = False
    ) -> list[PutResult]:
        """Write many records, batched as the backend sees fit. Every item is validated before anything is written.
        A record of another node is left alone and reported with status ``conflict`` (see :meth:`put`)."""
        return self.put_prepared([self.prepare(content, raw) for content, raw in items], replace_owner=replace_owner)

    def put_prepared(self, writes: Sequence[PreparedWrite], *, replace_owner: bool = False) -> list[PutResult]:
        """Write records already validated by :meth:`prepare` (as :meth:`put_many` does)."""
        seen: set[StructureKey] = set()
        for write in writes:
            if write.key in seen:
                raise InvalidInputError(f'{write.key}: the same key appears more than once in one batch')
            seen.add(write.key)
        return self._put_prepared(writes, replace_owner=replace_owner) if writes else []

    @staticmethod
    def storage_notes(write: PreparedWrite) -> list[str]:
        """How the projection keeps ``write`` within a Convex deployment's limits (values that go to chunks, a
        structure payload kept as JSON text): what a dry run reports, the same on every backend."""
        content = write.content
        notes = []
        for name, size in _part_sizes(content):
            if size > CONVEX['documentBytes']:
                notes.append(f'{name} is {size / 2**20:.1f} MiB, over the Convex document limit: stored in chunks')
            elif size > INLINE_BYTES:
                notes.append(f'{name} is {size / 1024:.0f} KiB: stored in chunks')
        if content.structure and len(content.structure.get('cartesian_site_positions', [])) > CONVEX['arrayElements']:
            notes.append(
                f'{content.structure["nsites"]} sites, over the {CONVEX["arrayElements"]}-element Convex array limit: '
                'the structure payload is stored as JSON text'
            )
        if write.raw is not None and write.raw.count:
            notes.append(f'raw input {write.raw.size} bytes in {write.raw.count} chunks')
        return notes

    @abc.abstractmethod
    def _put_prepared(self, writes: Sequence[PreparedWrite], *, replace_owner: bool = False) -> list[PutResult]:
        """Commit validated writes; each one atomically (readers see the old or the new version, never a mix).
        A write whose ``node_uuid`` differs from the committed record's is a ``conflict`` unless ``replace_owner``."""

    # -- reading -----------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def get(self, key: StructureKey) -> StructureRecord:
        """Return the committed record under ``key``; raise :class:`NotFoundError` if there is none."""

    def find(self, key: StructureKey) -> StructureRecord | None:
        """Return the committed record under ``key``, or ``None``."""
        try:
            return self.get(key)
        except NotFoundError:
            return None

    def get_many(self, keys: Sequence[StructureKey]) -> list[StructureRecord | None]:
        """The committed records under ``keys``, in the same order, ``None`` for a key without one: a page of
        entries in one round trip where the backend can (this default reads them one by one)."""
        keys = list(keys)
        for key in keys:
            if not isinstance(key, StructureKey):
                raise InvalidInputError(f'key must be a StructureKey, got {type(key).__name__}')
        return [self.find(key) for key in keys]

    @abc.abstractmethod
    def get_raw(self, key: StructureKey) -> str | None:
        """Return the raw input of the record under ``key`` (``None`` if it has none), verified byte for byte.

        Raises :class:`NotFoundError` if there is no record and :class:`IntegrityError` if the stored chunks do not
        match the committed size, sha256 or chunk count.
        """

    def open_raw(self, key: StructureKey) -> RawStream | None:
        """Return the raw input of the record under ``key`` as a :class:`RawStream` (``None`` if it has none).

        Raises :class:`NotFoundError` if there is no record. This default reads the text whole; backends override
        it to read chunk by chunk.
        """
        record = self.get(key)
        if record.raw_sha256 is None:
            return None
        text = self.get_raw(key)
        if text is None:  # replaced by a version without raw input in between
            raise NotFoundError(f'{key} has no raw input any more')
        return RawStream.of_record(record, iter((text,)))

    @abc.abstractmethod
    def list(
        self,
        tenant_id: str,
        workspace_id: str,
        *,
        cursor: str | None = None,
        limit: int = 100,
        updated_from: dt.datetime | None = None,
        updated_to: dt.datetime | None = None,
    ) -> Page:
        """Return one page of a workspace's records, newest (most recently updated) first.

        ``updated_from`` and ``updated_to`` (inclusive, timezone-aware) restrict the listing to records last
        updated in that range; pass the same range with each page's cursor.
        """

    @abc.abstractmethod
    def query(
        self,
        tenant_id: str,
        workspace_id: str,
        *,
        plan: QueryPlan | None = None,
        filter: dict[str, Any] | None = None,
        cursor: str | None = None,
        limit: int = 100,
        max_rows: int | None = None,
        with_structures: bool = False,
    ) -> Page:
        """One page of the summaries of a workspace that match ``filter`` (a query of :mod:`~..core.query`,
        evaluated on each entry's document), walking ``plan``'s index (default: every structure by id) over its range
        and in its order, ties by structure id in the same order. Rows whose index value is missing are outside any
        bounded range and, unbounded, come first in ascending order.

        Pass each page's cursor (with the same plan and filter) for the next. A page may hold fewer than ``limit``
        items and still have a next cursor: a backend stops a page after reading its row budget, so a selective
        filter never makes one call read the whole workspace. ``next_cursor`` is ``None`` at the end.

        ``max_rows`` bounds the rows (index entries) this call reads in all, whatever the backend's own budget: the
        page then ends, short or empty, with a cursor. Without it a backend reads until the page is full.

        The page's ``cursors`` give the cursor right after each item; with ``with_structures`` its ``structures``
        give each item's structure payload, read in the same call (see :class:`~aiida_structstore.core.Page`).
        """

    def iter_workspace(
        self,
        tenant_id: str,
        workspace_id: str,
        *,
        page_size: int = 100,
        updated_from: dt.datetime | None = None,
        updated_to: dt.datetime | None = None,
    ) -> Iterator:
        """Iterate over every record summary of a workspace (updated in the range, if given), page by page."""
        cursor = None
        while True:
            page = self.list(
                tenant_id,
                workspace_id,
                cursor=cursor,
                limit=page_size,
                updated_from=updated_from,
                updated_to=updated_to,
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    @abc.abstractmethod
    def content_hashes(self, tenant_id: str, workspace_id: str, structure_ids: Sequence[str]) -> dict[str, str]:
        """Return ``{structure_id: content_hash}`` for those of ``structure_ids`` that have a committed record."""

    # -- deleting ----------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def delete(self, key: StructureKey) -> bool:
        """Delete the record under ``key`` and all its chunks; return whether there was one."""

    @abc.abstractmethod
    def collect_garbage(self, tenant_id: str, workspace_id: str, *, older_than_seconds: float = 3600.0) -> int:
        """Delete chunks that no committed record references (left by interrupted writes); return how many.

        Chunks younger than ``older_than_seconds`` are kept: they may belong to a write still in progress.
        """

    # -- helpers for backends ----------------------------------------------------------------------------------

    @staticmethod
    def _check_scope(tenant_id: str, workspace_id: str) -> None:
        validate_id(tenant_id, 'tenant_id')
        validate_id(workspace_id, 'workspace_id')

    @staticmethod
    def _check_range(updated_from: dt.datetime | None, updated_to: dt.datetime | None) -> None:
        for name, value in (('updated_from', updated_from), ('updated_to', updated_to)):
            if value is not None and (not isinstance(value, dt.datetime) or value.tzinfo is None):
                raise InvalidInputError(f'{name} must be a timezone-aware datetime, got {value!r}')

    @staticmethod
    def _check_query(plan: QueryPlan | None, filter: dict[str, Any] | None) -> QueryPlan:
        """The plan (the default one for ``None``), after checking plan and filter; :class:`InvalidInputError`."""
        if plan is not None and not isinstance(plan, QueryPlan):
            raise InvalidInputError(f'plan must be a QueryPlan, got {type(plan).__name__}')
        if filter is not None:
            try:
                check_query(filter)
            except QueryError as exc:
                raise InvalidInputError(f'invalid query: {exc}') from None
        return plan or QueryPlan()

    @staticmethod
    def _check_max_rows(max_rows: int | None) -> None:
        if max_rows is not None and (not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1):
            raise InvalidInputError(f'max_rows must be a positive integer, got {max_rows!r}')

    @staticmethod
    def _check_limit(limit: int) -> int:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInputError(f'page limit must be an integer from 1 to {MAX_PAGE_SIZE}, got {limit!r}')
        return limit
