"""Import uploads from the store into AiiDA, with provenance, each exactly once.

For each upload claimed from ``store.uploads`` (:meth:`UploadImporter.import_next`):

1. **Already imported?** The file node of an import (label ``upload <upload id>``) carries the extra
   ``structstore_upload`` (``key`` ``tenant/workspace/upload id``, ``sha256``, ``uploaded_by``, and ``message`` when
   the parse failed). An importer that crashed after the import but before it marked the upload finds that node on
   the next claim and completes the upload from it: nothing is imported twice.
2. **Import**, in one database transaction, as ``verdi data structstore import`` does: the exact uploaded bytes as a
   ``SinglefileData`` (``CifData`` for a CIF) with the upload's file name, the import calcfunction
   (``structstore.import_cif`` or ``structstore.import_pw_input``) run on it, the structures added to the group.
   A file that fails to parse keeps the file node and the failed (excepted) process, nothing else. On PostgreSQL
   the transaction takes an advisory lock on the upload first and looks again, so that even two importers holding
   the same upload (a lease that expired under a stalled importer) import it once.
3. **Project** the structure into the upload's workspace as ``sync`` does (with the raw file; the source, from the
   file node's extra, is ``upload.cif`` / ``upload.pw-input`` with the uploader) under the requested structure id or
   the node's UUID, remembered on the node.
4. Optionally **submit a work chain** on the structure (:mod:`.workchain`), once: a process of that type already
   taking the structure as input is not submitted again.
5. **Complete** the upload (structure id, node UUID), or **fail** it with the parse error as one message.

The claim's lease is renewed in a thread while the upload is worked on. A crash anywhere leaves either nothing (the
transaction) or a complete import that the next claim finds; the store gives the upload to another claimer once the
lease has expired. Errors of the store or the database (not of the file) leave the upload claimed, for another
attempt after the lease; after :data:`MAX_ATTEMPTS` attempts the upload is failed with the last error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from aiida import orm
from aiida.common.links import LinkType
from sqlalchemy.exc import SQLAlchemyError

from .. import tracking
from ..core.exceptions import ClaimLostError, InvalidInputError, OwnershipError, StructStoreError
from ..core.uploads import UploadKey, UploadRecord
from ..store.uploads import DEFAULT_MAX_ATTEMPTS

__all__ = ('MAX_ATTEMPTS', 'UPLOAD_EXTRA', 'FoundImport', 'UploadImporter', 'UploadOutcome', 'find_import')

LOGGER = logging.getLogger(__name__)

#: Extra on the file node of an upload's import.
UPLOAD_EXTRA = tracking.UPLOAD_EXTRA
#: Claims of one upload after which an error that is not the file's (the store, the database) fails it.
MAX_ATTEMPTS = DEFAULT_MAX_ATTEMPTS
#: The longest message an upload record is given (the first line of a longer one, cut).
MAX_MESSAGE = 1000


def upload_ident(key: UploadKey) -> str:
    return f'{key.tenant_id}/{key.workspace_id}/{key.upload_id}'


def file_label(key: UploadKey) -> str:
    """The label of an upload's file node (``upload <upload id>``; the id is short, the label column indexed)."""
    return f'upload {key.upload_id}'


@dataclasses.dataclass
class UploadOutcome:
    """What happened to one claimed upload: ``imported``, ``failed`` (the file's fault, the upload marked failed),
    ``lost`` (another claimer took it over) or ``error`` (left claimed for another attempt after the lease)."""

    key: UploadKey
    filename: str
    status: str
    structure_id: str | None = None
    node_pk: int | None = None
    process_pk: int | None = None
    workchain_pk: int | None = None
    message: str | None = None
    #: Whether an earlier import of this upload was found and completed (nothing was imported this time).
    found: bool = False
    seconds: float = 0.0


@dataclasses.dataclass
class FoundImport:
    """An import of an upload: its file node, its process, its structures (by output name) or its failure."""

    file: orm.SinglefileData
    process: orm.CalcFunctionNode | None
    structures: dict[str, orm.StructureData]
    message: str | None = None


