"""Records of the structure store: keys, contents, committed records and pages.

This module imports no AiiDA module: the application reads projections with it and no AiiDA profile. The id and
text rules every record kind shares are in :mod:`.values`.

Content hash
------------
The content hash (:func:`content_hash`) is the sha256 of the canonical JSON (sorted keys, no whitespace, no NaN) of
everything a record carries except its key and timestamps, including the size and sha256 of the raw input (each
field length-prefixed, see :func:`content_hash`). Two writes with equal hashes are the same content: the second is a
no-op on every backend.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import re
import uuid as uuid_lib
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from .exceptions import InvalidInputError
from .values import FILENAME_MAX_LENGTH, canonical_json, ensure_text, unsafe_character, validate_id

__all__ = (
    'SUMMARY_FIELDS',
    'Page',
    'PutResult',
    'Source',
    'StructureContent',
    'StructureKey',
    'StructureRecord',
    'StructureSummary',
    'content_hash',
)

SOURCE_KIND_PATTERN = re.compile(r'[a-z][a-z0-9_.-]{0,63}')
HASH_VERSION = 1

#: OPTIMADE fields copied from the structure payload into the small, always-inline ``summary`` of a record. They are
#: what a list view or a filter needs; the full payload (site positions, species) may be large.
SUMMARY_FIELDS = (
    'elements',
    'nelements',
    'elements_ratios',
    'chemical_formula_descriptive',
    'chemical_formula_reduced',
    'chemical_formula_anonymous',
    'chemical_formula_hill',
    'dimension_types',
    'nperiodic_dimensions',
    'lattice_vectors',
    'nsites',
    'structure_features',
)


_CONTAINERS = (dict, list, tuple)
_FLOAT_ONLY = {float}
_INT64 = 2**63 - 1


def _check_json_value(value: Any, path: str) -> None:
    """Reject values that would not survive a JSON round trip exactly (NaN, Infinity, non-string keys, ...).

    Iterative and type-dispatched: it runs on every site position of every projected structure.
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if type(item) is dict or isinstance(item, Mapping):
            pairs = item.items()
        elif type(item) in (list, tuple):
            # Fast path for vectors of floats (site positions, lattice vectors): type and finiteness checked in C.
            if set(map(type, item)) == _FLOAT_ONLY and all(map(math.isfinite, item)):
                continue
            pairs = enumerate(item)
        else:
            pairs = ((None, item),)
        for key, child in pairs:
            if isinstance(item, Mapping):
                if type(key) is not str:
                    raise InvalidInputError(f'{where}: key {key!r} is not a string')
                if not key.isascii():
                    ensure_text(key, f'{where} key')
            kind = type(child)
            if kind is float:
                if child - child != 0.0:  # NaN or ±Infinity
                    raise InvalidInputError(f'{_at(where, key)}: {child} is not a finite number')
            elif kind is str:
                if not child.isascii():
                    ensure_text(child, _at(where, key))
            elif kind is bool or child is None:
                pass
            elif kind is int:
                if not -_INT64 <= child <= _INT64:
                    raise InvalidInputError(f'{_at(where, key)}: integer {child} does not fit in 64 bits')
            elif kind in _CONTAINERS or isinstance(child, Mapping):
                stack.append((child, _at(where, key)))
            elif isinstance(child, float):  # a subclass such as numpy.float64
                if child - child != 0.0:
                    raise InvalidInputError(f'{_at(where, key)}: {child} is not a finite number')
            elif isinstance(child, int | str):
                pass
            else:
                raise InvalidInputError(f'{_at(where, key)}: value of type {kind.__name__} is not JSON-compatible')


def _at(where: str, key: Any) -> str:
    if key is None:
        return where
    return f'{where}[{key}]' if type(key) is int else f'{where}.{key}'


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra='forbid')


class StructureKey(_Model):
    """The key of a record: one committed record per ``(tenant_id, workspace_id, structure_id)``."""

    tenant_id: str
    workspace_id: str
    structure_id: str

    @field_validator('tenant_id', 'workspace_id', 'structure_id', mode='before')
    @classmethod
    def _valid_id(cls, value: object, info: pydantic.ValidationInfo) -> str:
        return validate_id(value, info.field_name or 'id')

    @classmethod
    def of(cls, tenant_id: str, workspace_id: str, structure_id: str) -> StructureKey:
        """Build a key, raising :class:`InvalidInputError` (not a pydantic error) on an invalid id."""
        validate_id(tenant_id, 'tenant_id')
        validate_id(workspace_id, 'workspace_id')
        validate_id(structure_id, 'structure_id')
        return cls(tenant_id=tenant_id, workspace_id=workspace_id, structure_id=structure_id)

    def __str__(self) -> str:
        return f'{self.tenant_id}/{self.workspace_id}/{self.structure_id}'


#: The longest ``uploaded_by`` of a source (the subject of the API token that uploaded the file).
UPLOADER_MAX_LENGTH = 200


