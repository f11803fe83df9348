"""OPTIMADE fields of the projection, checked against the OPTIMADE models."""

from __future__ import annotations

import datetime as dt

import pytest
from optimade.models import StructureResourceAttributes

from aiida_structstore.structures.optimade import anonymous_symbols, optimade_fields, reduced_counts


def validate(fields):
    return StructureResourceAttributes(**fields, last_modified=dt.datetime.now(dt.timezone.utc))


@pytest.mark.parametrize('name', ['silicon', 'fe2o3', 'alloy', 'vacancy', 'molecule'])
def test_fields_are_valid_optimade(generate_structure, name):
    fields = optimade_fields(generate_structure(name).base.attributes.all)
    validate(fields)


def test_fe2o3_formula_reduction_and_kinds(generate_structure):
    fields = optimade_fields(generate_structure('fe2o3').base.attributes.all)
    assert fields['chemical_formula_reduced'] == 'Fe2O3'
    assert fields['chemical_formula_anonymous'] == 'A3B2'
    assert fields['chemical_formula_hill'] == 'Fe4O6'
    assert fields['chemical_formula_descriptive'] == 'Fe4O6'
    assert fields['elements'] == ['Fe', 'O']
    assert fields['elements_ratios'] == pytest.approx([0.4, 0.6])
    assert [s['name'] for s in fields['species']] == ['Fe1', 'Fe2', 'O']
    assert fields['species_at_sites'][:4] == ['Fe1', 'Fe2', 'Fe1', 'Fe2']
    assert fields['nsites'] == 10
    assert fields['structure_features'] == []


def test_silicon(generate_structure):
    structure = generate_structure('silicon')
    fields = optimade_fields(structure.base.attributes.all)
    assert fields['chemical_formula_reduced'] == 'Si'
    assert fields['chemical_formula_anonymous'] == 'A'
    assert fields['dimension_types'] == [1, 1, 1]
    assert fields['nperiodic_dimensions'] == 3
    assert fields['lattice_vectors'] == [list(v) for v in structure.cell]
    assert fields['cartesian_site_positions'][1] == pytest.approx([5.43 / 4] * 3)
    assert fields['species'] == [
        {'name': 'Si', 'chemical_symbols': ['Si'], 'concentration': [1.0], 'mass': [pytest.approx(28.0855)]}
    ]


def test_alloy_and_vacancy_are_disorder(generate_structure):
    alloy = optimade_fields(generate_structure('alloy').base.attributes.all)
    assert alloy['structure_features'] == ['disorder']
    cuau = next(s for s in alloy['species'] if s['name'] == 'CuAu')
    assert cuau['chemical_symbols'] == ['Cu', 'Au']
    assert cuau['concentration'] == [0.75, 0.25]
    assert alloy['elements'] == ['Au', 'Cu']
    assert alloy['chemical_formula_reduced'] == 'AuCu7'  # 0.25 Au + 1.75 Cu
    assert alloy['chemical_formula_hill'] is None
    vacancy = optimade_fields(generate_structure('vacancy').base.attributes.all)
    fevac = next(s for s in vacancy['species'] if s['name'] == 'FeVac')
    assert fevac['chemical_symbols'] == ['Fe', 'vacancy']
    assert fevac['concentration'] == pytest.approx([0.9, 0.1])
    assert vacancy['chemical_formula_reduced'] == 'Fe9O10'


def test_molecule_is_zero_dimensional(generate_structure):
    fields = optimade_fields(generate_structure('molecule').base.attributes.all)
    assert fields['dimension_types'] == [0, 0, 0]
    assert fields['nperiodic_dimensions'] == 0
    assert fields['chemical_formula_hill'] == 'H2O'
    assert fields['chemical_formula_reduced'] == 'H2O'


def test_hill_order_with_carbon():
    attributes = {
        'cell': [[10, 0, 0], [0, 10, 0], [0, 0, 10]],
        'pbc1': False,
        'pbc2': False,
        'pbc3': False,
        'kinds': [{'name': n, 'symbols': [n], 'weights': [1.0], 'mass': 1.0} for n in ('O', 'H', 'C', 'N')],
        'sites': [{'kind_name': k, 'position': [i, 0, 0]} for i, k in enumerate('OHHHHCCN')],
    }
    fields = optimade_fields(attributes)
    assert fields['chemical_formula_hill'] == 'C2H4NO'
    assert fields['chemical_formula_reduced'] == 'C2H4NO'
    assert fields['chemical_formula_descriptive'] == 'OH4C2N'
    validate(fields)


def test_reduced_counts():
    assert reduced_counts({'Fe': 4, 'O': 6}) == {'Fe': 2, 'O': 3}
    assert reduced_counts({'Fe': 0.5, 'Ni': 0.5, 'O': 1}) == {'Fe': 1, 'Ni': 1, 'O': 2}
    assert reduced_counts({'Si': 8}) == {'Si': 1}


def test_anonymous_symbols_follow_the_specification():
    symbols = list(zip(range(30), anonymous_symbols(), strict=False))
    assert [s for _, s in symbols][:3] == ['A', 'B', 'C']
    assert [s for _, s in symbols][25:28] == ['Z', 'Aa', 'Ba']
