"""File conventions the ecosystem writes (issue 19), each read from a file written by someone else.

The files and their origins are in ``files/conventions/README.md``; where no public file with a convention was found,
the file is a minimal edit of a real one, and the test checks that it reads like the unedited original.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aiida_structstore.core.exceptions import ParseError
from aiida_structstore.tools.pw import BOHR_TO_ANGSTROM, parse_pw_input
from aiida_structstore.tools.pw.namelists import MAX_ASSIGNMENTS, MAX_WARNINGS, Where

FILES = Path(__file__).parent / 'files' / 'conventions'


def read(name: str) -> str:
    return (FILES / name).read_text()


def parse(name: str, text: str | None = None):
    return parse_pw_input(read(name) if text is None else text, filename=name)


def nearest_distance(result) -> float:
    """The shortest distance between two atoms, periodic images included (Å)."""
    cell = np.array(result.structure.cell)
    positions = np.array([site.position for site in result.structure.sites])
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)]) @ cell
    best = math.inf
    for first in range(len(positions)):
        for second in range(len(positions)):
            distances = np.linalg.norm(positions[second] + shifts - positions[first], axis=1)
            if first == second:
                distances = distances[distances > 1e-8]
            best = min(best, float(distances.min()))
    return best


# ------------------------------------------------------------------------------------------------ pw.x


def test_species_line_with_a_fourth_column_reads_as_pw_x():
    """QE's own test-suite (pw_vdw/rVV10.in) writes ``C 12. C.pbe-van_bm.UPF 1``: pw.x reads three values."""
    result = parse('qe_rVV10_species_fourth_column.in')
    assert result.pseudopotentials == (('C', 'C.pbe-van_bm.UPF'),)
    assert len(result.structure.sites) == 4
    assert result.structure.get_kind_names() == ['C']
    assert any("the column(s) '1' after the pseudopotential file are ignored" in w for w in result.warnings)
    assert nearest_distance(result) == pytest.approx(4.66 * BOHR_TO_ANGSTROM / math.sqrt(3), rel=1e-3)  # graphite


def test_kpoints_alat_reads_as_tpiba():
    original, edited = parse('qe_scf-2.in'), parse('qe_scf-2_kpoints_alat.in')
    assert edited.kpoints_type == original.kpoints_type == 'tpiba'
    np.testing.assert_allclose(edited.kpoints.get_kpoints(cartesian=True), original.kpoints.get_kpoints(cartesian=True))
    np.testing.assert_allclose(
        edited.kpoints.get_kpoints(also_weights=True)[1], original.kpoints.get_kpoints(also_weights=True)[1]
    )
    assert [w for w in edited.warnings if 'K_POINTS alat: read as tpiba' in w]
    assert not original.warnings


def test_other_unknown_kpoints_options_stay_errors():
    with pytest.raises(ParseError, match="K_POINTS: unsupported type 'bohr'"):
        parse('qe_scf-2.in', read('qe_scf-2.in').replace('K_POINTS\n', 'K_POINTS bohr\n'))


def test_namelist_closed_by_slash_then_end_reads_as_the_original():
    original, edited = parse('qe_scf-2.in'), parse('qe_scf-2_slash_end.in')
    assert edited.parameters == original.parameters
    assert edited.structure.get_ase() == original.structure.get_ase()
    assert not edited.warnings


def test_text_after_a_slash_is_ignored_with_a_warning():
    text = read('qe_scf-2.in').replace("calculation = 'nscf'\n /", "calculation = 'nscf'\n / ignored text", 1)
    result = parse('qe_scf-2.in', text)
    assert result.parameters == parse('qe_scf-2.in').parameters
    assert any("the text 'ignored text' after the end of namelist &CONTROL is ignored" in w for w in result.warnings)


def test_a_stray_end_elsewhere_is_still_an_error():
    text = read('qe_scf-2_slash_end.in').replace(' &END\n', ' &END\n &END\n', 1)
    with pytest.raises(ParseError, match="unexpected '&END' outside a namelist"):
        parse('qe_scf-2_slash_end.in', text)


