"""The execution records in a Convex deployment: the functions of ``convex/executions.ts`` over the transport.

Records go to ``putExecutions`` many per mutation, within the function's limits (records, structure links) and a
byte budget; a record the function defers (its write budget ran out first) is sent again in the next call. A call
the deployment refuses as over its write throughput (:class:`.transport.WriteBudgetExceededError`) is sent again in
calls of half its bytes, and so are later ones. Reads
page through ``listExecutions`` (a workspace, most recently modified first) or ``listExecutionsOfStructure`` (the
link index of one structure).

This module imports no AiiDA module.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import Any

from ...core.exceptions import BackendError, InvalidInputError, NotFoundError
from ...core.executions import ExecutionKey, ExecutionPage, ExecutionPutResult, ExecutionRecord
from ...core.limits import PROTOCOL
from ..executions import ExecutionStore, PreparedExecution
from .transport import ConvexTransport, WriteBudgetExceededError

__all__ = ('ConvexExecutions',)

MODULE = 'executions'
#: Records per putExecutions mutation, structure links per mutation, and bytes of arguments per mutation at most.
RECORDS_PER_CALL = PROTOCOL['maxExecutionsPerCall']
LINKS_PER_CALL = PROTOCOL['maxExecutionLinksPerCall']
BYTES_PER_CALL = 1024 * 1024
#: Records per page of a listing by structure (the function's own limit), and of a workspace listing.
STRUCTURE_PAGE = 100
WORKSPACE_PAGE = PROTOCOL['maxListPage']


def _ms(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.timezone.utc)


def _wrap_cursor(convex_cursor: str, structure_id: str | None) -> str:
    """The page cursor handed out: Convex's own cursor, tagged with the listing it belongs to."""
    return base64.urlsafe_b64encode(json.dumps([structure_id or '', convex_cursor]).encode()).decode()


def _unwrap_cursor(cursor: str, structure_id: str | None) -> str:
    try:
        listing, convex_cursor = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInputError(f'invalid page cursor {cursor[:40]!r}') from None
    if listing != (structure_id or '') or not isinstance(convex_cursor, str):
        raise InvalidInputError('the page cursor belongs to another listing')
    return convex_cursor


