"""Build the store's :class:`~aiida_structstore.core.structures.StructureContent` for a ``StructureData``.

The default structure id of a node is its UUID: stable for the node's lifetime, unique across AiiDA profiles, and
already in the id character set. ``--id-template`` on the CLI (and ``id_template`` in :mod:`.sync`) can derive ids
from ``{uuid}``, ``{pk}`` or ``{label}`` instead.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from ..core.exceptions import InvalidInputError
from ..core.structures import Source, StructureContent, StructureKey
from ..core.values import validate_id
from .cif import write_cif
from .optimade import optimade_fields

__all__ = ('DEFAULT_ID_TEMPLATE', 'default_structure_id', 'render_structure_id', 'structure_content')

DEFAULT_ID_TEMPLATE = '{uuid}'


def default_structure_id(uuid: str) -> str:
    """The default structure id of a node: its UUID."""
    return validate_id(str(uuid), 'structure_id')


TEMPLATE_FIELDS = ('uuid', 'pk', 'label')


def render_structure_id(template: str, *, uuid: str, pk: int | None = None, label: str | None = None) -> str:
    """Render a structure id template with ``{uuid}``, ``{pk}`` and ``{label}`` (with an optional format spec such
    as ``{pk:06d}``); raise if the template uses anything else, or if the result is not a valid id."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        unknown = [name for name in fields if name not in TEMPLATE_FIELDS]
        if unknown:
            raise ValueError(f'unknown field {{{unknown[0]}}}')
        value = template.format(uuid=uuid, pk=pk, label=label or '')
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        raise InvalidInputError(
            f'invalid structure id template {template!r}: {exc} (use {{uuid}}, {{pk}} and {{label}})'
        ) from None
    return validate_id(value, f'structure_id from template {template!r}')


def structure_content(
    attributes: Mapping[str, Any],
    *,
    key: StructureKey,
    node_uuid: str | None,
    source: Source | None = None,
    params: dict[str, Any] | None = None,
) -> StructureContent:
    """Return the record content of a structure given its ``StructureData`` attributes."""
    try:
        structure = optimade_fields(attributes)
        cif = write_cif(
            attributes,
            data_name=key.structure_id,
            comment=f'aiida-structstore projection of StructureData {node_uuid}' if node_uuid else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f'{key}: the StructureData attributes are not a valid structure: {exc!r}') from exc
    return StructureContent.from_trusted_structure(
        key=key,
        source=source or Source(kind='aiida'),
        cif=cif,
        structure=structure,
        params=params,
        node_uuid=node_uuid,
    )
