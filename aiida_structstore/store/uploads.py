"""The upload part of the store contract: files the application's users handed in, waiting to be imported into AiiDA.

Every store (:class:`~aiida_structstore.store.base.Store`) holds one :class:`UploadStore`, as ``store.uploads``,
beside ``store.structures`` and ``store.executions``. The read API creates uploads and reads their status; the AiiDA
side (``verdi data structstore uploads import|watch``) claims them, imports them and marks them imported or failed.
Records and checks are in :mod:`aiida_structstore.core.uploads`; docs/uploads.md describes the round trip.

The interface::

    record, created = store.uploads.create(tenant_id, workspace_id, filename='x.cif', kind='cif',
                                           content=b'...', uploaded_by='alice', structure_id=None)
    store.uploads.get(key) / find(key)             # UploadRecord (NotFoundError) / or None
    store.uploads.list(tenant_id, workspace_id, status=None, cursor=None, limit=50)   # UploadPage, newest first
    store.uploads.read(key) -> bytes               # exactly the bytes uploaded, verified (size, sha256)
    claimed = store.uploads.claim(claimer='host:pid', lease_seconds=300, tenant_id=None, workspace_id=None)
    store.uploads.renew(claimed.key, claim=claimed.claim, lease_seconds=300)       # -> UploadRecord
    store.uploads.complete(claimed.key, claim=claimed.claim, structure_id='fe2o3', node_uuid='...')
    store.uploads.fail(claimed.key, claim=claimed.claim, message='line 3: ...')

Invariants every backend keeps (``tests/store/test_contract_uploads.py`` runs on all of them):

1. one upload per ``(tenant_id, workspace_id, sha256 of the bytes)``: creating the same bytes again returns the
   same upload with ``created`` false (whatever its status); the same bytes with another ``kind`` or requested
   ``structure_id`` raise :class:`~aiida_structstore.core.exceptions.ConflictError` naming the upload;
2. ``read`` returns exactly the bytes uploaded, or raises
   :class:`~aiida_structstore.core.exceptions.IntegrityError`; an upload is visible only once all its bytes are;
3. ``claim`` atomically takes one upload: an ``importing`` one whose lease expired (oldest first), else the oldest
   ``pending`` one; it sets ``importing``, ``claimed_by``, ``claim_expires_at`` and ``attempts + 1`` and returns a
   fresh claim token. Two claimers never hold the same upload: on Convex the claim is one mutation, which Convex
   runs as one serializable transaction. An expired upload that was claimed ``max_attempts`` times already is
   marked ``failed`` (the importer crashed on it each time) instead of being handed out again;
4. ``complete``, ``fail`` and ``renew`` need the current claim token of an ``importing`` upload; any other (the
   lease expired and another importer claimed it, or it was finished already) raises
   :class:`~aiida_structstore.core.exceptions.ClaimLostError` and changes nothing. A lease that expired but was not
   claimed again still lets its holder finish;
5. every call is idempotent for the client's retries: ``claim`` sent again with the same (internal) claim token
   answers the upload it took, ``complete``/``fail`` sent again with the same claim and values answer what the first
   did;
6. no call returns or changes another tenant's or workspace's uploads (a claim scoped by tenant, or tenant and
   workspace, takes only theirs);
7. invalid input raises :class:`~aiida_structstore.core.exceptions.InvalidInputError` and writes nothing.

This module imports no AiiDA module.
"""

from __future__ import annotations

import abc
import hashlib
import math
import secrets
from collections.abc import Iterator

from ..core.chunking import DEFAULT_CHUNK_BYTES
from ..core.exceptions import ConflictError, InvalidInputError, NotFoundError
from ..core.uploads import (
    STATUSES,
    ClaimedUpload,
    StoredText,
    UploadKey,
    UploadPage,
    UploadRecord,
    check_claim_token,
    check_claimer,
    check_content,
    check_filename,
    check_kind,
    check_message,
    check_uploader,
    encode_for_storage,
    upload_id_for,
)
from ..core.values import validate_id

__all__ = (
    'DEFAULT_LEASE_SECONDS',
    'DEFAULT_MAX_ATTEMPTS',
    'MAX_UPLOAD_PAGE',
    'NewUpload',
    'UploadStore',
    'claim_lost_message',
    'gave_up_message',
)

#: The largest page of uploads a listing returns.
MAX_UPLOAD_PAGE = 200
#: How long a claim holds by default before another importer may take the upload.
DEFAULT_LEASE_SECONDS = 300.0
#: How many claims an upload gets before an expired one is marked failed rather than handed out again.
DEFAULT_MAX_ATTEMPTS = 5
#: The longest lease accepted (a day): a crashed importer must not hold an upload for ever.
MAX_LEASE_SECONDS = 86400.0


