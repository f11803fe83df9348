"""The one overlap rule of both readers: no two atoms closer than :data:`MIN_DISTANCE`.

Two sites closer than ``MIN_DISTANCE`` (0.5 Å, well below any bond: H₂ is 0.74 Å) are the same atom given twice, an
atom on its own periodic image (a cell vector shorter than that), or a typo in a coordinate. The CIF reader and the
pw.x reader refuse them alike, with the same message. Only partial occupancy can make close sites legitimate: split
positions of a disordered atom, each half occupied, are fine as long as the occupancies of the two sites sum to at
most ``1 + OCCUPANCY_TOLERANCE``.

Periodic images are found with pymatgen's cell-list neighbour search (``find_points_in_spheres``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ('MIN_DISTANCE', 'OCCUPANCY_TOLERANCE', 'find_overlap')

MIN_DISTANCE = 0.5
"""Ångström; two sites closer than this whose occupancies sum to more than ``1 + OCCUPANCY_TOLERANCE`` overlap."""
OCCUPANCY_TOLERANCE = 0.02
"""Rounding allowance of occupancy sums (three rows of ``0.34``)."""


def find_overlap(
    cell: np.ndarray,
    positions: np.ndarray,
    names: Sequence[str],
    occupancies: Sequence[float] | None = None,
    *,
    same_name_note: str = '',
) -> str | None:
    """Return a message naming the first two overlapping sites, or ``None`` if no sites overlap.

    :param cell: cell vectors as rows, Å (periodic in all three directions).
    :param positions: Cartesian positions, Å, one row per site.
    :param names: how each site is named in the message (``'site Fe1'``, ``'atom 3 (Si)'``).
    :param occupancies: total occupancy of each site (1 if not given).
    :param same_name_note: appended when both sites have the same name (two images of one CIF site).
    """
    from pymatgen.optimization.neighbors import find_points_in_spheres

    positions = np.ascontiguousarray(positions, dtype=float).reshape(-1, 3)
    if not len(positions):
        return None
    totals = np.ones(len(positions)) if occupancies is None else np.asarray(occupancies, dtype=float)
    centers, neighbors, images, distances = find_points_in_spheres(
        positions,
        positions,
        MIN_DISTANCE,
        np.array([1, 1, 1], dtype=np.int64),
        np.ascontiguousarray(cell, dtype=float),
        1e-8,
    )
    itself = (centers == neighbors) & np.all(images == 0, axis=1)
    close = ~itself & (totals[centers] + totals[neighbors] > 1 + OCCUPANCY_TOLERANCE)
    if not close.any():
        return None
    order = np.lexsort((distances[close], neighbors[close], centers[close]))
    first = int(np.flatnonzero(close)[order[0]])
    center, neighbor, distance = int(centers[first]), int(neighbors[first]), float(distances[first])
    if center == neighbor:
        what = f'{names[center]} is {distance:.3f} Å from its own periodic image (a cell vector is that short)'
    elif names[center] == names[neighbor]:
        what = f'two positions of {names[center]} are {distance:.3f} Å apart{same_name_note}'
    else:
        low, high = sorted((center, neighbor))
        what = f'{names[low]} and {names[high]} are {distance:.3f} Å apart'
    total = totals[center] + totals[neighbor]
    return f'atoms overlap: {what} (closer than {MIN_DISTANCE} Å with total occupancy {total:g})'