class Source(_Model):
    """Where a record's content came from: ``kind`` (``cif``, ``pw-input``, ``aiida``, ``upload.cif``,
    ``upload.pw-input``, ...), the file name and, for a file uploaded through the API, who uploaded it."""

    kind: str
    filename: str | None = None
    uploaded_by: str | None = None

    @classmethod
    def of(cls, kind: str, filename: str | None = None, uploaded_by: str | None = None) -> Source:
        """Build a source, raising :class:`InvalidInputError` (not a pydantic error) on an invalid value."""
        data = {'kind': kind, 'filename': filename}
        if uploaded_by is not None:
            data['uploaded_by'] = uploaded_by
        return _build(cls, data)

    def hashed(self) -> dict[str, Any]:
        """The fields the content hash covers: ``uploaded_by`` only when set, so that the hashes of sources without
        it are those of the versions before it existed."""
        fields = {'kind': self.kind, 'filename': self.filename}
        if self.uploaded_by is not None:
            fields['uploaded_by'] = self.uploaded_by
        return fields

    @field_validator('uploaded_by')
    @classmethod
    def _valid_uploader(cls, value: str | None) -> str | None:
        if value is None:
            return None
        ensure_text(value, 'source uploaded_by')
        if not value or len(value) > UPLOADER_MAX_LENGTH:
            raise ValueError(f'source uploaded_by must have 1 to {UPLOADER_MAX_LENGTH} characters')
        bad = next((c for c in value if unsafe_character(c)), None)
        if bad is not None:
            raise ValueError(f'source uploaded_by contains the control or formatting character U+{ord(bad):04X}')
        return value

    @field_validator('kind')
    @classmethod
    def _valid_kind(cls, value: str) -> str:
        if SOURCE_KIND_PATTERN.fullmatch(value) is None:
            raise ValueError(f'source kind {value!r} must match {SOURCE_KIND_PATTERN.pattern}')
        return value

    @field_validator('filename')
    @classmethod
    def _valid_filename(cls, value: str | None) -> str | None:
        if value is None:
            return None
        ensure_text(value, 'source filename')
        if not value or len(value) > FILENAME_MAX_LENGTH:
            raise ValueError(f'source filename must have 1 to {FILENAME_MAX_LENGTH} characters')
        bad = next((c for c in value if unsafe_character(c)), None)
        if bad is not None:
            raise ValueError(f'source filename contains the control or formatting character U+{ord(bad):04X}')
        return value


SUMMARY_MAX_BYTES = 16 * 1024


class SummaryFields(_Model):
    """Types of the summary fields (OPTIMADE names); validated so every backend accepts the same summaries."""

    elements: list[str] | None = None
    nelements: StrictInt | None = None
    elements_ratios: list[float] | None = None
    chemical_formula_descriptive: str | None = None
    chemical_formula_reduced: str | None = None
    chemical_formula_anonymous: str | None = None
    chemical_formula_hill: str | None = None
    dimension_types: list[StrictInt] | None = None
    nperiodic_dimensions: StrictInt | None = None
    lattice_vectors: list[list[float | None]] | None = None
    nsites: StrictInt | None = None
    structure_features: list[str] | None = None


class StructureContent(_Model):
    """What a writer supplies: the key and the payload. The store derives sizes, hashes and timestamps."""

    key: StructureKey
    source: Source
    cif: str | None = None
    structure: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    node_uuid: str | None = None

    @field_validator('cif')
    @classmethod
    def _valid_cif(cls, value: str | None) -> str | None:
        return None if value is None else ensure_text(value, 'cif')

    @field_validator('structure', 'params')
    @classmethod
    def _valid_json(cls, value: dict[str, Any] | None, info: pydantic.ValidationInfo) -> dict[str, Any] | None:
        if value is not None:
            _check_json_value(value, info.field_name or 'value')
        return value

    @field_validator('node_uuid')
    @classmethod
    def _valid_uuid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(uuid_lib.UUID(value))
        except ValueError as exc:
            raise ValueError(f'node_uuid {value!r} is not a UUID') from exc

    @model_validator(mode='after')
    def _valid_summary(self) -> StructureContent:
        summary = self.summary
        if summary:
            try:
                SummaryFields.model_validate(summary)
            except pydantic.ValidationError as exc:
                problems = '; '.join(f'{".".join(map(str, e["loc"]))}: {e["msg"]}' for e in exc.errors())
                raise ValueError(f'structure payload has invalid summary fields: {problems}') from None
            size = len(canonical_json(summary).encode('utf-8'))
            if size > SUMMARY_MAX_BYTES:
                raise ValueError(
                    f'the summary fields of the structure payload are {size} bytes; the limit is {SUMMARY_MAX_BYTES}'
                )
        return self

    @classmethod
    def from_trusted_structure(
        cls,
        *,
        key: StructureKey,
        source: Source,
        structure: dict[str, Any],
        cif: str | None = None,
        params: dict[str, Any] | None = None,
        node_uuid: str | None = None,
    ) -> StructureContent:
        """Build a content whose ``structure`` payload this package computed itself (:mod:`.projection`).

        Every other field is validated as usual; the payload is not re-checked value by value (its types are right
        by construction, and that check is a quarter of a sync's time). Non-finite numbers are still refused when
        the content is hashed: canonical JSON allows no NaN or Infinity.
        """
        validated = _build(cls, {'key': key, 'source': source, 'cif': cif, 'params': params, 'node_uuid': node_uuid})
        return validated.model_copy(update={'structure': structure})

    @classmethod
    def build(cls, **data: Any) -> StructureContent:
        """Validate ``data`` into a content, raising :class:`InvalidInputError` with every problem named."""
        return _build(cls, data)

    @property
    def summary(self) -> dict[str, Any]:
        """The small, always-inline subset of the structure payload (see :data:`SUMMARY_FIELDS`)."""
        if not self.structure:
            return {}
        return {name: self.structure[name] for name in SUMMARY_FIELDS if name in self.structure}

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> StructureContent:
        """A copy (see pydantic); the cached JSON texts are not carried over, since ``update`` may change them."""
        copy = super().model_copy(update=update, deep=deep)
        for name in ('structure_json', 'params_json'):
            copy.__dict__.pop(name, None)
        return copy

    @functools.cached_property
    def structure_json(self) -> str | None:
        """The structure payload as canonical JSON text (computed once; hashing and storing reuse it)."""
        return None if self.structure is None else canonical_json(self.structure)

    @functools.cached_property
    def params_json(self) -> str | None:
        """The parameters as canonical JSON text (computed once)."""
        return None if self.params is None else canonical_json(self.params)


