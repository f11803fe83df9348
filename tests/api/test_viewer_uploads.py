"""The viewer's uploads in a real browser (Debian's Chromium driven by Playwright, as ``test_viewer.py``), on the local
Convex server: the upload form sends a real example file, the page follows the upload's status live while the test
moves it through its states with the real store code (``store.uploads.claim/complete/fail``, as an importer does), and
opens the structure once it is imported. Every test also checks that no ``/api/`` request left without the token and
that the page reported no violation of its Content-Security-Policy (the ``page`` fixture).
"""

from __future__ import annotations

import hashlib

import pytest

from aiida_structstore.core.structures import StructureKey
from aiida_structstore.core.uploads import UploadKey, upload_id_for

from . import test_viewer
from .conftest import EXAMPLES, make_token
from .test_viewer import Page

browser = test_viewer.browser  # the browser fixtures
page = test_viewer.page

pytestmark = [pytest.mark.parametrize('backend', ['convex-local'], indirect=True)]

CIF = EXAMPLES / 'cif' / 'si.cif'
PW = EXAMPLES / 'pw' / 'si_scf.in'


def uploader(tenant: str) -> str:
    return make_token(tenant, ['lab'], upload_workspaces=['lab'], sub='alice@example.org')


def upload_key(tenant: str, path) -> UploadKey:
    return UploadKey.of(tenant, 'lab', upload_id_for(hashlib.sha256(path.read_bytes()).hexdigest()))


def open_workspace(page: Page, token: str | None, expected: str = 'ready') -> None:
    """Open the workspace page with ``token``, or without one reload it (the token stays in the tab's storage)."""
    if token is None:
        page.page.reload()
    else:
        page.open('workspace=lab', token)
    page.wait_for_state('listed')
    page.page.wait_for_selector(f'body[data-uploads="{expected}"]')


def send(page: Page, path, *, kind: str | None = None, structure_id: str = '', open_when_imported=True) -> None:
    """Choose ``path`` in the form (the kind as guessed from its name unless ``kind``), and upload it."""
    page.page.set_input_files('#upload-file', str(path))
    if kind is not None:
        page.page.select_option('#upload-kind', kind)
    page.page.fill('#upload-structure-id', structure_id)
    page.page.set_checked('#upload-open', open_when_imported)
    page.page.click('#upload-submit')


def wait_status(page: Page, status: str) -> str:
    """The status line once it shows ``status``."""
    page.page.wait_for_selector(f'#upload-status[data-status="{status}"]')
    return page.text('#upload-status')


def claim(backend, tenant: str):
    claimed = backend.uploads.claim(claimer='viewer-test', lease_seconds=300, tenant_id=tenant, workspace_id='lab')
    assert claimed is not None, 'nothing to claim: the upload did not reach the store'
    return claimed


def upload_responses(page: Page, key: UploadKey) -> list[int]:
    return page.statuses(f'/api/structures/uploads/{key.upload_id}?workspace=lab')


@pytest.fixture
def statuses(page):
    """Record the status of every response the page got, so a test can count the 304s of its revalidations."""
    seen: list[tuple[str, int]] = []
    page.page.on('response', lambda response: seen.append((response.url, response.status)))
    page.statuses = lambda suffix: [status for url, status in seen if url.endswith(suffix)]
    return seen


def test_an_uploaded_cif_is_followed_live_and_opened_when_imported(page, statuses, backend, seeded, tenant):
    open_workspace(page, uploader(tenant))
    assert page.page.is_visible('#upload-form') and page.page.is_hidden('#upload-refused')
    page.page.set_input_files('#upload-file', str(CIF))
    assert page.page.input_value('#upload-kind') == 'cif'  # guessed from the name
    send(page, CIF, structure_id='si-upload')
    assert wait_status(page, 'pending') == 'si.cif: pending, waiting for the importer'
    key = upload_key(tenant, CIF)
    assert page.page.get_attribute(f'#uploads-rows tr[data-upload-id="{key.upload_id}"]', 'data-status') == 'pending'
    record = backend.uploads.get(key)
    assert (record.filename, record.kind, record.structure_id, record.uploaded_by) == (
        'si.cif',
        'cif',
        'si-upload',
        'alice@example.org',
    )
    assert backend.uploads.read(key) == CIF.read_bytes()
    # While nothing changes, the page revalidates with If-None-Match and the API answers 304.
    page.page.wait_for_selector('body[data-upload-not-modified="2"]')
    assert upload_responses(page, key)[:2] == [304, 304]

    claimed = claim(backend, tenant)
    assert claimed.key == key
    assert wait_status(page, 'importing') == 'si.cif: importing into AiiDA…'
    # The importer projects the structure, then marks the upload imported: the page opens the structure.
    backend.structures.put(seeded['si'].model_copy(update={'key': StructureKey.of(tenant, 'lab', 'si-upload')}))
    backend.uploads.complete(key, claim=claimed.claim, structure_id='si-upload', node_uuid=seeded['si'].node_uuid)
    page.wait_for_state('drawn')
    assert page.page.url.endswith('/viewer/?workspace=lab&id=si-upload')
    assert page.text('#title') == 'Si · si-upload'
    assert 200 in upload_responses(page, key)[2:]


