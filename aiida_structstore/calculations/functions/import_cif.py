"""``structstore.import_cif``: a CIF file (``SinglefileData``) → ``StructureData``, with provenance.

A file with one structure gives the output ``structure``. A file with several data blocks gives one structure per
block in the output namespace ``structures``, keyed by the block name (made a valid link label: ``data_Fe2O3-rt``
becomes ``structures.Fe2O3_rt``). The file stays in the graph as the input, so the import is reproducible from it.
Parsing rules and checks: :mod:`aiida_structstore.tools.cif`.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from ._files import link_label, read_text


@calcfunction
def import_cif(file: orm.SinglefileData) -> dict:
    """Parse a CIF file into one ``StructureData`` per data block."""
    from ...tools.cif import parse_cif

    blocks = parse_cif(read_text(file), filename=file.filename)
    if len(blocks) == 1:
        return {'structure': blocks[0].structure}
    taken: set[str] = set()
    return {'structures': {link_label(block.name, taken): block.structure for block in blocks}}
