"""``structstore.project_structure``: write one ``StructureData`` into the structure store, with provenance.

Inputs: ``structure``; ``tenant_id`` and ``workspace_id`` (``Str``); optionally ``structure_id`` (``Str``, default
the node's UUID), ``raw`` (``SinglefileData``, the raw input to keep in chunks), ``parameters`` (``Dict``),
``source_kind`` (``Str``; default ``cif``/``pw-input`` for structures our import calcfunctions created,
``upload.cif``/``upload.pw-input`` with the uploader when the file came from an upload, else ``aiida``) and
``replace_owner`` (``Bool``, default false: a record of another node under the same id is an error, never
overwritten). Output: ``receipt`` (``Dict``: key, content hash, chunk count, status, backend, time).

The store comes from the environment (``STRUCTURE_STORE_BACKEND``, ``CONVEX_URL``, ``CONVEX_DEPLOY_KEY`` or the
settings file): the URL and the deploy key are never inputs, attributes, extras or log messages of the node.

Writing to the store is a side effect, so this process must never be taken from AiiDA's cache: its node marks
itself invalid as a cache source before anything else. Writes are idempotent, so running it again (for example
after a daemon restart) leaves the store in the same state.
"""

from __future__ import annotations

import datetime as dt

from aiida import orm
from aiida.engine import Process, calcfunction

from ...core.structures import Source, StructureKey
from ...store import open_store
from ...structures.projection import default_structure_id, structure_content
from ...tools.files import read_text
from ...tracking import origin_of, remember, target_entry, target_extra


def projection_inputs(
    structure: orm.StructureData,
    tenant_id: str | orm.Str,
    workspace_id: str | orm.Str,
    *,
    structure_id: str | orm.Str | None = None,
    include_raw: bool = True,
    replace_owner: bool = False,
) -> dict:
    """The inputs of :func:`project_structure` for ``structure``: the raw file and parameters of the import that
    created it (the raw file only with ``include_raw``). The one place that builds them (CLI and work chain)."""

    def node(value: str | orm.Str) -> orm.Str:
        return value if isinstance(value, orm.Str) else orm.Str(value)

    origin = origin_of(structure)
    inputs: dict = {'structure': structure, 'tenant_id': node(tenant_id), 'workspace_id': node(workspace_id)}
    if structure_id is not None:
        inputs['structure_id'] = node(structure_id)
    if include_raw and origin.file_pk is not None:
        inputs['raw'] = orm.load_node(origin.file_pk)
    if origin.parameters_pk is not None:
        inputs['parameters'] = orm.load_node(origin.parameters_pk)
    if replace_owner:
        inputs['replace_owner'] = orm.Bool(True)
    return inputs


@calcfunction
def project_structure(
    structure: orm.StructureData,
    tenant_id: orm.Str,
    workspace_id: orm.Str,
    structure_id: orm.Str | None = None,
    raw: orm.SinglefileData | None = None,
    parameters: orm.Dict | None = None,
    source_kind: orm.Str | None = None,
    replace_owner: orm.Bool | None = None,
) -> dict:
    """Project a structure into the store and return a receipt."""
    process = Process.current()
    if process is not None:
        process.node.base.caching.is_valid_cache = False

    sid = structure_id.value if structure_id is not None else default_structure_id(structure.uuid)
    key = StructureKey.of(tenant_id.value, workspace_id.value, sid)
    origin = origin_of(structure)
    kind, uploader = (source_kind.value, None) if source_kind is not None else (origin.kind, origin.uploaded_by)
    source = Source.of(kind, raw.filename if raw is not None else None, uploader)
    content = structure_content(
        structure.base.attributes.all,
        key=key,
        node_uuid=structure.uuid,
        source=source,
        params=parameters.get_dict() if parameters is not None else None,
    )
    raw_text = read_text(raw) if raw is not None else None
    with open_store() as store:
        result = store.structures.put(content, raw=raw_text, replace_owner=bool(replace_owner and replace_owner.value))
        backend = store.backend
        if store.persistent:
            entry = target_entry(
                store,
                key.tenant_id,
                key.workspace_id,
                key.structure_id,
                result.content_hash,
                with_raw=raw is not None,
                node_uuid=structure.uuid,
            )
            remember(target_extra(store.store_id, key.tenant_id, key.workspace_id), {structure.pk: entry})
    return {
        'receipt': orm.Dict(
            {
                'tenant_id': key.tenant_id,
                'workspace_id': key.workspace_id,
                'structure_id': key.structure_id,
                'content_hash': result.content_hash,
                'chunk_count': result.chunk_count,
                'status': result.status,
                'backend': backend,
                'projected_at': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
            }
        )
    }
