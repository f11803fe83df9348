"""OPTIMADE over the projection, judged by the official validator and by real clients, on every backend."""

from __future__ import annotations

import copy
import json
import pathlib
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aiida_structstore.api import create_app

from ..ports import free_port
from .conftest import bearer, make_token, run_validator, serve

BIN = pathlib.Path(sys.executable).parent


@pytest.fixture
def workspace(seeded):
    """The example structures in ``tenant``/``lab``; other tenants and workspaces hold look-alikes."""
    return seeded


@pytest.fixture
def server(backend, api_settings):
    yield from serve(create_app(api_settings))


@pytest.fixture(params=['loopback', 'public-url'])
def validated_server(request, backend, api_settings):
    """The live app, its links built from the loopback request URL or from STRUCTURE_API_PUBLIC_URL."""
    if request.param == 'loopback':
        yield from serve(create_app(api_settings))
        return
    port = free_port()
    settings = api_settings.model_copy(update={'public_url': f'http://127.0.0.1:{port}'})
    yield from serve(create_app(settings), port=port)


def test_the_official_validator_passes(validated_server, workspace, tenant):
    """``optimade-validator`` (optional tests included) against the live app, with the token header."""
    run_validator(f'{validated_server.url}/optimade/v1', make_token(tenant, ['lab']))


def _structure_of(content) -> tuple[list[str], list[list[float]], list[list[float]]]:
    """Element per site, Cartesian positions and cell of a projected content (what the store holds)."""
    structure = content.structure
    element = {s['name']: s['chemical_symbols'][0] for s in structure['species']}
    return (
        [element[kind] for kind in structure['species_at_sites']],
        structure['cartesian_site_positions'],
        structure['lattice_vectors'],
    )


def _expected(workspace, predicate) -> set[str]:
    return {sid for sid, content in workspace.items() if predicate(content.structure)}


def _kinds_of_one_element(structure) -> bool:
    """Whether two kinds of the structure are the same element (hematite's magnetic sublattices Fe1 and Fe2)."""
    symbols = [tuple(s['chemical_symbols']) for s in structure['species']]
    return len(symbols) != len(set(symbols))


