"""The OPTIMADE structure properties this database serves, their definitions, and the documents built from records.

Standard properties come from each record: the summary (elements, formulas, ``nsites``, lattice, ...) is always
inline and cheap to read; ``cartesian_site_positions``, ``species_at_sites`` and ``species`` live in the structure
payload, which may be chunked, so they are read only when a response or a filter needs them. Two provider-specific
properties carry where a structure came from: ``_structstore_source`` (``{kind, filename}``) and
``_structstore_aiida_node`` (the AiiDA node UUID). Species are served under names no client misreads, each with
its AiiDA kind name as ``original_name`` (:mod:`.species`).

Definitions (description, type, unit) are taken from the ``optimade`` package's models, so they match the
specification version the package implements.

This module imports no AiiDA module.
"""

from __future__ import annotations

import functools
from typing import Any

import optimade
from optimade.models import DataType, Implementation, Provider, StructureResource
from optimade.server.config import ServerConfig
from optimade.server.schemas import retrieve_queryable_properties

from ... import __version__
from ...core.query import PAYLOAD_FIELDS, PREFIX, entry_document
from ...core.structures import SUMMARY_FIELDS
from .species import client_payload

__all__ = (
    'API_VERSION',
    'DEFAULT_PAGE_LIMIT',
    'IMPLEMENTATION',
    'MAX_PAGE_LIMIT',
    'PAYLOAD_FIELDS',
    'PREFIX',
    'PROVIDER',
    'PROVIDER_FIELDS',
    'SCHEMA_URL',
    'SERVED_FIELDS',
    'document',
    'entry_properties',
    'server_config',
    'sortable_fields',
)

API_VERSION = optimade.__api_version__
DEFAULT_PAGE_LIMIT = 20
MAX_PAGE_LIMIT = 100
#: The JSON schema of the responses, reported in ``meta.schema``.
SCHEMA_URL = f'https://schemas.optimade.org/openapi/v{API_VERSION.rsplit(".", 1)[0]}/optimade.json'
PROVIDER = Provider(
    name='aiida-structstore',
    description='Structures projected from AiiDA provenance graphs into an application store',
    prefix=PREFIX,
    homepage='https://github.com/aiida-structstore/aiida-structstore',
)
IMPLEMENTATION = Implementation(
    name='aiida-structstore',
    version=__version__,
    homepage='https://github.com/aiida-structstore/aiida-structstore',
    source_url='https://github.com/aiida-structstore/aiida-structstore',
)


def document(item, structure=None) -> dict[str, Any]:
    """The flat document of an entry as OPTIMADE serves it (and filters are evaluated on): the store's document
    (:func:`...core.query.entry_document`) with its species under their served names (:func:`.species.client_payload`).
    """
    return client_payload(entry_document(item, structure))


PROVIDER_FIELDS: dict[str, dict[str, Any]] = {
    f'_{PREFIX}_source': {
        'description': 'Where the structure came from: the kind of input (`cif`, `pw-input` or `aiida`) and the '
        'name of the imported file (null for structures projected straight from AiiDA).',
        'type': DataType.DICTIONARY,
        'sortable': False,
    },
    f'_{PREFIX}_aiida_node': {
        'description': 'The UUID of the AiiDA StructureData node this entry was projected from (its provenance).',
        'type': DataType.STRING,
        'sortable': True,
    },
}
TOP_LEVEL_FIELDS = ('id', 'type', 'last_modified')
#: Every property an entry has, in the order /info/structures lists them.
SERVED_FIELDS: tuple[str, ...] = (
    *TOP_LEVEL_FIELDS,
    *SUMMARY_FIELDS,
    *sorted(PAYLOAD_FIELDS),
    *PROVIDER_FIELDS,
)
_SCALAR_TYPES = (DataType.STRING, DataType.INTEGER, DataType.FLOAT, DataType.TIMESTAMP, DataType.BOOLEAN)


@functools.cache
def _standard_properties() -> dict[str, dict[str, Any]]:
    return retrieve_queryable_properties(StructureResource, ('id', 'type', 'attributes'))


@functools.cache
def entry_properties() -> dict[str, dict[str, Any]]:
    """The ``properties`` of ``/info/structures``: description, type, unit and sortability of each served field."""
    standard = _standard_properties()
    properties = {}
    for name in SERVED_FIELDS:
        definition = standard.get(name) or PROVIDER_FIELDS[name]
        entry = {'description': definition['description'], 'type': definition['type']}
        if name == 'type':
            # The package reads the model's Literal['structures'] as a tuple, hence 'list': it is a string.
            entry['type'] = DataType.STRING
        if definition.get('unit'):
            entry['unit'] = definition['unit']
        entry['sortable'] = entry['type'] in _SCALAR_TYPES and name != 'type'  # one value: nothing to sort
        properties[name] = entry
    return properties


@functools.cache
def sortable_fields() -> frozenset[str]:
    """The served properties ``sort`` accepts: the scalar ones."""
    return frozenset(name for name, entry in entry_properties().items() if entry['sortable'])


@functools.cache
def server_config() -> ServerConfig:
    """The ``optimade`` package's server configuration for its pieces used here (mapper, entry collection, error
    handlers). Constructed without reading the environment or a file (``model_construct``: the values below, the
    package's defaults for the rest), so no ``OPTIMADE_*`` variable or ``~/.optimade.json`` of the host changes it:
    ``debug`` would put tracebacks into error documents, ``base_url`` would be a second source of links (links are
    built from ``STRUCTURE_API_PUBLIC_URL`` by the routes), and a ``license`` makes the package's validator fetch
    its URL over the network."""
    return ServerConfig.model_construct(
        provider=PROVIDER,
        implementation=IMPLEMENTATION,
        schema_url=SCHEMA_URL,
        debug=False,
        base_url=None,
        root_path=None,
        page_limit=DEFAULT_PAGE_LIMIT,
        page_limit_max=MAX_PAGE_LIMIT,
        provider_fields={},
        aliases={},
        length_aliases={},
        validate_api_response=True,
        is_index=False,
        request_delay=None,
        license=None,
    )
