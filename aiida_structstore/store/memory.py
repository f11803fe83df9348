"""The in-memory backend: the reference implementation of the store contract, for tests and isolated local runs.

Nothing is persisted. ``MemoryStore()`` is a fresh, empty store (its ``structures``, ``executions`` and ``uploads``
each keep their records in a dictionary under their own lock); :meth:`MemoryStore.shared` returns the one store of this
process that ``open_store()`` hands out for ``STRUCTURE_STORE_BACKEND=memory``, so that a projection and a
later read in the same process see the same data.

This module imports no AiiDA module.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ..core.chunking import iter_verified, join_chunks
from ..core.exceptions import ClaimLostError, InvalidInputError, NotFoundError
from ..core.executions import ExecutionKey, ExecutionPage, ExecutionPutResult, ExecutionRecord
from ..core.query import QueryPlan, entry_document, matches
from ..core.structures import Page, PutResult, StructureKey, StructureRecord, StructureSummary
from ..core.uploads import UploadKey, UploadPage, UploadRecord, decode_from_storage
from .base import Store
from .executions import ExecutionStore, PreparedExecution
from .structures import PreparedWrite, RawStream, StructureStore
from .uploads import NewUpload, UploadStore, claim_lost_message, gave_up_message

__all__ = ('MemoryExecutions', 'MemoryStore', 'MemoryStructures', 'MemoryUploads')

T = TypeVar('T')


@dataclass(frozen=True)
class _Entry:
    record: StructureRecord
    chunks: tuple[str, ...]


def _now() -> dt.datetime:
    # Millisecond resolution, as Convex stores it, so both backends return equal timestamps for equal writes.
    return dt.datetime.fromtimestamp(time.time_ns() // 1_000_000 / 1000, tz=dt.timezone.utc)


def encode_cursor(updated_at: dt.datetime, structure_id: str) -> str:
    """A page cursor: the position (time, id) of the last item of a page (structures and executions alike)."""
    payload = json.dumps([updated_at.isoformat(), structure_id]).encode()
    return base64.urlsafe_b64encode(payload).decode()


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        stamp, structure_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return dt.datetime.fromisoformat(stamp), str(structure_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInputError(f'invalid page cursor {cursor[:40]!r}') from exc


def _page(records: list[T], position: Callable[[T], tuple[dt.datetime, str]], cursor: str | None, limit: int):
    """One page of ``records``, newest ``position`` (time, id) first, after ``cursor``; and the next page's cursor."""
    records = sorted(records, key=position, reverse=True)
    if cursor is not None:
        after = decode_cursor(cursor)
        records = [r for r in records if position(r) < after]
    page = records[:limit]
    return page, encode_cursor(*position(page[-1])) if len(records) > limit else None


def _summary(record: StructureRecord) -> StructureSummary:
    return StructureSummary.model_validate(record.model_dump(include=set(StructureSummary.model_fields)))


def _sortable(value: Any) -> Any:
    """A value as a sort key that orders like a Convex index: numbers before strings; times by their instant."""
    if value is None:
        return (0, 0)
    if isinstance(value, dt.datetime):
        return (1, value.timestamp())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return (2, str(value))
    return (1, value)


def _encode_position(position: tuple) -> str:
    present, (rank, value), structure_id = position
    return base64.urlsafe_b64encode(json.dumps([present, rank, value, structure_id]).encode()).decode()


def _decode_position(cursor: str) -> tuple:
    try:
        present, rank, value, structure_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return (bool(present), (int(rank), value), str(structure_id))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInputError(f'invalid page cursor {cursor[:40]!r}') from exc


