"""Upload records: a file (CIF or pw.x input) a user of the application handed in, waiting to be imported into AiiDA.

An upload is keyed by ``(tenant_id, workspace_id, upload_id)``. Its id is derived from the sha256 of its bytes
(:func:`upload_id_for`), so the same bytes uploaded twice into one workspace are one upload. It moves through

``pending`` → ``importing`` (claimed by an importer, with a lease) → ``imported`` (a structure id and AiiDA node) or
``failed`` (one clear message); an ``importing`` upload whose lease expired is claimable again.

The bytes are held exactly: text that is valid UTF-8 is stored as that text, anything else as base64 text
(:func:`encode_for_storage`), and both read back to the bytes uploaded (:func:`decode_from_storage`), verified against
the size and sha256 of the upload. Nothing here parses the file: the AiiDA side trusts only what it parses itself.

This module imports no AiiDA module.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .chunking import ChunkedText, split_text
from .exceptions import IntegrityError, InvalidInputError, LimitExceededError
from .executions import scrub_text
from .limits import PROTOCOL
from .values import FILENAME_MAX_LENGTH, ensure_text, unsafe_character, validate_id

__all__ = (
    'ENCODINGS',
    'KINDS',
    'MAX_MESSAGE_CHARS',
    'MAX_UPLOAD_BYTES',
    'STATUSES',
    'ClaimedUpload',
    'StoredText',
    'UploadKey',
    'UploadPage',
    'UploadRecord',
    'check_claim_token',
    'check_claimer',
    'check_content',
    'check_filename',
    'check_kind',
    'check_message',
    'check_uploader',
    'decode_from_storage',
    'encode_for_storage',
    'upload_id_for',
)

#: What an upload is: a CIF file or a Quantum ESPRESSO pw.x input.
KINDS = ('cif', 'pw')
#: The states of an upload.
STATUSES = ('pending', 'importing', 'imported', 'failed')
#: How the bytes are held in the store: as their text (valid UTF-8), or as base64 text (anything else).
ENCODINGS = ('utf-8', 'base64')
#: The largest upload accepted (bytes): the store's limit for raw input (``store.structures.MAX_RAW_BYTES``).
MAX_UPLOAD_BYTES = PROTOCOL['maxUploadBytes']
#: Characters of a failure message an upload keeps at most (longer ones are cut with ``…``).
MAX_MESSAGE_CHARS = PROTOCOL['maxUploadMessageChars']
_SHA256 = re.compile(r'[0-9a-f]{64}')
_CLAIM = re.compile(r'[A-Za-z0-9_-]{16,128}')


def _ms(value: dt.datetime) -> dt.datetime:
    value = value.astimezone(dt.timezone.utc)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def upload_id_for(sha256: str) -> str:
    """The id of the upload of the bytes whose sha256 hex digest is ``sha256``: ``u`` and its first 32 digits."""
    if not isinstance(sha256, str) or _SHA256.fullmatch(sha256) is None:
        raise InvalidInputError(f'sha256 must be 64 lowercase hex digits, got {str(sha256)[:70]!r}')
    return f'u{sha256[:32]}'


def check_kind(kind: object) -> str:
    """``kind`` if it is ``cif`` or ``pw``, else :class:`InvalidInputError`."""
    if kind not in KINDS:
        raise InvalidInputError(f'kind must be one of {", ".join(KINDS)}; got {str(kind)[:40]!r}')
    return str(kind)


def check_filename(filename: object) -> str:
    """``filename`` if it is a plain file name (no directory, 1 to 255 characters, no control characters)."""
    if not isinstance(filename, str):
        raise InvalidInputError(f'filename must be a string, got {type(filename).__name__}')
    ensure_text(filename, 'filename')
    if not filename.strip():
        raise InvalidInputError('filename must not be empty')
    if len(filename) > FILENAME_MAX_LENGTH:
        raise InvalidInputError(f'filename is {len(filename)} characters long; the limit is {FILENAME_MAX_LENGTH}')
    if '/' in filename or '\\' in filename or filename in ('.', '..'):
        raise InvalidInputError(f'filename {filename[:80]!r} must be a file name, without a directory')
    bad = next((c for c in filename if unsafe_character(c)), None)
    if bad is not None:
        raise InvalidInputError(f'filename contains the control or formatting character U+{ord(bad):04X}')
    return filename


def check_uploader(uploaded_by: object) -> str:
    """``uploaded_by`` (who uploaded: the token's subject) if it is 1 to 255 printable characters."""
    if not isinstance(uploaded_by, str) or not uploaded_by or len(uploaded_by) > 255:
        raise InvalidInputError('uploaded_by must be a string of 1 to 255 characters')
    ensure_text(uploaded_by, 'uploaded_by')
    bad = next((c for c in uploaded_by if unsafe_character(c)), None)
    if bad is not None:
        raise InvalidInputError(f'uploaded_by contains the control or formatting character U+{ord(bad):04X}')
    return uploaded_by


def check_claimer(claimer: object) -> str:
    """``claimer`` (who claims: an importer's name, e.g. ``host:pid``) if it is 1 to 255 printable characters."""
    if not isinstance(claimer, str) or not claimer or len(claimer) > 255:
        raise InvalidInputError('claimer must be a string of 1 to 255 characters')
    bad = next((c for c in claimer if unsafe_character(c)), None)
    if bad is not None:
        raise InvalidInputError(f'claimer contains the control or formatting character U+{ord(bad):04X}')
    return ensure_text(claimer, 'claimer')


def check_claim_token(claim: object) -> str:
    """``claim`` if it looks like a claim token handed out by ``claim()``."""
    if not isinstance(claim, str) or _CLAIM.fullmatch(claim) is None:
        raise InvalidInputError('claim must be the claim token returned by claim()')
    return claim


def check_content(content: object, *, limit: int = MAX_UPLOAD_BYTES) -> bytes:
    """``content`` as bytes if it is 1 to ``limit`` bytes, else :class:`InvalidInputError` (:class:`LimitExceededError`
    when too large)."""
    if not isinstance(content, bytes | bytearray | memoryview):
        raise InvalidInputError(f'content must be bytes, got {type(content).__name__}')
    data = bytes(content)
    if not data:
        raise InvalidInputError('the file is empty')
    if len(data) > limit:
        raise LimitExceededError(f'the file is {len(data)} bytes; the limit is {limit} bytes')
    return data


def check_message(message: object) -> str:
    """A failure message as an upload keeps it: no absolute paths or control characters, at most 1,000 characters."""
    if not isinstance(message, str) or not message.strip():
        raise InvalidInputError('a failure message must be a non-empty string')
    return scrub_text(ensure_text(message, 'message'), limit=MAX_MESSAGE_CHARS) or 'failed'


@dataclass(frozen=True)
class StoredText:
    """An upload's bytes as the store holds them: ``text`` (the UTF-8 text, or base64) in chunks, and its encoding."""

    encoding: Literal['utf-8', 'base64']
    chunked: ChunkedText


def encode_for_storage(content: bytes, chunk_bytes: int) -> StoredText:
    """The bytes as text a store can hold, in chunks of at most ``chunk_bytes`` (UTF-8) bytes."""
    try:
        text, encoding = content.decode('utf-8'), 'utf-8'
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(content).decode('ascii'), 'base64'
    return StoredText(encoding=encoding, chunked=split_text(text, chunk_bytes))  # type: ignore[arg-type]


def decode_from_storage(text: str, encoding: str, *, size: int, sha256: str, what: str) -> bytes:
    """The bytes held as ``text`` in ``encoding``, verified against ``size`` and ``sha256`` (:class:`IntegrityError`
    if they differ)."""
    if encoding == 'utf-8':
        data = text.encode('utf-8')
    elif encoding == 'base64':
        try:
            data = base64.b64decode(text.encode('ascii'), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise IntegrityError(f'{what}: the stored base64 text does not decode') from exc
    else:
        raise IntegrityError(f'{what}: unknown stored encoding {encoding!r}')
    if len(data) != size:
        raise IntegrityError(f'{what}: {len(data)} bytes read, {size} uploaded')
    if hashlib.sha256(data).hexdigest() != sha256:
        raise IntegrityError(f'{what}: sha256 of the bytes read does not match the upload')
    return data


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra='forbid')


class UploadKey(_Model):
    """The key of an upload: one per ``(tenant_id, workspace_id, upload_id)``."""

    tenant_id: str
    workspace_id: str
    upload_id: str

    @field_validator('tenant_id', 'workspace_id', 'upload_id', mode='before')
    @classmethod
    def _valid_id(cls, value: object, info: pydantic.ValidationInfo) -> str:
        return validate_id(value, info.field_name or 'id')

    @classmethod
    def of(cls, tenant_id: str, workspace_id: str, upload_id: str) -> UploadKey:
        """Build a key, raising :class:`InvalidInputError` (not a pydantic error) on an invalid id."""
        return cls(
            tenant_id=validate_id(tenant_id, 'tenant_id'),
            workspace_id=validate_id(workspace_id, 'workspace_id'),
            upload_id=validate_id(upload_id, 'upload_id'),
        )

    def __str__(self) -> str:
        return f'{self.tenant_id}/{self.workspace_id}/upload {self.upload_id}'


class UploadRecord(_Model):
    """An upload as the store holds it (without its bytes: ``store.uploads.read(key)``).

    ``structure_id`` is the id the uploader asked for (or ``None``: the importer chooses); ``result_structure_id`` and
    ``node_uuid`` say what the import produced; ``message`` why it failed. ``claimed_by``, ``claim_expires_at`` and
    ``attempts`` describe the current or last claim.
    """

    key: UploadKey
    filename: str
    kind: Literal['cif', 'pw']
    status: Literal['pending', 'importing', 'imported', 'failed']
    size: int = Field(ge=1)
    sha256: str
    uploaded_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    structure_id: str | None = None
    result_structure_id: str | None = None
    node_uuid: str | None = None
    message: str | None = None
    claimed_by: str | None = None
    claim_expires_at: dt.datetime | None = None
    attempts: int = Field(0, ge=0)

    @field_validator('created_at', 'updated_at', 'claim_expires_at', mode='after')
    @classmethod
    def _valid_time(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError('times must be timezone-aware')
        return _ms(value)

    @property
    def terminal(self) -> bool:
        """Whether the upload will not change any more (``imported`` or ``failed``)."""
        return self.status in ('imported', 'failed')


@dataclass(frozen=True)
class ClaimedUpload:
    """An upload claimed by one importer: the record (status ``importing``) and the claim token that ``complete``,
    ``fail`` and ``renew`` need. The token is the importer's alone; the record never shows it."""

    record: UploadRecord
    claim: str

    @property
    def key(self) -> UploadKey:
        return self.record.key


class UploadPage(_Model):
    """One page of uploads, newest first; pass ``next_cursor`` for more."""

    items: tuple[UploadRecord, ...]
    next_cursor: str | None = None
