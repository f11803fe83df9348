"""The structure records of a Convex store: records and chunks in a Convex deployment.

The calls themselves (HTTP, retries, pacing, secrets) are :mod:`.transport`'s; the execution records are
:mod:`.executions`'; :mod:`.store` composes them. All functions of ``convex/structures.ts`` and ``convex/executions.ts``
are internal, so only the deploy key can call them.

Batching
    Records are sent many per ``putBatch`` mutation, within a byte budget well inside Convex's 16 MiB argument and
    write limits and below one second of the write throughput, and within the elements one call may name
    (``maxBatchElements``), all read from ``convex/limits.json``. A call the deployment refuses as over its write
    throughput (:class:`.transport.WriteBudgetExceededError`: a deployment with a lower budget than the client was told)
    is sent in halves, and later batches are sized to half of it; a single record over it is staged, its chunks in
    as many ``stageChunks`` calls as it takes.

    Payloads that do not fit a Convex document are stored as chunks: the raw input always, and the CIF text,
    structure payload JSON and parameters JSON when together they exceed :data:`INLINE_BYTES`. A record whose chunks
    exceed :data:`STAGE_THRESHOLD_BYTES` is staged with ``stageChunks`` and committed atomically afterwards.

This module imports no AiiDA module.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ...core.chunking import DEFAULT_CHUNK_BYTES, ChunkedText, iter_verified, join_chunks, split_text
from ...core.exceptions import (
    BackendError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
)
from ...core.limits import CONVEX, PROTOCOL
from ...core.query import QueryPlan
from ...core.structures import Page, PutResult, Source, StructureKey, StructureRecord, StructureSummary
from ..structures import INLINE_BYTES, PreparedWrite, RawStream, StructureStore
from .transport import ConvexTransport, RequestTooLargeError, WriteBudgetExceededError

__all__ = ('ConvexStructures',)


#: Bytes of arguments per mutation the store aims for (3 MiB). Convex allows 16 MiB of arguments and of writes, and a
#: replaced version's chunks are read and deleted in the same mutation; it also stays below one second of the write
#: rate (a deployment refuses a write larger than its throughput budget).
BATCH_BYTES = min(CONVEX['argumentBytes'], CONVEX['transactionWriteBytes']) * 3 // 16
#: Records per putBatch mutation at most.
BATCH_RECORDS = 250
#: Distinct elements of the records' summaries per putBatch mutation at most (the function's own limit).
BATCH_ELEMENTS = PROTOCOL['maxBatchElements']
#: The smallest byte budget per mutation the store shrinks to after a write over the deployment's throughput.
MIN_BATCH_BYTES = 64 * 1024
#: A record with more chunk bytes than this is staged over several mutations, then committed.
STAGE_THRESHOLD_BYTES = 4 * 1024 * 1024
#: Bytes of chunks per readChunks query (its reply stays well below the 16 MiB return limit).
READ_PAGE_BYTES = 8 * 1024 * 1024
#: Bytes of chunks per readChunks query when the raw input is streamed (:meth:`ConvexStructures.open_raw`): what a
#: streaming reader holds at once, against one round trip per page.
STREAM_PAGE_BYTES = 2 * 1024 * 1024
#: Records per listStructures query (the function's own limit); longer pages are read in several queries.
LIST_PAGE = PROTOCOL['maxListPage']
#: Matching records per queryStructures call at most (the function's own limit).
QUERY_PAGE = PROTOCOL['maxQueryPage']
QUERY_ROWS = PROTOCOL['maxQueryRowsRead']
#: Keys per getStructures query (the function's own limit).
GET_MANY = PROTOCOL['maxGetStructures']
_PAYLOAD_PARTS = ('cif', 'structure', 'params')
#: The Convex module of queryStructures.
QUERY_MODULE = 'optimade'
#: How often a read is retried when a concurrent commit replaced the version being read.
READ_ATTEMPTS = 3


@dataclass
class _Part:
    name: str
    chunked: ChunkedText

    @property
    def meta(self) -> dict[str, Any]:
        return {
            'name': self.name,
            'size': float(self.chunked.size),
            'sha256': self.chunked.sha256,
            'chunk_count': float(self.chunked.count),
        }

    def chunk_args(self) -> list[dict[str, Any]]:
        return [{'part': self.name, 'chunk_index': float(i), 'text': t} for i, t in enumerate(self.chunked.chunks)]


@dataclass
class _Planned:
    """A prepared write turned into ``putBatch`` arguments."""

    write: PreparedWrite
    record: dict[str, Any]
    parts: list[_Part]
    chunk_bytes: int
    inline_bytes: int
    elements: int = 0
    result: PutResult | None = None
    garbage: bool = False
    #: Staged although small enough to go inline: inline, it was over the deployment's write throughput.
    forced: bool = False

    @property
    def staged(self) -> bool:
        return self.forced or self.chunk_bytes > STAGE_THRESHOLD_BYTES

    @property
    def batch_bytes(self) -> int:
        """Bytes this record adds to a putBatch call (estimated from the texts; JSON escapes may add more)."""
        return self.inline_bytes + (0 if self.staged else self.chunk_bytes)

    def new_generation(self) -> None:
        self.record['generation'] = secrets.token_hex(12)


def _generation(content_hash: str) -> str:
    """The first generation a write tries: derived from the content, so a staged upload interrupted by a crash is
    resumed (not repeated) by the next write of the same content. Equal generations mean equal chunks, so two
    writers can never mix versions; a generation retired earlier is a conflict, and the write takes a random one."""
    return f'h{content_hash[:40]}'


def _ms_to_datetime(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.timezone.utc)


class ConvexStructures(StructureStore):
    """The structure records of a :class:`~aiida_structstore.store.convex.ConvexStore`, over its transport."""

    def __init__(self, transport: ConvexTransport, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        super().__init__(chunk_bytes=chunk_bytes)
        self.transport = transport
        write_rate = transport.pacer.limit
        self.batch_bytes = min(BATCH_BYTES, int(0.75 * write_rate)) if write_rate else BATCH_BYTES

    # -- writing -----------------------------------------------------------------------------------------------

    def _plan(self, write: PreparedWrite) -> _Planned:
        content = write.content
        inline: dict[str, str | None] = {
            'cif': content.cif,
            'structure': content.structure_json,
            'params': content.params_json,
        }
        sizes = {name: len(text.encode('utf-8')) for name, text in inline.items() if text is not None}
        parts: list[_Part] = []
        if write.raw is not None:
            parts.append(_Part('raw', write.raw))
        # Move the largest payloads to chunks until the rest fits inline.
        for name in sorted(sizes, key=sizes.__getitem__, reverse=True):
            if sum(sizes.values()) <= INLINE_BYTES:
                break
            parts.append(_Part(name, split_text(inline[name] or '', self.chunk_bytes)))
            inline[name] = None
            del sizes[name]
        record = {
            'structure_id': write.key.structure_id,
            'generation': _generation(write.content_hash),
            'content_hash': write.content_hash,
            'source': content.source.hashed(),  # uploaded_by only when set: older servers' schema lacks it
            'summary': _floats(content.summary),
            'node_uuid': content.node_uuid,
            **inline,
            'parts': [part.meta for part in parts],
        }
        chunk_bytes = sum(part.chunked.size for part in parts)
        elements = len(set(content.summary.get('elements') or ()))
        return _Planned(write, record, parts, chunk_bytes, sum(sizes.values()) + 1024, elements)

    def _put_prepared(self, writes: Sequence[PreparedWrite], *, replace_owner: bool = False) -> list[PutResult]:
        by_scope: dict[tuple[str, str], list[_Planned]] = {}
        planned = [self._plan(write) for write in writes]
        for plan in planned:
            by_scope.setdefault((plan.write.key.tenant_id, plan.write.key.workspace_id), []).append(plan)
        for (tenant_id, workspace_id), plans in by_scope.items():
            scope = {'tenant_id': tenant_id, 'workspace_id': workspace_id}
            staged = [plan for plan in plans if plan.staged]
            if staged:
                current = self._hashes(tenant_id, workspace_id, [p.write.key.structure_id for p in staged])
                for plan in staged:
                    if current.get(plan.write.key.structure_id) == plan.write.content_hash:
                        plan.result = self._result(plan, 'unchanged')
                    else:
                        self._stage(scope, plan)
            self._send(scope, [p for p in plans if p.result is None], replace_owner)
            for plan in plans:
                if plan.garbage:
                    self._collect(
                        tenant_id,
                        workspace_id,
                        structure_id=plan.write.key.structure_id,
                        older_than_seconds=float('inf'),
                    )
        return [plan.result for plan in planned if plan.result is not None]

    def _send(self, scope: dict[str, str], plans: list[_Planned], replace_owner: bool) -> None:
        """Commit ``plans`` in putBatch calls of at most :attr:`batch_bytes`, :data:`BATCH_ELEMENTS` and
        :data:`BATCH_RECORDS` each; a record with inline chunks that alone is over the byte budget is staged first."""
        batch: list[_Planned] = []
        batch_bytes = batch_elements = 0
        for plan in [*plans, None]:
            full = plan is None or (
                batch_bytes + plan.batch_bytes > self.batch_bytes
                or batch_elements + plan.elements > BATCH_ELEMENTS
                or len(batch) >= BATCH_RECORDS
            )
            if batch and full:
                self._commit(scope, batch, replace_owner)
                batch, batch_bytes, batch_elements = [], 0, 0
            if plan is None:
                return
            if not plan.staged and plan.chunk_bytes and plan.batch_bytes > self.batch_bytes:
                plan.forced = True  # alone over the byte budget (or the budget shrank): its chunks are staged
                self._stage(scope, plan)
            batch.append(plan)
            batch_bytes += plan.batch_bytes
            batch_elements += plan.elements

    def _result(
        self, plan: _Planned, status: str, chunk_count: int | None = None, owner: str | None = None
    ) -> PutResult:
        return PutResult(
            key=plan.write.key,
            status=status,  # type: ignore[arg-type]
            content_hash=plan.write.content_hash,
            chunk_count=plan.write.chunk_count if chunk_count is None else chunk_count,
            owner=owner,
        )

    def _stage(self, scope: dict[str, str], plan: _Planned) -> None:
        """Stage the chunks of ``plan`` under its generation; under a new one if that generation was retired."""
        for attempt in range(3):
            try:
                self._stage_chunks(scope, plan)
                return
            except ConflictError:
                if attempt == 2:
                    raise
                plan.new_generation()

    def _stage_chunks(self, scope: dict[str, str], plan: _Planned, chunks: list[dict[str, Any]] | None = None) -> None:
        """Stage ``chunks`` (default: all of ``plan``'s) in calls of at most :attr:`batch_bytes` each; a call over the
        deployment's write throughput is sent again in smaller ones (chunks already received are skipped)."""
        if chunks is None:
            chunks = [chunk for part in plan.parts for chunk in part.chunk_args()]
            if not chunks:
                self._stage_group(scope, plan, [])
                return
        group: list[dict[str, Any]] = []
        group_bytes = 0
        for chunk in [*chunks, None]:
            size = 0 if chunk is None else len(chunk['text'].encode('utf-8'))
            if group and (chunk is None or group_bytes + size > self.batch_bytes):
                try:
                    self._stage_group(scope, plan, group)
                except WriteBudgetExceededError:
                    self._shrink(group_bytes)
                    self._stage_chunks(scope, plan, group)
                group, group_bytes = [], 0
            if chunk is not None:
                group.append(chunk)
                group_bytes += size

    def _stage_group(self, scope: dict[str, str], plan: _Planned, chunks: list[dict[str, Any]]) -> None:
        self.transport.call(
            'mutation',
            'stageChunks',
            {
                **scope,
                'structure_id': plan.write.key.structure_id,
                'generation': plan.record['generation'],
                'chunks': chunks,
            },
            divisible=len(chunks) > 1,
        )

    def _shrink(self, sent_bytes: int) -> None:
        """A call of ``sent_bytes`` was over the deployment's write throughput: from now on, send at most half."""
        self.batch_bytes = max(MIN_BATCH_BYTES, min(self.batch_bytes, sent_bytes // 2))

    def _commit(self, scope: dict[str, str], batch: list[_Planned], replace_owner: bool) -> None:
        for attempt in range(3):
            records = [
                {**plan.record, 'chunks': None if plan.staged else [c for p in plan.parts for c in p.chunk_args()]}
                for plan in batch
            ]
            # A batch can be sent in parts, and so can a single record's chunks (staged instead).
            divisible = len(batch) > 1 or (not batch[0].staged and batch[0].chunk_bytes > 0)
            try:
                replies = self.transport.call(
                    'mutation',
                    'putBatch',
                    {**scope, 'records': records, 'replace_owner': replace_owner},
                    divisible=divisible,
                )
            except WriteBudgetExceededError:
                # Sent again in smaller calls; a record alone over the smaller budget has its chunks staged.
                self._shrink(sum(plan.batch_bytes for plan in batch))
                if len(batch) == 1:
                    batch[0].forced = True
                    self._stage(scope, batch[0])
                self._send(scope, batch, replace_owner)
                return
            except RequestTooLargeError:
                if len(batch) == 1:
                    raise LimitExceededError(
                        f'{batch[0].write.key}: the record is larger than one Convex request can carry'
                    ) from None
                # JSON escapes made the batch larger than estimated: send it in two halves.
                half = len(batch) // 2
                self._commit(scope, batch[:half], replace_owner)
                self._commit(scope, batch[half:], replace_owner)
                return
            except ConflictError:
                # A generation in use (CONFLICT) or a staged upload that was collected (INCOMPLETE_UPLOAD):
                # nothing was written; start those records over under new generations.
                if attempt == 2:
                    raise
                for plan in batch:
                    plan.new_generation()
                    if plan.staged:
                        self._stage(scope, plan)
                continue
            if [reply['structure_id'] for reply in replies] != [plan.write.key.structure_id for plan in batch]:
                raise self.transport.wrong_reply('structures:putBatch', 'its items are not the records sent')
            for plan, reply in zip(batch, replies, strict=True):
                plan.result = self._result(plan, reply['status'], int(reply['chunk_count']), reply.get('owner'))
                plan.garbage = bool(reply['garbage'])
            return

    # -- reading -----------------------------------------------------------------------------------------------

    def _key_args(self, key: StructureKey) -> dict[str, str]:
        return {'tenant_id': key.tenant_id, 'workspace_id': key.workspace_id, 'structure_id': key.structure_id}

    def _document(self, key: StructureKey) -> dict[str, Any]:
        if not isinstance(key, StructureKey):
            raise InvalidInputError(f'key must be a StructureKey, got {type(key).__name__}')
        document = self.transport.call('query', 'getStructure', self._key_args(key))
        if document is None:
            raise NotFoundError(f'no structure {key}')
        return document

    def _read_chunk_page(
        self, key: StructureKey, generation: str, part: str, from_index: int, max_bytes: int = READ_PAGE_BYTES
    ) -> tuple[list[tuple[int, str]], int | None]:
        page = self.transport.call(
            'query',
            'readChunks',
            {
                **self._key_args(key),
                'generation': generation,
                'part': part,
                'from_index': float(from_index),
                'max_bytes': float(max_bytes),
            },
        )
        pairs = [(int(chunk['chunk_index']), chunk['text']) for chunk in page['chunks']]
        next_index = page['next_index']
        return pairs, None if next_index is None else int(next_index)

    def _iter_chunks(
        self, key: StructureKey, generation: str, part: str, max_bytes: int = READ_PAGE_BYTES
    ) -> Iterator[tuple[int, str]]:
        from_index: int | None = 0
        while from_index is not None:
            pairs, from_index = self._read_chunk_page(key, generation, part, from_index, max_bytes)
            yield from pairs

    def _read_part(self, key: StructureKey, document: dict[str, Any], name: str) -> str | None:
        meta = next((part for part in document['parts'] if part['name'] == name), None)
        if meta is None:
            return None
        return join_chunks(
            self._iter_chunks(key, document['generation'], name),
            expected_count=int(meta['chunk_count']),
            expected_size=int(meta['size']),
            expected_sha256=meta['sha256'],
            what=f'{key}: {"raw input" if name == "raw" else name}',
        )

    def _consistent_read(self, key: StructureKey, read):
        """Run ``read(document)``; if its chunks vanish because a new version was committed meanwhile, retry."""
        for _ in range(READ_ATTEMPTS):
            document = self._document(key)
            try:
                return read(document)
            except IntegrityError:
                latest = self.transport.call('query', 'getStructure', self._key_args(key))
                if latest is None:
                    raise NotFoundError(f'no structure {key} (deleted while being read)') from None
                if latest['generation'] == document['generation']:
                    raise  # the committed version itself does not verify: never return a torn read
        raise ConflictError(f'{key} was replaced {READ_ATTEMPTS} times while being read; try again')

    def get(self, key: StructureKey) -> StructureRecord:
        def read(document: dict[str, Any]) -> StructureRecord:
            payload = {name: document[name] for name in ('cif', 'structure', 'params')}
            for name in payload:
                if payload[name] is None:
                    payload[name] = self._read_part(key, document, name)
            with self.transport.reading('structures:getStructure'):
                return self._record(
                    document,
                    cif=payload['cif'],
                    structure=None if payload['structure'] is None else json.loads(payload['structure']),
                    params=None if payload['params'] is None else json.loads(payload['params']),
                )

        return self._consistent_read(key, read)

    def get_many(self, keys: Sequence[StructureKey]) -> list[StructureRecord | None]:
        """One ``getStructures`` call per :data:`GET_MANY` keys of a workspace; a record with a chunked CIF, payload
        or parameters is then read on its own (:meth:`get`, chunks reassembled and verified)."""
        keys = list(keys)
        for key in keys:
            if not isinstance(key, StructureKey):
                raise InvalidInputError(f'key must be a StructureKey, got {type(key).__name__}')
        found: dict[StructureKey, StructureRecord | None] = {}
        groups: dict[tuple[str, str], list[StructureKey]] = {}
        for key in dict.fromkeys(keys):
            groups.setdefault((key.tenant_id, key.workspace_id), []).append(key)
        for (tenant_id, workspace_id), group in groups.items():
            for start in range(0, len(group), GET_MANY):
                part = group[start : start + GET_MANY]
                documents = self.transport.call(
                    'query',
                    'getStructures',
                    {
                        'tenant_id': tenant_id,
                        'workspace_id': workspace_id,
                        'structure_ids': [key.structure_id for key in part],
                    },
                )
                if len(documents) != len(part):
                    raise self.transport.wrong_reply(
                        'structures:getStructures', f'{len(documents)} items for {len(part)} structure ids'
                    )
                for key, document in zip(part, documents, strict=True):
                    if document is None:
                        found[key] = None
                    elif any(document[name] is None and _has_part(document, name) for name in _PAYLOAD_PARTS):
                        found[key] = self.find(key)  # chunked: read whole and verified
                    else:
                        with self.transport.reading('structures:getStructures'):
                            found[key] = self._inline_record(document)
        return [found[key] for key in keys]

    def _inline_record(self, document: dict[str, Any]) -> StructureRecord:
        structure, params = document['structure'], document['params']
        return self._record(
            document,
            cif=document['cif'],
            structure=None if structure is None else json.loads(structure),
            params=None if params is None else json.loads(params),
        )

    def get_raw(self, key: StructureKey) -> str | None:
        return self._consistent_read(key, lambda document: self._read_part(key, document, 'raw'))

    def open_raw(self, key: StructureKey) -> RawStream | None:
        """Stream the raw input page by page (:data:`STREAM_PAGE_BYTES`), verified as it passes.

        The chunks read are those of the version committed when this is called. If a new version is committed and
        the old chunks are collected while the stream is read, iterating raises :class:`IntegrityError`: a stream
        cannot be restarted the way :meth:`get_raw` retries.
        """
        document = self._document(key)
        meta = next((part for part in document['parts'] if part['name'] == 'raw'), None)
        if meta is None:
            return None
        chunks = iter_verified(
            self._iter_chunks(key, document['generation'], 'raw', STREAM_PAGE_BYTES),
            expected_count=int(meta['chunk_count']),
            expected_size=int(meta['size']),
            expected_sha256=meta['sha256'],
            what=f'{key}: raw input',
        )
        return RawStream(
            key=key,
            size=int(meta['size']),
            sha256=meta['sha256'],
            chunk_count=int(meta['chunk_count']),
            content_hash=document['content_hash'],
            chunks=chunks,
        )

    @staticmethod
    def _summary_fields(document: dict[str, Any]) -> dict[str, Any]:
        raw_size = document['raw_size']
        return {
            'key': StructureKey.of(document['tenant_id'], document['workspace_id'], document['structure_id']),
            'source': Source(
                kind=document['source']['kind'],
                filename=document['source']['filename'],
                uploaded_by=document['source'].get('uploaded_by'),
            ),
            'summary': _restore_ints(document['summary']),
            'node_uuid': document['node_uuid'],
            'content_hash': document['content_hash'],
            'chunk_count': int(document['chunk_count']),
            'raw_size': None if raw_size is None else int(raw_size),
            'raw_sha256': document['raw_sha256'],
            'created_at': _ms_to_datetime(document['created_at']),
            'updated_at': _ms_to_datetime(document['updated_at']),
        }

    def _record(self, document: dict[str, Any], **payload: Any) -> StructureRecord:
        return StructureRecord(**self._summary_fields(document), **payload)

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
        if cursor is not None and (not isinstance(cursor, str) or not cursor.strip()):
            raise InvalidInputError('invalid page cursor')
        # Convex keeps milliseconds: widen the range to whole milliseconds (never narrower than asked).
        bounds: dict[str, float] = {}
        if updated_from is not None:
            bounds['updated_min'] = float(math.floor(updated_from.timestamp() * 1000))
        if updated_to is not None:
            bounds['updated_max'] = float(math.ceil(updated_to.timestamp() * 1000))
        items: list[StructureSummary] = []
        next_cursor = cursor
        # One query reads at most LIST_PAGE records (and 8 MiB): a longer page takes several.
        while True:
            try:
                reply = self.transport.call(
                    'query',
                    'listStructures',
                    {
                        'tenant_id': tenant_id,
                        'workspace_id': workspace_id,
                        'paginationOpts': {
                            'numItems': float(min(limit - len(items), LIST_PAGE)),
                            'cursor': next_cursor,
                        },
                        **bounds,
                    },
                )
            except BackendError as exc:
                if cursor is not None:
                    raise InvalidInputError(f'invalid page cursor {cursor[:40]!r}: {exc}') from None
                raise
            with self.transport.reading('structures:listStructures'):
                items.extend(StructureSummary(**self._summary_fields(doc)) for doc in reply['page'])
            next_cursor = None if reply['isDone'] else reply['continueCursor']
            if next_cursor is None or len(items) >= limit:
                return Page(items=tuple(items), next_cursor=next_cursor)

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
        """The page from the function ``queryStructures``, which walks the plan's index range inside Convex and
        evaluates the filter on each row there; a call ends early after its row budget, and the next call goes on
        from its cursor until the page is full or the range is done. The page's cursor is Convex's."""
        self._check_scope(tenant_id, workspace_id)
        self._check_limit(limit)
        self._check_max_rows(max_rows)
        plan = self._check_query(plan, filter)
        if cursor is not None and (not isinstance(cursor, str) or not cursor.strip()):
            raise InvalidInputError('invalid page cursor')
        items: list[StructureSummary] = []
        cursors: list[str] = []
        structures: list[Any] = []
        next_cursor = cursor
        rows_read = 0
        while True:
            rows = QUERY_ROWS if max_rows is None else min(QUERY_ROWS, max_rows - rows_read)
            args = {
                'tenant_id': tenant_id,
                'workspace_id': workspace_id,
                'plan': plan.as_json(),
                # Convex refuses field names that start with '$': the query travels as JSON text.
                'filter': None if filter is None else json.dumps(filter, separators=(',', ':')),
                'cursor': next_cursor,
                'numItems': float(min(limit - len(items), QUERY_PAGE)),
                'maximumRowsRead': float(rows),
            }
            if with_structures:
                args['withStructures'] = True
            reply = self.transport.call('query', 'queryStructures', args, module=QUERY_MODULE)
            with self.transport.reading(f'{QUERY_MODULE}:queryStructures'):
                items.extend(StructureSummary(**self._summary_fields(doc)) for doc in reply['page'])
                cursors.extend(reply['itemCursors'])
                if with_structures:
                    # The payload's canonical JSON text; False: chunked (not read here); None: the record has none.
                    structures.extend(
                        json.loads(text) if isinstance(text, str) else text for text in reply['structures']
                    )
            next_cursor = None if reply['isDone'] else reply['continueCursor']
            rows_read += int(reply['rowsRead'])
            # With max_rows, a call that stopped at its own budget (rows, or half a transaction's bytes) before its
            # items ends the page: one call per page, whatever the size of the records.
            stopped = max_rows is not None and len(reply['page']) < args['numItems']
            if (
                next_cursor is None
                or len(items) >= limit
                or stopped
                or (max_rows is not None and rows_read >= max_rows)
            ):
                return Page(
                    items=tuple(items),
                    next_cursor=next_cursor,
                    cursors=tuple(cursors),
                    structures=tuple(structures) if with_structures else None,
                )

    def _hashes(self, tenant_id: str, workspace_id: str, structure_ids: Sequence[str]) -> dict[str, str]:
        return self.transport.content_hashes('contentHashes', tenant_id, workspace_id, 'structure_ids', structure_ids)

    def content_hashes(self, tenant_id: str, workspace_id: str, structure_ids: Sequence[str]) -> dict[str, str]:
        self._check_scope(tenant_id, workspace_id)
        for structure_id in structure_ids:
            StructureKey.of(tenant_id, workspace_id, structure_id)
        return self._hashes(tenant_id, workspace_id, structure_ids)

    # -- deleting ----------------------------------------------------------------------------------------------

    def delete(self, key: StructureKey) -> bool:
        reply = self.transport.call('mutation', 'removeStructure', self._key_args(key))
        if reply['garbage']:
            self._collect(
                key.tenant_id, key.workspace_id, structure_id=key.structure_id, older_than_seconds=float('inf')
            )
        return bool(reply['existed'])

    def _collect(
        self, tenant_id: str, workspace_id: str, *, structure_id: str | None = None, older_than_seconds: float
    ) -> int:
        args: dict[str, Any] = {'tenant_id': tenant_id, 'workspace_id': workspace_id}
        if structure_id is not None:
            args['structure_id'] = structure_id
        # With an infinite age only garbage sets (never in-progress uploads) are collected.
        args['older_than_ms'] = min(older_than_seconds * 1000.0, 1e15)
        deleted = 0
        while True:
            reply = self.transport.call('mutation', 'collectGarbage', args)
            deleted += int(reply['deleted'])
            if reply['done']:
                return deleted

    def storage_stats(self, tenant_id: str, workspace_id: str) -> dict[str, Any]:
        """Records, the chunks they declare, chunk sets no record references, and chunks of a workspace (read page
        by page: for tests and diagnostics, it reads every chunk)."""
        self._check_scope(tenant_id, workspace_id)
        stats: dict[str, Any] = {'records': 0, 'committed_chunks': 0, 'chunk_sets': [], 'chunks': 0}
        for table, count_key in (('structures', 'records'), ('chunk_sets', None), ('chunks', 'chunks')):
            cursor = None
            while True:
                page = self.transport.call(
                    'query',
                    'storageStats',
                    {
                        'tenant_id': tenant_id,
                        'workspace_id': workspace_id,
                        'table': table,
                        'paginationOpts': {'numItems': 1000.0, 'cursor': cursor},
                    },
                )
                if count_key is not None:
                    stats[count_key] += int(page['count'])
                stats['committed_chunks'] += int(page['committed_chunks'])
                stats['chunk_sets'].extend(page['chunk_sets'])
                if page['isDone']:
                    break
                cursor = page['continueCursor']
        return stats

    def collect_garbage(self, tenant_id: str, workspace_id: str, *, older_than_seconds: float = 3600.0) -> int:
        self._check_scope(tenant_id, workspace_id)
        if not older_than_seconds >= 0:
            raise InvalidInputError(f'older_than_seconds must be >= 0, got {older_than_seconds!r}')
        return self._collect(tenant_id, workspace_id, older_than_seconds=older_than_seconds)


def _has_part(document: dict[str, Any], name: str) -> bool:
    return any(part['name'] == name for part in document['parts'])


def _floats(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with its integers as floats: Convex numbers are float64, and the wire format writes them so."""
    converted = dict(summary)
    for name in ('nelements', 'nperiodic_dimensions', 'nsites'):
        if type(converted.get(name)) is int:
            converted[name] = float(converted[name])
    if isinstance(converted.get('dimension_types'), list):
        converted['dimension_types'] = [float(x) for x in converted['dimension_types']]
    return converted


def _restore_ints(summary: dict[str, Any]) -> dict[str, Any]:
    """Convex stores numbers as float64; the integer summary fields come back as ints, as they were written."""
    restored = dict(summary)
    for name in ('nelements', 'nperiodic_dimensions', 'nsites'):
        if isinstance(restored.get(name), float):
            restored[name] = int(restored[name])
    if isinstance(restored.get('dimension_types'), list):
        restored['dimension_types'] = [int(x) for x in restored['dimension_types']]
    return restored
