"""Execution records: the state of one AiiDA process as the application sees it, beside the structures.

A record is keyed by ``(tenant_id, workspace_id, process_uuid)`` and carries what a user who opens a structure wants
to know about the calculations that ran or are running on it: the process label and type, its state and how it
ended (exit status and message), where it ran (computer label, scheduler type, Slurm job id and scheduler state),
when it was created and last modified in AiiDA, the workflow that called it, and the ids of the structures of the
same workspace it took and produced.

Nothing sensitive: no remote paths, user names or host names. The computer's host name is carried only when the
projection is configured to (``hostname``); absolute paths in an exit message are replaced by ``<path>`` before a
record is built (:func:`scrub_text`).

Timestamps are kept to the millisecond, as Convex stores them, so every backend returns equal values for equal
writes and the content hash does not depend on the backend.

This module imports no AiiDA module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid as uuid_lib
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .exceptions import InvalidInputError
from .limits import PROTOCOL
from .values import canonical_json, ensure_text, unsafe_character, validate_id

__all__ = (
    'KINDS',
    'MAX_STRUCTURE_LINKS',
    'MAX_TEXT_CHARS',
    'STATES',
    'TERMINAL_STATES',
    'ExecutionContent',
    'ExecutionKey',
    'ExecutionPage',
    'ExecutionPutResult',
    'ExecutionRecord',
    'Scheduler',
    'execution_hash',
    'scrub_text',
)

#: Process states, as AiiDA names them (``plumpy.ProcessState``).
STATES = ('created', 'waiting', 'running', 'finished', 'excepted', 'killed')
#: States a process never leaves.
TERMINAL_STATES = frozenset({'finished', 'excepted', 'killed'})
#: Kinds of process node.
KINDS = ('calcjob', 'calcfunction', 'workchain', 'workfunction', 'process')
#: Structure ids per role (taken, produced) a record carries at most; beyond that the first ids (sorted) are kept and
#: ``structures_truncated`` is set.
MAX_STRUCTURE_LINKS = PROTOCOL['maxExecutionStructures']
#: Characters of an exit message (and of labels) a record carries at most; longer messages are cut with ``…``.
MAX_TEXT_CHARS = PROTOCOL['maxExecutionTextChars']
HASH_VERSION = 1
_NAME_PATTERN = re.compile(r'[A-Za-z0-9_.:+-]{1,255}')
_JOB_ID_PATTERN = re.compile(r'[A-Za-z0-9_.:\[\]-]{1,128}')
# An absolute path of at least two components (/home/x, /scratch/u/run): never shown to the application.
_PATH_PATTERN = re.compile(r'(?<![\w.~-])~?/(?:[^\s/\'"`]+/)+[^\s/\'"`,;:)]*')


def scrub_text(text: str | None, *, limit: int = MAX_TEXT_CHARS) -> str | None:
    """``text`` without absolute paths (each becomes ``<path>``) and control characters, cut to ``limit``
    characters: what an exit message may show the application."""
    if text is None:
        return None
    cleaned = _PATH_PATTERN.sub('<path>', text)
    cleaned = ''.join(c if not unsafe_character(c) or c in '\n\t' else ' ' for c in cleaned).strip()
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + '…'
    return cleaned


def _ms(value: dt.datetime, what: str) -> dt.datetime:
    """``value`` in UTC, to the millisecond (as Convex keeps it)."""
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError(f'{what} must be a timezone-aware datetime')
    value = value.astimezone(dt.timezone.utc)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _uuid(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f'{what} must be a string, got {type(value).__name__}')
    try:
        parsed = uuid_lib.UUID(value)
    except ValueError:
        raise InvalidInputError(f'{what} {value[:60]!r} is not a UUID') from None
    return str(parsed)


def _label(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    ensure_text(value, what)
    if not value or len(value) > 255:
        raise ValueError(f'{what} must have 1 to 255 characters')
    bad = next((c for c in value if unsafe_character(c)), None)
    if bad is not None:
        raise ValueError(f'{what} contains the control or formatting character U+{ord(bad):04X}')
    return value


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra='forbid')


class ExecutionKey(_Model):
    """The key of an execution record: one record per ``(tenant_id, workspace_id, process_uuid)``."""

    tenant_id: str
    workspace_id: str
    process_uuid: str

    @field_validator('tenant_id', 'workspace_id', mode='before')
    @classmethod
    def _valid_id(cls, value: object, info: pydantic.ValidationInfo) -> str:
        return validate_id(value, info.field_name or 'id')

    @field_validator('process_uuid', mode='before')
    @classmethod
    def _valid_uuid(cls, value: object) -> str:
        return _uuid(value, 'process_uuid')

    @classmethod
    def of(cls, tenant_id: str, workspace_id: str, process_uuid: str) -> ExecutionKey:
        """Build a key, raising :class:`InvalidInputError` (not a pydantic error) on an invalid id or UUID."""
        validate_id(tenant_id, 'tenant_id')
        validate_id(workspace_id, 'workspace_id')
        return cls(tenant_id=tenant_id, workspace_id=workspace_id, process_uuid=_uuid(process_uuid, 'process_uuid'))

    def __str__(self) -> str:
        return f'{self.tenant_id}/{self.workspace_id}/{self.process_uuid}'


class Scheduler(_Model):
    """Where a calculation job ran: the scheduler plugin (``core.slurm``), its job id and the last job state AiiDA
    saw (``queued``, ``running``, ``done``, ...), when there is one."""

    type: str
    job_id: str | None = None
    state: str | None = None

    @field_validator('type', 'state')
    @classmethod
    def _valid_name(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        if value is not None and _NAME_PATTERN.fullmatch(value) is None:
            raise ValueError(f'scheduler {info.field_name} {value[:60]!r} is not a valid name')
        return value

    @field_validator('job_id')
    @classmethod
    def _valid_job_id(cls, value: str | None) -> str | None:
        if value is not None and _JOB_ID_PATTERN.fullmatch(value) is None:
            raise ValueError(f'scheduler job id {value[:60]!r} is not valid')
        return value


class ExecutionContent(_Model):
    """What a writer supplies for one process: its key and state. The store adds the content hash and the time of
    the write."""

    key: ExecutionKey
    process_label: str
    process_type: str | None = None
    kind: Literal['calcjob', 'calcfunction', 'workchain', 'workfunction', 'process']
    state: Literal['created', 'waiting', 'running', 'finished', 'excepted', 'killed']
    exit_status: int | None = Field(None, ge=-(2**31), lt=2**31)
    exit_message: str | None = None
    computer: str | None = None
    hostname: str | None = None
    scheduler: Scheduler | None = None
    parent_uuid: str | None = None
    structures_in: tuple[str, ...] = ()
    structures_out: tuple[str, ...] = ()
    structures_truncated: bool = False
    created_at: dt.datetime
    modified_at: dt.datetime

    @field_validator('process_label', 'process_type', 'computer', 'hostname')
    @classmethod
    def _valid_label(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        return _label(value, info.field_name or 'label')

    @field_validator('exit_message')
    @classmethod
    def _valid_message(cls, value: str | None) -> str | None:
        if value is None:
            return None
        ensure_text(value, 'exit_message')
        if len(value) > MAX_TEXT_CHARS:
            raise ValueError(f'exit_message has {len(value)} characters; the limit is {MAX_TEXT_CHARS} (scrub_text)')
        return value

    @field_validator('parent_uuid')
    @classmethod
    def _valid_parent(cls, value: str | None) -> str | None:
        return None if value is None else _uuid(value, 'parent_uuid')

    @field_validator('structures_in', 'structures_out')
    @classmethod
    def _valid_structures(cls, value: tuple[str, ...], info: pydantic.ValidationInfo) -> tuple[str, ...]:
        ids = tuple(sorted(set(validate_id(v, f'{info.field_name} entry') for v in value)))
        if len(ids) > MAX_STRUCTURE_LINKS:
            raise ValueError(f'{info.field_name} has {len(ids)} structure ids; the limit is {MAX_STRUCTURE_LINKS}')
        return ids

    @field_validator('created_at', 'modified_at', mode='after')
    @classmethod
    def _valid_time(cls, value: dt.datetime, info: pydantic.ValidationInfo) -> dt.datetime:
        return _ms(value, info.field_name or 'time')

    @model_validator(mode='after')
    def _consistent(self) -> ExecutionContent:
        if self.exit_status is not None and self.state not in TERMINAL_STATES:
            raise ValueError(f'a {self.state} process has no exit status yet (got {self.exit_status})')
        if self.parent_uuid == self.key.process_uuid:
            raise ValueError('a process cannot be its own parent')
        return self

    @classmethod
    def build(cls, **data: Any) -> ExecutionContent:
        """Validate ``data`` into a content, raising :class:`InvalidInputError` with every problem named."""
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            raise InvalidInputError(f'invalid {cls.__name__}: {_problems(exc)}') from None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def roles(self, structure_id: str) -> list[str]:
        """``input`` and/or ``output``: how this process relates to ``structure_id``."""
        return [
            role
            for role, ids in (('input', self.structures_in), ('output', self.structures_out))
            if structure_id in ids
        ]

    def payload(self) -> dict[str, Any]:
        """The fields as JSON values (timestamps in milliseconds), without the key."""
        data = self.model_dump(mode='json', exclude={'key'})
        data['created_at'] = _millis(self.created_at)
        data['modified_at'] = _millis(self.modified_at)
        data['structures_in'] = list(self.structures_in)
        data['structures_out'] = list(self.structures_out)
        return data


def _millis(value: dt.datetime) -> int:
    return round(value.timestamp() * 1000)


def _problems(exc: pydantic.ValidationError) -> str:
    return '; '.join(f'{".".join(str(p) for p in err["loc"]) or "value"}: {err["msg"]}' for err in exc.errors())


def execution_hash(content: ExecutionContent) -> str:
    """The sha256 hex digest of everything a record carries except its key: equal hashes, equal records."""
    text = canonical_json(content.payload())
    return hashlib.sha256(f'structstore-execution-v{HASH_VERSION}\n{text}'.encode()).hexdigest()


class ExecutionRecord(ExecutionContent):
    """A committed execution record: the content, its hash and when the store last changed it."""

    content_hash: str
    updated_at: dt.datetime

    def to_content(self) -> ExecutionContent:
        """The content this record was written from."""
        return ExecutionContent.model_validate(self.model_dump(exclude={'content_hash', 'updated_at'}))


class ExecutionPutResult(_Model):
    """What a write did: ``created``, ``updated``, ``unchanged`` (the same content was committed already) or
    ``stale`` (the store holds a newer state of the process, by modification time, and kept it)."""

    key: ExecutionKey
    status: Literal['created', 'updated', 'unchanged', 'stale']
    content_hash: str


class ExecutionPage(_Model):
    """One page of execution records, most recently modified (in AiiDA) first; pass ``next_cursor`` for more."""

    items: tuple[ExecutionRecord, ...]
    next_cursor: str | None = None
