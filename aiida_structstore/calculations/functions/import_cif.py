"""``structstore.import_cif``: a CIF file (``CifData``) → ``StructureData``, with provenance.

The input is AiiDA's CIF type, so a CIF already in a user's graph (from ``verdi data core.cif import``, a database
importer, a workflow) imports as it is. A file with one structure gives the output ``structure``; a file with
several data blocks gives one structure per block in the output namespace ``structures``, keyed by the block name
(made a valid link label: ``data_Fe2O3-rt`` becomes ``structures.Fe2O3_rt``). A file may hold up to
:data:`~aiida_structstore.tools.files.MAX_DATA_BLOCKS` blocks; more are refused before any is read. Conventions of
known writers that the reader accepted (pymatgen's formula sum, SHELXL-97's multiplicities) are reported in the
process log (``verdi process report``). Parsing rules and checks: :mod:`aiida_structstore.tools.cif`.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from ...tools.files import check_block_count, check_filename, link_label, read_text, report
from .interrupted import mark_runner
from .outputs import store_outputs


@calcfunction
def import_cif(file: orm.CifData) -> dict:
    """Parse a CIF file into one ``StructureData`` per data block."""
    from ...tools.cif import parse_cif

    mark_runner()
    check_filename(file.filename)
    text = read_text(file)
    check_block_count(text)
    blocks = parse_cif(text, filename=file.filename)
    report(warning for block in blocks for warning in block.warnings)
    if len(blocks) == 1:
        return {'structure': blocks[0].structure}
    taken: set[str] = set()
    structures = {link_label(block.name, taken): block.structure for block in blocks}
    return {'structures': store_outputs('structures', structures)}  # in one statement: see .outputs
