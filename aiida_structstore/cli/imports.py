"""``verdi data structstore import``: structure files → ``StructureData`` with provenance."""

from __future__ import annotations

import contextlib
import logging
import pathlib
import signal

import click
from aiida.cmdline.params import options as aiida_options
from aiida.cmdline.params.types import CodeParamType
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
@aiida_options.CODE(
    type=CodeParamType(entry_point='quantumespresso.pw'),
    help='pw.x code: turn each imported pw.x input into a PwCalculation on this code and submit it.',
)
@options.DRY_RUN(help='With --code: run the PwCalculation as a dry run (input files written, pw.x not run).')
@click.option('--pseudo-family', help='With --code: the aiida-pseudo family of the pseudopotentials.')
@click.option(
    '--pseudo-dir',
    type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path),
    help='With --code: a folder with the pseudopotential files the inputs name.',
)
@decorators.with_dbenv()
@store_errors
def cmd_import(
    files, file_format, group_label, project_to, tenant_id, workspace_id, code, dry_run, pseudo_family, pseudo_dir
):
    """Import CIF and pw.x input FILES as StructureData, with provenance (calcfunctions).

    Each file is checked and parsed first; a file that fails is reported and nothing is stored for it. Each file is
    then imported in one database transaction (its file node, process, outputs and group membership), so an import
    that is stopped (Ctrl-C, SIGTERM, a kill) leaves the files before it imported and nothing of the one it was on.
    The command refuses to start while an earlier, interrupted import left an unfinished process. Conventions of
    known writers that were accepted are shown as warnings (and kept in the process log). The exit code is 1 if any
    file failed.
    """
    if project_to and not (tenant_id and workspace_id):
        raise click.UsageError('--project needs --tenant and --workspace')
    if (dry_run or pseudo_family or pseudo_dir) and code is None:
        raise click.UsageError('--dry-run, --pseudo-family and --pseudo-dir go with --code')
    _refuse_after_interrupted_imports()
    rows, failed, structures, imported_files = [], 0, [], 0
    pending, interrupted = None, None  # pending: the file being imported, not yet committed
    try:
        with _signals_interrupt():
            for path in files:
                pending = path
                imported = _import_file(path, file_format, group_label)
                pending = None
                if imported is None:
                    failed += 1
                    continue
                imported_files += 1
                kind, parsed, results, process = imported
                for name, structure in _structures(results).items():
                    structures.append(structure)
                    rows.append([path.name, name, structure.pk, _formula(structure), len(structure.sites), process.pk])
                if code is not None and kind == 'pw':
                    options = {'dry_run': dry_run, 'pseudo_family': pseudo_family, 'pseudo_dir': pseudo_dir}
                    _run_pw(path, parsed, results, code, **options)
    except _Interrupted as exc:
        interrupted = str(exc)
    if rows:
        echo.echo(table(rows, ['file', 'output', 'pk', 'formula', 'sites', 'process']))
    if interrupted:
        where = f'{_shown(pending)}: nothing of this file was stored; ' if pending else ''
        echo.echo_critical(f'interrupted by {interrupted}: {where}{imported_files} files were imported completely')
    if project_to and structures:
        from .project import project_nodes

        project_nodes(structures, tenant_id, workspace_id, None, include_raw=True)
    if failed:
        echo.echo_critical(f'{failed} of {len(files)} files failed to import')
    echo.echo_success(f'imported {len(structures)} structures from {len(files)} files')


def _formula(structure) -> str:
    """The reduced formula (Fe2O3 for a cell of Fe12O18), as the store's records and ``list`` give it."""
    from ..structures.optimade import optimade_fields

    return optimade_fields(structure.base.attributes.all)['chemical_formula_reduced']


class _Interrupted(BaseException):
    """SIGINT or SIGTERM arrived during an import (a ``BaseException``, like ``KeyboardInterrupt``, so that no
    ``except Exception`` on the way swallows it)."""


@contextlib.contextmanager
def _signals_interrupt():
    """Turn SIGTERM and SIGINT into :class:`_Interrupted` while the files are imported.

    The file being imported is rolled back with its transaction (a SIGKILL, which cannot be caught, ends the
    connection, and PostgreSQL rolls back then). While a calcfunction runs, AiiDA's own SIGINT handler kills the
    process instead; :func:`_import_file` then sees a killed process and rolls back too.
    """

    def interrupt(number, _frame):
        raise _Interrupted(signal.Signals(number).name)

    # AiiDA's handler also logs "runner received interrupt, killing process N" as critical: the one line this
    # command prints for the interruption says it (and what was kept) already.
    quiet = _NoInterruptNotice()
    loggers = [logging.getLogger(name) for name in ('aiida.engine.processes.functions', 'aiida.engine.runners')]
    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGINT)}
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for logger in loggers:
            logger.removeFilter(quiet)


class _NoInterruptNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith('runner received interrupt')