class TestClients:
    def test_pymatgen_optimade_rester_reads_neutral_elements_and_never_misreads(self, server, workspace, tenant):
        """pymatgen's OptimadeRester reads species_at_sites names as species strings (``Fe1``: Fe with oxidation
        state +1). Served names are element symbols where the kind is its element's only one: neutral elements, the
        projected composition; two kinds of one element get names it cannot read, so it leaves that entry out
        (logging an error) instead of misreading it."""
        from pymatgen.core import Composition, Element
        from pymatgen.ext.optimade import OptimadeRester

        token = make_token(tenant, ['lab'])

        class TokenRester(OptimadeRester):
            """OptimadeRester with the bearer token on its requests session from the first request on (its
            constructor already asks the server for its provider information, so a header set afterwards would be
            too late)."""

            @property
            def session(self):
                return self._session

            @session.setter
            def session(self, value):
                value.headers['Authorization'] = f'Bearer {token}'
                self._session = value

        base = f'{server.url}/optimade/'
        rester = TokenRester(base, timeout=60)
        assert list(rester.resources.values()) == [base]
        by_elements = rester.get_structures(elements=['Fe', 'O'])[base]
        with_iron = _expected(workspace, lambda s: {'Fe', 'O'} <= set(s['elements']))
        assert set(by_elements) == {sid for sid in with_iron if not _kinds_of_one_element(workspace[sid].structure)}
        assert 'fe2o3' in by_elements and 'fe2o3-bands' in with_iron - set(by_elements)
        nsites = workspace['si-scf'].structure['nsites']
        by_nsites = rester.get_structures(nsites=nsites)[base]
        assert set(by_nsites) == _expected(workspace, lambda s: s['nsites'] == nsites)
        for structure_id, structure in {**by_elements, **by_nsites}.items():
            species, positions, cell = _structure_of(workspace[structure_id])
            assert all(isinstance(site.specie, Element) for site in structure)  # neutral: no oxidation state
            assert [site.specie.symbol for site in structure] == species
            assert structure.composition == Composition(' '.join(species))
            assert structure.charge == 0
            np.testing.assert_allclose(structure.cart_coords, positions, atol=1e-9)
            np.testing.assert_allclose(structure.lattice.matrix, cell, atol=1e-12)
        hematite = by_elements['fe2o3']
        assert hematite.composition.reduced_formula == 'Fe2O3' and hematite.composition['Fe'] == 12

    def test_served_species_names_keep_the_kind_names_as_original_name(self, server, workspace, tenant):
        import httpx

        response = httpx.get(
            f'{server.url}/optimade/v1/structures',
            params={'response_fields': 'species,species_at_sites'},
            headers=bearer(make_token(tenant, ['lab'])),
        )
        entries = {entry['id']: entry['attributes'] for entry in response.json()['data']}
        served = {sid: {s['original_name']: s['name'] for s in entry['species']} for sid, entry in entries.items()}
        assert served['fe2o3'] == {'Fe1': 'Fe', 'O1': 'O'}
        assert served['fe2o3-bands'] == {'Fe1': 'Fe_1', 'Fe2': 'Fe_2', 'O': 'O'}
        assert served['si'] == {'Si1': 'Si'} and served['si-scf'] == {'Si': 'Si'}
        for structure_id, entry in entries.items():
            kinds = workspace[structure_id].structure['species_at_sites']
            assert entry['species_at_sites'] == [served[structure_id][kind] for kind in kinds]

    def test_the_optimade_client_reads_back_what_was_projected(self, server, workspace, tenant):
        from optimade.client import OptimadeClient

        base = f'{server.url}/optimade'
        client = OptimadeClient(
            base_urls=[base], headers=bearer(make_token(tenant, ['lab'])), use_async=False, silent=True
        )
        for query, predicate in (
            ('elements HAS ALL "Fe","O"', lambda s: {'Fe', 'O'} <= set(s['elements'])),
            (f'nsites = {workspace["fe2o3"].structure["nsites"]}', lambda s: s['nsites'] == 30),
        ):
            result = client.get(filter=query)['structures'][query][base]
            assert not result['errors'], result['errors']
            entries = {entry['id']: entry for entry in result['data']}
            assert set(entries) == _expected(workspace, predicate)
            for structure_id, entry in entries.items():
                content = workspace[structure_id]
                attributes = entry['attributes']
                names = {species['original_name']: species['name'] for species in attributes['species']}
                assert attributes['species_at_sites'] == [names[k] for k in content.structure['species_at_sites']]
                assert attributes['species'] == [
                    {**species, 'name': names[species['name']], 'original_name': species['name']}
                    for species in content.structure['species']
                ]
                assert attributes['cartesian_site_positions'] == content.structure['cartesian_site_positions']
                assert attributes['lattice_vectors'] == content.structure['lattice_vectors']
                # {kind, filename}: who uploaded a file (source.uploaded_by) is not an OPTIMADE property
                source = content.source
                assert attributes['_structstore_source'] == {'kind': source.kind, 'filename': source.filename}
                assert attributes['_structstore_aiida_node'] == content.node_uuid

    def test_structstore_optimade_get_sends_the_token_that_optimade_get_cannot(self, server, workspace, tenant):
        """``optimade-get`` has no header option (every request would be 401); ``structstore-optimade-get`` is the
        same command with the token of STRUCTURE_API_TOKEN on each request."""
        import os
        import subprocess

        base = f'{server.url}/optimade'
        query = 'elements HAS "Fe"'
        command = [sys.executable, '-m', 'aiida_structstore.api.optimade_get', '--silent', '--no-async']
        command += ['--filter', query, '--response-fields', 'nsites,species_at_sites', base]
        env = {**os.environ, 'STRUCTURE_API_TOKEN': make_token(tenant, ['lab'])}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        answer = json.loads(result.stdout)['structures'][query][base]
        assert not answer['errors'], answer['errors']
        entries = {entry['id']: entry['attributes'] for entry in answer['data']}
        assert set(entries) == _expected(workspace, lambda s: 'Fe' in s['elements'])
        assert entries['fe2o3']['nsites'] == 30 and set(entries['fe2o3']['species_at_sites']) == {'Fe', 'O'}

        env.pop('STRUCTURE_API_TOKEN')
        refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert refused.returncode == 2 and 'no token: set STRUCTURE_API_TOKEN' in refused.stderr
        plain = subprocess.run(
            [str(BIN / 'optimade-get'), *command[3:]], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert 'returned: 401' in plain.stderr and 'Authorization: Bearer <token>' in plain.stderr


FILTERS = [
    ('elements HAS ALL "Fe","O"', lambda s: {'Fe', 'O'} <= set(s['elements'])),
    ('elements HAS ANY "Si","Fe"', lambda s: bool({'Si', 'Fe'} & set(s['elements']))),
    ('elements HAS ONLY "Si"', lambda s: set(s['elements']) == {'Si'}),
    ('NOT elements HAS "Fe"', lambda s: 'Fe' not in s['elements']),
    ('nelements = 2', lambda s: s['nelements'] == 2),
    ('elements LENGTH 1', lambda s: len(s['elements']) == 1),
    ('2 < nsites AND nsites <= 30', lambda s: 2 < s['nsites'] <= 30),
    (
        'nsites > 8 OR chemical_formula_reduced = "Si"',
        lambda s: s['nsites'] > 8 or s['chemical_formula_reduced'] == 'Si',
    ),
    ('"Fe2O3" = chemical_formula_reduced', lambda s: s['chemical_formula_reduced'] == 'Fe2O3'),
    ('chemical_formula_anonymous = "A2B3"', lambda s: s['chemical_formula_anonymous'] == 'A2B3'),
    ('chemical_formula_descriptive STARTS WITH "Fe"', lambda s: s['chemical_formula_descriptive'].startswith('Fe')),
    ('chemical_formula_hill CONTAINS "O"', lambda s: 'O' in (s['chemical_formula_hill'] or '')),
    ('id = "si" OR id = "fe2o3"', None),
    ('id ENDS "scf"', None),
    # Served species names (tests TestClients): hematite's two iron kinds are Fe_1 and Fe_2, a lone Fe1 is Fe.
    ('species_at_sites HAS "Fe_2"', lambda s: 'Fe2' in s['species_at_sites']),
    ('species_at_sites HAS "Fe"', lambda s: [sp['chemical_symbols'] for sp in s['species']].count(['Fe']) == 1),
    ('species_at_sites HAS "Fe1"', lambda s: False),
    ('species_at_sites LENGTH 2', lambda s: len(s['species_at_sites']) == 2),
    ('structure_features LENGTH 0', lambda s: s['structure_features'] == []),
    ('nperiodic_dimensions = 3 AND dimension_types HAS ALL 1', lambda s: s['nperiodic_dimensions'] == 3),
    ('last_modified >= "2000-01-01T00:00:00Z"', lambda s: True),
    ('last_modified < "2000-01-01T00:00:00Z"', lambda s: False),
    ('_structstore_source.kind = "pw-input"', None),
    ('_structstore_aiida_node IS KNOWN', lambda s: True),
    # Operators the package's MongoDB post-processing got wrong under NOT; here they are operators of their own.
    ('NOT elements HAS ONLY "Si"', lambda s: set(s['elements']) != {'Si'}),
    ('elements LENGTH >= 2', lambda s: len(s['elements']) >= 2),
    ('NOT elements LENGTH > 1', lambda s: len(s['elements']) <= 1),
    ('structure_features LENGTH > 0', lambda s: len(s['structure_features']) > 0),
    ('NOT structure_features LENGTH > 0', lambda s: len(s['structure_features']) == 0),
    ('species_at_sites LENGTH < 10', lambda s: len(s['species_at_sites']) < 10),
    # Timestamps: a date is midnight UTC, no offset is UTC, an offset is honoured.
    ('last_modified > "2020-01-01"', lambda s: True),
    ('last_modified >= "2000-01-01T00:00:00"', lambda s: True),
    ('last_modified < "2000-01-01T00:30:00+01:00"', lambda s: False),
    ('last_modified > "9999-12-31"', lambda s: False),
    ('"2020-01-01" < last_modified', lambda s: True),
]
ALL_IDS = frozenset({'fe2o3', 'si', 'fe2o3-bands', 'si-scf'})
#: String operators take the text literally: never a regular expression.
LITERAL = [
    ('id CONTAINS "."', set()),
    ('NOT id CONTAINS "."', ALL_IDS),
    ('id CONTAINS "-"', {'fe2o3-bands', 'si-scf'}),
    ('id CONTAINS "("', set()),
    ('id CONTAINS "(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*!"', set()),
    ('id STARTS WITH ".*"', set()),
    ('id STARTS "si"', {'si', 'si-scf'}),
    ('id ENDS WITH "$"', set()),
    ('id ENDS "s"', {'fe2o3-bands'}),
    ('id CONTAINS "\\""', set()),
    ('_structstore_source.filename ENDS ".cif"', {'fe2o3', 'si'}),
    ('_structstore_source.filename CONTAINS "3_b"', {'fe2o3-bands'}),
    ('_structstore_source.filename CONTAINS "[a-z]"', set()),
    ('_id = "x"', set()),
    ('_id IS UNKNOWN', ALL_IDS),
]


class TestFilters:
    @pytest.fixture
    def get(self, backend, api_settings, workspace, tenant):
        headers = bearer(make_token(tenant, ['lab']))
        with TestClient(create_app(api_settings)) as client:
            # No `params` when there are none: the test client would replace a query string already in `url`.
            yield lambda url, **params: client.get(url, params=params or None, headers=headers)

    @pytest.mark.parametrize(('query', 'predicate'), FILTERS, ids=[query for query, _ in FILTERS])
    def test_filter(self, get, workspace, query, predicate):
        if query.startswith('id'):
            expected = {'si', 'fe2o3'} if 'OR' in query else {'si-scf'}
        elif query.startswith('_structstore_source'):
            expected = {sid for sid, content in workspace.items() if content.source.kind == 'pw-input'}
        else:
            expected = _expected(workspace, predicate)
        response = get('/optimade/v1/structures', filter=query, response_fields='nsites')
        assert response.status_code == 200, response.text
        body = response.json()
        assert {entry['id'] for entry in body['data']} == expected
        assert body['meta']['data_returned'] == len(expected)

    @pytest.mark.parametrize(('query', 'expected'), LITERAL, ids=[query for query, _ in LITERAL])
    def test_strings_are_literal_text(self, get, workspace, query, expected):
        assert set(workspace) == ALL_IDS
        response = get('/optimade/v1/structures', filter=query, response_fields='nsites')
        assert response.status_code == 200, response.text
        assert {entry['id'] for entry in response.json()['data']} == expected

    @pytest.mark.parametrize(
        'query',
        [
            '(' * 16 + 'nsites > 0' + ')' * 16,
            ' OR '.join(f'id = "x{i}"' for i in range(99)) + ' OR nsites > 0',
            'elements HAS ANY ' + ','.join(['"Fe"'] * 90) + ' OR nsites > 0',
            'nsites > 0 AND id CONTAINS ""' + ' ' * (4096 - 29),
        ],
        ids=['depth-16', '100-terms', '91-values', 'near-4096-characters'],
    )
    def test_filters_at_the_limits_are_served(self, get, workspace, query):
        assert len(query) <= 4096
        response = get('/optimade/v1/structures', filter=query, response_fields='nsites')
        assert response.status_code == 200, response.text
        assert {entry['id'] for entry in response.json()['data']} == set(workspace)

    def test_sort_and_pagination_follow_next_links(self, get, workspace):
        ordered = sorted(workspace, key=lambda sid: (-workspace[sid].structure['nsites'], sid))
        seen, response = [], get('/optimade/v1/structures', sort='-nsites,id', page_limit=3)
        while True:
            body = response.json()
            assert body['meta']['data_returned'] == body['meta']['data_available'] == len(workspace)
            seen += [entry['id'] for entry in body['data']]
            if not body['meta']['more_data_available']:
                break
            response = get(body['links']['next'].split('testserver', 1)[1])
        assert seen == ordered

    @pytest.mark.parametrize(
        ('url', 'params', 'status', 'detail'),
        [
            ('/optimade/v1/structures', {'filter': 'crazyfield = 2'}, 400, "'crazyfield' is not a known"),
            ('/optimade/v1/structures', {'filter': '_structstore_bogus = 2'}, 400, 'not a known'),
            ('/optimade/v1/structures', {'filter': 'space_group_it_number = 225'}, 501, 'does not hold'),
            ('/optimade/v1/structures', {'filter': 'nsites = '}, 400, 'could not be parsed'),
            ('/optimade/v1/structures', {'filter': 'elements:elements_ratios HAS "Fe":>0.3'}, 501, 'Correlated'),
            ('/optimade/v1/structures', {'page_limit': 1000}, 403, 'over the maximum of 100'),
            ('/optimade/v1/structures', {'page_limit': 'many'}, 400, 'page_limit'),
            ('/optimade/v1/structures', {'sort': 'elements'}, 400, "'elements' is not sortable"),
            ('/optimade/v1/structures', {'sort': 'colour'}, 400, "'colour' is not a known property"),
            ('/optimade/v1/structures', {'response_format': 'xml'}, 400, 'json'),
            ('/optimade/v1/structures', {'response_fields': 'nsites,colour'}, 400, "unknown response field 'colour'"),
            ('/optimade/v1/structures/missing', {}, 404, 'no structure'),
            ('/optimade/v2/info', {}, 553, 'v2 is not served'),
            ('/optimade/workspaces/lab/v3/structures', {}, 553, 'v3 is not served'),
            ('/optimade/v1/nothing', {}, 404, 'no such endpoint'),
            # Bad values, and filters over the limits: 400 (never a 500), before any record is read.
            ('/optimade/v1/structures', {'filter': 'last_modified > "not a date"'}, 400, "'not a date' is not an RFC"),
            ('/optimade/v1/structures', {'filter': 'last_modified > "2020-13-01"'}, 400, 'RFC 3339 timestamp'),
            ('/optimade/v1/structures', {'filter': 'last_modified > 5'}, 400, 'with a timestamp string'),
            ('/optimade/v1/structures', {'filter': 'last_modified CONTAINS "2020"'}, 400, 'can only be compared'),
            ('/optimade/v1/structures', {'filter': 'last_modified HAS "2020"'}, 400, 'can only be compared'),
            ('/optimade/v1/structures', {'filter': '(' * 17 + 'nsites > 0' + ')' * 17}, 400, 'deeper than 16'),
            ('/optimade/v1/structures', {'filter': '(' * 250 + 'nsites > 0' + ')' * 250}, 400, 'deeper than 16'),
            (
                '/optimade/v1/structures',
                {'filter': ' OR '.join(f'id="x{i}"' for i in range(101))},
                400,
                'more than 100 terms',
            ),
            (
                '/optimade/v1/structures',
                {'filter': ' OR '.join(f'id="{i}"' for i in range(300))},
                400,
                'more than 100 terms',
            ),
            (
                '/optimade/v1/structures',
                {'filter': ' OR '.join(['nsites=1'] * 4000)},
                400,
                'at most 4096',
            ),
            (
                '/optimade/v1/structures',
                {'filter': 'elements HAS ANY ' + ','.join(['"Fe"'] * 150)},
                400,
                'more than 100 terms',
            ),
            (
                '/optimade/v1/structures',
                {'filter': ' OR '.join(['((((((((((nsites = 1))))))))))'] * 12)},
                400,
                'more than 100 terms',
            ),
            ('/optimade/v1/structures', {'filter': 'id CONTAINS "' + 'a' * 5000 + '"'}, 400, 'at most 4096'),
            ('/optimade/v1/structures', {'filter': 'id CONTAINS 5'}, 400, 'CONTAINS takes a string'),
            ('/optimade/v1/structures', {'filter': 'nsites = nelements'}, 501, 'with another property'),
            ('/optimade/v1/structures', {'filter': '3 < 4'}, 400, 'needs a property'),
            ('/optimade/v1/structures', {'filter': 'nsites = TRUE'}, 501, 'boolean'),
        ],
    )
    def test_errors_are_optimade_error_documents(self, get, url, params, status, detail):
        response = get(url, **params)
        assert response.status_code == status, response.text
        body = response.json()
        assert body['errors'][0]['status'] == str(status) and detail in body['errors'][0]['detail']
        assert body['meta']['api_version'] == '1.2.0'

    def test_other_providers_fields_are_unknown_with_a_warning(self, get, workspace):
        body = get('/optimade/v1/structures', filter='_otherprovider_x = 1').json()
        assert body['data'] == [] and 'unrecognised prefix' in body['meta']['warnings'][0]['detail']
        body = get('/optimade/v1/structures', filter='_otherprovider_x IS UNKNOWN').json()
        assert len(body['data']) == len(workspace)

    def test_a_known_providers_fields_are_unknown_without_a_warning(self, get, workspace):
        # The specification: a prefix of a known database provider (mp: the Materials Project) SHOULD NOT warn.
        body = get('/optimade/v1/structures', filter='_mp_stability = 0').json()
        assert body['data'] == [] and not body['meta'].get('warnings')
        body = get('/optimade/v1/structures', filter='_mp_stability IS UNKNOWN').json()
        assert len(body['data']) == len(workspace)

    def test_info_structures_declares_each_property_type_as_the_specification_does(self, get):
        properties = get('/optimade/v1/info/structures').json()['data']['properties']
        assert properties['type'] == {
            'description': properties['type']['description'],
            'type': 'string',
            'sortable': False,
        }
        expected = {'id': 'string', 'last_modified': 'timestamp', 'nsites': 'integer', 'elements': 'list'}
        assert {name: properties[name]['type'] for name in expected} == expected
        assert {entry['type'] for entry in properties.values()} <= {
            'string',
            'integer',
            'float',
            'boolean',
            'timestamp',
            'list',
            'dictionary',
        }

    def test_unknown_standard_fields_in_response_fields_are_null(self, get):
        body = get('/optimade/v1/structures/si', response_fields='nsites,space_group_it_number').json()
        assert body['data']['attributes'] == {
            'nsites': body['data']['attributes']['nsites'],
            'space_group_it_number': None,
        }


class TestLinks:
    """Absolute links come from STRUCTURE_API_PUBLIC_URL, never from the request's Host header."""

    EVIL = {'Host': 'evil.example'}

    @pytest.fixture
    def get(self, backend, api_settings, workspace, tenant):
        def get(url, settings=api_settings, headers=None, **params):
            with TestClient(create_app(settings)) as client:
                auth = bearer(make_token(tenant, ['lab']))
                return client.get(url, params=params or None, headers={**auth, **(headers or {})})

        return get

    @pytest.mark.parametrize('prefix', ['/optimade/v1', '/optimade/workspaces/lab/v1'])
    def test_links_use_the_public_url(self, get, api_settings, prefix):
        settings = api_settings.model_copy(update={'public_url': 'https://structures.example.org/base'})
        public = f'https://structures.example.org/base{prefix}'
        info = get(f'{prefix}/info', settings, self.EVIL)
        assert info.status_code == 200, info.text
        assert info.json()['data']['attributes']['available_api_versions'] == [{'url': public, 'version': '1.2.0'}]
        page = get(f'{prefix}/structures', settings, self.EVIL, page_limit=1, sort='id')
        body = page.json()
        assert body['links']['next'].startswith(f'{public}/structures?page_limit=1&sort=id&page_cursor=')
        assert body['meta']['query']['representation'] == '/structures?page_limit=1&sort=id'
        assert 'evil' not in info.text + page.text

    @pytest.mark.parametrize('path', ['/optimade/v1/info', '/optimade/v1/structures', '/optimade/v1/links'])
    def test_without_a_public_url_a_foreign_host_is_refused(self, get, path):
        response = get(path, headers=self.EVIL)
        assert response.status_code == 421, response.text
        assert 'STRUCTURE_API_PUBLIC_URL' in response.json()['errors'][0]['detail']
        assert 'evil' not in response.text

    @pytest.mark.parametrize('host', ['127.0.0.1:8123', 'localhost', '[::1]:9000'])
    def test_without_a_public_url_loopback_hosts_are_used(self, get, host):
        response = get('/optimade/v1/info', headers={'Host': host})
        assert response.status_code == 200, response.text
        [version] = response.json()['data']['attributes']['available_api_versions']
        assert version['url'] == f'http://{host}/optimade/v1'


class TestOddRecords:
    """A record the OPTIMADE models refuse never breaks a page: it is served with what is valid, or left out with a
    warning."""

    @pytest.fixture
    def odd(self, backend, workspace, examples, tenant):
        from aiida_structstore.core.structures import StructureKey
        from aiida_structstore.structures import structure_content

        def put(structure_id, change):
            attributes = copy.deepcopy(examples['si'].attributes)
            change(attributes)
            key = StructureKey.of(tenant, 'lab', structure_id)
            example = examples['si']
            backend.structures.put(
                structure_content(attributes, key=key, node_uuid=example.node_uuid, source=example.source)
            )

        # AiiDA accepts all three: a kind no site uses, the unknown element X, a structure without sites.
        put(
            'unused-kind',
            lambda a: a['kinds'].append({'name': 'Ge', 'symbols': ['Ge'], 'weights': [1.0], 'mass': 72.6}),
        )
        put('unknown-element', lambda a: [kind.update(symbols=['X']) for kind in a['kinds']])
        put('no-sites', lambda a: (a['sites'].clear(), a['kinds'].clear()))
        return ('unused-kind', 'unknown-element', 'no-sites')

    @pytest.fixture
    def get(self, backend, api_settings, tenant):
        headers = bearer(make_token(tenant, ['lab']))
        with TestClient(create_app(api_settings)) as client:
            yield lambda url, **params: client.get(url, params=params or None, headers=headers)

    @pytest.mark.parametrize('fields', [None, 'nsites,chemical_formula_reduced', 'species,species_at_sites'])
    def test_a_page_with_odd_records_is_served(self, get, workspace, odd, fields):
        response = get('/optimade/v1/structures', **({'response_fields': fields} if fields else {}))
        assert response.status_code == 200, response.text
        body = response.json()
        entries = {entry['id']: entry['attributes'] for entry in body['data']}
        assert set(workspace) <= set(entries) and 'unused-kind' in entries
        warned = ' '.join(warning['detail'] for warning in body['meta'].get('warnings') or [])
        for structure_id in odd:
            assert structure_id in entries or structure_id in warned
        if fields is None or 'species' in fields:
            unused = entries['unused-kind']
            assert [species['name'] for species in unused['species']] == sorted(set(unused['species_at_sites']))

    @pytest.mark.parametrize('structure_id', ['unused-kind', 'unknown-element', 'no-sites'])
    def test_a_single_odd_record_is_not_a_500(self, get, odd, structure_id):
        response = get(f'/optimade/v1/structures/{structure_id}')
        assert response.status_code == 200, response.text
        body = response.json()
        if body['data'] is None:
            assert structure_id in body['meta']['warnings'][0]['detail']
        else:
            assert body['data']['id'] == structure_id

    def test_an_entry_that_cannot_be_repaired_is_left_out_with_a_warning(self, backend, workspace, tenant):
        from aiida_structstore.api.optimade.app import _resource
        from aiida_structstore.api.optimade.fields import document
        from aiida_structstore.core.structures import StructureKey

        doc = document(backend.structures.get(StructureKey.of(tenant, 'lab', 'si')))
        notes = []
        assert _resource(doc, None, notes) is not None and notes == []
        broken = doc | {'nsites': doc['nsites'] + 1}  # the models check it against the positions
        assert _resource(broken, None, notes) is None
        assert notes[0][0] == 'Entry left out' and "entry 'si'" in notes[0][1]

    def test_sorting_odd_records_is_not_a_500(self, get, workspace, odd):
        for key in ('nsites', '-chemical_formula_reduced', 'nelements,-last_modified'):
            response = get('/optimade/v1/structures', sort=key)
            assert response.status_code == 200, response.text


class TestIsolation:
    @pytest.fixture
    def secrets_elsewhere(self, backend, workspace, tenant):
        """Records other scopes hold, with ids the caller's workspace does not have."""
        from aiida_structstore.core.structures import StructureKey

        for tenant_id, workspace_id, structure_id in (
            (f'{tenant}-other', 'lab', 'x-secret-1'),
            (tenant, 'private', 'x-secret-2'),
        ):
            key = StructureKey.of(tenant_id, workspace_id, structure_id)
            backend.structures.put(workspace['fe2o3'].model_copy(update={'key': key}))

    @pytest.mark.parametrize(
        'query',
        [
            '',
            'id = "x-secret-1" OR id = "x-secret-2"',
            'id STARTS "x-"',
            'elements HAS "Fe"',
            'NOT id = "si"',
            'species_at_sites HAS "Fe1"',
            'last_modified >= "2000-01-01T00:00:00Z"',
            '_structstore_aiida_node IS KNOWN OR _structstore_aiida_node IS UNKNOWN',
        ],
    )
    def test_a_token_never_sees_another_workspace_through_any_filter(
        self, backend, api_settings, workspace, secrets_elsewhere, tenant, query
    ):
        with TestClient(create_app(api_settings)) as client:
            for token, base in (
                (make_token(tenant, ['lab']), '/optimade/v1'),
                (make_token(tenant, ['lab', 'other']), '/optimade/workspaces/lab/v1'),
            ):
                response = client.get(f'{base}/structures', params={'filter': query}, headers=bearer(token))
                assert response.status_code == 200
                ids = {entry['id'] for entry in response.json()['data']}
                assert ids <= set(workspace) and not any(i.startswith('x-secret') for i in ids)

    def test_single_entries_and_workspaces_of_others_are_404(self, backend, api_settings, secrets_elsewhere, tenant):
        with TestClient(create_app(api_settings)) as client:
            lab = bearer(make_token(tenant, ['lab']))
            for url in (
                '/optimade/v1/structures/x-secret-1',
                '/optimade/v1/structures/x-secret-2',
                '/optimade/workspaces/private/v1/structures',
                '/optimade/workspaces/private/v1/info',
            ):
                assert client.get(url, headers=lab).status_code == 404, url
            both = bearer(make_token(tenant, ['lab', 'private']))
            response = client.get('/optimade/v1/structures', headers=both)
            assert response.status_code == 400 and '/optimade/workspaces/' in response.json()['errors'][0]['detail']
            theirs = client.get('/optimade/workspaces/private/v1/structures', headers=both).json()
            assert [entry['id'] for entry in theirs['data']] == ['si', 'x-secret-2']

    def test_no_token_is_401_with_an_optimade_error(self, backend, api_settings):
        with TestClient(create_app(api_settings)) as client:
            for url in ('/optimade/v1/info', '/optimade/v1/structures', '/optimade/v1/structures/si'):
                response = client.get(url)
                assert response.status_code == 401 and response.headers['www-authenticate'] == 'Bearer'
                assert response.json()['errors'][0]['title'] == 'Unauthorized'
            assert client.get('/optimade/versions').status_code == 200  # no data: public, as OPTIMADE expects


class TestOnOptimadePythonTools:
    """The entries are the ``optimade`` package's ``EntryCollection`` over the store, scoped per request; its query
    parameter classes check the request's parameters."""

    @pytest.fixture
    def entries(self, api_settings):
        from aiida_structstore.api.cursors import CursorCodec
        from aiida_structstore.api.optimade.query import StructureCollection

        return StructureCollection(CursorCodec('secret'))

    def test_the_collection_is_scoped_to_one_workspace(self, entries, backend, workspace, tenant):
        from optimade.server.entry_collections import EntryCollection

        from aiida_structstore.api.context import Scope
        from aiida_structstore.api.optimade.app import ListingParams

        assert isinstance(entries, EntryCollection)
        lab = entries.scoped(backend, Scope(tenant, 'lab'))
        assert len(lab) == len(workspace)
        assert len(entries.scoped(backend, Scope(tenant, 'private'))) == 1
        assert len(entries.scoped(backend, Scope(tenant, 'nobody'))) == 0
        with_iron = _expected(workspace, lambda s: 'Fe' in s['elements'])
        assert lab.count(filter='elements HAS "Fe"') == len(with_iron)
        results, returned, more, _, _ = lab.find(ListingParams(filter='elements HAS "Fe"', response_fields='nsites'))
        assert {entry['id'] for entry in results} == with_iron and returned == len(with_iron) and not more
        assert all(set(entry['attributes']) >= {'nsites'} for entry in results)
        with pytest.raises(RuntimeError, match='not scoped'):
            len(entries)

    def test_the_collection_has_every_attribute_the_base_class_sets(self, entries):
        """``StructureCollection`` does not run ``EntryCollection.__init__`` (it would build an unused parser): it sets
        the same attributes, so the base class's methods find them."""
        from optimade.server.entry_collections import EntryCollection

        from aiida_structstore.api.optimade.query import StructureCollection

        class Plain(StructureCollection):
            parser = None  # a plain attribute, which the base class's __init__ sets

        base = object.__new__(Plain)
        args = entries.resource_cls, entries.resource_mapper, entries.transformer, entries.config
        EntryCollection.__init__(base, *args)
        assert set(vars(base)) - {'parser'} <= set(vars(entries))
        for name in set(vars(base)) - {'parser', 'transformer', '_all_fields'}:
            assert getattr(entries, name) == getattr(base, name), name
        assert entries.parser.version == (1, 2, 0)

    @pytest.mark.parametrize(
        ('params', 'status', 'detail'),
        [
            ({'colour': 'red'}, 400, "'['colour']' are not recognised"),
            ({'_structstore_colour': 'red'}, 400, 'not recognised'),
            ({'email_address': 'not an address'}, 400, 'email_address'),
            ({'page_number': 0}, 400, 'page_number must be at least 1'),
            ({'page_limit': 0}, 400, 'page_limit must be at least 1'),
        ],
    )
    def test_the_package_checks_the_query_parameters(
        self, backend, api_settings, workspace, tenant, params, status, detail
    ):
        with TestClient(create_app(api_settings)) as client:
            response = client.get('/optimade/v1/structures', params=params, headers=bearer(make_token(tenant, ['lab'])))
        assert response.status_code == status, response.text
        assert detail in response.json()['errors'][0]['detail']

    def test_parameters_of_others_and_unserved_ones_are_warnings(self, backend, api_settings, workspace, tenant):
        headers = bearer(make_token(tenant, ['lab']))
        with TestClient(create_app(api_settings)) as client:
            body = client.get('/optimade/v1/structures', params={'_nobody_colour': 'red'}, headers=headers).json()
            assert len(body['data']) == len(workspace)
            assert 'unrecognised and have been ignored' in body['meta']['warnings'][0]['detail']
            # A known provider's parameter (mp: the Materials Project) is ignored without a warning.
            body = client.get('/optimade/v1/structures', params={'_mp_colour': 'red'}, headers=headers).json()
            assert len(body['data']) == len(workspace) and not body['meta'].get('warnings')
            body = client.get('/optimade/v1/structures', params={'page_above': 'si'}, headers=headers).json()
            assert len(body['data']) == len(workspace)
            assert 'not supported by this server' in body['meta']['warnings'][0]['detail']
            body = client.get('/optimade/v1/structures/si', params={'colour': 'red'}, headers=headers).json()
            assert 'not recognised' in body['errors'][0]['detail']

    def test_the_hosts_optimade_settings_change_nothing(self, backend, api_settings, workspace, tenant, monkeypatch):
        """``OPTIMADE_*`` variables configure the package's own server, not this API: no tracebacks in error
        documents (``debug``), no links from ``base_url``, no license URL fetched."""
        from aiida_structstore.api.optimade import fields, filters

        monkeypatch.setenv('OPTIMADE_DEBUG', 'true')
        monkeypatch.setenv('OPTIMADE_BASE_URL', 'https://elsewhere.example')
        monkeypatch.setenv('OPTIMADE_LICENSE', 'https://elsewhere.example/license')
        for cached in (fields.server_config, filters.structure_mapper):
            cached.cache_clear()
        try:
            headers = bearer(make_token(tenant, ['lab']))
            with TestClient(create_app(api_settings)) as client:
                error = client.get('/optimade/v1/structures', params={'filter': 'nsites ='}, headers=headers)
                page = client.get('/optimade/v1/structures', params={'page_limit': 1}, headers=headers).json()
        finally:
            for cached in (fields.server_config, filters.structure_mapper):
                cached.cache_clear()
        assert error.status_code == 400 and '_structstore_traceback' not in error.text
        assert page['links']['next'].startswith('http://testserver/optimade/v1/structures?')


class TestPushDown:
    """What the store's indexes answer: the plan the planner picks, the records read, the same entries selected."""

    @pytest.mark.parametrize(
        ('query', 'sort', 'expected'),
        [
            ('', '', ('index', 'structure_id', None, None, None, 'asc')),
            ('id = "si" OR id = "fe2o3"', '-nsites', ('ids',)),
            ('elements HAS "Fe"', '', ('index', 'element', 'Fe', None, None, 'asc')),
            ('elements HAS ALL "O", "Fe" AND nsites > 3', '', ('index', 'element', 'Fe', None, None, 'asc')),
            ('elements HAS ANY "O", "Fe"', '', ('index', 'structure_id', None, None, None, 'asc')),
            ('nsites >= 3 AND nsites < 9', '', ('index', 'nsites', None, (3, True), (9, False), 'asc')),
            ('nsites = 4 AND elements HAS "Fe"', '', ('index', 'nsites', None, (4, True), (4, True), 'asc')),
            (
                'chemical_formula_reduced = "Fe2O3"',
                '',
                ('index', 'chemical_formula_reduced', None, ('Fe2O3', True), ('Fe2O3', True), 'asc'),
            ),
            ('nelements = 2', '', ('index', 'nelements', None, (2, True), (2, True), 'asc')),
            (
                'chemical_formula_reduced STARTS "Fe" AND nelements = 2',
                '',
                ('index', 'chemical_formula_reduced', None, ('Fe', True), ('Ff', False), 'asc'),
            ),
            ('NOT nsites > 3 OR elements HAS "Fe"', '', ('index', 'structure_id', None, None, None, 'asc')),
            ('elements HAS "Fe"', '-nsites', ('index', 'nsites', None, None, None, 'desc')),
            ('nsites > 2', 'nsites', ('index', 'nsites', None, (2, False), None, 'asc')),
            ('nsites > 2', '-id', ('index', 'structure_id', None, None, None, 'desc')),
            ('', 'chemical_formula_reduced', ('index', 'chemical_formula_reduced', None, None, None, 'asc')),
            ('elements HAS "Fe"', 'nsites,id', ('scan', 'element', 'Fe', None, None, 'asc')),
            ('', 'chemical_formula_hill', ('scan', 'structure_id', None, None, None, 'asc')),
            (
                'species_at_sites HAS "Fe1" AND nsites = 30',
                '',
                ('index', 'nsites', None, (30, True), (30, True), 'asc'),
            ),
        ],
    )
    def test_the_plans_the_planner_picks(self, query, sort, expected):
        from aiida_structstore.api.optimade.filters import compile_filter
        from aiida_structstore.api.optimade.query import parse_sort, plan_request

        compiled = compile_filter(query)
        strategy = plan_request(compiled, parse_sort(sort))
        if strategy.kind == 'ids':
            assert expected == ('ids',)
            return
        plan = strategy.plan

        def side(bound):
            return None if bound is None else (bound.value, bound.inclusive)

        assert (strategy.kind, plan.index, plan.element, side(plan.lower), side(plan.upper), plan.order) == expected
        if not compiled.needs_payload:
            assert strategy.store_filter == compiled.query  # the whole filter always decides
        else:
            assert strategy.store_filter == {'nsites': {'$eq': 30}}
            assert strategy.residual  # the payload conjunct is evaluated in the API, page by page

    def test_id_equality_is_point_reads_in_one_call(self, backend, api_settings, workspace, tenant):
        with TestClient(create_app(api_settings, store=backend)) as client:
            calls = _calls(backend)
            body = client.get(
                '/optimade/v1/structures',
                params={'filter': 'id = "si" OR id = "nope" OR id = "bad id!"'},
                headers=bearer(make_token(tenant, ['lab'])),
            ).json()
            assert [entry['id'] for entry in body['data']] == ['si']
            assert body['meta']['data_returned'] == 1
            assert _calls(backend) - calls <= 1  # one get_many, the invalid id never looked up

    def test_last_modified_is_a_range_of_the_index(self, backend, api_settings, workspace, tenant):
        from aiida_structstore.core.structures import StructureKey

        def updated(sid):
            return backend.structures.get(StructureKey.of(tenant, 'lab', sid)).updated_at

        # Make `si` strictly the newest record: rewrite it until the store's clock (milliseconds) has moved on.
        before = max(updated(sid) for sid in workspace)
        for attempt in range(100_000):
            backend.structures.put(workspace['si'].model_copy(update={'params': {'touched': attempt}}))
            if updated('si') > before:
                break
        stamp = updated('si').isoformat(timespec='milliseconds').replace('+00:00', 'Z')
        headers = bearer(make_token(tenant, ['lab']))
        with TestClient(create_app(api_settings, store=backend)) as client:

            def ids(query):
                body = client.get('/optimade/v1/structures', params={'filter': query}, headers=headers).json()
                return [entry['id'] for entry in body['data']]

            assert ids(f'last_modified >= "{stamp}" AND nsites > 0') == ['si']
            assert set(ids(f'NOT last_modified >= "{stamp}"')) == set(workspace) - {'si'}
            assert ids(f'last_modified > "{stamp}"') == []


def _calls(store) -> int:
    """Convex calls made by ``store`` so far (0 on memory)."""
    transport = getattr(store, 'transport', None)
    return 0 if transport is None else transport.calls


class TestPaging:
    """Pages of the index walk: cursors, orders with ties, isolation and cost, on a workspace of a few hundred."""

    SIZE = 300

    @pytest.fixture
    def many(self, backend, tenant):
        """``SIZE`` synthetic structures in ``tenant``/``big`` (many ties on nsites, nelements, formulas, few with
        Cu), and look-alikes in ``tenant``/``big2`` and another tenant's ``big``."""
        from aiida_structstore.core.structures import Source, StructureContent, StructureKey

        def content(tenant_id, workspace, i):
            elements = [('Fe', 'O'), ('Si',), ('Fe',), ('O', 'Si'), ('Cu', 'O')][i % 5 if i % 37 else 4]
            nsites = 1 + i % 7
            formula = ''.join(f'{e}{nsites if n == 0 and nsites > 1 else ""}' for n, e in enumerate(elements))
            structure = {
                'elements': list(elements),
                'nelements': len(elements),
                'nsites': nsites,
                'chemical_formula_reduced': formula,
                'lattice_vectors': [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]],
                'dimension_types': [1, 1, 1],
                'nperiodic_dimensions': 3,
                'structure_features': [],
                'chemical_formula_descriptive': formula,
                'chemical_formula_hill': formula,
                'chemical_formula_anonymous': 'A' if len(elements) == 1 else 'AB',
                'elements_ratios': [1 / len(elements)] * len(elements),
                'species': [{'name': e, 'chemical_symbols': [e], 'concentration': [1.0]} for e in elements],
                'species_at_sites': [elements[n % len(elements)] for n in range(nsites)],
                'cartesian_site_positions': [[0.1 * n, 0.0, 0.0] for n in range(nsites)],
            }
            key = StructureKey.of(tenant_id, workspace, f'm{i:04d}')
            return StructureContent(key=key, source=Source(kind='cif', filename=f'{i}.cif'), structure=structure)

        backend.structures.put_many([(content(tenant, 'big', i), None) for i in range(self.SIZE)])
        backend.structures.put_many([(content(tenant, 'big2', i), None) for i in range(0, self.SIZE, 10)])
        backend.structures.put_many([(content(f'{tenant}-x', 'big', i), None) for i in range(0, self.SIZE, 10)])
        return list(backend.structures.iter_workspace(tenant, 'big', page_size=200))

    @pytest.fixture
    def client(self, backend, api_settings, tenant):
        headers = bearer(make_token(tenant, ['big']))
        with TestClient(create_app(api_settings, store=backend)) as client:

            def get(url, **params):
                return client.get(url, params=params or None, headers=headers)

            yield get

    @staticmethod
    def follow(get, **params):
        """Every page of a listing, following links.next: ``(ids, bodies)``."""
        ids, bodies = [], []
        response = get('/optimade/v1/structures', **params)
        for _ in range(400):
            assert response.status_code == 200, response.text
            body = response.json()
            bodies.append(body)
            ids += [entry['id'] for entry in body['data']]
            if not body['meta']['more_data_available']:
                assert body['links'].get('next') is None
                return ids, bodies
            response = get(body['links']['next'].split('testserver', 1)[1])
        raise AssertionError('the listing never ended')

    INDEXED_FILTERS = (
        'elements HAS "Cu"',
        'elements HAS ALL "Fe", "O" AND nsites >= 3',
        'nsites >= 2 AND nsites < 5',
        'nsites = 4',
        'chemical_formula_reduced = "Fe3O"',
        'chemical_formula_reduced STARTS "Fe"',
        'nelements = 2 AND NOT elements HAS "Si"',
        'chemical_formula_reduced STARTS "Si" OR nsites = 7',
    )

    def test_an_indexed_filter_selects_what_a_full_scan_selects(self, many, client):
        from aiida_structstore.api.optimade.filters import compile_filter
        from aiida_structstore.core.query import entry_document, matches

        for query in self.INDEXED_FILTERS:
            compiled = compile_filter(query)
            expected = sorted(i.key.structure_id for i in many if matches(compiled.query, entry_document(i)))
            assert expected, query  # every case selects something
            ids, bodies = self.follow(client, filter=query, page_limit=13, response_fields='nsites')
            assert sorted(ids) == expected and len(ids) == len(set(ids)), query
            assert all(len(body['data']) <= 13 for body in bodies)
            last = bodies[-1]['meta']
            assert last['data_returned'] == len(expected)  # known once the walk has reached the end
            if len(bodies) > 1:
                assert 'data_returned' not in bodies[0]['meta']  # not counted before then

    def test_sort_orders_with_ties(self, many, client):
        for sort in ('nsites', '-nsites', 'id', '-id', 'nelements', '-chemical_formula_reduced', '-last_modified'):
            name, descending = sort.removeprefix('-'), sort.startswith('-')

            def value(item, name=name):
                if name == 'id':
                    return item.key.structure_id
                if name == 'last_modified':
                    return item.updated_at
                return item.summary[name]

            # Ties by id, in the sort's direction (the index order).
            expected = [
                i.key.structure_id
                for i in sorted(many, key=lambda i: (value(i), i.key.structure_id), reverse=descending)
            ]
            ids, bodies = self.follow(client, sort=sort, page_limit=29, response_fields='nsites')
            assert ids == expected, sort
            assert bodies[-1]['meta']['data_returned'] == bodies[-1]['meta']['data_available'] == self.SIZE

    def test_offsets_walk_to_the_same_entries_as_cursors(self, many, client):
        ids, _ = self.follow(client, sort='-nsites', page_limit=10, response_fields='nsites')
        for offset in (0, 7, 95, 290):
            body = client('/optimade/v1/structures', sort='-nsites', page_limit=10, page_offset=offset).json()
            assert [entry['id'] for entry in body['data']] == ids[offset : offset + 10]
            assert body['meta']['more_data_available'] == (offset + 10 < self.SIZE)
        body = client('/optimade/v1/structures', sort='-nsites', page_limit=10, page_number=4).json()
        assert [entry['id'] for entry in body['data']] == ids[30:40]
        response = client('/optimade/v1/structures', page_offset=1001)
        assert response.status_code == 403 and 'page_offset' in response.json()['errors'][0]['detail']

    def test_a_page_never_lists_another_workspace(self, many, client):
        for params in ({}, {'filter': 'elements HAS "Fe"'}, {'sort': '-nsites'}, {'filter': 'nsites < 3'}):
            ids, _ = self.follow(client, page_limit=50, response_fields='nsites', **params)
            assert set(ids) <= {i.key.structure_id for i in many}
        ids, _ = self.follow(client, page_limit=50)
        assert sorted(ids) == sorted(i.key.structure_id for i in many)

    def test_cursor_tampering_is_a_400(self, many, client):
        body = client('/optimade/v1/structures', filter='nsites > 1', page_limit=5).json()
        cursor = body['links']['next'].split('page_cursor=', 1)[1]
        payload, tag = cursor.split('.')
        flipped = payload[:-2] + ('A' if payload[-2] != 'A' else 'B') + payload[-1]
        for bad, params in (
            (f'{flipped}.{tag}', {'filter': 'nsites > 1'}),
            (cursor[:-1], {'filter': 'nsites > 1'}),
            (cursor, {'filter': 'nsites > 2'}),  # another listing's cursor
            (cursor, {'filter': 'nsites > 1', 'sort': 'id'}),
            ('garbage', {'filter': 'nsites > 1'}),
        ):
            response = client('/optimade/v1/structures', page_cursor=bad, page_limit=5, **params)
            assert response.status_code == 400, response.text
            assert response.json()['errors'][0]['detail'].startswith('invalid page cursor')
        ok = client('/optimade/v1/structures', page_cursor=cursor, filter='nsites > 1', page_limit=5)
        assert ok.status_code == 200

    def test_calls_per_page_are_bounded(self, many, backend, client):
        if not hasattr(backend, 'transport'):
            pytest.skip('counts Convex calls')
        for params in (
            {'filter': 'elements HAS "Cu"'},  # selective: 1 in 5 or so
            {'filter': 'chemical_formula_reduced = "Fe3O"'},
            {'filter': 'nsites = 4 AND elements HAS "Si"'},
            {'sort': '-nsites'},
        ):
            response = client('/optimade/v1/structures', page_limit=3, **params)
            for _ in range(3):
                if not response.json()['meta']['more_data_available']:
                    break
                before = backend.transport.calls
                response = client(response.json()['links']['next'].split('testserver', 1)[1])
                assert response.status_code == 200
                # one queryStructures: the page with its payloads, from the cursor right after the previous page
                assert backend.transport.calls - before == 1, params

    def test_a_filter_that_matches_little_ends_pages_at_the_row_budget(self, many, backend, client, monkeypatch):
        """A residual filter matching one entry at the far end of the walk never makes a request read the whole
        workspace: each page stops after its row budget, short or empty with a next link, and following the links
        finds exactly what a full scan finds, in a bounded number of Convex calls per page."""
        from aiida_structstore.api.optimade import query

        monkeypatch.setattr(query, 'ROWS_PER_CALL', 20)
        monkeypatch.setattr(query, 'MAX_SHORT_CALLS', 2)
        last = max(item.key.structure_id for item in many)
        text = f'chemical_formula_descriptive CONTAINS "O" AND id ENDS "{last[-3:]}"'
        first = client('/optimade/v1/structures', filter=text, page_limit=5).json()
        assert first['data'] == [] and first['meta']['more_data_available'] and first['links']['next']
        assert 'data_returned' not in first['meta']
        before = _calls(backend)
        ids, bodies = self.follow(client, filter=text, page_limit=5)
        assert ids == [last]
        pages = len(bodies)
        assert pages >= self.SIZE // 40  # 40 rows per request: every request stopped at its budget
        if hasattr(backend, 'transport'):
            # per page: at most two index walks, and no get_many when nothing was read ahead
            assert _calls(backend) - before <= 3 * pages
        response = client('/optimade/v1/structures', filter=text, page_offset=100)
        assert response.status_code == 403 and 'more than 40 rows' in response.json()['errors'][0]['detail']
        response = client('/optimade/v1/structures', filter=text, sort='nelements,-id')
        assert response.status_code == 403 and 'more than 40 rows' in response.json()['errors'][0]['detail']

    def test_a_payload_stored_in_chunks_is_served_on_its_page(self, many, backend, tenant, client):
        """An entry whose payload is too large to be inline comes with its page (read on its own), positions exact."""
        from aiida_structstore.core.structures import Source, StructureContent, StructureKey
        from aiida_structstore.store.structures import INLINE_BYTES

        source = backend.structures.get(StructureKey.of(tenant, 'big', 'm0000'))
        structure = dict(source.structure)
        structure['nsites'] = 3000
        structure['species_at_sites'] = [structure['species_at_sites'][0]] * 3000
        structure['cartesian_site_positions'] = [[0.001 * n, 0.5, 0.25] for n in range(3000)]
        key = StructureKey.of(tenant, 'big', 'm0000-big')
        backend.structures.put(StructureContent(key=key, source=Source(kind='cif'), structure=structure))
        assert len(json.dumps(structure)) > INLINE_BYTES
        body = client('/optimade/v1/structures', filter='nsites = 3000').json()
        assert [entry['id'] for entry in body['data']] == ['m0000-big']
        assert body['data'][0]['attributes']['cartesian_site_positions'] == structure['cartesian_site_positions']

    def test_one_tenant_waits_for_its_own_calls_not_for_others(self, many, backend, api_settings, tenant, monkeypatch):
        """With one store call at a time per tenant: while a tenant's call is held in the store, its next request
        waits in the API (it never reaches the store), and another tenant's request is answered meanwhile."""
        import threading

        from aiida_structstore.api.optimade import query

        entered, release, waiting = threading.Event(), threading.Event(), threading.Event()

        class Watched(threading.BoundedSemaphore):
            def acquire(self, blocking=True, timeout=None):
                if super().acquire(blocking=False):
                    return True
                waiting.set()
                return super().acquire(blocking, timeout)

            __enter__ = acquire

        monkeypatch.setattr(query, '_tenant_slots', {tenant: Watched(1)})
        original, calls = backend.structures.query, []

        def held(tenant_id, *args, **kwargs):
            calls.append(tenant_id)
            if calls.count(tenant) == 1 and tenant_id == tenant:
                entered.set()
                assert release.wait(120)
            return original(tenant_id, *args, **kwargs)

        monkeypatch.setattr(backend.structures, 'query', held)
        mine, other = bearer(make_token(tenant, ['big'])), bearer(make_token(f'{tenant}-x', ['big']))
        with TestClient(create_app(api_settings, store=backend)) as client:
            answers = []

            def request():
                answers.append(client.get('/optimade/v1/structures', headers=mine).status_code)

            threads = [threading.Thread(target=request) for _ in range(2)]
            threads[0].start()
            assert entered.wait(120)
            threads[1].start()
            assert waiting.wait(120)  # the second request of the tenant waits for the slot
            response = client.get('/optimade/v1/structures', headers=other)
            assert response.status_code == 200 and response.json()['data']
            assert calls.count(tenant) == 1  # the waiting request has not reached the store
            release.set()
            for thread in threads:
                thread.join(120)
        assert answers == [200, 200] and calls.count(tenant) == 2

    def test_payload_filters_page_through_any_workspace(self, many, backend, client, monkeypatch):
        """A filter on the payload is an index walk with the payload conjuncts evaluated in the API on each store
        page (payloads come with it): no scan bound applies, pages follow cursors, and the result is what the
        records hold, with a bounded number of calls per page."""
        from aiida_structstore.api.optimade import query

        monkeypatch.setattr(query, 'MAX_SCAN_ENTRIES', 10)
        records = backend.structures.get_many([item.key for item in many])
        expected = sorted(r.key.structure_id for r in records if 'Cu' in r.structure['species_at_sites'])
        before = _calls(backend)
        ids, bodies = self.follow(client, filter='species_at_sites HAS "Cu" AND nsites >= 1', page_limit=7)
        assert sorted(ids) == expected and len(ids) == len(expected) > 20
        if hasattr(backend, 'transport'):
            assert _calls(backend) - before <= query.MAX_CALLS * len(bodies)

    def test_payload_filters_and_unindexed_sorts_are_bounded_scans(self, many, client, monkeypatch):
        from aiida_structstore.api.optimade import query

        body = client('/optimade/v1/structures', sort='nelements,-id', page_limit=100).json()
        assert body['meta']['data_returned'] == self.SIZE and body['meta']['more_data_available']
        assert body['links']['next'].endswith('page_offset=100')
        monkeypatch.setattr(query, 'MAX_SCAN_ENTRIES', 50)
        response = client('/optimade/v1/structures', sort='nelements,-id')
        assert response.status_code == 403 and 'more than 50 entries' in response.json()['errors'][0]['detail']
        response = client(
            '/optimade/v1/structures', filter='species_at_sites IS KNOWN AND chemical_formula_reduced = "Fe3O"'
        )
        assert response.status_code == 200  # the Fe3O structures only: under the bound
