"""``structstore.import_pw_input``: a Quantum ESPRESSO pw.x input (``SinglefileData``) → nodes, with provenance.

Outputs: ``structure`` (``StructureData``), ``parameters`` (``Dict`` of the namelists, as written) and, when the
file has a ``K_POINTS`` card, ``kpoints`` (``KpointsData``) and ``kpoints_kind`` (``Str``: ``automatic``, ``gamma``,
``list`` or ``band_path``; a Γ-only calculation and a 1 x 1 x 1 mesh are different runs of pw.x). What pw.x accepts
but deserves a word (a variable assigned twice, an unused species) is reported in the process log. The file stays
in the graph as the input. Parsing rules and checks: :mod:`aiida_structstore.tools.pw`; a ``PwCalculation`` builder
from the outputs: :func:`aiida_structstore.tools.pw.builder.create_builder`.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from ...tools.files import check_filename, read_text, report
from .interrupted import mark_runner


@calcfunction
def import_pw_input(file: orm.SinglefileData) -> dict:
    """Parse a pw.x input file into structure, parameters and k-points."""
    from ...tools.pw import parse_pw_input

    mark_runner()
    check_filename(file.filename)
    parsed = parse_pw_input(read_text(file), filename=file.filename)
    report(parsed.warnings)
    outputs = {'structure': parsed.structure, 'parameters': orm.Dict(parsed.parameters)}
    if parsed.kpoints is not None:
        outputs['kpoints'] = parsed.kpoints
        outputs['kpoints_kind'] = orm.Str(parsed.kpoints_kind)
    return outputs