def _refuse_after_interrupted_imports() -> None:
    """Stop with one line if an earlier import left unfinished processes whose runner is gone."""
    from ..calculations.functions.interrupted import find_interrupted

    unfinished = find_interrupted()
    if unfinished:
        pks = ' '.join(str(item.pk) for item in unfinished)
        outputs = sum(item.outputs for item in unfinished)
        echo.echo_critical(
            f'{len(unfinished)} earlier imports were interrupted and left unfinished processes (pks {pks}) with '
            f'{outputs} outputs in no group, which a sync without -G would take: delete them with '
            f'`verdi node delete {pks}`, then import again'
        )


def _structures(results) -> dict:
    """The structures among a calcfunction's outputs, by output name."""
    created = dict(results.get('structures', {}) or {})
    if 'structure' in results:
        created = {'structure': results['structure'], **created}
    return created


def _shown(path: pathlib.Path) -> str:
    return path.name.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')


def _import_file(path: pathlib.Path, file_format: str, group_label: str | None):
    """Check, parse, then store and run the import calcfunction in one transaction; ``None`` (error printed) if the
    file is refused."""
    from aiida import orm
    from aiida.manage import get_manager
    from plumpy.exceptions import KilledError

    from ..calculations.functions.import_cif import import_cif
    from ..calculations.functions.import_pw_input import import_pw_input
    from ..core.exceptions import LimitExceededError, StructStoreError
    from ..core.values import ensure_text
    from ..store.structures import MAX_RAW_BYTES
    from ..tools.cif import parse_cif
    from ..tools.files import check_block_count, check_file_type, check_filename, read_file, unique_warnings
    from ..tools.pw import parse_pw_input

    try:
        check_filename(path.name)
        size = check_file_type(path).st_size  # before opening it: a FIFO would block, a device never end
        if size > MAX_RAW_BYTES:
            raise LimitExceededError(f'the file has {size} bytes; the store takes raw inputs up to {MAX_RAW_BYTES}')
        text = ensure_text(read_file(path), 'the file')
        kind = detect_format(path, text) if file_format == 'auto' else file_format
        # Parse first: a file that fails leaves nothing behind, not even a failed process.
        if kind == 'cif':
            check_block_count(text)
            parsed = parse_cif(text, filename=path.name)
            warnings = [warning for block in parsed for warning in block.warnings]
        else:
            parsed = parse_pw_input(text, filename=path.name)
            warnings = list(parsed.warnings)
    except StructStoreError as exc:
        echo.echo_error(f'{_shown(path)}: {exc}')
        return None
    for warning in unique_warnings(warnings):
        echo.echo_warning(warning)
    # One transaction: the file node, the process with its outputs and log, the group membership, or nothing.
    with get_manager().get_profile_storage().transaction():
        try:
            if kind == 'cif':
                # Lazy: AiiDA's eager parse (PyCifRW) would refuse files the reader above accepts (a byte-order mark).
                node = orm.CifData(file=path.resolve(), filename=path.name, parse_policy='lazy')
                results, process = import_cif.run_get_node(file=node.store())
            else:
                results, process = import_pw_input.run_get_node(file=orm.SinglefileData(path.resolve()).store())
        except KilledError:  # AiiDA's own SIGINT handler, active while a calcfunction runs, killed it
            raise _Interrupted('SIGINT') from None
        if group_label:  # created only with a structure in it: a failed import leaves no empty group behind
            orm.Group.collection.get_or_create(group_label)[0].add_nodes(list(_structures(results).values()))
    return kind, parsed, results, process


def _run_pw(path, parsed, results, code, *, dry_run: bool, pseudo_family, pseudo_dir) -> None:
    """Build a PwCalculation from the import's outputs and run it as a dry run or submit it."""
    import dataclasses

    from aiida.engine import run_get_node, submit

    from ..tools.pw.builder import create_builder, pseudo_family_hint

    parsed = dataclasses.replace(parsed, structure=results['structure'], kpoints=results.get('kpoints'))
    builder = create_builder(parsed, code, pseudo_family=pseudo_family, pseudo_folder=pseudo_dir)
    if not builder.pseudos:
        files = ', '.join(f'{label}: {pseudo}' for label, pseudo in parsed.pseudopotentials)
        families = ', '.join(pseudo_family_hint(parsed)) or 'none installed'
        echo.echo_error(
            f'{path.name}: no PwCalculation: the pseudopotentials ({files}) were not found; give --pseudo-family '
            f'(families holding them: {families}) or --pseudo-dir'
        )
        return
    processes = code.computer.get_default_mpiprocs_per_machine() or 1
    builder.metadata.options.resources = {'num_machines': 1, 'num_mpiprocs_per_machine': processes}
    if dry_run:
        builder.metadata.dry_run = True
        builder.metadata.store_provenance = False
        _, node = run_get_node(builder)
        folder = pathlib.Path(node.dry_run_info['folder']).resolve()
        echo.echo_report(f'{path.name}: PwCalculation dry run, input files in {folder}')
    else:
        node = submit(builder)
        echo.echo_report(f'{path.name}: submitted PwCalculation<{node.pk}>')
