"""The writers matrix: every generated structure, written by the tools of the ecosystem, must read back as itself.

Structures (:func:`matrix.structures`): two space groups of each of the 14 Bravais lattices, each also with its atoms
displaced, rhombohedral cells on rhombohedral axes, 1 and 200 sites, several species of one element, an alloy and a
vacancy, 2D and molecular cells. Writers: pymatgen's ``CifWriter`` (plain and ``symprec=0.01``), ASE's CIF writer,
AiiDA's ``StructureData`` CIF export, this project's CIF writer; as pw.x input ASE's ``write_espresso_in``,
pymatgen's ``PWInput`` and aiida-quantumespresso's own input generation (a ``PwCalculation`` dry run). Writers that
cannot write partial occupancy (ASE's ``Atoms``, aiida-quantumespresso) get the ordered structures only.

A file reads back right if its sites (count, species, positions) and cell match the source within
:data:`TOLERANCE`; a symmetrized CIF (``symprec``) is compared with what its own writer's reader (pymatgen's
``CifParser``) makes of it, since the writer may pick another cell. Files are written in the test session and read
with the readers directly (no AiiDA round trip: the import calcfunctions are tested in ``tests/test_imports.py``).
"""

from __future__ import annotations

import io
import os
import pathlib
import warnings

import numpy as np
import pytest

from aiida_structstore.tools.cif import parse_cif
from aiida_structstore.tools.pw import parse_pw_input

from . import matrix

TOLERANCE = 1e-4
"""Å, on cell lengths and positions; degrees on cell angles. Every writer writes at least six decimals."""
CASES = {case.name: case for case in matrix.structures()}
WRITERS = (*matrix.CIF_WRITERS, *matrix.PW_WRITERS, 'aiida-qe-pw')
PAIRS = [
    (writer, name)
    for writer in WRITERS
    for name, case in CASES.items()
    if case.ordered or writer not in matrix.ORDERED_ONLY
]
#: How the kinds of the source come back: ``'names'``, the same kind names (``Fe1``, ``Fe2``); ``'apart'``, sites of
#: different kinds stay in different kinds (the CIF writers number their labels their own way, ASE's pw.x writer
#: names them ``Fe``, ``Fe1``). pymatgen's PWInput names species by element only; a symmetrized CIF has its own sites.
KINDS = {'structstore-cif': 'names', 'aiida-qe-pw': 'names'} | dict.fromkeys(
    ('pymatgen-cif', 'ase-cif', 'aiida-cif', 'ase-pw'), 'apart'
)


@pytest.fixture(scope='session')
def written(request):
    """``written(writer, name)``: the file text, written once per session."""
    cache: dict[tuple[str, str], str] = {}

    def write(writer: str, name: str) -> str:
        if (writer, name) not in cache:
            case = CASES[name]
            if writer == 'aiida-qe-pw':
                text = request.getfixturevalue('aiida_qe_writer')(case)
            else:
                text = matrix.quiet({**matrix.CIF_WRITERS, **matrix.PW_WRITERS}[writer], case)
            cache[writer, name] = text
        return cache[writer, name]

    return write


@pytest.fixture(scope='session')
def aiida_qe_writer(tmp_path_factory, aiida_profile):
    """Write the pw.x input of a case with a ``PwCalculation`` dry run (aiida-quantumespresso's input generation)."""
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory, DataFactory

    computer = orm.Computer(
        label='matrix', hostname='localhost', transport_type='core.local', scheduler_type='core.direct'
    ).store()
    computer.set_workdir(str(tmp_path_factory.mktemp('work')))
    computer.configure()
    code = orm.InstalledCode(computer=computer, filepath_executable='/usr/bin/pw.x', label='pw-matrix').store()
    upf = DataFactory('pseudo.upf')
    pseudos: dict[str, object] = {}
    folder = tmp_path_factory.mktemp('dry-runs')

    def pseudo(symbol: str):
        if symbol not in pseudos:
            content = f'<UPF version="2.0.1">\n<PP_HEADER element="{symbol}" z_valence="1.0"/>\n</UPF>\n'
            # stored: PwCalculation tells pseudopotentials apart by pk (unstored, they would all share one file)
            pseudos[symbol] = upf(io.BytesIO(content.encode()), filename=f'{symbol}.UPF').store()
        return pseudos[symbol]

    def write(case: matrix.Case) -> str:
        structure = matrix.structure_data(case)
        builder = CalculationFactory('quantumespresso.pw').get_builder()
        builder.code = code
        builder.structure = structure
        builder.parameters = orm.Dict({'CONTROL': {'calculation': 'scf'}, 'SYSTEM': {'ecutwfc': 30}})
        kpoints = orm.KpointsData()
        kpoints.set_kpoints_mesh([2, 2, 2])
        builder.kpoints = kpoints
        builder.pseudos = {kind.name: pseudo(kind.symbol) for kind in structure.kinds}
        builder.metadata.options.resources = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        builder.metadata.dry_run = True
        builder.metadata.store_provenance = False
        here = os.getcwd()
        os.chdir(folder)  # a dry run writes its files under ./submit_test
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                _, node = run_get_node(builder)
        finally:
            os.chdir(here)
        return pathlib.Path(folder, node.dry_run_info['folder'], 'aiida.in').read_text()

    return write