def test_a_failed_upload_shows_its_parse_error(page, statuses, backend, seeded, tenant):
    open_workspace(page, uploader(tenant))
    send(page, PW)
    wait_status(page, 'pending')
    key = upload_key(tenant, PW)
    assert backend.uploads.get(key).kind == 'pw'
    claimed = claim(backend, tenant)
    wait_status(page, 'importing')
    message = 'the pw.x input has no ATOMIC_POSITIONS card'
    backend.uploads.fail(key, claim=claimed.claim, message=message)
    assert wait_status(page, 'failed') == f'si_scf.in: failed: {message}'
    row = page.page.query_selector(f'#uploads-rows tr[data-upload-id="{key.upload_id}"]')
    assert row.get_attribute('data-status') == 'failed'
    assert [cell.inner_text() for cell in row.query_selector_all('td')][:4] == ['si_scf.in', 'pw', 'failed', message]
    assert page.page.url.endswith('/viewer/?workspace=lab')  # stayed on the workspace page
    # The page read the status no more after the final state, and a reloaded page lists it without following it.
    checks = page.page.get_attribute('body', 'data-upload-checks')
    open_workspace(page, None)
    page.page.wait_for_selector(f'#uploads-rows tr[data-upload-id="{key.upload_id}"][data-status="failed"]')
    assert page.page.get_attribute('body', 'data-upload-checks') is None
    assert int(checks) == len(upload_responses(page, key))


def test_the_recent_uploads_are_followed_after_a_reload_and_link_to_their_structure(
    page, statuses, backend, seeded, tenant
):
    """Without 'open when imported' the page stays, lists the structure, and links to it."""
    open_workspace(page, uploader(tenant))
    send(page, CIF, structure_id='si-upload', open_when_imported=False)
    wait_status(page, 'pending')
    open_workspace(page, None)  # a reload: the upload is listed, and followed
    key = upload_key(tenant, CIF)
    page.page.wait_for_selector(f'#uploads-rows tr[data-upload-id="{key.upload_id}"][data-status="pending"]')
    claimed = claim(backend, tenant)
    page.page.wait_for_selector(f'#uploads-rows tr[data-upload-id="{key.upload_id}"][data-status="importing"]')
    backend.structures.put(seeded['si'].model_copy(update={'key': StructureKey.of(tenant, 'lab', 'si-upload')}))
    backend.uploads.complete(key, claim=claimed.claim, structure_id='si-upload', node_uuid=seeded['si'].node_uuid)
    page.page.wait_for_selector(f'#uploads-rows tr[data-upload-id="{key.upload_id}"][data-status="imported"]')
    page.page.wait_for_selector('#list-rows tr[data-id="si-upload"]')  # the list was read again
    assert page.page.url.endswith('/viewer/?workspace=lab')
    page.page.click(f'#uploads-rows tr[data-upload-id="{key.upload_id}"] a:text-is("Open si-upload")')
    page.wait_for_state('drawn')
    assert page.text('#title') == 'Si · si-upload'


def test_the_same_file_again_is_the_same_upload(page, backend, seeded, tenant):
    open_workspace(page, uploader(tenant))
    send(page, CIF)
    wait_status(page, 'pending')
    send(page, CIF)
    page.page.wait_for_selector('#upload-status:text-matches("^Uploaded before: si.cif: pending")')
    assert len(page.page.query_selector_all('#uploads-rows tr')) == 1
    assert len(backend.uploads.list(tenant, 'lab').items) == 1


def test_a_read_only_token_gets_the_apis_reason_and_no_button(page, seeded, tenant):
    open_workspace(page, make_token(tenant, ['lab']), expected='refused')
    assert page.page.is_hidden('#upload-form') and page.page.is_hidden('#upload-submit')
    assert page.text('#upload-refused') == (
        "Uploading is not possible with this sign-in: this token does not grant uploads into workspace 'lab' "
        "(its 'upload_workspaces' claim must name it)"
    )
    assert not [r for r in page.api_requests() if r.method == 'POST']


def test_a_file_whose_name_says_no_kind_needs_one_chosen(page, backend, seeded, tenant, tmp_path):
    renamed = tmp_path / 'structure.txt'
    renamed.write_bytes(CIF.read_bytes())
    open_workspace(page, uploader(tenant))
    send(page, renamed)
    assert wait_status(page, 'error') == 'Choose what structure.txt is (CIF or pw.x input): its name does not say.'
    assert not [r for r in page.api_requests() if r.method == 'POST']
    send(page, renamed, kind='cif')
    wait_status(page, 'pending')
    assert backend.uploads.get(upload_key(tenant, renamed)).filename == 'structure.txt'


def test_a_refused_upload_shows_the_apis_message(page, backend, seeded, tenant, tmp_path):
    empty = tmp_path / 'empty.cif'
    empty.write_bytes(b'')
    open_workspace(page, uploader(tenant))
    send(page, empty)
    text = wait_status(page, 'error')
    assert text.startswith('Upload of empty.cif refused: The structure API answered 422: '), text
    assert 'empty' in text
    assert not backend.uploads.list(tenant, 'lab').items