def find_import(key: UploadKey, sha256: str) -> FoundImport | None:
    """The import of this upload (its bytes) if one was committed, else ``None``."""
    query = orm.QueryBuilder()
    query.append(
        (orm.SinglefileData, orm.CifData),
        filters={
            'label': file_label(key),  # indexed: the extras are looked at on those few nodes only
            f'extras.{UPLOAD_EXTRA}.key': upload_ident(key),
            f'extras.{UPLOAD_EXTRA}.sha256': sha256,
        },
        project=['*'],
        tag='file',
    )
    files = [row[0] for row in query.all()]
    if not files:
        return None
    file = min(files, key=lambda node: node.pk)
    processes = sorted(
        file.base.links.get_outgoing(node_class=orm.CalcFunctionNode, link_label_filter='file').all_nodes(),
        key=lambda node: node.pk,
    )
    process = processes[0] if processes else None
    message = file.base.extras.get(UPLOAD_EXTRA, {}).get('message')
    structures = _structures_of(process) if process is not None and process.is_finished_ok else {}
    if process is None or (not structures and message is None):
        message = message or f'the import process of {file.filename} did not finish (pk {process and process.pk})'
    return FoundImport(file, process, structures, message)


def _structures_of(process: orm.CalcFunctionNode) -> dict[str, orm.StructureData]:
    links = process.base.links.get_outgoing(node_class=orm.StructureData, link_type=LinkType.CREATE).all()
    named = {link.link_label.replace('structures__', '', 1): link.node for link in links}
    return dict(sorted(named.items(), key=lambda item: (item[0] != 'structure', item[0])))


def error_message(exc: BaseException) -> str:
    """One line for an upload record: the package's messages as they are, other errors with their type."""
    text = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, StructStoreError):
        text = f'{type(exc).__name__}: {text}'
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + '…'


def ensure_group(label: str) -> orm.Group:
    """The group ``label``, created if missing (two importers starting together: one creates it, the other loads it)."""
    try:
        return orm.Group.collection.get_or_create(label)[0]
    except Exception:
        from aiida.manage import get_manager

        get_manager().get_profile_storage().get_session().rollback()
        return orm.Group.collection.get(label=label)


