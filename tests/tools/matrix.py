"""The structures and writers of the writers matrix (``test_writers_matrix.py``).

:func:`structures` generates the source structures (pymatgen ``Structure`` with a ``kind_name`` site property): two
space groups of each of the 14 Bravais lattices, each also with its atoms displaced (symmetry broken), several
species of one element, an alloy and a vacancy, 2D and molecular cells, 1 to 200 sites. :data:`WRITERS` writes a
structure as a file the way a tool of the ecosystem does. Nothing here reads a file back.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from functools import cache

import numpy as np

MIN_SOURCE_DISTANCE = 0.9  # Å: every generated structure keeps its atoms at least this far apart


@dataclass(frozen=True)
class Case:
    name: str
    lattice: str  # Bravais lattice (Pearson symbol prefix), or '2D' / 'molecule'
    structure: object  # pymatgen Structure; site property 'kind_name'

    @property
    def ordered(self) -> bool:
        return self.structure.is_ordered


@dataclass(frozen=True)
class Prototype:
    name: str
    lattice: str
    group: str
    parameters: tuple[float, ...]  # a, b, c, alpha, beta, gamma
    species: tuple[str, ...]
    coords: tuple[tuple[float, float, float], ...]
    kinds: tuple[str, ...] = field(default=())


PROTOTYPES = (
    Prototype(
        'SrTiO3', 'cP', 'Pm-3m', (3.905,) * 3 + (90,) * 3, ('Sr', 'Ti', 'O'), ((0, 0, 0), (0.5,) * 3, (0.5, 0.5, 0))
    ),
    Prototype('FeSi', 'cP', 'P2_13', (4.49,) * 3 + (90,) * 3, ('Fe', 'Si'), ((0.136,) * 3, (0.844,) * 3)),
    Prototype('NaCl', 'cF', 'Fm-3m', (5.64,) * 3 + (90,) * 3, ('Na', 'Cl'), ((0, 0, 0), (0.5,) * 3)),
    Prototype(
        'MgAl2O4', 'cF', 'Fd-3m', (8.08,) * 3 + (90,) * 3, ('Mg', 'Al', 'O'), ((0, 0, 0), (0.625,) * 3, (0.3874,) * 3)
    ),
    Prototype('W', 'cI', 'Im-3m', (3.165,) * 3 + (90,) * 3, ('W',), ((0, 0, 0),)),
    Prototype(
        'Y3Al5O12',
        'cI',
        'Ia-3d',
        (12.0,) * 3 + (90,) * 3,
        ('Y', 'Al', 'Al', 'O'),
        ((0.125, 0, 0.25), (0, 0, 0), (0.375, 0, 0.25), (-0.0306, 0.0512, 0.1500)),
    ),
    Prototype('CuAu', 'tP', 'P4/mmm', (2.80, 2.80, 3.67, 90, 90, 90), ('Cu', 'Au'), ((0, 0, 0), (0.5,) * 3)),
    Prototype('TiO2', 'tP', 'P4_2/mnm', (4.594, 4.594, 2.959, 90, 90, 90), ('Ti', 'O'), ((0, 0, 0), (0.305, 0.305, 0))),
    Prototype(
        'BaFe2As2',
        'tI',
        'I4/mmm',
        (3.96, 3.96, 13.02, 90, 90, 90),
        ('Ba', 'Fe', 'As'),
        ((0, 0, 0), (0, 0.5, 0.25), (0, 0, 0.354)),
    ),
    Prototype(
        'CuFeS2',
        'tI',
        'I-42d',
        (5.29, 5.29, 10.42, 90, 90, 90),
        ('Cu', 'Fe', 'S'),
        ((0, 0, 0), (0, 0, 0.5), (0.257, 0.25, 0.125)),
    ),
    Prototype(
        'CaTiO3',
        'oP',
        'Pnma',
        (5.44, 7.64, 5.38, 90, 90, 90),
        ('Ca', 'Ti', 'O', 'O'),
        ((0.0065, 0.25, -0.0349), (0, 0, 0.5), (0.571, 0.25, -0.0087), (0.2897, 0.0373, 0.7111)),
    ),
    Prototype('NbO', 'oP', 'Pmmm', (3.1, 4.2, 5.3, 90, 90, 90), ('Nb', 'O'), ((0, 0, 0), (0.5, 0.5, 0.5))),
    Prototype('U', 'oC', 'Cmcm', (2.854, 5.869, 4.955, 90, 90, 90), ('U',), ((0, 0.1025, 0.25),)),
    Prototype('P', 'oC', 'Cmce', (3.314, 10.48, 4.376, 90, 90, 90), ('P',), ((0, 0.1017, 0.0806),)),
    Prototype('NiTi', 'oF', 'Fmmm', (4.1, 5.3, 6.2, 90, 90, 90), ('Ni', 'Ti'), ((0, 0, 0), (0, 0, 0.5))),
    Prototype('TiSi2', 'oF', 'Fddd', (8.27, 4.80, 8.55, 90, 90, 90), ('Ti', 'Si'), ((0, 0, 0), (0.3365, 0, 0))),
    Prototype('ZrO', 'oI', 'Immm', (3.2, 4.1, 5.6, 90, 90, 90), ('Zr', 'O'), ((0, 0, 0), (0, 0.5, 0))),
    Prototype(
        'CeCu2', 'oI', 'Imma', (4.43, 7.05, 7.45, 90, 90, 90), ('Ce', 'Cu'), ((0, 0.25, 0.537), (0, 0.051, 0.165))
    ),
    Prototype('Mg', 'hP', 'P6_3/mmc', (3.209, 3.209, 5.211, 90, 90, 120), ('Mg',), ((1 / 3, 2 / 3, 0.25),)),
    Prototype(
        'ZnO', 'hP', 'P6_3mc', (3.25, 3.25, 5.207, 90, 90, 120), ('Zn', 'O'), ((1 / 3, 2 / 3, 0), (1 / 3, 2 / 3, 0.382))
    ),
    Prototype(
        'Bi2Se3',
        'hR',
        'R-3m',
        (4.143, 4.143, 28.636, 90, 90, 120),
        ('Bi', 'Se', 'Se'),
        ((0, 0, 0.4008), (0, 0, 0), (0, 0, 0.2117)),
    ),
    Prototype(
        'Al2O3', 'hR', 'R-3c', (4.759, 4.759, 12.991, 90, 90, 120), ('Al', 'O'), ((0, 0, 0.352), (0.306, 0, 0.25))
    ),
    Prototype(
        'CO2H', 'mP', 'P2_1/c', (5.1, 6.2, 7.3, 90, 103.5, 90), ('C', 'O'), ((0.1, 0.2, 0.3), (0.31, 0.12, 0.15))
    ),
    Prototype('PdS', 'mP', 'P2/m', (4.6, 3.3, 5.2, 90, 98.0, 90), ('Pd', 'S'), ((0, 0, 0), (0.5, 0.5, 0.5))),
    Prototype('AlCl3', 'mC', 'C2/m', (5.9, 10.2, 6.2, 90, 108.0, 90), ('Al', 'Cl'), ((0, 0.166, 0), (0.226, 0, 0.219))),
    Prototype(
        'SiO2', 'mC', 'C2/c', (7.13, 12.37, 7.17, 90, 120.3, 90), ('Si', 'O'), ((0.2, 0.1, 0.1), (0.35, 0.2, 0.2))
    ),
    Prototype(
        'CuSO4',
        'aP',
        'P-1',
        (5.1, 6.1, 7.2, 82.0, 107.3, 102.6),
        ('Cu', 'S', 'O'),
        ((0, 0, 0), (0.25, 0.3, 0.6), (0.6, 0.7, 0.2)),
    ),
    Prototype('KH', 'aP', 'P1', (4.1, 5.2, 6.3, 75.0, 85.0, 95.0), ('K', 'H'), ((0, 0, 0), (0.45, 0.52, 0.48))),
)


@cache
def structures() -> tuple[Case, ...]:
    """The source structures, each with a unique name."""
    from pymatgen.core import Lattice, Structure

    cases = []
    rng = np.random.default_rng(20260801)
    for proto in PROTOTYPES:
        structure = Structure.from_spacegroup(
            proto.group,
            Lattice.from_parameters(*proto.parameters),
            list(proto.species),
            [list(c) for c in proto.coords],
        )
        cases.append(_case(f'{proto.lattice}-{proto.name}', proto.lattice, structure))
        displaced = structure.copy()
        for index in range(len(displaced)):
            displaced.translate_sites([index], rng.normal(0, 0.05, 3), frac_coords=False, to_unit_cell=True)
        cases.append(_case(f'{proto.lattice}-{proto.name}-displaced', proto.lattice, displaced))

    # The rhombohedral lattices also in their primitive cell on rhombohedral axes.
    for case in [c for c in cases if c.lattice == 'hR' and not c.name.endswith('displaced')]:
        primitive = case.structure.get_primitive_structure()
        cases.append(_case(f'{case.name}-rhombohedral-axes', 'hR', primitive))

    cubic = Lattice.cubic
    cases.append(_case('cP-Po-1-site', 'cP', Structure(cubic(3.35), ['Po'], [[0, 0, 0]])))
    silicon = Structure.from_spacegroup('Fd-3m', cubic(5.431), ['Si'], [[0, 0, 0]])
    cases.append(_case('cF-Si-200-sites', 'cF', silicon * (5, 5, 1)))
    feo = Structure.from_spacegroup('Fm-3m', cubic(4.33), ['Fe', 'O'], [[0, 0, 0], [0.5, 0, 0]])
    afm = feo.copy()
    kinds = [
        'Fe1' if site.specie.symbol == 'Fe' and round(site.frac_coords.sum() * 2) % 2 == 0 else None for site in afm
    ]
    kinds = [k or ('Fe2' if site.specie.symbol == 'Fe' else 'O') for k, site in zip(kinds, afm, strict=True)]
    cases.append(_case('cF-FeO-Fe1-Fe2', 'cF', afm, kinds))
    alloy = Structure.from_spacegroup('Fm-3m', cubic(3.85), [{'Cu': 0.5, 'Au': 0.5}], [[0, 0, 0]])
    cases.append(_case('cF-CuAu-alloy', 'cF', alloy))
    vacancy = Structure.from_spacegroup('Fm-3m', cubic(4.30), [{'Fe': 0.9}, 'O'], [[0, 0, 0], [0.5, 0, 0]])
    cases.append(_case('cF-FeO-vacancy', 'cF', vacancy))
    graphene = Structure(
        Lattice.from_parameters(2.46, 2.46, 20.0, 90, 90, 120), ['C', 'C'], [[0, 0, 0.5], [1 / 3, 2 / 3, 0.5]]
    )
    cases.append(_case('2D-graphene', '2D', graphene))
    mos2 = Structure(
        Lattice.from_parameters(3.16, 3.16, 18.0, 90, 90, 120),
        ['Mo', 'S', 'S'],
        [[0, 0, 0.5], [1 / 3, 2 / 3, 0.5 + 1.56 / 18], [1 / 3, 2 / 3, 0.5 - 1.56 / 18]],
    )
    cases.append(_case('2D-MoS2', '2D', mos2))
    water = [[0, 0, 0], [0.757, 0.586, 0], [-0.757, 0.586, 0]]
    cases.append(_molecule('molecule-H2O', ['O', 'H', 'H'], water, 10.0))
    ring = [[1.39 * math.cos(k * math.pi / 3), 1.39 * math.sin(k * math.pi / 3), 0] for k in range(6)]
    hydrogens = [[2.47 * math.cos(k * math.pi / 3), 2.47 * math.sin(k * math.pi / 3), 0] for k in range(6)]
    cases.append(_molecule('molecule-C6H6', ['C'] * 6 + ['H'] * 6, ring + hydrogens, 12.0))
    names = [case.name for case in cases]
    assert len(set(names)) == len(names)
    return tuple(cases)


def _case(name: str, lattice: str, structure, kinds: list[str] | None = None) -> Case:
    structure = structure.copy()
    if kinds is None:
        kinds = [site.species.elements[0].symbol if site.is_ordered else _alloy_name(site) for site in structure]
    structure.add_site_property('kind_name', kinds)
    distances = structure.distance_matrix + np.eye(len(structure)) * 1e3
    lengths = structure.lattice.abc
    nearest = min(float(distances.min()), *lengths)
    assert nearest >= MIN_SOURCE_DISTANCE, f'{name}: atoms {nearest:.2f} Å apart'
    return Case(name, lattice, structure)


def _alloy_name(site) -> str:
    from aiida.orm.nodes.data.structure import create_automatic_kind_name

    species = {element.symbol: amount for element, amount in site.species.items()}
    return create_automatic_kind_name(list(species), list(species.values()))


def _molecule(name: str, symbols: list[str], positions: list[list[float]], box: float) -> Case:
    from pymatgen.core import Lattice, Structure

    centred = np.array(positions) - np.mean(positions, axis=0) + box / 2
    return _case(name, 'molecule', Structure(Lattice.cubic(box), symbols, centred, coords_are_cartesian=True))


# --------------------------------------------------------------------------------------------------------------------
# Writers: structure → file text


def structure_data(case: Case):
    """The AiiDA ``StructureData`` of a case, kind names included (unstored)."""
    from aiida import orm

    return orm.StructureData(pymatgen=case.structure)


def ase_atoms(case: Case):
    """ASE ``Atoms``; species of one element with different kind names get different magnetic moments, which is
    how ASE's pw.x writer tells species apart (``Fe1``, ``Fe2``)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(case.structure.copy().remove_site_property('kind_name'))
    names = case.structure.site_properties['kind_name']
    moments = {name: float(index) for index, name in enumerate(sorted(set(names)))}
    if len(set(names)) > len({site.specie.symbol for site in case.structure}):
        atoms.set_initial_magnetic_moments([moments[name] for name in names])
    return atoms


