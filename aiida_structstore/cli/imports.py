"""``verdi data structstore import``: structure files → ``StructureData`` with provenance."""

from __future__ import annotations

import pathlib

import click
from aiida.cmdline.utils import decorators, echo

from . import cmd_structstore
from .params import options
from .utils import store_errors, table

SUFFIXES = {'.cif': 'cif', '.in': 'pw', '.pwi': 'pw', '.pw': 'pw', '.pwin': 'pw'}


def detect_format(path: pathlib.Path, text: str) -> str:
    """``cif`` or ``pw`` from the file name, else from the content."""
    if path.suffix.lower() in SUFFIXES:
        return SUFFIXES[path.suffix.lower()]
    lowered = text.lower()
    if '&control' in lowered or '&system' in lowered or 'atomic_positions' in lowered:
        return 'pw'
    if 'data_' in lowered and '_cell_length_a' in lowered:
        return 'cif'
    raise click.UsageError(f'{path}: cannot tell whether this is a CIF or a pw.x input; pass --format')


@cmd_structstore.command('import')
@click.argument('files', nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option(
    '--format',
    'file_format',
    type=click.Choice(['auto', 'cif', 'pw']),
    default='auto',
    show_default=True,
    help='File format (auto: from the suffix .cif/.in/.pwi, else from the content).',
)
@click.option('-G', '--group', 'group_label', help='Add the imported structures to this group (created if missing).')
@click.option('--project', 'project_to', is_flag=True, help='Also project the imported structures into the store.')
@options.TENANT(required=False)
@options.WORKSPACE(required=False)
@decorators.with_dbenv()
@store_errors
def cmd_import(files, file_format, group_label, project_to, tenant_id, workspace_id):
    """Import CIF and pw.x input FILES as StructureData, with provenance (calcfunctions).

    Each file is parsed and checked first; a file that fails is reported and nothing is stored for it. The exit code
    is 1 if any file failed.
    """
    from aiida import orm

    from ..calculations.functions.import_cif import import_cif
    from ..calculations.functions.import_pw_input import import_pw_input
    from ..exceptions import StructStoreError
    from ..models import ensure_text
    from ..tools.cif import parse_cif
    from ..tools.pw import parse_pw_input

    if project_to and not (tenant_id and workspace_id):
        raise click.UsageError('--project needs --tenant and --workspace')
    group = orm.Group.collection.get_or_create(group_label)[0] if group_label else None
    rows, failed, structures = [], 0, []
    for path in files:
        try:
            text = ensure_text(path.read_bytes(), f'{path}')
            kind = detect_format(path, text) if file_format == 'auto' else file_format
            # Parse first: a file that fails leaves nothing behind, not even a failed process.
            (parse_cif if kind == 'cif' else parse_pw_input)(text, filename=path.name)
        except StructStoreError as exc:
            failed += 1
            echo.echo_error(f'{path}: {exc}')
            continue
        file = orm.SinglefileData(path.resolve()).store()
        function = import_cif if kind == 'cif' else import_pw_input
        results, process = function.run_get_node(file=file)
        created = results.get('structures', {}) or {}
        if 'structure' in results:
            created = {'structure': results['structure'], **created}
        for name, structure in created.items():
            structures.append(structure)
            rows.append([path.name, name, structure.pk, structure.get_formula(), len(structure.sites), process.pk])
    if group is not None and structures:
        group.add_nodes(structures)
    if rows:
        echo.echo(table(rows, ['file', 'output', 'pk', 'formula', 'sites', 'process']))
    if project_to and structures:
        from .project import project_nodes

        project_nodes(structures, tenant_id, workspace_id, None, include_raw=True)
    if failed:
        echo.echo_critical(f'{failed} of {len(files)} files failed to import')
    echo.echo_success(f'imported {len(structures)} structures from {len(files)} files')
