"""AiiDA-side helpers of the projection: where a structure came from, and which targets it was projected to.

Origin
    A structure created by ``structstore.import_cif`` or ``structstore.import_pw_input`` is projected with its raw
    file (the calcfunction's ``file`` input) and, for pw.x inputs, the ``parameters`` output; its record's
    ``source`` is ``cif`` or ``pw-input`` with the file name. Any other structure has source ``aiida``.

Targets
    Each projection is remembered on the node, in the extra ``structstore``: a list of
    ``{store, tenant_id, workspace_id, structure_id, content_hash, projection, with_raw, projected_at}``.
    ``store`` identifies the deployment (``convex:<sha256 of the URL, 16 hex digits>``; in-memory stores never
    match another process), so a sync skips a node only if this very deployment already holds its current content.
    Neither the URL nor the deploy key is ever stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiida import orm
from aiida.common.links import LinkType

from ..models import Source

__all__ = (
    'EXTRA_KEY',
    'IMPORT_KINDS',
    'PROJECTION_VERSION',
    'Origin',
    'find_target',
    'is_current',
    'origin_of',
    'target_entry',
    'with_target',
)

EXTRA_KEY = 'structstore'
#: Version of the projection rules (record fields, CIF writer, OPTIMADE fields). A stored StructureData never
#: changes, so a node remembered as projected with this version, id and raw option needs no new projection; bump
#: the version whenever the projection of an unchanged node would change.
PROJECTION_VERSION = 1
#: process_type suffix of the import calcfunctions → source kind of their structures
IMPORT_KINDS = {'import_cif': 'cif', 'import_pw_input': 'pw-input'}


@dataclass(frozen=True)
class Origin:
    source: Source
    file: orm.SinglefileData | None = None
    parameters: orm.Dict | None = None


def import_kind(process_type: str | None) -> str | None:
    """The source kind of structures created by the process type, if it is one of ours."""
    if not process_type:
        return None
    # 'aiida.calculations:structstore.import_cif' (entry point) or '...functions.import_cif.import_cif' (module path)
    return IMPORT_KINDS.get(process_type.rsplit('.', 1)[-1]) if 'structstore' in process_type else None


def origin_of(structure: orm.StructureData) -> Origin:
    """Find the import calcfunction that created ``structure``, with its file and parameters."""
    creator = structure.creator
    kind = import_kind(creator.process_type) if creator is not None else None
    if creator is None or kind is None:
        return Origin(Source(kind='aiida'))
    inputs = {link.link_label: link.node for link in creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC)}
    file = inputs.get('file')
    parameters = None
    if kind == 'pw-input':
        outputs = creator.base.links.get_outgoing(link_type=LinkType.CREATE, link_label_filter='parameters').all()
        parameters = outputs[0].node if outputs else None
    filename = file.filename if isinstance(file, orm.SinglefileData) else None
    return Origin(
        Source(kind=kind, filename=filename), file if isinstance(file, orm.SinglefileData) else None, parameters
    )


def find_target(extras: Mapping[str, Any], store_id: str, tenant_id: str, workspace_id: str) -> dict | None:
    """The remembered projection of a node (from its extras) into one target, if any."""
    for entry in extras.get(EXTRA_KEY) or []:
        if (
            isinstance(entry, dict)
            and entry.get('store') == store_id
            and entry.get('tenant_id') == tenant_id
            and entry.get('workspace_id') == workspace_id
        ):
            return entry
    return None


def target_entry(
    store_id: str, tenant_id: str, workspace_id: str, structure_id: str, content_hash: str, *, with_raw: bool
) -> dict:
    return {
        'store': store_id,
        'tenant_id': tenant_id,
        'workspace_id': workspace_id,
        'structure_id': structure_id,
        'content_hash': content_hash,
        'projection': PROJECTION_VERSION,
        'with_raw': with_raw,
        'projected_at': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
    }


def is_current(target: Mapping[str, Any] | None, structure_id: str, *, with_raw: bool) -> bool:
    """Whether a remembered projection is what projecting the (immutable) node again would give."""
    return (
        target is not None
        and target.get('structure_id') == structure_id
        and target.get('projection') == PROJECTION_VERSION
        and target.get('with_raw') == with_raw
        and isinstance(target.get('content_hash'), str)
    )


def with_target(extras: Mapping[str, Any], entry: dict) -> list[dict]:
    """The node's target list with ``entry`` added or replacing the entry of the same target."""
    keep = [
        e
        for e in (extras.get(EXTRA_KEY) or [])
        if not (
            isinstance(e, dict)
            and (e.get('store'), e.get('tenant_id'), e.get('workspace_id'))
            == (entry['store'], entry['tenant_id'], entry['workspace_id'])
        )
    ]
    return [*keep, entry]
