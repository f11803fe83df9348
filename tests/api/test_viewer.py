"""The viewer in a real browser: Debian's Chromium (headless, software WebGL) driven by Playwright.

Every test records the page's requests and fails if one to ``/api/`` left without an ``Authorization`` header, and
fails if the browser reported a violation of the viewer's Content-Security-Policy (so the policy never silently
breaks the page).
"""

from __future__ import annotations

import io
import json
import os
import pathlib
from collections.abc import Iterator

import pytest
from PIL import Image

from aiida_structstore.api.app import STATIC
from aiida_structstore.core.structures import StructureKey

from .conftest import EXAMPLE_FILES, make_token

CHROMIUM = pathlib.Path('/usr/bin/chromium')
#: The machine's usual headless flags. Software WebGL (SwiftShader) still works with them, which 3Dmol.js needs;
#: --enable-unsafe-swiftshader keeps it working on Chromium versions that no longer fall back to it by themselves.
CHROMIUM_ARGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--enable-unsafe-swiftshader',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
]
TIMEOUT_MS = 60_000
#: Records every Content-Security-Policy violation of the page (run before the page's own scripts).
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI || 'inline'}`);
});
"""


@pytest.fixture(params=['memory', 'convex-local'])
def backend(request):
    """The viewer on the memory store and the local Convex server (standalone layout). The browser sees only the API,
    and the API reads the component layout through the same store calls, which the store contract and the API tests
    check on both layouts; a third browser run would only add minutes to CI."""
    if request.param == 'memory':
        return request.getfixturevalue('memory_backend')
    return request.getfixturevalue('convex_backend')


@pytest.fixture(scope='module')
def browser():
    if not CHROMIUM.exists():
        message = f'{CHROMIUM} is missing: apt-get install chromium (bash .ci/run does)'
        pytest.fail(message) if os.environ.get('CI') else pytest.skip(message)
    if not (STATIC / 'viewer.js').exists():
        pytest.fail(f'the viewer bundle {STATIC / "viewer.js"} is missing: run `npm run build:viewer`')
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class Page:
    """A browser page that records its requests and uncaught errors."""

    def __init__(self, browser, base_url: str) -> None:
        self.context = browser.new_context(viewport={'width': 1100, 'height': 900})
        self.page = self.context.new_page()
        self.base_url = base_url
        self.requests = []
        self.errors = []
        self.csp_messages = []
        self.page.add_init_script(CSP_LISTENER)
        self.page.on('request', lambda request: self.requests.append(request))
        self.page.on('pageerror', lambda error: self.errors.append(str(error)))
        self.page.on('console', self._console)
        self.page.set_default_timeout(TIMEOUT_MS)

    def _console(self, message) -> None:
        if 'Content Security Policy' in message.text or 'Content-Security-Policy' in message.text:
            self.csp_messages.append(message.text)

    def csp_violations(self) -> list[str]:
        """Violations reported to the page (since its last load) and in the console (all loads)."""
        return [*self.page.evaluate('window.__cspViolations || []'), *self.csp_messages]

    def open(self, query: str, token: str | None = None) -> None:
        self.page.goto(f'{self.base_url}/viewer/?{query}' + (f'#token={token}' if token else ''))

    def wait_for_state(self, state: str) -> None:
        self.page.wait_for_selector(f'body[data-state="{state}"]')

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def api_requests(self) -> list:
        return [r for r in self.requests if r.url.startswith(f'{self.base_url}/api/')]

    def check_requests(self) -> None:
        bare = [r.url for r in self.api_requests() if 'authorization' not in r.all_headers()]
        assert not bare, f'requests to /api/ without an Authorization header: {bare}'
        assert not self.errors, f'uncaught errors on the page: {self.errors}'
        assert not self.csp_violations(), f'Content-Security-Policy violations: {self.csp_violations()}'


@pytest.fixture
def page(browser, live_server) -> Iterator[Page]:
    opened = Page(browser, live_server.url)
    yield opened
    try:
        opened.check_requests()
    finally:
        opened.context.close()


@pytest.fixture
def theirs(backend, seeded, tenant):
    """A structure only another tenant has."""
    backend.structures.put(
        seeded['si'].model_copy(update={'key': StructureKey.of(f'{tenant}-other', 'lab', 'their-secret')})
    )


def _not_blank(png: bytes) -> tuple[float, int]:
    """The fraction of pixels that are not the white background, and the number of distinct colours."""
    image = Image.open(io.BytesIO(png)).convert('RGB')
    pixels = list(image.getdata())
    drawn = sum(1 for pixel in pixels if pixel != (255, 255, 255))
    return drawn / len(pixels), len(set(pixels))


@pytest.mark.parametrize('structure_id', ['fe2o3', 'si-scf'])
def test_with_a_token_the_page_draws_the_structure(page, seeded, tenant, structure_id, tmp_path):
    record = seeded[structure_id]
    page.open(f'workspace=lab&id={structure_id}', make_token(tenant, ['lab']))
    page.wait_for_state('drawn')
    canvas = page.page.wait_for_selector('#canvas-box canvas')
    nsites = record.structure['nsites']
    assert page.text('#site-count') == str(nsites)
    assert page.page.get_attribute('body', 'data-atoms') == str(nsites)
    assert page.text('#formula') == record.structure['chemical_formula_reduced']
    assert page.text('#source') == f'{record.source.filename} ({record.source.kind})'
    assert page.text('#node') == record.node_uuid
    drawn, colours = _not_blank(canvas.screenshot())
    assert drawn > 0.01 and colours > 20, f'the canvas looks blank: {drawn:.2%} drawn, {colours} colours'
    page.page.screenshot(path=str(tmp_path / f'viewer-{structure_id}.png'))
    assert 'token=' not in page.page.url  # the token left the address bar
    views = [r.url for r in page.api_requests() if '/view' in r.url]
    assert len(views) == 1 and views[0].endswith(f'/api/structures/{structure_id}/view?workspace=lab&format=cif')


def test_the_viewer_runs_under_its_content_security_policy(page, seeded, tenant):
    """The policy is in force (a blocked inline script proves it) and the drawn page reports no violation."""
    response = page.page.goto(f'{page.base_url}/viewer/?workspace=lab&id=si#token={make_token(tenant, ["lab"])}')
    assert "frame-ancestors 'none'" in response.headers['content-security-policy']
    page.wait_for_state('drawn')
    assert page.csp_violations() == []
    page.page.evaluate("""() => {
        const script = document.createElement('script');
        script.textContent = 'window.__inlineRan = true';
        document.body.append(script);
    }""")
    assert page.page.evaluate('window.__inlineRan') is None
    page.page.wait_for_function('window.__cspViolations.length > 0')
    assert page.page.evaluate('window.__cspViolations') == ['script-src-elem blocked inline']
    page.page.evaluate('window.__cspViolations = []')
    page.csp_messages.clear()


def test_without_a_token_it_asks_to_sign_in_and_sends_nothing(page, seeded):
    page.open('workspace=lab&id=fe2o3')
    page.wait_for_state('signin')
    assert page.text('#message').startswith('Sign in to view structures')
    assert page.page.is_visible('#token-input')
    assert page.api_requests() == []


def test_signing_in_with_the_form(page, seeded, tenant):
    page.open('workspace=lab&id=si')
    page.wait_for_state('signin')
    page.page.fill('#token-input', make_token(tenant, ['lab']))
    page.page.click('#signin button')
    page.wait_for_state('drawn')
    assert page.text('#site-count') == str(seeded['si'].structure['nsites'])


def test_a_refused_token_asks_to_sign_in_again(page, seeded, tenant):
    page.open('workspace=lab&id=si', make_token(tenant, ['lab'], expires_in=-300))
    page.wait_for_state('signin')
    assert 'Your sign-in was refused (the token has expired)' in page.text('#message')


def test_another_tenants_structure_is_not_found(page, theirs, tenant):
    page.open('workspace=lab&id=their-secret', make_token(tenant, ['lab']))
    page.wait_for_state('notfound')
    assert page.text('#message').startswith('Not found: no structure')
    assert page.page.is_hidden('#canvas-box')


def test_the_workspace_list_links_to_each_structure(page, seeded, tenant):
    page.open('workspace=lab', make_token(tenant, ['lab']))
    page.wait_for_state('listed')
    rows = page.page.query_selector_all('#list-rows tr')
    assert sorted(row.query_selector('a').inner_text() for row in rows) == sorted(seeded)
    page.page.click('#list-rows a:text-is("si")')
    page.wait_for_state('drawn')
    assert page.text('#title') == 'Si · si'
    page.page.click('#back')
    page.wait_for_state('listed')
    assert page.page.url.endswith('/viewer/?workspace=lab')


@pytest.mark.slow
def test_the_structure_lists_its_executions_and_follows_their_state(page, backend, seeded, tenant):
    import datetime as dt
    import uuid as uuid_lib

    from aiida_structstore.core.executions import ExecutionContent, ExecutionKey

    start = dt.datetime(2025, 5, 1, 9, 30, tzinfo=dt.timezone.utc)

    def execution(n, seconds, tenant_id=tenant, **fields):
        return ExecutionContent.build(
            key=ExecutionKey.of(tenant_id, 'lab', str(uuid_lib.UUID(int=n))),
            created_at=start,
            modified_at=start + dt.timedelta(seconds=seconds),
            structures_in=['si'],
            **fields,
        )

    relax = execution(1, 1, process_label='PwBaseWorkChain', kind='workchain', state='waiting')
    calc = dict(process_label='PwCalculation', kind='calcjob', computer='slurm', parent_uuid=relax.key.process_uuid)
    job = {'type': 'core.slurm', 'job_id': '4711', 'state': 'running'}
    backend.executions.put_many(
        [
            relax,
            execution(2, 2, **calc, state='waiting', scheduler=job),
            execution(
                3,
                0,
                process_label='FailingWorkChain',
                kind='workchain',
                state='finished',
                exit_status=400,
                exit_message='could not read <path>',
            ),
        ]
    )
    backend.executions.put(
        execution(9, 5, tenant_id=f'{tenant}-other', process_label='TheirSecret', kind='workchain', state='running')
    )
    page.open('workspace=lab&id=si', make_token(tenant, ['lab']))
    page.wait_for_state('drawn')
    page.page.wait_for_selector('body[data-executions="3"]')
    rows = page.page.query_selector_all('#executions-rows tr')
    table = [[cell.inner_text() for cell in row.query_selector_all('td')] for row in rows]
    assert [row[:2] for row in table] == [
        ['PwCalculation', 'waiting'],
        ['PwBaseWorkChain', 'waiting'],
        ['FailingWorkChain', 'finished'],
    ]
    assert table[0][3] == 'slurm, job 4711 (running)' and table[0][4] == 'input'
    assert table[2][2] == '400: could not read <path>'
    assert 'TheirSecret' not in page.page.content()
    assert page.text('#executions-title') == 'Executions: 3, 2 active'

    # The calculation finishes in the store: the page shows it without a reload.
    backend.executions.put(
        execution(2, 30, **calc, state='finished', exit_status=0, scheduler={**job, 'state': 'done'})
    )
    page.page.wait_for_selector(f'#executions-rows tr[data-uuid="{uuid_lib.UUID(int=2)}"][data-state="finished"]')
    assert page.text('#executions-title') == 'Executions: 3, 1 active'
    assert len([r for r in page.api_requests() if r.url.endswith('/executions?workspace=lab&limit=100')]) >= 2


def _kind_names(record) -> list[str]:
    return [species['name'] for species in record.structure['species']]


def test_atoms_are_coloured_and_labelled_by_kind_with_a_legend(page, seeded, tenant, tmp_path):
    record = seeded['fe2o3-bands']  # the pw.x input keeps Fe1 and Fe2 apart (antiferromagnetic hematite)
    page.open('workspace=lab&id=fe2o3-bands', make_token(tenant, ['lab']))
    page.wait_for_state('drawn')
    assert page.text('#title') == 'Fe2O3 · fe2o3-bands'
    assert page.page.title() == 'Fe2O3 · fe2o3-bands · Structure viewer'
    items = page.page.query_selector_all('#legend-items li')
    legend = {item.get_attribute('data-kind'): item.get_attribute('data-colour') for item in items}
    assert list(legend) == _kind_names(record) and {'Fe1', 'Fe2'} <= set(legend)
    assert len(set(legend.values())) == len(legend), f'two kinds share a colour: {legend}'
    oxygen = [name for name in legend if name.startswith('O')]
    assert [legend[name] for name in oxygen] == ['#ff0d0d'] * len(oxygen) == ['#ff0d0d']  # Jmol's O: one kind
    sites = {name: record.structure['species_at_sites'].count(name) for name in legend}
    assert legend.keys() == {'Fe1', 'Fe2', 'O'}
    assert [item.inner_text().split('\n') for item in items] == [
        [name, f'Fe, {sites[name]} sites' if name.startswith('Fe') else f'{sites[name]} sites'] for name in legend
    ]
    # The atoms carry their kind's colour, and every atom has its kind label (10 atoms: at most 60 are labelled).
    assert json.loads(page.page.get_attribute('#canvas-box', 'data-kind-colours')) == legend
    assert page.page.is_checked('#labels-toggle')
    assert page.page.get_attribute('body', 'data-labels') == str(record.structure['nsites'])
    drawn, colours = _not_blank(page.page.query_selector('#canvas-box canvas').screenshot())
    assert drawn > 0.01 and colours > 20, f'the canvas looks blank: {drawn:.2%} drawn, {colours} colours'
    page.page.screenshot(path=str(tmp_path / 'viewer-kinds-labelled.png'))
    page.page.uncheck('#labels-toggle')
    page.page.wait_for_selector('body[data-labels="0"]')
    page.page.screenshot(path=str(tmp_path / 'viewer-kinds.png'))


def test_an_element_with_one_kind_keeps_its_element_colour(page, seeded, tenant):
    page.open('workspace=lab&id=si', make_token(tenant, ['lab']))
    page.wait_for_state('drawn')
    items = page.page.query_selector_all('#legend-items li')
    assert [(i.get_attribute('data-kind'), i.get_attribute('data-colour')) for i in items] == [
        (name, '#f0c8a0')
        for name in _kind_names(seeded['si'])  # Jmol's Si
    ]


def _api_bytes(base_url: str, path: str, token: str) -> bytes:
    import urllib.request

    request = urllib.request.Request(f'{base_url}{path}', headers={'Authorization': f'Bearer {token}'})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


@pytest.mark.parametrize(
    ('structure_id', 'raw_name', 'cif_name'),
    [('fe2o3', 'fe2o3.cif', 'fe2o3-p1.cif'), ('fe2o3-bands', 'fe2o3_bands.in', 'fe2o3_bands.cif')],
)
def test_downloads_of_the_cif_and_the_original_input(page, seeded, tenant, tmp_path, structure_id, raw_name, cif_name):
    token = make_token(tenant, ['lab'])
    page.open(f'workspace=lab&id={structure_id}', token)
    page.wait_for_state('drawn')
    assert page.text('#download-raw') == f'Download input ({raw_name})'
    with page.page.expect_download() as raw_download:
        page.page.click('#download-raw')
    raw = raw_download.value
    assert raw.suggested_filename == raw_name
    raw.save_as(tmp_path / 'raw')
    assert (tmp_path / 'raw').read_bytes() == EXAMPLE_FILES[structure_id].read_bytes()
    page.page.wait_for_selector(f'#download-raw[data-saved="{raw_name}"]')
    assert page.text('#download-status') == f'Saved {raw_name}'

    with page.page.expect_download() as cif_download:
        page.page.click('#download-cif')
    cif = cif_download.value
    assert cif.suggested_filename == cif_name
    cif.save_as(tmp_path / 'cif')
    expected = _api_bytes(page.base_url, f'/api/structures/{structure_id}/view?workspace=lab&format=cif', token)
    assert (tmp_path / 'cif').read_bytes() == expected == seeded[structure_id].cif.encode()
    downloads = [r.url for r in page.api_requests() if r.url.endswith(('/raw?workspace=lab', 'format=cif'))]
    assert len(downloads) == 3  # the drawing's CIF, then the two downloads, each with the token (checked after)


@pytest.fixture
def hematites(backend, seeded, tenant):
    """Four more copies of hematite in ``lab`` (eight structures in all), and one in another tenant's ``lab``."""
    for n in range(1, 5):
        backend.structures.put(seeded['fe2o3'].model_copy(update={'key': StructureKey.of(tenant, 'lab', f'fe2o3-{n}')}))
    backend.structures.put(
        seeded['fe2o3'].model_copy(update={'key': StructureKey.of(f'{tenant}-other', 'lab', 'fe2o3-x')})
    )
    return sorted([*seeded, *(f'fe2o3-{n}' for n in range(1, 5))])


def _listed(page: Page, loads: int) -> list[str]:
    """The ids of the list once it has rendered ``loads`` times."""
    page.page.wait_for_selector(f'body[data-loads="{loads}"][data-state="listed"]')
    return [row.get_attribute('data-id') for row in page.page.query_selector_all('#list-rows tr')]


def test_the_workspace_list_pages_and_searches(page, hematites, tenant, tmp_path):
    page.open('workspace=lab&limit=3', make_token(tenant, ['lab']))
    pages = [_listed(page, 1)]
    assert page.page.is_disabled('#list-prev') and page.text('#list-page') == 'Page 1'
    while page.page.is_enabled('#list-next'):
        page.page.click('#list-next')
        pages.append(_listed(page, len(pages) + 1))
    assert [len(rows) for rows in pages] == [3, 3, 2]
    assert sorted(row for rows in pages for row in rows) == hematites  # every structure once, another tenant's never
    assert page.text('#list-title') == 'Workspace lab: structures 7\N{EN DASH}8'
    page.page.click('#list-prev')
    assert _listed(page, 4) == pages[1]
    loads = 4

    searches = [
        ('formula', 'O3Fe2', [['fe2o3', 'fe2o3-1', 'fe2o3-2'], ['fe2o3-3', 'fe2o3-4', 'fe2o3-bands']]),
        ('elements', 'Si', [['si', 'si-scf']]),
        ('id', 'fe2o3-', [['fe2o3-1', 'fe2o3-2', 'fe2o3-3'], ['fe2o3-4', 'fe2o3-bands']]),
        ('id', 'zz', [[]]),
    ]
    for by, text, expected in searches:
        page.page.select_option('#search-by', by)
        page.page.fill('#search-q', text)
        page.page.click('#search button')
        loads += 1
        found = [_listed(page, loads)]
        while page.page.is_enabled('#list-next'):
            page.page.click('#list-next')
            loads += 1
            found.append(_listed(page, loads))
        assert found == expected, (by, text)
        assert f'by={by}&q={text}' in page.page.url
    assert page.text('#list-title') == 'Workspace lab: structures matching id “zz”, none'

    # The search is in the address: a reload keeps it.
    page.page.select_option('#search-by', 'formula')
    page.page.fill('#search-q', 'Si')
    page.page.click('#search button')
    assert _listed(page, loads + 1) == ['si', 'si-scf']
    page.page.reload()
    assert _listed(page, 1) == ['si', 'si-scf']
    assert page.page.input_value('#search-q') == 'Si' and page.page.input_value('#search-by') == 'formula'
    page.page.screenshot(path=str(tmp_path / 'viewer-list.png'))


def test_a_bad_search_is_named(page, seeded, tenant):
    page.open('workspace=lab', make_token(tenant, ['lab']))
    page.wait_for_state('listed')
    page.page.select_option('#search-by', 'formula')
    page.page.fill('#search-q', 'fe2o3')
    page.page.click('#search button')
    page.wait_for_state('error')
    assert page.text('#message') == (
        "The structure API answered 422: formula 'fe2o3' is not a chemical formula at 'fe2o3': write element "
        'symbols with counts, e.g. Fe2O3'
    )
