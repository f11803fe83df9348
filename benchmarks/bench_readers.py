"""Benchmark of the structure readers: time to parse large CIF and pw.x inputs, and how it grows with the atom count.

Usage::

    .venv/bin/python benchmarks/bench_readers.py [--sizes 4000 8000 16000 32000 200000] [--symmetric 50000]
        [--pw-sizes 50000 200000] [--coincident 100000] [--repeat 3] [--json out.json]

It generates the files in memory (no download, fixed seed): P1 CIFs with one uniquely labelled row per atom on a
jittered grid (2 Å apart, Si and O), a CIF in space group F m -3 m (192 operations) whose general-position rows
expand to about ``--symmetric`` atoms, a CIF of ``--coincident`` rows on one position (a hostile file: one site,
where all pairs would be its square), and pw.x inputs (``ibrav = 0``, positions in Å) of the ``--pw-sizes``. Each
file is parsed with :func:`parse_cif` or :func:`parse_pw_input` (which build the unstored ``StructureData``) inside
a temporary in-memory AiiDA profile; the table gives the median of ``--repeat`` runs for files up to 50,000 atoms and
one run above, and the ratio of the 32k to the 16k P1 time (2 for linear growth, 4 for quadratic).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import pathlib
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPACING = 2.0  # Å between neighbouring grid points
BIG = 50_000  # above this many atoms, one run instead of --repeat


def grid_fractions(count: int, seed: int = 0) -> tuple[float, np.ndarray]:
    """``count`` fractional positions on a jittered cubic grid, and the cubic cell length (Å)."""
    side = math.ceil(count ** (1 / 3))
    rng = np.random.default_rng(seed)
    index = np.arange(count)
    grid = np.stack([index // (side * side), (index // side) % side, index % side], axis=1).astype(float)
    jitter = rng.uniform(-0.15, 0.15, size=(count, 3))
    return side * SPACING, (grid + 0.5 + jitter) / side


def cif_text(name: str, length: float, symmetry: list[str], rows: list[str]) -> str:
    """A cubic cell of ``length`` Å with the symmetry items and ``label type_symbol x y z`` rows."""
    header = [
        f'data_{name}',
        *(f'_cell_length_{axis} {length:.4f}' for axis in 'abc'),
        *(f'_cell_angle_{angle} 90' for angle in ('alpha', 'beta', 'gamma')),
        *symmetry,
        'loop_',
        *(f'_atom_site_{item}' for item in ('label', 'type_symbol', 'fract_x', 'fract_y', 'fract_z')),
    ]
    return '\n'.join([*header, *rows]) + '\n'


def p1_cif(count: int) -> str:
    length, frac = grid_fractions(count)
    symbols = ['Si' if index % 3 == 0 else 'O' for index in range(count)]
    rows = [
        f'{s}{i + 1} {s} {x:.6f} {y:.6f} {z:.6f}' for i, (s, (x, y, z)) in enumerate(zip(symbols, frac, strict=True))
    ]
    return cif_text(f'p1_{count}', length, ["_symmetry_space_group_name_H-M 'P 1'"], rows)


def coincident_cif(count: int) -> str:
    """``count`` rows of occupancy 1e-5 on one position: one site (a hostile file; all pairs would be count²)."""
    rows = [f'O{index + 1} O 0.1 0.2 0.3 0.00001' for index in range(count)]
    text = cif_text(f'coincident_{count}', 10.0, ["_symmetry_space_group_name_H-M 'P 1'"], rows)
    return text.replace('_atom_site_fract_z\n', '_atom_site_fract_z\n_atom_site_occupancy\n')


def symmetric_cif(target: int, seed: int = 1) -> tuple[str, int]:
    """A F m -3 m CIF of general-position rows (at least 1.5 Å from every other atom) expanding to about ``target``."""
    import gemmi
    from scipy.spatial import cKDTree

    ops = list(gemmi.SpaceGroup('F m -3 m').operations())
    rotations = np.array([op.rot for op in ops], dtype=float) / gemmi.Op.DEN
    translations = np.array([op.tran for op in ops], dtype=float) / gemmi.Op.DEN
    length = (target * 12.0) ** (1 / 3)  # about 12 Å^3 per atom
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    accepted = np.empty((0, 3))
    while len(accepted) + len(ops) <= target:
        point = np.round(rng.uniform(0, 1, 3), 6)
        images = np.mod(rotations @ point + translations, 1.0) * length
        images = np.mod(images, length)  # 1.0 - eps * length can round to length
        if cKDTree(images, boxsize=length).query_pairs(1.5):
            continue  # near a symmetry element
        if (
            len(accepted)
            and np.isfinite(cKDTree(accepted, boxsize=length).query(images, distance_upper_bound=1.5)[0]).any()
        ):
            continue
        rows.append(point)
        accepted = np.vstack([accepted, images])
    symmetry = ["_symmetry_space_group_name_H-M 'F m -3 m'", '_symmetry_Int_Tables_number 225']
    lines = [f'C{index + 1} C {x:.6f} {y:.6f} {z:.6f}' for index, (x, y, z) in enumerate(rows)]
    return cif_text('fm3m', length, symmetry, lines), len(accepted)


def pw_input(count: int) -> str:
    length, frac = grid_fractions(count, seed=2)
    lines = [
        '&CONTROL',
        "  calculation = 'scf'",
        '/',
        '&SYSTEM',
        f'  ibrav = 0, nat = {count}, ntyp = 2, ecutwfc = 30',
        '/',
        '&ELECTRONS',
        '/',
        'ATOMIC_SPECIES',
        'Si 28.086 Si.pbe-n-rrkjus_psl.1.0.0.UPF',
        'O 15.999 O.pbe-n-kjpaw_psl.0.1.UPF',
        'CELL_PARAMETERS angstrom',
        f'  {length:.6f} 0.0 0.0',
        f'  0.0 {length:.6f} 0.0',
        f'  0.0 0.0 {length:.6f}',
        'ATOMIC_POSITIONS angstrom',
    ]
    for index, (x, y, z) in enumerate(frac * length):
        lines.append(f'{"Si" if index % 3 == 0 else "O"} {x:.6f} {y:.6f} {z:.6f}')
    lines += ['K_POINTS gamma', '']
    return '\n'.join(lines)


def timed(function, text: str, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = function(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='*', default=[4000, 8000, 16000, 32000, 200000])
    parser.add_argument('--symmetric', type=int, default=50000, help='atoms of the F m -3 m file (0: none)')
    parser.add_argument('--pw-sizes', type=int, nargs='*', default=[50000, 200000])
    parser.add_argument('--coincident', type=int, default=100000, help='rows on one position (0: none)')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--json', type=pathlib.Path, help='also write the rows as JSON')
    args = parser.parse_args(argv)

    from aiida import load_profile
    from aiida.storage.sqlite_temp import SqliteTempBackend
    from tabulate import tabulate

    from aiida_structstore.tools.cif import parse_cif
    from aiida_structstore.tools.pw import parse_pw_input

    load_profile(SqliteTempBackend.create_profile('bench-readers'), allow_switch=True)

    def cif_sites(text: str) -> int:
        return len(parse_cif(text)[0].structure.sites)

    def pw_sites(text: str) -> int:
        return len(parse_pw_input(text).structure.sites)

    def symmetric(target: int) -> tuple[str, str, int]:
        text, size = symmetric_cif(target)
        rows = sum(line.startswith('C') for line in text.splitlines())
        return f'CIF F m -3 m (192 operations), {rows} rows', text, size

    def coincident(count: int) -> tuple[str, str, int]:
        return f'CIF P 1, {count} rows on one position', coincident_cif(count), 1

    cases = [('cif-p1', lambda n=n: (f'CIF P 1, {n} atoms', p1_cif(n), n), cif_sites) for n in args.sizes]
    if args.symmetric:
        cases.append(('cif-fm3m', lambda: symmetric(args.symmetric), cif_sites))
    cases += [('pw', lambda n=n: (f'pw.x, {n} atoms', pw_input(n), n), pw_sites) for n in args.pw_sizes]
    if args.coincident:
        cases.append(('cif-coincident', lambda: coincident(args.coincident), cif_sites))

    cif_sites(p1_cif(10))  # imports and caches (gemmi tables, scipy, pymatgen) before timing
    pw_sites(pw_input(10))
    rows = []
    for kind, make, read in cases:
        name, text, size = make()
        repeat = args.repeat if len(text) <= BIG * 40 else 1  # about 40 bytes per atom-site row
        seconds, sites = timed(read, text, repeat)
        assert sites == size, (name, sites, size)
        rows.append(
            {
                'run': name,
                'kind': kind,
                'atoms': size,
                'MB': round(len(text) / 1e6, 2),
                'runs': repeat,
                'seconds': round(seconds, 3),
                'us_per_atom': round(seconds / size * 1e6, 1) if kind != 'cif-coincident' else None,
            }
        )
        print(f'{name}: {seconds:.3f} s', file=sys.stderr, flush=True)
    p1 = {row['atoms']: row['seconds'] for row in rows if row['kind'] == 'cif-p1'}
    table = [[row['run'], row['atoms'], row['MB'], row['runs'], row['seconds'], row['us_per_atom']] for row in rows]
    print(tabulate(table, headers=['file', 'atoms', 'MB', 'runs', 'seconds (median)', 'µs / atom']))
    ratio = None
    if 16000 in p1 and 32000 in p1:
        ratio = p1[32000] / p1[16000]
        print(f'\nP 1 time ratio 32k / 16k atoms: {ratio:.2f} (2 is linear, 4 quadratic)')
    if args.json:
        args.json.write_text(json.dumps({'rows': rows, 'ratio_32k_16k': ratio}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