def pymatgen_cif(case: Case) -> str:
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(_labelled(case)))


def pymatgen_cif_symmetrized(case: Case) -> str:
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(_labelled(case), symprec=0.01))


def ase_cif(case: Case) -> str:
    import ase.io

    handle = io.BytesIO()
    ase.io.write(handle, ase_atoms(case), format='cif')
    return handle.getvalue().decode()


def aiida_cif(case: Case) -> str:
    return structure_data(case).get_cif(converter='ase', store=False).get_content()


def project_cif(case: Case) -> str:
    from aiida_structstore.structures.cif import write_cif

    return write_cif(structure_data(case).base.attributes.all, data_name=case.name)


def ase_pw(case: Case) -> str:
    from ase.io.espresso import write_espresso_in

    handle = io.StringIO()
    atoms = ase_atoms(case)
    species = {symbol: f'{symbol}.UPF' for symbol in atoms.get_chemical_symbols()}
    species.update({f'{symbol}{index}': f'{symbol}.UPF' for symbol in list(species) for index in range(1, 10)})
    write_espresso_in(
        handle,
        atoms,
        input_data={'control': {'calculation': 'scf'}, 'system': {'ecutwfc': 30}},
        pseudopotentials=species,
        kpts=(2, 2, 2),
    )
    return handle.getvalue()