@pytest.mark.parametrize(('writer', 'name'), PAIRS, ids=[f'{writer}:{name}' for writer, name in PAIRS])
def test_file_reads_back_as_its_source(written, writer, name):
    text = written(writer, name)
    if writer in matrix.PW_WRITERS or writer == 'aiida-qe-pw':
        parsed = parse_pw_input(text, filename=f'{name}.in')
        assert len(parsed.structure.sites) == len(CASES[name].structure)
        structure, warnings_ = parsed.structure, parsed.warnings
    else:
        (block,) = parse_cif(text, filename=f'{name}.cif')
        structure, warnings_ = block.structure, block.warnings
    if writer == 'pymatgen-cif-symprec':
        reference = _pymatgen_reads(text)
        assert structure.get_pymatgen().composition.reduced_formula == CASES[name].structure.composition.reduced_formula
    else:
        reference = CASES[name].structure
    assert_same(structure, reference, kinds=KINDS.get(writer))
    for warning in warnings_:  # only the conventions of known writers, never anything else
        assert "as pymatgen's CifWriter writes it" in warning, warning


def test_matrix_size():
    """The matrix of #8: at least 60 structures, all 14 Bravais lattices, every writer."""
    lattices = {case.lattice for case in CASES.values()} - {'2D', 'molecule'}
    assert len(CASES) >= 60
    assert lattices == {'cP', 'cF', 'cI', 'tP', 'tI', 'oP', 'oC', 'oF', 'oI', 'hP', 'hR', 'mP', 'mC', 'aP'}
    assert {len(case.structure) for case in CASES.values()} >= {1, 200}
    assert len(PAIRS) >= 8 * 60 - 7 * 2


def _pymatgen_reads(text: str):
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return CifParser.from_str(text).parse_structures(primitive=False)[0]


def assert_same(structure, reference, *, kinds: str | None) -> None:
    """The parsed ``StructureData`` has the sites, species (and kinds, see :data:`KINDS`) and cell of the reference."""
    from pymatgen.core import Lattice

    ours = Lattice(structure.cell)
    np.testing.assert_allclose(ours.abc, reference.lattice.abc, atol=TOLERANCE)
    np.testing.assert_allclose(ours.angles, reference.lattice.angles, atol=TOLERANCE)
    assert len(structure.sites) == len(reference)

    frac = np.array([site.position for site in structure.sites]) @ np.linalg.inv(np.array(structure.cell))
    delta = frac[:, None, :] - reference.frac_coords[None, :, :]
    distance = np.linalg.norm((delta - np.round(delta)) @ reference.lattice.matrix, axis=-1)
    nearest = distance.argmin(axis=1)
    assert len(set(nearest.tolist())) == len(reference), 'two parsed sites match the same source site'
    assert distance.min(axis=1).max() < TOLERANCE * 10, f'a site is {distance.min(axis=1).max():.2e} Å off'
    names = reference.site_properties.get('kind_name')
    source_kind_of: dict[str, set[str]] = {}
    for site, match in zip(structure.sites, nearest, strict=True):
        kind = structure.get_kind(site.kind_name)
        species = {symbol: round(weight, 6) for symbol, weight in zip(kind.symbols, kind.weights, strict=True)}
        expected = {element.symbol: round(amount, 6) for element, amount in reference[int(match)].species.items()}
        assert species == expected
        if kinds == 'names':
            assert site.kind_name == names[int(match)]
        if kinds == 'apart':
            source_kind_of.setdefault(site.kind_name, set()).add(names[int(match)])
    assert all(len(sources) == 1 for sources in source_kind_of.values()), source_kind_of
