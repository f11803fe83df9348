"""Tests of :mod:`aiida_structstore.tools.pw.builder`: a parsed pw.x input as a ``PwCalculation`` builder.

The dry run that proves ``PwCalculation`` accepts the builder is in ``tests/test_imports.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiida_structstore.tools.pw import parse_pw_input
from aiida_structstore.tools.pw.builder import create_builder, pseudo_family_hint

EXAMPLES = Path(__file__).parents[2] / 'examples' / 'pw'
FAKE_UPF = '<UPF version="2.0.1">\n<PP_HEADER element="{element}" z_valence="4.0"/>\n</UPF>\n'


def pw(species: str, positions: str, system: str = '', kpoints: str = 'K_POINTS automatic\n2 2 2 0 0 0') -> str:
    nat = len(positions.strip().splitlines()) - 1
    ntyp = len(species.strip().splitlines())
    return (
        f"&CONTROL\n calculation = 'scf', pseudo_dir = './pseudo', outdir = './out', prefix = 'x'\n/\n"
        f'&SYSTEM\n ibrav = 1, celldm(1) = 8.0, nat = {nat}, ntyp = {ntyp}, ecutwfc = 30{system}\n/\n'
        f'ATOMIC_SPECIES\n{species}\n{positions}\n{kpoints}\n'
    )


def test_parameters_lose_what_pwcalculation_sets_and_key_species_variables_by_kind():
    parsed = parse_pw_input((EXAMPLES / 'fe2o3_bands.in').read_text())
    builder = create_builder(parsed)
    parameters = builder.parameters.get_dict()
    assert not {'pseudo_dir', 'outdir', 'prefix'} & set(parameters['CONTROL'])
    assert not {'nat', 'ntyp'} & set(parameters['SYSTEM'])
    assert parameters['SYSTEM']['ibrav'] == 0
    assert parameters['SYSTEM']['starting_magnetization'] == {'Fe1': 0.5, 'Fe2': -0.5, 'O': 0.0}
    assert parameters['SYSTEM']['hubbard_u'] == {'Fe1': 4.3, 'Fe2': 4.3}
    assert builder.structure is parsed.structure
    assert builder.kpoints.get_kpoints().shape == (27000, 3)


def test_variables_of_an_unused_species_go_and_indices_follow_the_labels():
    text = pw(
        'Ge 72.6 Ge.UPF\nSi 28.086 Si.UPF',
        'ATOMIC_POSITIONS crystal\nSi 0 0 0\nSi 0.5 0.5 0.5',
        system=', starting_magnetization(1) = 0.3, starting_magnetization(2) = 0.7\n starting_ns_eigenvalue(1,1,2) = 1',
    )
    parameters = create_builder(parse_pw_input(text)).parameters.get_dict()['SYSTEM']
    assert parameters['starting_magnetization'] == {'Si': 0.7}
    assert parameters['starting_ns_eigenvalue'] == [[1, 1, 'Si', 1]]


def test_gamma_and_fixed_coordinates_become_settings():
    text = pw(
        'Si 28.086 Si.UPF', 'ATOMIC_POSITIONS crystal\nSi 0 0 0 0 0 0\nSi 0.5 0.5 0.5 1 1 0', kpoints='K_POINTS gamma'
    )
    settings = create_builder(parse_pw_input(text)).settings.get_dict()
    assert settings == {'gamma_only': True, 'FIXED_COORDS': [[True, True, True], [False, False, True]]}


def test_a_band_path_is_expanded_as_pwx_does():
    text = pw(
        'Si 28.086 Si.UPF',
        'ATOMIC_POSITIONS crystal\nSi 0 0 0\nSi 0.5 0.5 0.5',
        kpoints='K_POINTS crystal_b\n3\ngG 2\nX 2\nR 0',
    )
    kpoints = create_builder(parse_pw_input(text)).kpoints
    np.testing.assert_allclose(
        kpoints.get_kpoints(),
        [[0, 0, 0], [0, 0.25, 0], [0, 0.5, 0], [0.25, 0.5, 0.25], [0.5, 0.5, 0.5]],
        atol=1e-12,
    )
    assert kpoints.labels == [(0, 'GAMMA'), (2, 'X'), (4, 'R')]


@pytest.fixture
def family(tmp_path):
    """An installed aiida-pseudo family whose file names no other family has."""
    from aiida_pseudo.data.pseudo import UpfData
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    folder = tmp_path / 'family'
    folder.mkdir()
    for element in ('Si', 'Ge'):
        (folder / f'{element}.{tmp_path.name}.UPF').write_text(FAKE_UPF.format(element=element))
    return PseudoPotentialFamily.create_from_folder(folder, f'test-family-{tmp_path.name}', pseudo_type=UpfData)


def test_the_one_family_that_holds_the_files_is_the_hint_and_is_used(family, tmp_path):
    species = f'Si 28.086 Si.{tmp_path.name}.UPF'
    parsed = parse_pw_input(pw(species, 'ATOMIC_POSITIONS crystal\nSi 0 0 0\nSi 0.5 0.5 0.5'))
    assert pseudo_family_hint(parsed) == [family.label]
    assert create_builder(parsed).pseudos['Si'].uuid == family.get_pseudo('Si').uuid
    assert create_builder(parsed, pseudo_family=family.label).pseudos['Si'].uuid == family.get_pseudo('Si').uuid


def test_pseudopotentials_from_a_folder(tmp_path):
    (tmp_path / 'Si.UPF').write_text(FAKE_UPF.format(element='Si'))
    parsed = parse_pw_input(pw('Si 28.086 Si.UPF', 'ATOMIC_POSITIONS crystal\nSi 0 0 0\nSi 0.5 0.5 0.5'))
    assert create_builder(parsed, pseudo_folder=tmp_path).pseudos['Si'].element == 'Si'


def test_without_any_source_the_pseudopotentials_stay_unset():
    parsed = parse_pw_input(pw('Si 28.086 Nowhere.UPF', 'ATOMIC_POSITIONS crystal\nSi 0 0 0\nSi 0.5 0.5 0.5'))
    assert not create_builder(parsed).pseudos
