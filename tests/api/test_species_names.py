"""The species names OPTIMADE serves (aiida_structstore/api/optimade/species.py), judged by pymatgen itself: every
served name is read by pymatgen's ``get_el_sp`` (what ``OptimadeRester`` builds sites with) as the neutral element
the species is, or not at all; never as an ion, an atomic number, a dummy or another element."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiida_structstore.api.optimade.species import client_names, client_payload

pymatgen = pytest.importorskip('pymatgen.core.periodic_table')


def read_by_pymatgen(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            return pymatgen.get_el_sp(name)
        except Exception:  # any failure: pymatgen cannot read it, and OptimadeRester leaves the entry out
            return None


def species(*kinds: tuple[str, list[str]]) -> list[dict]:
    return [{'name': n, 'chemical_symbols': s, 'concentration': [1.0 / len(s)] * len(s)} for n, s in kinds]


def assert_never_misread(entries: list[dict]) -> dict[str, str]:
    names = client_names(entries)
    assert len(set(names.values())) == len(entries)  # unique, as the specification requires
    for entry in entries:
        read = read_by_pymatgen(names[entry['name']])
        if read is not None:
            assert type(read) is pymatgen.Element and [read.symbol] == entry['chemical_symbols'], (names, read)
    return names


@pytest.mark.parametrize(
    ('kinds', 'expected'),
    [
        ([('Fe1', ['Fe']), ('O1', ['O'])], {'Fe1': 'Fe', 'O1': 'O'}),
        ([('Fe1', ['Fe']), ('Fe2', ['Fe']), ('O', ['O'])], {'Fe1': 'Fe_1', 'Fe2': 'Fe_2', 'O': 'O'}),
        ([('Si', ['Si'])], {'Si': 'Si'}),
        ([('Fe', ['Fe']), ('Fe1', ['Fe'])], {'Fe': 'Fe', 'Fe1': 'Fe_1'}),
        ([('Fe', ['Ni']), ('Fe1', ['Fe'])], {'Fe': 'Ni', 'Fe1': 'Fe'}),
        ([('X', ['Si']), ('Si2', ['Si'])], {'X': 'X_', 'Si2': 'Si_2'}),
        ([('26', ['Fe']), ('Fe', ['Fe'])], {'26': '_26', 'Fe': 'Fe'}),
        ([('CuAu', ['Cu', 'Au']), ('Cu1', ['Cu'])], {'CuAu': 'CuAu', 'Cu1': 'Cu'}),
        ([('Fe_1', ['Fe']), ('Fe1', ['Fe'])], {'Fe_1': 'Fe_1', 'Fe1': 'Fe_1_2'}),
        ([('Fe2+', ['Fe']), ('Fe3+', ['Fe'])], {'Fe2+': 'Fe_2+', 'Fe3+': 'Fe_3+'}),
        ([('D', ['H']), ('H', ['H'])], {'D': 'D', 'H': 'H'}),
    ],
)
def test_served_names(kinds, expected):
    assert assert_never_misread(species(*kinds)) == expected


KIND_NAME = st.text(alphabet='FeOSiXDHQqz0123456789+-._=, ()#abc', min_size=1, max_size=7)
SYMBOLS = st.sampled_from([['Fe'], ['O'], ['Si'], ['H'], ['Fe', 'Ni'], ['Fe', 'vacancy']])


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(KIND_NAME, SYMBOLS, min_size=1, max_size=5))
def test_no_kind_names_are_misread(kinds):
    assert_never_misread(species(*kinds.items()))


def test_the_payload_maps_sites_and_keeps_the_kind_names():
    document = {
        'id': 'x',
        'species': species(('Fe1', ['Fe']), ('Fe2', ['Fe']), ('O1', ['O'])),
        'species_at_sites': ['Fe1', 'O1', 'Fe2', 'O1'],
    }
    served = client_payload(document)
    assert served['species_at_sites'] == ['Fe_1', 'O', 'Fe_2', 'O']
    assert [(s['name'], s['original_name']) for s in served['species']] == [
        ('Fe_1', 'Fe1'),
        ('Fe_2', 'Fe2'),
        ('O', 'O1'),
    ]
    assert document['species'][0]['name'] == 'Fe1'  # the store's document is not changed
    assert client_payload({'id': 'y', 'nsites': 3}) == {'id': 'y', 'nsites': 3}


@settings(max_examples=2000, deadline=None)
@given(KIND_NAME)
def test_a_name_said_to_be_unreadable_is_refused_by_pymatgen(name):
    from aiida_structstore.api.optimade.species import misread_as

    if misread_as(name) is None:
        assert read_by_pymatgen(name) is None