def content_hash(content: StructureContent, raw_size: int | None, raw_sha256: str | None) -> str:
    """Return the sha256 hex digest identifying ``content`` plus its raw input (see the module docstring).

    Each field is fed to sha256 as ``name:length:`` followed by its canonical text (``-`` when absent), so no field
    can run into the next and the large payloads are encoded to JSON only once.
    """
    digest = hashlib.sha256(f'structstore-content-v{HASH_VERSION}\n'.encode())
    fields = (
        ('source', canonical_json(content.source.hashed())),
        ('cif', content.cif),
        ('structure', content.structure_json),
        ('params', content.params_json),
        ('node_uuid', content.node_uuid),
        ('raw', None if raw_sha256 is None else f'{raw_size}:{raw_sha256}'),
    )
    for name, text in fields:
        try:
            data = b'-' if text is None else text.encode('utf-8')
        except UnicodeEncodeError as exc:
            raise InvalidInputError(f'{name} cannot be encoded as UTF-8: {exc.reason} at index {exc.start}') from exc
        digest.update(f'{name}:{-1 if text is None else len(data)}:'.encode())
        digest.update(data)
    return digest.hexdigest()


class StructureSummary(_Model):
    """A committed record without its large payload fields: what a workspace listing returns."""

    key: StructureKey
    source: Source
    summary: dict[str, Any] = Field(default_factory=dict)
    node_uuid: str | None = None
    content_hash: str
    chunk_count: int
    raw_size: int | None = None
    raw_sha256: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def has_raw(self) -> bool:
        return self.raw_sha256 is not None


class StructureRecord(StructureSummary):
    """A committed record with its payload: CIF text, OPTIMADE structure payload, parameters."""

    cif: str | None = None
    structure: dict[str, Any] | None = None
    params: dict[str, Any] | None = None

    def to_content(self) -> StructureContent:
        """Return the content this record was written from."""
        return StructureContent(
            key=self.key,
            source=self.source,
            cif=self.cif,
            structure=self.structure,
            params=self.params,
            node_uuid=self.node_uuid,
        )


class PutResult(_Model):
    """What a write did: ``created``, ``updated``, ``unchanged`` (the same content was already committed) or
    ``conflict`` (the key holds the record of another AiiDA node, ``owner``, and it was left alone)."""

    key: StructureKey
    status: Literal['created', 'updated', 'unchanged', 'conflict']
    content_hash: str
    chunk_count: int
    owner: str | None = None


class Page(_Model):
    """One page of a workspace listing, newest first; pass ``next_cursor`` to get the next page.

    Pages of :meth:`~aiida_structstore.store.structures.StructureStore.query` also give ``cursors``, the cursor right
    after each item (to cut a page after any item and go on from there), and when asked for them ``structures``, the
    structure payload of each item: the payload, ``None`` when the record has none, ``False`` when it is stored in
    chunks and was not read (read the record with ``get``).
    """

    items: tuple[StructureSummary, ...]
    next_cursor: str | None = None
    cursors: tuple[str, ...] = ()
    structures: tuple[dict[str, Any] | Literal[False] | None, ...] | None = None


def _build(cls: type[_Model], data: Mapping[str, Any]) -> Any:
    try:
        return cls.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        problems = '; '.join(
            f'{".".join(str(p) for p in err["loc"]) or cls.__name__}: {err["msg"]}' for err in exc.errors()
        )
        raise InvalidInputError(f'invalid {cls.__name__}: {problems}') from exc