def _from_database(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised from, an error of the database (the process reports it as its own)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, SQLAlchemyError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


class _Interrupted(BaseException):
    """AiiDA's SIGINT handler killed the import calcfunction: the transaction is rolled back."""


class UploadImporter:
    """Claims uploads and imports them (see the module docstring). One instance per process; not thread-safe."""

    def __init__(
        self,
        store: Any,
        *,
        claimer: str,
        lease_seconds: float,
        group_label: str,
        tenant_id: str | None = None,
        workspace_id: str | None = None,
        workchain: Any = None,
    ) -> None:
        self.store = store
        self.claimer = claimer
        self.lease_seconds = lease_seconds
        self.group_label = group_label
        ensure_group(group_label)  # created once; loaded again in each transaction (a rollback detaches ORM objects)
        self.tenant_id = tenant_id
        self.workspace_id = workspace_id
        self.workchain = workchain

    # -- the loop's step ------------------------------------------------------------------------------------------

    def import_next(self) -> UploadOutcome | None:
        """Claim one upload and import it; ``None`` when no upload is pending."""
        claimed = self.store.uploads.claim(
            claimer=self.claimer,
            lease_seconds=self.lease_seconds,
            tenant_id=self.tenant_id,
            workspace_id=self.workspace_id,
        )
        if claimed is None:
            return None
        return self.process(claimed)

    def process(self, claimed: Any) -> UploadOutcome:
        """Import one claimed upload; never raises for the upload's own problems (see :class:`UploadOutcome`)."""
        record: UploadRecord = claimed.record
        started = time.monotonic()
        outcome = UploadOutcome(record.key, record.filename, 'error')
        try:
            with self._renewing(claimed) as lost:
                self._process(claimed, outcome)
                if lost.is_set():
                    raise ClaimLostError(f'the claim on upload {upload_ident(record.key)} was lost while importing')
        except ClaimLostError as exc:
            outcome.status, outcome.message = 'lost', str(exc)
            LOGGER.warning('upload %s: %s', upload_ident(record.key), exc)
        except _Interrupted:
            raise KeyboardInterrupt from None
        except Exception as exc:  # the store or the database: try again after the lease
            outcome.status, outcome.message = 'error', error_message(exc)
            if not isinstance(exc, StructStoreError):
                LOGGER.exception('upload %s: unexpected error', upload_ident(record.key))
            if (getattr(record, 'attempts', 1) or 1) >= MAX_ATTEMPTS:
                message = f'gave up after {record.attempts} attempts: {outcome.message}'
                with contextlib.suppress(Exception):
                    self.store.uploads.fail(record.key, claim=claimed.claim, message=message)
                    outcome.status, outcome.message = 'failed', message
        outcome.seconds = time.monotonic() - started
        return outcome

    def _process(self, claimed: Any, outcome: UploadOutcome) -> None:
        record: UploadRecord = claimed.record
        key = record.key
        found = find_import(key, record.sha256)
        outcome.found = found is not None
        if found is None:
            taken = self._taken(record)
            if taken:
                self._fail(claimed, outcome, taken)
                return
            content = self.store.uploads.read(key)
            if hashlib.sha256(content).hexdigest() != record.sha256:  # the store verifies; the importer trusts itself
                raise StructStoreError(f'upload {upload_ident(key)}: the bytes read do not match the sha256 recorded')
            found = self._import_retrying(record, content)
        outcome.node_pk = found.file.pk
        outcome.process_pk = found.process.pk if found.process is not None else None
        if not found.structures:
            self._fail(claimed, outcome, found.message or 'the file gave no structure')
            return
        try:
            ids = self._project(record, found)
        except (OwnershipError, InvalidInputError) as exc:  # the id was taken meanwhile, or the store refuses it
            self._fail(claimed, outcome, error_message(exc))
            return
        first_name = next(iter(found.structures))
        structure = found.structures[first_name]
        outcome.structure_id = ids[first_name]
        if self.workchain is not None:
            outcome.workchain_pk = self.workchain.submit_once(structure, record, ids[first_name])
        self.store.uploads.complete(key, claim=claimed.claim, structure_id=ids[first_name], node_uuid=structure.uuid)
        outcome.node_pk = structure.pk
        outcome.status = 'imported'

    def _fail(self, claimed: Any, outcome: UploadOutcome, message: str) -> None:
        self.store.uploads.fail(claimed.record.key, claim=claimed.claim, message=message)
        outcome.status, outcome.message = 'failed', message

    def _taken(self, record: UploadRecord) -> str | None:
        """A message if the requested structure id already names a structure (not imported from this upload)."""
        requested = getattr(record, 'structure_id', None)
        if not requested:
            return None
        from ..core.structures import StructureKey

        skey = StructureKey.of(record.key.tenant_id, record.key.workspace_id, requested)
        existing = self.store.structures.find(skey)
        if existing is None:
            return None
        return (
            f'the structure id {requested!r} is taken in {skey.tenant_id}/{skey.workspace_id} by another structure '
            f'(node {existing.node_uuid})'
        )

    # -- the import transaction --------------------------------------------------------------------------------------

    def _import_retrying(self, record: UploadRecord, content: bytes) -> FoundImport:
        """:meth:`_import`, once more if the database refused the transaction (rolled back whole): two importers that
        write AiiDA's global process-state timestamp for the first time race on its unique key, for instance."""
        try:
            return self._import(record, content)
        except SQLAlchemyError as exc:
            LOGGER.info('upload %s: the database refused the import (%s); once more', upload_ident(record.key), exc)
            return self._import(record, content)

    def _import(self, record: UploadRecord, content: bytes) -> FoundImport:
        from aiida.manage import get_manager
        from plumpy.exceptions import KilledError

        from ..calculations.functions.import_cif import import_cif
        from ..calculations.functions.import_pw_input import import_pw_input

        key = record.key
        extra = {
            'key': upload_ident(key),
            'sha256': record.sha256,
            'uploaded_by': record.uploaded_by,
            'kind': record.kind,
        }
        storage = get_manager().get_profile_storage()
        with storage.transaction():
            self._lock(key)
            found = find_import(key, record.sha256)  # under the lock: another importer may have committed meanwhile
            if found is not None:
                return found
            if record.kind == 'cif':
                # Lazy: AiiDA's eager parse (PyCifRW) would refuse files the reader accepts (a byte-order mark).
                node = orm.CifData(file=io.BytesIO(content), filename=record.filename, parse_policy='lazy')
                function = import_cif
            else:
                node = orm.SinglefileData(io.BytesIO(content), filename=record.filename)
                function = import_pw_input
            node.label = file_label(key)
            node.base.extras.set(UPLOAD_EXTRA, extra)
            node.store()
            try:
                _, process = function.run_get_node(file=node)
            except KilledError:
                raise _Interrupted from None
            except Exception as exc:  # the parse failed: the file node and the excepted process stay
                if _from_database(exc):  # the database, not the file: roll everything back
                    raise
                message = error_message(exc)
                node.base.extras.set(UPLOAD_EXTRA, {**extra, 'message': message})
                processes = node.base.links.get_outgoing(node_class=orm.CalcFunctionNode).all_nodes()
                return FoundImport(node, processes[0] if processes else None, {}, message)
            structures = _structures_of(process)
            orm.Group.collection.get(label=self.group_label).add_nodes(list(structures.values()))
        return FoundImport(node, process, structures)

    @staticmethod
    def _lock(key: UploadKey) -> None:
        """A PostgreSQL advisory lock on the upload for the rest of the transaction (nothing on SQLite, whose writers
        are serialised anyway)."""
        from aiida.manage import get_manager
        from sqlalchemy import text

        session = get_manager().get_profile_storage().get_session()
        if session.get_bind().dialect.name != 'postgresql':
            return
        number = int.from_bytes(hashlib.sha256(upload_ident(key).encode()).digest()[:8], 'big', signed=True)
        session.execute(text('SELECT pg_advisory_xact_lock(:key)'), {'key': number})

    # -- projection --------------------------------------------------------------------------------------------------

    def _project(self, record: UploadRecord, found: FoundImport) -> dict[str, str]:
        """Project the structures; their ids by output name: the requested id (or the first structure's UUID), and
        ``<that id>-<block name>`` for the further blocks of a CIF with several.

        As ``verdi data structstore sync`` does (one store call for all, the projection remembered on the nodes), not
        with a ``structstore.project_structure`` process per structure: that process and its inputs and receipt
        took about two thirds of an upload's import time, and the upload record keeps what the receipt would.
        """
        from ..core.structures import StructureKey
        from ..store.structures import ownership_message
        from ..structures.projection import default_structure_id
        from ..structures.sync import prepare_node

        tenant_id, workspace_id = record.key.tenant_id, record.key.workspace_id
        names = list(found.structures)
        first = found.structures[names[0]]
        base = record.structure_id or default_structure_id(first.uuid)
        ids = {name: base if index == 0 else f'{base}-{name}' for index, name in enumerate(names)}
        origins = tracking.find_origins([structure.pk for structure in found.structures.values()])
        writes = [
            prepare_node(
                self.store,
                StructureKey.of(tenant_id, workspace_id, ids[name]),
                structure.uuid,
                structure.base.attributes.all,
                origins.get(structure.pk),
            )
            for name, structure in found.structures.items()
        ]
        results = self.store.structures.put_prepared(writes)
        for write, result in zip(writes, results, strict=True):
            if result.status == 'conflict':
                raise OwnershipError(ownership_message(result.key, write.content.node_uuid, result.owner))
        if self.store.persistent:
            entries = {
                structure.pk: tracking.target_entry(
                    self.store,
                    tenant_id,
                    workspace_id,
                    ids[name],
                    result.content_hash,
                    with_raw=write.raw is not None,
                    node_uuid=structure.uuid,
                )
                for (name, structure), write, result in zip(found.structures.items(), writes, results, strict=True)
            }
            tracking.remember(tracking.target_extra(self.store.store_id, tenant_id, workspace_id), entries)
        return ids

    # -- the lease ---------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _renewing(self, claimed: Any) -> Iterator[threading.Event]:
        """Renew the claim every third of the lease while the body runs; the event is set if the claim was lost."""
        stop, lost = threading.Event(), threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease_seconds / 3):
                try:
                    self.store.uploads.renew(claimed.record.key, claim=claimed.claim, lease_seconds=self.lease_seconds)
                except ClaimLostError:
                    lost.set()
                    return
                except Exception as exc:  # the store is away: try again at the next third
                    LOGGER.warning('could not renew the claim on %s: %s', upload_ident(claimed.record.key), exc)

        thread = threading.Thread(target=renew, name='structstore-upload-lease', daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            stop.set()
            thread.join()
