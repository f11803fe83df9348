"""Reusable options and arguments, defined once and shared by the commands.

Where aiida-core has the option users know (``-G/--group``, ``-N/--nodes``, ``-n/--dry-run``, ``-f/--force``), it is
reused, restricted to structures where nodes are meant.
"""

import click
from aiida.cmdline.params import options as aiida_options
from aiida.cmdline.params import types as aiida_types
from aiida.cmdline.params.arguments.overridable import OverridableArgument
from aiida.cmdline.params.options.overridable import OverridableOption

from ...structures.projection import DEFAULT_ID_TEMPLATE
from .types import IdentifierType

#: StructureData nodes by pk, UUID or label (aiida's DataParamType restricted to structures).
STRUCTURE_TYPE = aiida_types.DataParamType(sub_classes=('aiida.data:core.structure',))

STRUCTURES = OverridableArgument('structures', nargs=-1, required=True, type=STRUCTURE_TYPE)
STRUCTURE_NODES = aiida_options.NODES.clone(type=STRUCTURE_TYPE, help='Structures by pk, UUID or label.')
GROUP = aiida_options.GROUP
DRY_RUN = aiida_options.DRY_RUN
FORCE = aiida_options.FORCE

TENANT = OverridableOption(
    '-t',
    '--tenant',
    'tenant_id',
    type=IdentifierType('tenant_id'),
    required=True,
    envvar='STRUCTURE_STORE_TENANT',
    show_envvar=True,
    help='Tenant id of the target.',
)
WORKSPACE = OverridableOption(
    '-w',
    '--workspace',
    'workspace_id',
    type=IdentifierType('workspace_id'),
    required=True,
    envvar='STRUCTURE_STORE_WORKSPACE',
    show_envvar=True,
    help='Workspace id of the target.',
)
ID_TEMPLATE = OverridableOption(
    '--id-template',
    default=DEFAULT_ID_TEMPLATE,
    show_default=True,
    help='Structure id of each node, from {uuid}, {pk} and {label}.',
)
NO_RAW = OverridableOption('--no-raw', is_flag=True, help='Do not project the raw input file of imported structures.')
FORMAT = OverridableOption(
    '-F',
    '--format',
    'output_format',
    type=click.Choice(['summary', 'cif', 'json', 'raw']),
    default='summary',
    show_default=True,
    help='What to print.',
)