class MemoryStructures(StructureStore):
    """The structure records of a :class:`MemoryStore`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._lock = threading.RLock()
        self._data: dict[tuple[str, str], dict[str, _Entry]] = {}

    def __len__(self) -> int:
        with self._lock:
            return sum(len(records) for records in self._data.values())

    def _put_prepared(self, writes: Sequence[PreparedWrite], *, replace_owner: bool = False) -> list[PutResult]:
        results = []
        with self._lock:
            for write in writes:
                key = write.key
                workspace = self._data.setdefault((key.tenant_id, key.workspace_id), {})
                previous = workspace.get(key.structure_id)
                if previous is not None and previous.record.content_hash == write.content_hash:
                    results.append(
                        PutResult(
                            key=key,
                            status='unchanged',
                            content_hash=write.content_hash,
                            chunk_count=previous.record.chunk_count,
                        )
                    )
                    continue
                if previous is not None and previous.record.node_uuid != write.content.node_uuid and not replace_owner:
                    results.append(
                        PutResult(
                            key=key,
                            status='conflict',
                            content_hash=write.content_hash,
                            chunk_count=previous.record.chunk_count,
                            owner=previous.record.node_uuid,
                        )
                    )
                    continue
                now = _now()
                content = write.content
                record = StructureRecord(
                    key=key,
                    source=content.source,
                    summary=content.summary,
                    node_uuid=content.node_uuid,
                    content_hash=write.content_hash,
                    chunk_count=write.chunk_count,
                    raw_size=write.raw.size if write.raw else None,
                    raw_sha256=write.raw.sha256 if write.raw else None,
                    created_at=previous.record.created_at if previous else now,
                    updated_at=now,
                    cif=content.cif,
                    structure=content.structure,
                    params=content.params,
                )
                workspace[key.structure_id] = _Entry(record, write.raw.chunks if write.raw else ())
                results.append(
                    PutResult(
                        key=key,
                        status='updated' if previous else 'created',
                        content_hash=write.content_hash,
                        chunk_count=write.chunk_count,
                    )
                )
        return results

    def _entry(self, key: StructureKey) -> _Entry:
        with self._lock:
            entry = self._data.get((key.tenant_id, key.workspace_id), {}).get(key.structure_id)
        if entry is None:
            raise NotFoundError(f'no structure {key}')
        return entry

    def get(self, key: StructureKey) -> StructureRecord:
        return self._entry(key).record

    def get_many(self, keys: Sequence[StructureKey]) -> list[StructureRecord | None]:
        keys = list(keys)
        for key in keys:
            if not isinstance(key, StructureKey):
                raise InvalidInputError(f'key must be a StructureKey, got {type(key).__name__}')
        with self._lock:
            return [self.find(key) for key in keys]

    def get_raw(self, key: StructureKey) -> str | None:
        entry = self._entry(key)  # one consistent snapshot: record and chunks were committed together
        record = entry.record
        if record.raw_sha256 is None:
            return None
        return join_chunks(
            self._chunks_of(entry),
            expected_count=record.chunk_count,
            expected_size=record.raw_size or 0,
            expected_sha256=record.raw_sha256,
            what=f'{key}: raw input',
        )

    def open_raw(self, key: StructureKey) -> RawStream | None:
        entry = self._entry(key)
        record = entry.record
        if record.raw_sha256 is None:
            return None
        chunks = iter_verified(
            self._chunks_of(entry),
            expected_count=record.chunk_count,
            expected_size=record.raw_size or 0,
            expected_sha256=record.raw_sha256,
            what=f'{key}: raw input',
        )
        return RawStream.of_record(record, chunks)

    @staticmethod
    def _chunks_of(entry: _Entry) -> Iterable[tuple[int, str]]:
        return enumerate(entry.chunks)

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
        self._check_scope(tenant_id, workspace_id)
        self._check_limit(limit)
        self._check_range(updated_from, updated_to)
        with self._lock:
            records = [
                entry.record
                for entry in self._data.get((tenant_id, workspace_id), {}).values()
                if (updated_from is None or entry.record.updated_at >= updated_from)
                and (updated_to is None or entry.record.updated_at <= updated_to)
            ]
        page, next_cursor = _page(records, lambda r: (r.updated_at, r.key.structure_id), cursor, limit)
        items = tuple(
            StructureSummary.model_validate(r.model_dump(include=set(StructureSummary.model_fields))) for r in page
        )
        return Page(items=items, next_cursor=next_cursor)

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
        self._check_scope(tenant_id, workspace_id)
        self._check_limit(limit)
        self._check_max_rows(max_rows)
        plan = self._check_query(plan, filter)
        with self._lock:
            records = [entry.record for entry in self._data.get((tenant_id, workspace_id), {}).values()]
        payloads = {record.key.structure_id: record.structure for record in records}
        summaries = [_summary(record) for record in records]
        rows = [item for item in summaries if plan.admits(item)]
        descending = plan.order == 'desc'

        def position(item: StructureSummary) -> tuple:
            value = plan.value_of(item)
            # Missing values first in ascending order, as a Convex index orders undefined before any value.
            return (value is not None, _sortable(value), item.key.structure_id)

        rows.sort(key=position, reverse=descending)
        if cursor is not None:
            after = _decode_position(cursor)
            rows = [r for r in rows if (position(r) < after if descending else position(r) > after)]
        page: list[StructureSummary] = []

        def done(next_cursor: str | None) -> Page:
            return Page(
                items=tuple(page),
                next_cursor=next_cursor,
                cursors=tuple(_encode_position(position(item)) for item in page),
                structures=tuple(payloads[item.key.structure_id] for item in page) if with_structures else None,
            )

        for read, row in enumerate(rows, start=1):
            if filter is None or matches(filter, entry_document(row)):
                page.append(row)
            if read == len(rows):
                break
            if len(page) == limit or (max_rows is not None and read >= max_rows):
                # The page is full or the call read its rows: the next one goes on after the last row read.
                return done(_encode_position(position(row)))
        return done(None)

    def content_hashes(self, tenant_id: str, workspace_id: str, structure_ids: Sequence[str]) -> dict[str, str]:
        self._check_scope(tenant_id, workspace_id)
        with self._lock:
            workspace = self._data.get((tenant_id, workspace_id), {})
            return {sid: workspace[sid].record.content_hash for sid in structure_ids if sid in workspace}

    def delete(self, key: StructureKey) -> bool:
        with self._lock:
            workspace = self._data.get((key.tenant_id, key.workspace_id), {})
            return workspace.pop(key.structure_id, None) is not None

    def collect_garbage(self, tenant_id: str, workspace_id: str, *, older_than_seconds: float = 3600.0) -> int:
        # Writes are atomic in memory: there are never unreferenced chunks to collect.
        self._check_scope(tenant_id, workspace_id)
        return 0

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class MemoryExecutions(ExecutionStore):
    """The execution records of a :class:`MemoryStore`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._executions: dict[tuple[str, str], dict[str, ExecutionRecord]] = {}

    def _put_prepared(self, writes: Sequence[PreparedExecution]) -> list[ExecutionPutResult]:
        results = []
        with self._lock:
            for write in writes:
                key = write.key
                scope = self._executions.setdefault((key.tenant_id, key.workspace_id), {})
                previous = scope.get(key.process_uuid)
                if previous is not None and previous.content_hash == write.content_hash:
                    status = 'unchanged'
                elif previous is not None and previous.modified_at > write.content.modified_at:
                    status = 'stale'
                else:
                    scope[key.process_uuid] = ExecutionRecord(
                        **dict(write.content), content_hash=write.content_hash, updated_at=_now()
                    )
                    status = 'updated' if previous is not None else 'created'
                results.append(ExecutionPutResult(key=key, status=status, content_hash=write.content_hash))
        return results

    def get(self, key: ExecutionKey) -> ExecutionRecord:
        self._check_key(key)
        with self._lock:
            record = self._executions.get((key.tenant_id, key.workspace_id), {}).get(key.process_uuid)
        if record is None:
            raise NotFoundError(f'no execution {key}')
        return record

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
        self._check_execution_list(tenant_id, workspace_id, structure_id, limit, modified_from)
        with self._lock:
            records = [
                record
                for record in self._executions.get((tenant_id, workspace_id), {}).values()
                if (structure_id is None or record.roles(structure_id))
                and (modified_from is None or record.modified_at >= modified_from)
            ]
        page, next_cursor = _page(records, lambda r: (r.modified_at, r.key.process_uuid), cursor, limit)
        return ExecutionPage(items=tuple(page), next_cursor=next_cursor)

    def content_hashes(self, tenant_id: str, workspace_id: str, process_uuids: Sequence[str]) -> dict[str, str]:
        uuids = self._check_uuids(tenant_id, workspace_id, process_uuids)
        with self._lock:
            scope = self._executions.get((tenant_id, workspace_id), {})
            return {uuid: scope[uuid].content_hash for uuid in uuids if uuid in scope}

    def delete(self, key: ExecutionKey) -> bool:
        self._check_key(key)
        with self._lock:
            return self._executions.get((key.tenant_id, key.workspace_id), {}).pop(key.process_uuid, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._executions.clear()


class MemoryUploads(UploadStore):
    """The uploads of a :class:`MemoryStore`: records and bytes under one lock (so a claim is atomic)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._lock = threading.RLock()
        # Per workspace: upload id -> (record, stored encoding, stored text), as a Convex deployment holds them.
        self._uploads: dict[tuple[str, str], dict[str, tuple[UploadRecord, str, str]]] = {}
        self._claims: dict[UploadKey, str] = {}
        # Creation order breaks ties of created_at (the same millisecond), as Convex's indexes do.
        self._order: dict[UploadKey, int] = {}

    def _position(self, record: UploadRecord) -> tuple[dt.datetime, str]:
        return record.created_at, f'{self._order[record.key]:016d}'

    def _create(self, upload: NewUpload) -> tuple[UploadRecord, bool]:
        key = upload.key
        with self._lock:
            scope = self._uploads.setdefault((key.tenant_id, key.workspace_id), {})
            existing = scope.get(key.upload_id)
            if existing is not None:
                return existing[0], False
            now = _now()
            record = UploadRecord(
                key=key,
                filename=upload.filename,
                kind=upload.kind,  # type: ignore[arg-type]
                status='pending',
                size=upload.size,
                sha256=upload.sha256,
                uploaded_by=upload.uploaded_by,
                created_at=now,
                updated_at=now,
                structure_id=upload.structure_id,
            )
            self._order[key] = len(self._order)
            scope[key.upload_id] = (record, upload.stored.encoding, ''.join(upload.stored.chunked.chunks))
            return record, True

    def get(self, key: UploadKey) -> UploadRecord:
        return self._entry(self._check_key(key))[0]

    def _entry(self, key: UploadKey) -> tuple[UploadRecord, str, str]:
        with self._lock:
            entry = self._uploads.get((key.tenant_id, key.workspace_id), {}).get(key.upload_id)
        if entry is None:
            raise NotFoundError(f'no {key}')
        return entry

    def list(
        self,
        tenant_id: str,
        workspace_id: str,
        *,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> UploadPage:
        self._check_list(tenant_id, workspace_id, status, limit)
        with self._lock:
            records = [
                record
                for record, _, _ in self._uploads.get((tenant_id, workspace_id), {}).values()
                if status is None or record.status == status
            ]
            page, next_cursor = _page(records, self._position, cursor, limit)
        return UploadPage(items=tuple(page), next_cursor=next_cursor)

    def read(self, key: UploadKey) -> bytes:
        record, encoding, text = self._entry(self._check_key(key))
        return decode_from_storage(text, encoding, size=record.size, sha256=record.sha256, what=str(key))

    def _claim(
        self,
        *,
        claimer: str,
        lease_ms: int,
        token: str,
        tenant_id: str | None,
        workspace_id: str | None,
        max_attempts: int,
    ) -> UploadRecord | None:
        with self._lock:
            same = next((k for k, t in self._claims.items() if t == token), None)
            if same is not None:  # the same claim sent again
                record = self._entry(same)[0]
                return record if record.status == 'importing' else None
            now = _now()
            candidates = [
                record
                for (tenant, workspace), scope in self._uploads.items()
                if (tenant_id is None or tenant == tenant_id) and (workspace_id is None or workspace == workspace_id)
                for record, _, _ in scope.values()
            ]
            expired = sorted(
                (r for r in candidates if r.status == 'importing' and r.claim_expires_at <= now),
                key=self._position,
            )
            for record in expired:
                if record.attempts >= max_attempts:
                    self._replace(record, status='failed', message=_gave_up(record), updated_at=now)
                    self._claims.pop(record.key, None)
                    continue
                return self._take(record, claimer, lease_ms, token, now)
            pending = sorted((r for r in candidates if r.status == 'pending'), key=self._position)
            return self._take(pending[0], claimer, lease_ms, token, now) if pending else None

    def _take(self, record: UploadRecord, claimer: str, lease_ms: int, token: str, now: dt.datetime) -> UploadRecord:
        self._claims[record.key] = token
        return self._replace(
            record,
            status='importing',
            claimed_by=claimer,
            claim_expires_at=now + dt.timedelta(milliseconds=lease_ms),
            attempts=record.attempts + 1,
            updated_at=now,
        )

    def _replace(self, record: UploadRecord, **changes) -> UploadRecord:
        key = record.key
        scope = self._uploads[(key.tenant_id, key.workspace_id)]
        updated = record.model_copy(update=changes)
        scope[key.upload_id] = (updated, *scope[key.upload_id][1:])
        return updated

    def _held(self, key: UploadKey, claim: str) -> UploadRecord:
        record = self._entry(key)[0]
        if record.status != 'importing' or self._claims.get(key) != claim:
            raise ClaimLostError(claim_lost_message(key, record.status))
        return record

    def _renew(self, key: UploadKey, claim: str, lease_ms: int) -> UploadRecord:
        with self._lock:
            record = self._held(key, claim)
            now = _now()
            return self._replace(record, claim_expires_at=now + dt.timedelta(milliseconds=lease_ms), updated_at=now)

    def _complete(self, key: UploadKey, claim: str, structure_id: str, node_uuid: str) -> UploadRecord:
        with self._lock:
            done = self._entry(key)[0]
            if done.status == 'imported' and self._claims.get(key) == claim:  # the same call again
                if (done.result_structure_id, done.node_uuid) == (structure_id, node_uuid):
                    return done
                raise ClaimLostError(claim_lost_message(key, done.status))
            record = self._held(key, claim)
            return self._replace(
                record, status='imported', result_structure_id=structure_id, node_uuid=node_uuid, updated_at=_now()
            )

    def _fail(self, key: UploadKey, claim: str, message: str) -> UploadRecord:
        with self._lock:
            done = self._entry(key)[0]
            if done.status == 'failed' and self._claims.get(key) == claim:  # the same call again
                if done.message == message:
                    return done
                raise ClaimLostError(claim_lost_message(key, done.status))
            record = self._held(key, claim)
            return self._replace(record, status='failed', message=message, updated_at=_now())

    def clear(self) -> None:
        with self._lock:
            self._uploads.clear()
            self._claims.clear()
            self._order.clear()


def _gave_up(record: UploadRecord) -> str:
    return gave_up_message(record.attempts)


class MemoryStore(Store):
    """A thread-safe, in-process store."""

    backend: ClassVar[str] = 'memory'
    persistent: ClassVar[bool] = False
    _shared: ClassVar[MemoryStore | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, **kwargs) -> None:
        """``kwargs`` are the structure collection's (``chunk_bytes``)."""
        self.structures = MemoryStructures(**kwargs)
        self.executions = MemoryExecutions()
        self.uploads = MemoryUploads(**kwargs)

    @classmethod
    def shared(cls) -> MemoryStore:
        """Return this process's shared memory store (created on first use)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def __repr__(self) -> str:
        return f'MemoryStore(records={len(self.structures)})'

    def clear(self) -> None:
        """Remove every record (for tests)."""
        self.structures.clear()
        self.executions.clear()
        self.uploads.clear()
