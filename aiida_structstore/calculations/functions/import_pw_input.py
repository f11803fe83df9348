"""``structstore.import_pw_input``: a Quantum ESPRESSO pw.x input (``SinglefileData``) → nodes, with provenance.

Outputs: ``structure`` (``StructureData``), ``parameters`` (``Dict`` of the namelists, as written) and, when the
file has a ``K_POINTS`` card, ``kpoints`` (``KpointsData``). The file stays in the graph as the input. Parsing rules
and checks: :mod:`aiida_structstore.tools.pwinput`.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from ._files import read_text


@calcfunction
def import_pw_input(file: orm.SinglefileData) -> dict:
    """Parse a pw.x input file into structure, parameters and k-points."""
    from ...tools.pw import parse_pw_input

    parsed = parse_pw_input(read_text(file), filename=file.filename)
    outputs = {'structure': parsed.structure, 'parameters': orm.Dict(parsed.parameters)}
    if parsed.kpoints is not None:
        outputs['kpoints'] = parsed.kpoints
    return outputs
