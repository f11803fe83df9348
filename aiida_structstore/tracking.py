"""AiiDA-side helpers of the projection: where a structure came from, and which targets it was projected to.

Origin
    A structure created by ``structstore.import_cif`` or ``structstore.import_pw_input`` is projected with its raw
    file (the calcfunction's ``file`` input) and, for pw.x inputs, the ``parameters`` output; its record's
    ``source`` is ``cif`` or ``pw-input`` with the file name (``upload.cif`` or ``upload.pw-input`` with the
    uploader when the file came from an upload). Any other structure has source ``aiida``.

Targets
    Each projection into a persistent store is remembered on the node, in one extra per target named
    ``structstore_<16 hex digits>`` (a digest of store, tenant and workspace; :func:`target_extra`), holding
    ``{store, instance, tenant_id, workspace_id, structure_id, node_uuid, content_hash, projection, with_raw,
    projected_at, projected_ms}`` (``projected_ms``, the time in milliseconds, lets the execution sync find processes
    whose structures were projected since a given time with a numeric filter). ``node_uuid`` is the node the entry
    was written on: ``Node.clone()`` copies extras, and aiida-quantumespresso's parser makes its output structure
    as a clone of the input, so an entry whose ``node_uuid`` is not the node's own was copied, and is not trusted.
    ``store`` identifies the deployment (``convex:<sha256 of the URL, 16 hex digits>``) and ``instance`` its data
    (a new id after the data was lost), so a sync skips a node only if this very store still holds its current
    content. Neither the URL nor the deploy key is ever stored. Projections into the in-memory store are not
    remembered: it is gone when the process ends.

    The extra of one target is written by an atomic merge in the database (:func:`remember`), not by replacing the
    node's extras: an extra set meanwhile by the user, or by a sync to another target, is kept. aiida-core has no
    public call for that (``Node.base.extras.set`` and ``StorageBackend.bulk_update`` write the whole extras
    column from a copy read earlier), so it is one SQL statement per batch on the profile's own session.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiida import orm
from aiida.common.links import LinkType
from aiida.manage import get_manager
from sqlalchemy import text

from .core.exceptions import ConfigurationError
from .core.structures import Source
from .store.base import Store

__all__ = (
    'EXTRA_PREFIX',
    'IMPORT_KINDS',
    'PROJECTION_VERSION',
    'Origin',
    'find_origins',
    'import_kind',
    'is_current',
    'iter_remembered',
    'origin_of',
    'remember',
    'target_entry',
    'target_extra',
)

#: Prefix of the extras that remember projections, one per target (:func:`target_extra`).
EXTRA_PREFIX = 'structstore_'
#: Version of the projection rules (record fields, CIF writer, OPTIMADE fields). A stored StructureData never
#: changes, so a node remembered as projected with this version, id and raw option needs no new projection; bump
#: the version whenever the projection of an unchanged node would change.
PROJECTION_VERSION = 1
#: process_type suffix of the import calcfunctions → source kind of their structures
IMPORT_KINDS = {'import_cif': 'cif', 'import_pw_input': 'pw-input'}
#: Extra on the file node of an import from an upload (:mod:`aiida_structstore.uploads.importer`): its structures'
#: source is ``upload.cif`` / ``upload.pw-input`` with the uploader.
UPLOAD_EXTRA = 'structstore_upload'


@dataclass(frozen=True)
class Origin:
    """Where a structure came from: the source of its record, and for structures that an import calcfunction
    created, the pk of the imported file and the parsed parameters (pw.x inputs)."""

    kind: str
    filename: str | None = None
    file_pk: int | None = None
    parameters_pk: int | None = None
    parameters: dict | None = None
    #: Who uploaded the file, for a file imported from an upload (its kind is then ``upload.<kind>``).
    uploaded_by: str | None = None

    @property
    def source(self) -> Source:
        """The record's source; raises :class:`InvalidInputError` for a file name a record cannot carry (checked
        per structure, so one such node fails alone)."""
        return Source.of(self.kind, self.filename, self.uploaded_by)


def import_kind(process_type: str | None) -> str | None:
    """The source kind of structures created by the process type, if it is one of ours."""
    if not process_type:
        return None
    # 'aiida.calculations:structstore.import_cif' (entry point) or '...functions.import_cif.import_cif' (module path)
    return IMPORT_KINDS.get(process_type.rsplit('.', 1)[-1]) if 'structstore' in process_type else None


def find_origins(pks: list[int]) -> dict[int, Origin]:
    """The origins of the structures among ``pks`` that an import calcfunction created, in three queries (the one
    place that knows how an import is linked); structures not listed have source ``aiida``."""
    query = orm.QueryBuilder()
    query.append(orm.StructureData, filters={'id': {'in': pks}}, tag='structure', project=['id'])
    query.append(
        orm.CalcFunctionNode,
        with_outgoing='structure',
        tag='creator',
        project=['id', 'process_type'],
        edge_filters={'type': LinkType.CREATE.value},
        filters={'process_type': {'like': '%structstore%'}},
    )
    creators: dict[int, int] = {}
    kinds: dict[int, str] = {}
    for structure_pk, creator_pk, process_type in query.iterall():
        kind = import_kind(process_type)
        if kind:
            creators[structure_pk] = creator_pk
            kinds[creator_pk] = kind
    if not creators:
        return {}
    files: dict[int, tuple[int, str]] = {}
    uploads: dict[int, dict] = {}
    query = orm.QueryBuilder()
    query.append(orm.CalcFunctionNode, filters={'id': {'in': list(kinds)}}, tag='creator', project=['id'])
    query.append(
        (orm.SinglefileData, orm.CifData),  # CifData is a SinglefileData, but not by node type for a query
        with_outgoing='creator',
        edge_filters={'label': 'file'},
        project=['id', 'attributes.filename', f'extras.{UPLOAD_EXTRA}'],
    )
    for creator_pk, file_pk, filename, upload in query.iterall():
        files[creator_pk] = (file_pk, filename)
        if isinstance(upload, dict) and upload.get('key'):
            uploads[creator_pk] = upload
    parameters: dict[int, tuple[int, dict]] = {}
    pw_creators = [pk for pk, kind in kinds.items() if kind == 'pw-input']
    if pw_creators:
        query = orm.QueryBuilder()
        query.append(orm.CalcFunctionNode, filters={'id': {'in': pw_creators}}, tag='creator', project=['id'])
        query.append(
            orm.Dict, with_incoming='creator', edge_filters={'label': 'parameters'}, project=['id', 'attributes']
        )
        for creator_pk, parameters_pk, attributes in query.iterall():
            parameters[creator_pk] = (parameters_pk, attributes)
    origins = {}
    for structure_pk, creator_pk in creators.items():
        file_pk, filename = files.get(creator_pk, (None, None))
        parameters_pk, values = parameters.get(creator_pk, (None, None))
        kind, uploader = kinds[creator_pk], None
        if creator_pk in uploads:  # the file came from an upload (aiida_structstore.uploads)
            kind, uploader = f'upload.{kind}', uploads[creator_pk].get('uploaded_by') or None
        origins[structure_pk] = Origin(kind, filename, file_pk, parameters_pk, values, uploader)
    return origins


def origin_of(structure: orm.StructureData) -> Origin:
    """The origin of one stored structure (see :func:`find_origins`)."""
    return find_origins([structure.pk]).get(structure.pk) or Origin('aiida')


def target_extra(store_id: str, tenant_id: str, workspace_id: str) -> str:
    """The name of the extra that remembers projections into one target."""
    digest = hashlib.sha256(f'{store_id}\n{tenant_id}\n{workspace_id}'.encode()).hexdigest()[:16]
    return f'{EXTRA_PREFIX}{digest}'


def target_entry(
    store: Store,
    tenant_id: str,
    workspace_id: str,
    structure_id: str,
    content_hash: str,
    *,
    with_raw: bool,
    node_uuid: str,
    id_template: str | None = None,
) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    entry = {
        'store': store.store_id,
        'instance': store.instance,
        'tenant_id': tenant_id,
        'workspace_id': workspace_id,
        'structure_id': structure_id,
        'node_uuid': node_uuid,
        'content_hash': content_hash,
        'projection': PROJECTION_VERSION,
        'with_raw': with_raw,
        'projected_at': now.isoformat(timespec='seconds'),
        'projected_ms': int(now.timestamp() * 1000),
    }
    if id_template is not None:  # how a sync named the record: verify's advice to restore it uses the same
        entry['id_template'] = id_template
    return entry


def is_current(
    entry: Mapping[str, Any] | None, structure_id: str, *, with_raw: bool, instance: str, node_uuid: str
) -> bool:
    """Whether a remembered projection is what projecting the (immutable) node ``node_uuid`` again would give, in a
    store that still holds it (same instance), and was written on this node (not copied by ``clone()``)."""
    return (
        isinstance(entry, Mapping)
        and entry.get('node_uuid') == node_uuid
        and entry.get('structure_id') == structure_id
        and entry.get('projection') == PROJECTION_VERSION
        and entry.get('with_raw') == with_raw
        and entry.get('instance') == instance
        and isinstance(entry.get('content_hash'), str)
    )


def remember(extra: str, entries: Mapping[int, dict]) -> None:
    """Set the extra ``extra`` of each node ``pk`` to ``entries[pk]``, atomically per node, keeping its other extras
    (see the module docstring). One statement for all nodes, in the current transaction if there is one."""
    if not entries:
        return
    if not extra.startswith(EXTRA_PREFIX) or not extra[len(EXTRA_PREFIX) :].isalnum():
        raise ValueError(f'not a target extra name: {extra!r}')
    storage = get_manager().get_profile_storage()
    get_session = getattr(storage, 'get_session', None)
    if get_session is None:
        raise ConfigurationError(
            f'the storage backend {type(storage).__name__} cannot record projections (a read-only archive?)'
        )
    session = get_session()
    if session.bind.dialect.name == 'postgresql':
        statement = (
            "UPDATE db_dbnode SET extras = COALESCE(extras, '{}'::jsonb) || jsonb_build_object(CAST(:name AS text), "
            'CAST(:entry AS jsonb)) WHERE id = :id'
        )
    else:  # SQLite (core.sqlite_dos)
        statement = "UPDATE db_dbnode SET extras = json_set(COALESCE(extras, '{}'), :path, json(:entry)) WHERE id = :id"
    path = f'$."{extra}"'
    rows = [{'id': pk, 'name': extra, 'path': path, 'entry': json.dumps(entry)} for pk, entry in entries.items()]
    with contextlib.nullcontext() if storage.in_transaction else storage.transaction():
        session.execute(text(statement), rows)


def iter_remembered(node_class: type[orm.Node], extra: str, page_size: int = 200) -> Iterator[list[list[Any]]]:
    """The nodes of ``node_class`` that remember a projection into a target (its extra ``extra``), as pages of rows
    ``[pk, uuid, entry]`` in pk order (keyset paging: one short query per page, nothing held open)."""
    after_id = 0
    while True:
        query = orm.QueryBuilder().append(
            node_class,
            filters={'and': [{'extras': {'has_key': extra}}, {'id': {'>': after_id}}]},
            project=['id', 'uuid', f'extras.{extra}'],
            tag='node',
        )
        query.order_by({'node': {'id': 'asc'}}).limit(page_size)
        rows = [list(row) for row in query.all()]
        if not rows:
            return
        yield rows
        after_id = rows[-1][0]