class ConvexExecutions(ExecutionStore):
    """The execution records of a :class:`~aiida_structstore.store.convex.ConvexStore`, over its transport."""

    def __init__(self, transport: ConvexTransport) -> None:
        self.transport = transport
        self.bytes_per_call = BYTES_PER_CALL

    def _put_prepared(self, writes: Sequence[PreparedExecution]) -> list[ExecutionPutResult]:
        statuses: dict[ExecutionKey, str] = {}
        by_scope: dict[tuple[str, str], list[PreparedExecution]] = {}
        for write in writes:
            by_scope.setdefault((write.key.tenant_id, write.key.workspace_id), []).append(write)
        for (tenant_id, workspace_id), pending in by_scope.items():
            while pending:
                batch, size = self._next_batch(pending, self.bytes_per_call)
                try:
                    reply = self.transport.call(
                        'mutation',
                        'putExecutions',
                        {
                            'tenant_id': tenant_id,
                            'workspace_id': workspace_id,
                            'records': [self._argument(write) for write in batch],
                        },
                        module=MODULE,
                        divisible=len(batch) > 1,
                    )
                except WriteBudgetExceededError:
                    self.bytes_per_call = max(1, size // 2)  # the next batch is smaller, down to one record
                    continue
                by_uuid = {write.key.process_uuid: write for write in batch}
                deferred = []
                if sorted(item['process_uuid'] for item in reply) != sorted(by_uuid):
                    raise self.transport.wrong_reply('executions:putExecutions', 'its items are not the records sent')
                for item in reply:
                    write = by_uuid[item['process_uuid']]
                    if item['status'] == 'deferred':
                        deferred.append(write)
                    else:
                        statuses[write.key] = item['status']
                if len(deferred) == len(batch):
                    raise BackendError('putExecutions deferred every record of a batch: the function made no progress')
                pending = deferred + pending[len(batch) :]
        return [
            ExecutionPutResult(key=write.key, status=statuses[write.key], content_hash=write.content_hash)  # type: ignore[arg-type]
            for write in writes
        ]

    @staticmethod
    def _next_batch(pending: list[PreparedExecution], max_bytes: int) -> tuple[list[PreparedExecution], int]:
        """The next records to send (within the function's limits and ``max_bytes``) and their estimated bytes."""
        batch: list[PreparedExecution] = []
        links = size = 0
        for write in pending:
            count = len(write.content.structures_in) + len(write.content.structures_out)
            bytes_ = len(json.dumps(write.content.payload())) + 200
            full = len(batch) >= RECORDS_PER_CALL or links + count > LINKS_PER_CALL or size + bytes_ > max_bytes
            if batch and full:
                break
            batch.append(write)
            links += count
            size += bytes_
        return batch, size

    @staticmethod
    def _argument(write: PreparedExecution) -> dict[str, Any]:
        payload = write.content.payload()
        for name in ('created_at', 'modified_at', 'exit_status'):
            if payload[name] is not None:
                payload[name] = float(payload[name])
        return {'process_uuid': write.key.process_uuid, **payload, 'content_hash': write.content_hash}

    @staticmethod
    def _execution_record(document: dict[str, Any]) -> ExecutionRecord:
        fields = {name: value for name, value in document.items() if name not in ('tenant_id', 'workspace_id', 'role')}
        fields.pop('process_uuid')
        if fields['exit_status'] is not None:
            fields['exit_status'] = int(fields['exit_status'])
        for name in ('created_at', 'modified_at', 'updated_at'):
            fields[name] = _ms(fields[name])
        key = ExecutionKey.of(document['tenant_id'], document['workspace_id'], document['process_uuid'])
        return ExecutionRecord(key=key, **fields)

    def _execution_key_args(self, key: ExecutionKey) -> dict[str, str]:
        key = self._check_key(key)
        return {'tenant_id': key.tenant_id, 'workspace_id': key.workspace_id, 'process_uuid': key.process_uuid}

    def get(self, key: ExecutionKey) -> ExecutionRecord:
        document = self.transport.call('query', 'getExecution', self._execution_key_args(key), module=MODULE)
        if document is None:
            raise NotFoundError(f'no execution {key}')
        with self.transport.reading(f'{MODULE}:getExecution'):
            return self._execution_record(document)

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
        args: dict[str, Any] = {'tenant_id': tenant_id, 'workspace_id': workspace_id}
        if structure_id is not None:
            args['structure_id'] = structure_id
        if modified_from is not None:
            # Convex keeps milliseconds: never narrower than asked.
            args['modified_min'] = float(math.floor(modified_from.timestamp() * 1000))
        function, page_size = (
            ('listExecutionsOfStructure', STRUCTURE_PAGE) if structure_id else ('listExecutions', WORKSPACE_PAGE)
        )
        convex_cursor = None if cursor is None else _unwrap_cursor(cursor, structure_id)
        items: list[ExecutionRecord] = []
        while True:
            paging = {'numItems': float(min(limit - len(items), page_size)), 'cursor': convex_cursor}
            try:
                reply = self.transport.call('query', function, {**args, 'paginationOpts': paging}, module=MODULE)
            except BackendError as exc:
                if cursor is not None:
                    raise InvalidInputError(f'invalid page cursor {cursor[:40]!r}: {exc}') from None
                raise
            with self.transport.reading(f'{MODULE}:{function}'):
                items.extend(self._execution_record(document) for document in reply['page'])
            convex_cursor = None if reply['isDone'] else reply['continueCursor']
            if convex_cursor is None or len(items) >= limit:
                next_cursor = None if convex_cursor is None else _wrap_cursor(convex_cursor, structure_id)
                return ExecutionPage(items=tuple(items), next_cursor=next_cursor)

    def content_hashes(self, tenant_id: str, workspace_id: str, process_uuids: Sequence[str]) -> dict[str, str]:
        uuids = self._check_uuids(tenant_id, workspace_id, process_uuids)
        return self.transport.content_hashes(
            'executionHashes', tenant_id, workspace_id, 'process_uuids', uuids, module=MODULE
        )

    def delete(self, key: ExecutionKey) -> bool:
        reply = self.transport.call('mutation', 'removeExecution', self._execution_key_args(key), module=MODULE)
        return bool(reply['existed'])
