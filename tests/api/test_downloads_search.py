"""Download names (``Content-Disposition`` of ``/raw`` and of the CIF view) and the list's search parameters, on
every backend; the name rules themselves on hostile names."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from aiida_structstore.api.downloads import cif_name, content_disposition, raw_name, safe_file_name
from aiida_structstore.core.structures import Source, StructureKey

from .conftest import bearer, make_token


@pytest.fixture
def auth(tenant):
    return bearer(make_token(tenant, ['lab']))


def offered(header: str) -> tuple[str, str]:
    """The ASCII ``filename`` and the decoded ``filename*`` of a ``Content-Disposition`` header."""
    match = re.fullmatch(r'attachment; filename="([^"\\]*)"; filename\*=UTF-8\'\'([A-Za-z0-9%._~-]+)', header)
    assert match, header
    return match.group(1), unquote(match.group(2), errors='strict')


class TestDownloadNames:
    def test_raw_is_offered_under_the_original_file_name(self, client, seeded, auth, examples):
        response = client.get('/api/structures/fe2o3-bands/raw', headers=auth)
        assert response.status_code == 200
        assert response.content == examples['fe2o3-bands'].raw.encode()
        assert offered(response.headers['content-disposition']) == ('fe2o3_bands.in', 'fe2o3_bands.in')

    @pytest.mark.parametrize(
        ('structure_id', 'name'), [('fe2o3', 'fe2o3-p1.cif'), ('si-scf', 'si_scf.cif'), ('si', 'si-p1.cif')]
    )
    def test_the_cif_is_named_after_the_original_file(self, client, seeded, auth, structure_id, name):
        response = client.get(f'/api/structures/{structure_id}/view', params={'format': 'cif'}, headers=auth)
        assert response.status_code == 200
        assert response.text == seeded[structure_id].cif
        assert offered(response.headers['content-disposition']) == (name, name)

    def test_other_views_are_not_downloads(self, client, seeded, auth):
        for format in ('json', 'xyz'):
            response = client.get('/api/structures/si/view', params={'format': format}, headers=auth)
            assert 'content-disposition' not in response.headers

    @pytest.mark.parametrize(
        ('filename', 'ascii_name', 'exact_name'),
        [
            ('/home/alice/runs/Fe2O3 "best".in', 'Fe2O3 _best_.in', 'Fe2O3 _best_.in'),
            ('C:\\Users\\bob\\hématite.cif', 'hematite.cif', 'hématite.cif'),
            ('結晶.cif', 'a-1.cif', '結晶.cif'),
            ('..', 'a-1.txt', 'a-1.txt'),
            ('a:b*c?.in', 'a_b_c_.in', 'a_b_c_.in'),
            ('100%;"x.cif', '100_;_x.cif', '100%;_x.cif'),
        ],
    )
    def test_hostile_file_names_give_a_safe_header(
        self, client, backend, seed, tenant, auth, filename, ascii_name, exact_name
    ):
        content = seed(backend, tenant, 'lab', ('si',))['si']
        source = Source(kind='other', filename=filename)
        backend.structures.put(
            content.model_copy(update={'key': StructureKey.of(tenant, 'lab', 'a-1'), 'source': source}), raw='x\n'
        )
        response = client.get('/api/structures/a-1/raw', headers=auth)
        assert response.status_code == 200 and response.content == b'x\n'
        header = response.headers['content-disposition']
        assert '\n' not in header and '\r' not in header
        assert offered(header) == (ascii_name, exact_name)

    def test_names_without_a_source_file(self):
        assert raw_name(Source(kind='pw-input'), 'si-scf') == 'si-scf.in'
        assert raw_name(Source(kind='cif'), 'x') == 'x.cif'
        assert raw_name(Source(kind='aiida'), 'x') == 'x.txt'
        assert cif_name(Source(kind='aiida'), 'x') == 'x.cif'
        assert cif_name(Source(kind='pw-input', filename='runs/si.scf.in'), 'x') == 'si.scf.cif'

    def test_safe_file_names(self):
        assert safe_file_name('.bashrc') == 'bashrc'
        assert safe_file_name('con.cif') == '_con.cif'
        assert safe_file_name('a/b/') == 'b'
        assert safe_file_name('///') is None
        assert safe_file_name('\u202eevil.cif') == '_evil.cif'
        assert safe_file_name('evil.in\r\nSet-Cookie: x=1') == 'evil.in__Set-Cookie_ x=1'
        assert safe_file_name('evil\u2028.in') == 'evil_.in'
        long = safe_file_name('x' * 300 + '.cif')
        assert len(long) == 120 and long.endswith('.cif')
        assert content_disposition('ü.cif', 'f.cif') == 'attachment; filename="u.cif"; filename*=UTF-8\'\'%C3%BC.cif'


def ids_of(client, auth, **params) -> list[str]:
    """Every id a search lists, page by page (pages of 2)."""
    seen, cursor = [], None
    for _ in range(50):
        query = {'limit': 2, **params} | ({'cursor': cursor} if cursor else {})
        response = client.get('/api/structures', params=query, headers=auth)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item['id'] for item in page['items']]
        cursor = page['next_cursor']
        if cursor is None:
            return seen
    raise AssertionError('the search did not end')


class TestSearch:
    @pytest.fixture
    def many(self, backend, seed, tenant, seeded):
        """Besides the examples: fe2o3-1 ... fe2o3-4 (copies of hematite) and another tenant's fe2o3-x."""
        for n in range(1, 5):
            key = StructureKey.of(tenant, 'lab', f'fe2o3-{n}')
            backend.structures.put(seeded['fe2o3'].model_copy(update={'key': key}))
        other = StructureKey.of(f'{tenant}-other', 'lab', 'fe2o3-x')
        backend.structures.put(seeded['fe2o3'].model_copy(update={'key': other}))

    def test_the_last_page_has_no_next_cursor(self, client, many, auth):
        """Six hematites in pages of three: two pages, the second without a next cursor."""
        first = client.get('/api/structures', params={'limit': 3, 'formula': 'Fe2O3'}, headers=auth).json()
        assert [item['id'] for item in first['items']] == ['fe2o3', 'fe2o3-1', 'fe2o3-2']
        params = {'limit': 3, 'formula': 'Fe2O3', 'cursor': first['next_cursor']}
        second = client.get('/api/structures', params=params, headers=auth).json()
        assert [item['id'] for item in second['items']] == ['fe2o3-3', 'fe2o3-4', 'fe2o3-bands']
        assert second['next_cursor'] is None

    def test_by_id_prefix(self, client, many, auth):
        assert ids_of(client, auth, id_prefix='fe2o3') == [
            'fe2o3',
            'fe2o3-1',
            'fe2o3-2',
            'fe2o3-3',
            'fe2o3-4',
            'fe2o3-bands',
        ]
        assert ids_of(client, auth, id_prefix='fe2o3-') == ['fe2o3-1', 'fe2o3-2', 'fe2o3-3', 'fe2o3-4', 'fe2o3-bands']
        assert ids_of(client, auth, id_prefix='s') == ['si', 'si-scf']
        assert ids_of(client, auth, id_prefix='zz') == []
        assert ids_of(client, auth, id_prefix=' si- ') == ['si-scf']  # pasted with spaces

    def test_by_formula_written_any_way(self, client, many, auth):
        hematite = ['fe2o3', 'fe2o3-1', 'fe2o3-2', 'fe2o3-3', 'fe2o3-4', 'fe2o3-bands']
        for formula in ('Fe2O3', 'O3Fe2', 'Fe4 O6'):
            assert ids_of(client, auth, formula=formula) == hematite
        assert ids_of(client, auth, formula='Si') == ['si', 'si-scf']
        assert ids_of(client, auth, formula='FeO') == []

    def test_by_elements_and_combined(self, client, many, auth):
        assert ids_of(client, auth, elements='O') == ids_of(client, auth, elements='Fe, O')
        assert ids_of(client, auth, elements='Si') == ['si', 'si-scf']
        assert ids_of(client, auth, elements='Fe,Si') == []
        assert ids_of(client, auth, elements='O', id_prefix='fe2o3-') == [
            'fe2o3-1',
            'fe2o3-2',
            'fe2o3-3',
            'fe2o3-4',
            'fe2o3-bands',
        ]
        assert ids_of(client, auth, formula='Fe2O3', id_prefix='fe2o3-b') == ['fe2o3-bands']

    def test_empty_parameters_list_everything(self, client, many, auth):
        everything = client.get('/api/structures', params={'limit': 200}, headers=auth).json()
        searched = client.get(
            '/api/structures', params={'limit': 200, 'id_prefix': '', 'formula': ' '}, headers=auth
        ).json()
        assert searched == everything and len(everything['items']) == 8

    @pytest.mark.parametrize(
        ('params', 'message'),
        [
            ({'id_prefix': 'fe2o3/'}, "id_prefix 'fe2o3/' is not the start of a structure id"),
            ({'formula': 'fe2o3'}, "formula 'fe2o3' is not a chemical formula at 'fe2o3'"),
            ({'formula': 'Fe0O'}, "formula 'Fe0O': the count of Fe must be at least 1"),
            ({'elements': 'Fe,o'}, "elements: 'o' is not a chemical symbol (write Fe, not fe or FE)"),
        ],
    )
    def test_bad_search_values_are_named(self, client, seeded, auth, params, message):
        response = client.get('/api/structures', params=params, headers=auth)
        assert response.status_code == 422
        assert response.json()['detail'].startswith(message)

    def test_a_cursor_serves_only_its_own_search(self, client, many, auth):
        page = client.get('/api/structures', params={'limit': 2, 'id_prefix': 'fe2o3'}, headers=auth).json()
        cursor = page['next_cursor']
        for params in ({'id_prefix': 'fe'}, {}, {'formula': 'Fe2O3'}):
            response = client.get('/api/structures', params={'cursor': cursor, **params}, headers=auth)
            assert response.status_code == 400
            assert response.json()['detail'].startswith('invalid page cursor')
