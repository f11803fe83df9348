"""The kind-preserving CIF writer, read back with pymatgen and ASE."""

from __future__ import annotations

import io

import numpy as np
import pytest
from ase.io import read as ase_read
from pymatgen.io.cif import CifParser

from aiida_structstore.structures.cif import write_cif


def parse(cif):
    return CifParser.from_str(cif).parse_structures(primitive=False)[0]


@pytest.mark.parametrize('name', ['silicon', 'fe2o3'])
def test_round_trip_geometry(generate_structure, name):
    structure = generate_structure(name)
    cif = write_cif(structure.base.attributes.all, data_name=name)
    back = parse(cif)
    reference = structure.get_pymatgen()
    assert back.lattice.abc == pytest.approx(reference.lattice.abc, abs=1e-8)
    assert back.lattice.angles == pytest.approx(reference.lattice.angles, abs=1e-8)
    assert back.composition == reference.composition
    assert np.allclose(
        sorted(map(tuple, back.frac_coords % 1)), sorted(map(tuple, reference.frac_coords % 1)), atol=1e-8
    )
    atoms = ase_read(io.StringIO(cif), format='cif')
    assert len(atoms) == len(structure.sites)


def test_kind_names_are_labels(generate_structure):
    cif = write_cif(generate_structure('fe2o3').base.attributes.all)
    labels = [site.label for site in parse(cif)]
    assert labels.count('Fe1') == 2
    assert labels.count('Fe2') == 2
    assert labels.count('O') == 6


def test_alloy_and_vacancy_occupancies(generate_structure):
    back = parse(write_cif(generate_structure('alloy').base.attributes.all))
    assert back.composition.get_el_amt_dict() == pytest.approx({'Cu': 1.75, 'Au': 0.25})
    back = parse(write_cif(generate_structure('vacancy').base.attributes.all))
    assert back.composition.get_el_amt_dict() == pytest.approx({'Fe': 0.9, 'O': 1.0})


def test_zero_volume_cell_has_no_cif(generate_structure):
    assert write_cif(generate_structure('molecule').base.attributes.all) is None


def test_deterministic_and_comment(generate_structure):
    attributes = generate_structure('silicon').base.attributes.all
    assert write_cif(attributes, comment='x') == write_cif(attributes, comment='x')
    assert write_cif(attributes, comment='made here').startswith('# made here\ndata_structure\n')
    assert '-0.0000000000' not in write_cif(attributes)