def claim_lost_message(key: UploadKey, status: str) -> str:
    """Why ``complete``/``fail``/``renew`` were refused: the claim is not the upload's current one."""
    if status == 'importing':
        return f'{key}: the claim is no longer held (its lease expired and another importer claimed the upload)'
    return f'{key}: the claim is no longer held (the upload is {status})'


def gave_up_message(attempts: int) -> str:
    """The failure message of an upload whose importers stopped (crashed or were killed) ``attempts`` times."""
    return f'the import was interrupted {attempts} times without finishing (the importer stopped each time)'


class NewUpload:
    """A validated upload, before it is written: the fields, the bytes' sha256, the id and the text to store."""

    __slots__ = ('content', 'filename', 'key', 'kind', 'sha256', 'size', 'stored', 'structure_id', 'uploaded_by')

    def __init__(
        self,
        key: UploadKey,
        *,
        filename: str,
        kind: str,
        content: bytes,
        sha256: str,
        uploaded_by: str,
        structure_id: str | None,
        stored: StoredText,
    ) -> None:
        self.key = key
        self.filename = filename
        self.kind = kind
        self.content = content
        self.size = len(content)
        self.sha256 = sha256
        self.uploaded_by = uploaded_by
        self.structure_id = structure_id
        self.stored = stored