def pymatgen_pw(case: Case) -> str:
    from pymatgen.io.pwscf import PWInput

    structure = case.structure.copy().remove_site_property('kind_name')
    pseudo = {element.symbol: f'{element.symbol}.UPF' for element in structure.composition}
    return str(
        PWInput(structure, pseudo=pseudo, control={'calculation': 'scf'}, system={'ecutwfc': 30}, kpoints_grid=(2,) * 3)
    )


def _labelled(case: Case):
    """The structure with the kind names as site labels, which CifWriter writes as ``_atom_site_label``."""
    structure = case.structure.copy()
    for site, name in zip(structure, case.structure.site_properties['kind_name'], strict=True):
        site.label = name
    return structure.remove_site_property('kind_name')


CIF_WRITERS = {
    'pymatgen-cif': pymatgen_cif,
    'pymatgen-cif-symprec': pymatgen_cif_symmetrized,
    'ase-cif': ase_cif,
    'aiida-cif': aiida_cif,
    'structstore-cif': project_cif,
}
PW_WRITERS = {'ase-pw': ase_pw, 'pymatgen-pw': pymatgen_pw}  # + 'aiida-qe-pw', written by a PwCalculation dry run
#: Writers that cannot write partial occupancy (ASE's Atoms and aiida-quantumespresso need ordered structures).
ORDERED_ONLY = {'ase-cif', 'aiida-cif', 'ase-pw', 'pymatgen-pw', 'aiida-qe-pw'}


def quiet(function, *args):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return function(*args)
