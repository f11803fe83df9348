"""Read a Quantum ESPRESSO pw.x input into unstored AiiDA nodes, as pw.x reads it.

:func:`parse_pw_input` returns a :class:`PwInput`: the structure, the namelists, the k-points and their kind, and the
warnings of the reading. Nothing is stored. Every problem raises :class:`~aiida_structstore.core.exceptions.ParseError`
naming the file (if given), the line, the namelist or card, and what is wrong; no exception of the underlying
libraries escapes. :func:`~.builder.create_builder` turns the result into a ``PwCalculation`` builder.

The work is split by purpose:

* :mod:`.namelists`: text → namelists and cards, with Fortran namelist semantics (title lines, ``&end``, repeated
  assignment); the one piece of syntax written here, because qe-tools gets it wrong (see the tests);
* :mod:`.structure`: species, positions and cell; qe-tools computes the Bravais lattice, except where it is wrong;
* :mod:`.kpoints`: the ``K_POINTS`` card, with QE's letters for band paths;
* :mod:`.builder`: a ``PwCalculation`` builder, as aiida-quantumespresso's ``create_builder_from_file``.

``parameters`` holds every namelist as written, nothing stripped (``ibrav``, ``celldm(1)``, ``nat``, ... stay):
namelist names upper case, keys lower case without blanks, values ``bool``, ``int``, ``float`` or ``str`` as
written. Other cards (``OCCUPATIONS``, ``CONSTRAINTS``, ``HUBBARD``, ``ADDITIONAL_K_POINTS``, ...) are recognised but
not imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from aiida import orm

from ...core.exceptions import ParseError
from .kpoints import KINDS, read_kpoints
from .namelists import Where, read_sections
from .structure import BOHR_TO_ANGSTROM, read_structure

__all__ = ('BOHR_TO_ANGSTROM', 'KINDS', 'PwInput', 'parse_pw_input')


@dataclass(frozen=True)
class PwInput:
    """What a pw.x input file contains, as unstored AiiDA nodes and plain data."""

    structure: orm.StructureData
    """One kind per ``ATOMIC_SPECIES`` label that atoms use, named like the label."""
    parameters: dict[str, dict[str, Any]]
    """The namelists, ``{'CONTROL': {...}, 'SYSTEM': {...}, ...}``, JSON-compatible, keys lower-case."""
    kpoints: orm.KpointsData | None
    """The ``K_POINTS`` card, ``None`` without one. A band path holds its vertices (with labels), the number of points
    of each segment as weight."""
    kpoints_kind: str | None = None
    """``'automatic'``, ``'gamma'``, ``'list'`` or ``'band_path'`` (:data:`~.kpoints.KINDS`); ``None`` without card."""
    kpoints_type: str | None = None
    """The ``K_POINTS`` option as it applies (``'tpiba'`` when none is given, ``'crystal_b'``, ...)."""
    pseudopotentials: tuple[tuple[str, str], ...] = ()
    """``(label, pseudopotential file)`` of every declared species, in ``ATOMIC_SPECIES`` order."""
    fixed_coords: tuple[tuple[bool, bool, bool], ...] = ()
    """Per atom, which coordinates the ``if_pos`` flags fix (``True`` for a 0 flag)."""
    warnings: tuple[str, ...] = ()
    """What pw.x accepts but deserves a word: repeated assignments, unused species."""


def parse_pw_input(text: str | bytes, *, filename: str | None = None) -> PwInput:
    """Parse the text of a Quantum ESPRESSO pw.x input file.

    :param text: the file content (``bytes`` are decoded as UTF-8).
    :param filename: used in error messages only.
    :raises ParseError: for every problem (see the module documentation).
    """
    where = Where(filename)
    try:
        with np.errstate(all='ignore'):  # overflow and invalid values are checked for explicitly
            sections = read_sections(text, where)
            structure = read_structure(sections.namelists, sections.cards, where)
            ibrav = structure.ibrav
            label_type = sections.namelists.get('CONTROL', {}).get('point_label_type', 'SC')
            kpoints, kind, option = read_kpoints(
                sections.cards, structure.node, structure.alat, ibrav, where, label_type
            )
    except ParseError:
        raise
    except (ArithmeticError, IndexError, KeyError, TypeError, ValueError) as exc:  # a safety net, never expected
        message = ' '.join(str(exc).split())[:300]
        where.fail(f'internal error of the pw.x reader: {type(exc).__name__}: {message}', cause=exc)
    return PwInput(
        structure=structure.node,
        parameters=sections.namelists,
        kpoints=kpoints,
        kpoints_kind=kind,
        kpoints_type=option,
        pseudopotentials=tuple((item.label, item.pseudo) for item in structure.species),
        fixed_coords=structure.fixed,
        warnings=tuple(where.warnings),
    )