class UploadStore(abc.ABC):
    """Uploads keyed by tenant, workspace and upload id (see the module docstring)."""

    def __init__(self, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.chunk_bytes = chunk_bytes

    # -- the application's side ----------------------------------------------------------------------------------

    def prepare(
        self,
        tenant_id: str,
        workspace_id: str,
        *,
        filename: str,
        kind: str,
        content: bytes,
        uploaded_by: str,
        structure_id: str | None = None,
    ) -> NewUpload:
        """Validate an upload and compute its id and stored text, without writing anything."""
        validate_id(tenant_id, 'tenant_id')
        validate_id(workspace_id, 'workspace_id')
        data = check_content(content)
        if structure_id is not None:
            validate_id(structure_id, 'structure_id')
        sha256 = hashlib.sha256(data).hexdigest()
        return NewUpload(
            UploadKey.of(tenant_id, workspace_id, upload_id_for(sha256)),
            filename=check_filename(filename),
            kind=check_kind(kind),
            content=data,
            sha256=sha256,
            uploaded_by=check_uploader(uploaded_by),
            structure_id=structure_id,
            stored=encode_for_storage(data, self.chunk_bytes),
        )

    def create(
        self,
        tenant_id: str,
        workspace_id: str,
        *,
        filename: str,
        kind: str,
        content: bytes,
        uploaded_by: str,
        structure_id: str | None = None,
    ) -> tuple[UploadRecord, bool]:
        """Store an upload (status ``pending``) and return it with whether it was created; the same bytes uploaded
        into the workspace before return that upload (``created`` false)."""
        upload = self.prepare(
            tenant_id,
            workspace_id,
            filename=filename,
            kind=kind,
            content=content,
            uploaded_by=uploaded_by,
            structure_id=structure_id,
        )
        record, created = self._create(upload)
        if not created and (problem := self._conflict_message(record, upload)) is not None:
            raise ConflictError(problem)
        return record, created

    @abc.abstractmethod
    def _create(self, upload: NewUpload) -> tuple[UploadRecord, bool]:
        """Commit a validated upload atomically (its bytes, then the record), or return the existing one."""

    @abc.abstractmethod
    def get(self, key: UploadKey) -> UploadRecord:
        """The upload under ``key``; :class:`NotFoundError` if there is none."""

    def find(self, key: UploadKey) -> UploadRecord | None:
        """The upload under ``key``, or ``None``."""
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
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> UploadPage:
        """One page of a workspace's uploads, newest first; with ``status``, only those in that state. Pass the
        same arguments with each page's cursor."""

    def iter(self, tenant_id: str, workspace_id: str, *, status: str | None = None) -> Iterator[UploadRecord]:
        """Every upload :meth:`list` selects, page by page."""
        cursor = None
        while True:
            page = self.list(tenant_id, workspace_id, status=status, cursor=cursor, limit=MAX_UPLOAD_PAGE)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    @abc.abstractmethod
    def read(self, key: UploadKey) -> bytes:
        """Exactly the bytes uploaded, verified against the upload's size and sha256
        (:class:`~aiida_structstore.core.exceptions.IntegrityError` otherwise)."""

    # -- the importer's side -------------------------------------------------------------------------------------

    def claim(
        self,
        *,
        claimer: str,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        tenant_id: str | None = None,
        workspace_id: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> ClaimedUpload | None:
        """Take one upload to import (see invariant 3 of the module docstring), or ``None`` if there is none.

        ``tenant_id`` (and ``workspace_id``, which needs it) restrict the claim to their uploads.
        """
        check_claimer(claimer)
        lease_ms = self._lease_ms(lease_seconds)
        if workspace_id is not None and tenant_id is None:
            raise InvalidInputError('a claim restricted to a workspace needs its tenant_id too')
        if tenant_id is not None:
            validate_id(tenant_id, 'tenant_id')
        if workspace_id is not None:
            validate_id(workspace_id, 'workspace_id')
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or not 1 <= max_attempts <= 100:
            raise InvalidInputError(f'max_attempts must be an integer from 1 to 100, got {max_attempts!r}')
        token = secrets.token_urlsafe(24)
        record = self._claim(
            claimer=claimer,
            lease_ms=lease_ms,
            token=token,
            tenant_id=tenant_id,
            workspace_id=workspace_id,
            max_attempts=max_attempts,
        )
        return None if record is None else ClaimedUpload(record=record, claim=token)

    def renew(self, key: UploadKey, *, claim: str, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> UploadRecord:
        """Extend a claim's lease to ``lease_seconds`` from now (for imports that take long)."""
        return self._renew(self._check_key(key), check_claim_token(claim), self._lease_ms(lease_seconds))

    def complete(self, key: UploadKey, *, claim: str, structure_id: str, node_uuid: str) -> UploadRecord:
        """Mark a claimed upload ``imported``: the structure id it was projected under and the AiiDA node."""
        validate_id(structure_id, 'structure_id')
        if not isinstance(node_uuid, str) or not 1 <= len(node_uuid) <= 64:
            raise InvalidInputError('node_uuid must be a string of 1 to 64 characters')
        return self._complete(self._check_key(key), check_claim_token(claim), structure_id, node_uuid)

    def fail(self, key: UploadKey, *, claim: str, message: str) -> UploadRecord:
        """Mark a claimed upload ``failed`` with ``message`` (one clear sentence: the parse error). Absolute paths
        and control characters are removed and the message is cut to 1,000 characters."""
        return self._fail(self._check_key(key), check_claim_token(claim), check_message(message))

    @abc.abstractmethod
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
        """Atomically take one upload for ``token`` (see :meth:`claim`)."""

    @abc.abstractmethod
    def _renew(self, key: UploadKey, claim: str, lease_ms: int) -> UploadRecord: ...

    @abc.abstractmethod
    def _complete(self, key: UploadKey, claim: str, structure_id: str, node_uuid: str) -> UploadRecord: ...

    @abc.abstractmethod
    def _fail(self, key: UploadKey, claim: str, message: str) -> UploadRecord: ...

    def collect_garbage(self, tenant_id: str, workspace_id: str, *, older_than_seconds: float = 3600.0) -> int:
        """Delete the bytes of uploads that were staged but never committed (a creator that stopped half-way, or lost
        to another creator of the same bytes) and untouched for ``older_than_seconds``; return how many chunks were
        deleted. Committed uploads are never touched."""
        self._check_list(tenant_id, workspace_id, None, 1)
        return 0

    # -- helpers for backends ----------------------------------------------------------------------------------

    @staticmethod
    def _lease_ms(lease_seconds: float) -> int:
        if (
            not isinstance(lease_seconds, int | float)
            or isinstance(lease_seconds, bool)
            or not math.isfinite(lease_seconds)
            or not 0 <= lease_seconds <= MAX_LEASE_SECONDS
        ):
            raise InvalidInputError(
                f'lease_seconds must be a number from 0 to {MAX_LEASE_SECONDS:.0f}, got {lease_seconds!r}'
            )
        return round(lease_seconds * 1000)

    @staticmethod
    def _check_key(key: object) -> UploadKey:
        if not isinstance(key, UploadKey):
            raise InvalidInputError(f'key must be an UploadKey, got {type(key).__name__}')
        return key

    @staticmethod
    def _check_list(tenant_id: str, workspace_id: str, status: str | None, limit: int) -> None:
        validate_id(tenant_id, 'tenant_id')
        validate_id(workspace_id, 'workspace_id')
        if status is not None and status not in STATUSES:
            raise InvalidInputError(f'status must be one of {", ".join(STATUSES)}; got {str(status)[:40]!r}')
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_UPLOAD_PAGE:
            raise InvalidInputError(f'page limit must be an integer from 1 to {MAX_UPLOAD_PAGE}, got {limit!r}')

    @staticmethod
    def _conflict_message(existing: UploadRecord, upload: NewUpload) -> str | None:
        """Why ``upload`` cannot be the existing upload of the same bytes, or ``None`` if it can."""
        if existing.kind != upload.kind:
            return (
                f'these bytes were uploaded already as {existing.key.upload_id} of kind {existing.kind}; '
                f'they cannot also be an upload of kind {upload.kind}'
            )
        if existing.structure_id != upload.structure_id:
            return (
                f'these bytes were uploaded already as {existing.key.upload_id} for structure id '
                f'{existing.structure_id or "(chosen by the importer)"}; they cannot also be uploaded for '
                f'{upload.structure_id or "(chosen by the importer)"}'
            )
        return None