def test_cell_parameters_cubic_reads_as_no_units_wannier90_graphite():
    """wannier90's tutorial 10: ``celldm(1)`` is 1 Å in Bohr and the vectors are in Å, given as ``cubic``."""
    result = parse('w90_tutorial10_graphite.scf')
    cell = np.array(result.structure.cell)
    alat = 1.8897261249935 * BOHR_TO_ANGSTROM
    np.testing.assert_allclose(
        cell, alat * np.array([[2.1304215583, -1.2299994602, 0], [0, 2.4599989204, 0], [0, 0, 6.8]]), rtol=1e-9
    )
    assert nearest_distance(result) == pytest.approx(1.42, abs=0.01)  # the C-C bond of graphite
    assert [w for w in result.warnings if 'CELL_PARAMETERS cubic: an option of old QE versions' in w]


def test_cell_parameters_cubic_reads_as_no_units_qmcpack_nexus():
    """QMCPACK's Nexus writes ``celldm(1) = 1.0`` and a cubic 8-atom diamond cell in Bohr as ``cubic``."""
    result = parse('qmcpack_diamond_vmc_scf.in')
    np.testing.assert_allclose(np.array(result.structure.cell), 6.74632229 * BOHR_TO_ANGSTROM * np.eye(3), rtol=1e-9)
    assert len(result.structure.sites) == 8
    assert nearest_distance(result) == pytest.approx(1.545, abs=0.005)  # the C-C bond of diamond


def test_band_path_letter_h1_of_the_bilbao_labels():
    """Fe (bcc) of QE's example 12 with its path ``1 0 0 → 0 0 0 → 0 0 1`` written as letters ``H1 gG H``."""
    original = parse_pw_input(
        read('qe_example12_Fe_bands_H1.in')
        .replace("    point_label_type = 'BI'\n", '')
        .replace('H1 40\ngG 40\nH 1\n', '1.0 0.0 0.0 40\n0.0 0.0 0.0 40\n0.0 0.0 1.0 1\n')
    )
    edited = parse('qe_example12_Fe_bands_H1.in')
    assert edited.kpoints_kind == 'band_path'
    points = edited.kpoints.get_kpoints(cartesian=True)
    expected = original.kpoints.get_kpoints(cartesian=True)
    np.testing.assert_allclose(points[:2], expected[:2], atol=1e-12)  # H1 = (1, 0, 0) 2 pi / a, then Gamma
    np.testing.assert_allclose(points[2], [0, 2 * math.pi / (5.42 * BOHR_TO_ANGSTROM), 0], atol=1e-12)  # H
    assert edited.kpoints.labels == [(0, 'H1'), (1, 'GAMMA'), (2, 'H')]


def test_band_path_letter_h1_needs_the_bilbao_labels():
    text = read('qe_example12_Fe_bands_H1.in').replace("    point_label_type = 'BI'\n", '')
    with pytest.raises(ParseError, match=r"pw.x knows no point 'H1' for ibrav = 3 .*needs point_label_type = 'BI'"):
        parse('qe_example12_Fe_bands_H1.in', text)


# ------------------------------------------------------------------------------------------------ repeated keys


def repeated(name: str, key_line: str, times: int) -> str:
    text = read(name)
    return text.replace(' &electrons\n', ' &electrons\n' + key_line * times, 1)


def test_a_key_assigned_many_times_gives_one_warning():
    result = parse('qe_scf-2.in', repeated('qe_scf-2.in', '    mixing_beta = 0.3\n', MAX_ASSIGNMENTS))
    assert result.parameters['ELECTRONS']['mixing_beta'] == 0.3
    messages = [w for w in result.warnings if 'mixing_beta' in w]
    assert len(messages) == 1
    expected = f'mixing_beta is assigned {MAX_ASSIGNMENTS} times (also line 11); the last value, 0.3, is used'
    assert expected in messages[0]


def test_a_key_assigned_beyond_the_cap_is_an_error():
    text = repeated('qe_scf-2.in', '    mixing_beta = 0.3\n', MAX_ASSIGNMENTS + 1)
    with pytest.raises(ParseError, match=f'mixing_beta is assigned more than {MAX_ASSIGNMENTS} times'):
        parse('qe_scf-2.in', text)


def test_warnings_are_deduplicated_and_capped():
    where = Where('x.in')
    for index in range(200):
        where.warn(f'warning {index}', line=index + 1)
        where.warn(f'warning {index}', line=index + 2)  # the same message on another line is not repeated
    assert len(where.warnings) == MAX_WARNINGS + 1
    assert where.warnings[0] == 'x.in: line 1: warning 0'
    assert where.warnings[-1] == f'x.in: {200 - MAX_WARNINGS} more warning(s) not shown'
