"""Reusable options, defined once (``OverridableOption``) and shared by the commands."""

import click
from aiida.cmdline.params.options.overridable import OverridableOption

from .types import IdentifierType

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
    default='{uuid}',
    show_default=True,
    help='Structure id of each node, from {uuid}, {pk} and {label}.',
)
DRY_RUN = OverridableOption('-n', '--dry-run', is_flag=True, help='Report what would be written; write nothing.')
FORCE = OverridableOption('-f', '--force', is_flag=True, help='Do not ask for confirmation.')
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
