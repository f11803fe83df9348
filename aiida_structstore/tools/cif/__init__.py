"""Read CIF text into unstored AiiDA ``StructureData`` nodes, one per data block, and refuse to be silently wrong.

:func:`parse_cif` returns one :class:`CifBlock` per data block that describes a crystal structure, in file order.
Every problem raises :class:`~aiida_structstore.core.exceptions.ParseError`, whose message names the file (if given),
the data block (and line, where it helps) and what is wrong; parsing is all or nothing. What a block was read by a known
writer's convention is said in :attr:`CifBlock.warnings`.

The work is split by purpose; gemmi does the syntax and the crystallography, these modules keep the project's rules:

* :mod:`.syntax`: gemmi's CIF reader; data names by category and item (DDL1 and DDLm spellings, never merged);
* :mod:`.symmetry`: operations and space groups (gemmi, spglib); every space-group item read, none ignored;
* :mod:`.sites`: atom-site rows, elements, occupancy, expansion to the unit cell;
* :mod:`.block`: one block → one structure: settings, declared versus parsed, overlap, kind names.

A block with atom sites (``_atom_site_fract_*``, ``_atom_site_Cartn_*``, ``_atom_site_label`` or
``_atom_site_type_symbol``) gives one structure; a block without them (a ``data_global`` with publication details)
is skipped; a file where no block has atom sites is an error. Blocks with the same name stay separate structures.
The cell is oriented as in ASE and VESTA (*a* along *x*, *b* in the *xy* plane).
"""

from __future__ import annotations

from ...core.exceptions import ParseError
from .block import CifBlock, read_block
from .sites import has_atom_sites
from .syntax import Where, read_blocks

__all__ = ('CifBlock', 'parse_cif')


def parse_cif(text: str, *, filename: str | None = None) -> list[CifBlock]:
    """Parse CIF text into one :class:`CifBlock` per data block that contains a structure, in file order.

    :param text: the content of the CIF file.
    :param filename: used in error messages only.
    :raises ParseError: for every problem (see the module docstrings for the rules).
    """
    where = Where(filename)
    blocks, warnings = read_blocks(text, where)
    with_sites = [block for block in blocks if has_atom_sites(block)]
    if not with_sites:
        names = ', '.join(repr(block.name) for block in blocks)
        raise where.error(f'no data block contains atom sites (blocks: {names}): there is no structure to read')
    results = []
    for block in with_sites:
        try:
            result = read_block(block)
        except ParseError:
            raise
        except Exception as exc:
            raise block.where.error(f'could not be parsed: {type(exc).__name__}: {exc}') from exc
        results.append(result)
    if warnings and results:
        first = results[0]
        results[0] = CifBlock(first.name, first.structure, first.formula, (*map(where.note, warnings), *first.warnings))
    return results
