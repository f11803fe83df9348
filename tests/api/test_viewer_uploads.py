"""The viewer's uploads in a real browser (Debian's Chromium driven by Playwright, as ``test_viewer.py``), on the local
Convex server: the upload form sends a real example file, the page follows the upload's status live while the test
moves it through its states with the real store code (``store.uploads.claim/complete/fail``, as an importer does), and
opens the structure once it is imported; and end to end, with ``verdi data structstore uploads watch`` as a real
process importing what the browser uploaded (waits are on the page's state and the upload's status, never a sleep).
Every test also checks that no ``/api/`` request left without the token and that the page reported no violation of
its Content-Security-Policy (the ``page`` fixture).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import signal
import subprocess
import sys
from urllib.parse import urlencode

import pytest

from aiida_structstore.core.structures import StructureKey
from aiida_structstore.core.uploads import UploadKey, upload_id_for

from . import test_viewer
from .conftest import EXAMPLES, make_token
from .test_viewer import Page

browser = test_viewer.browser  # the browser fixtures
page = test_viewer.page

#: The tests of the page run on the local Convex server.
ON_CONVEX = pytest.mark.parametrize('backend', ['convex-local'], indirect=True)

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


@ON_CONVEX
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


@ON_CONVEX
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


@ON_CONVEX
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


@ON_CONVEX
def test_the_same_file_again_is_the_same_upload(page, backend, seeded, tenant):
    open_workspace(page, uploader(tenant))
    send(page, CIF)
    wait_status(page, 'pending')
    send(page, CIF)
    page.page.wait_for_selector('#upload-status:text-matches("^Uploaded before: si.cif: pending")')
    assert len(page.page.query_selector_all('#uploads-rows tr')) == 1
    assert len(backend.uploads.list(tenant, 'lab').items) == 1


@ON_CONVEX
def test_a_read_only_token_gets_the_apis_reason_and_no_button(page, seeded, tenant):
    open_workspace(page, make_token(tenant, ['lab']), expected='refused')
    assert page.page.is_hidden('#upload-form') and page.page.is_hidden('#upload-submit')
    assert page.text('#upload-refused') == (
        "Uploading is not possible with this sign-in: this token does not grant uploads into workspace 'lab' "
        "(its 'upload_workspaces' claim must name it)"
    )
    assert not [r for r in page.api_requests() if r.method == 'POST']


@ON_CONVEX
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


@ON_CONVEX
def test_a_refused_upload_shows_the_apis_message(page, backend, seeded, tenant, tmp_path):
    empty = tmp_path / 'empty.cif'
    empty.write_bytes(b'')
    open_workspace(page, uploader(tenant))
    send(page, empty)
    text = wait_status(page, 'error')
    assert text.startswith('Upload of empty.cif refused: The structure API answered 422: '), text
    assert 'empty' in text
    assert not backend.uploads.list(tenant, 'lab').items


# The end to end test: the browser uploads, `verdi data structstore uploads watch` (a real verdi process, on the
# local Convex server and the test profile's PostgreSQL) imports, the browser opens what was imported.

BROKEN_CIF = b'data_broken\n_cell_length_a 5.43\n_cell_length_b 5.43\n'  # no cell angles, no atoms


def _watcher_environment(convex_server) -> dict[str, str]:
    from aiida.manage.configuration import get_config

    environment = {
        **os.environ,
        'AIIDA_PATH': str(pathlib.Path(get_config().dirpath).parent),
        'PYTHONUNBUFFERED': '1',
        'STRUCTURE_STORE_BACKEND': 'convex',
        'CONVEX_URL': convex_server.url,
        'CONVEX_DEPLOY_KEY': convex_server.deploy_key,
    }
    environment.pop('STRUCTURE_STORE_FUNCTION_PREFIX', None)
    return environment


@contextlib.contextmanager
def uploads_watcher(profile: str, convex_server, tenant: str, group: str, log: pathlib.Path):
    """``verdi data structstore uploads watch`` for ``tenant``/``lab`` as a process; stopped (SIGTERM) afterwards,
    when it must exit 0. On a failure inside, its log is added to the error."""
    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    command = [str(verdi), '-p', profile, 'data', 'structstore', 'uploads', 'watch', '--interval', '0.2']
    command += ['-t', tenant, '-w', 'lab', '--group', group]
    with log.open('wb') as output:
        process = subprocess.Popen(
            command, env=_watcher_environment(convex_server), stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    except BaseException as exc:
        exc.add_note(f'uploads watch (exit {process.poll()}): {log.read_text()[-3000:]}')
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(120)
    assert code == 0, f'uploads watch exited {code}: {log.read_text()[-3000:]}'


def _file_of_structure(node_uuid: str):
    """The file the structure was parsed from: the input ``file`` of the calcfunction that created it."""
    from aiida import orm

    structure = orm.load_node(node_uuid)
    assert isinstance(structure, orm.StructureData)
    process = structure.creator
    assert process is not None and process.process_label in ('import_cif', 'import_pw_input'), process
    assert process.is_finished_ok
    return process.inputs.file


@ON_CONVEX
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_end_to_end_the_browser_uploads_and_a_verdi_watcher_imports(
    page, backend, convex_server, aiida_profile, tenant, tmp_path, request
):
    """A CIF and a pw.x input uploaded in the viewer are imported by a real ``uploads watch`` process and opened by
    the page; AiiDA's provenance starts at the uploaded bytes; an invalid file shows its parse error."""
    from aiida import orm

    if request.config.getoption('--db-backend') != 'psql':
        pytest.skip('a verdi process beside the test process needs PostgreSQL')
    group = f'uploads/viewer-{tenant}'
    opened = 180_000  # ms: the first import waits for the watcher to start (verdi, the profile, the store)

    # Uploaded before the watcher runs: the page shows it pending, then opens it once it is imported.
    open_workspace(page, uploader(tenant))
    send(page, CIF)
    assert wait_status(page, 'pending') == 'si.cif: pending, waiting for the importer'
    with uploads_watcher(aiida_profile.name, convex_server, tenant, group, tmp_path / 'watch.log'):
        page.page.wait_for_selector('body[data-state="drawn"]', timeout=opened)
        cif = backend.uploads.get(upload_key(tenant, CIF))
        assert cif.status == 'imported' and cif.attempts == 1
        assert page.page.url.endswith(f'/viewer/?{urlencode({"workspace": "lab", "id": cif.result_structure_id})}')
        assert page.text('#node') == cif.node_uuid
        assert page.text('#site-count') == str(len(orm.load_node(cif.node_uuid).sites))

        # With the watcher running: a pw.x input under a chosen structure id.
        page.page.click('#back')
        page.page.wait_for_selector('body[data-uploads="ready"]')
        send(page, PW, structure_id='si-scf-upload')
        page.page.wait_for_selector('body[data-state="drawn"]', timeout=opened)
        assert page.page.url.endswith('/viewer/?workspace=lab&id=si-scf-upload')
        assert page.text('#title').endswith('· si-scf-upload')
        pw = backend.uploads.get(upload_key(tenant, PW))
        assert (pw.status, pw.result_structure_id) == ('imported', 'si-scf-upload')
        assert page.text('#node') == pw.node_uuid

        # An invalid file: its parse error, as the importer gave it, on the page.
        broken = tmp_path / 'broken.cif'
        broken.write_bytes(BROKEN_CIF)
        page.page.click('#back')
        page.page.wait_for_selector('body[data-uploads="ready"]')
        send(page, broken)
        page.page.wait_for_selector('#upload-status[data-status="failed"]', timeout=opened)
        failed = backend.uploads.get(upload_key(tenant, broken))
        assert failed.status == 'failed' and 'broken.cif' in failed.message
        assert page.text('#upload-status') == f'broken.cif: failed: {failed.message}'
        assert page.page.url.endswith('/viewer/?workspace=lab')
        rows = {
            row.get_attribute('data-upload-id'): row.get_attribute('data-status')
            for row in page.page.query_selector_all('#uploads-rows tr')
        }
        assert rows == {cif.key.upload_id: 'imported', pw.key.upload_id: 'imported', failed.key.upload_id: 'failed'}

    # Provenance in AiiDA: each structure was parsed from a file node holding exactly the bytes uploaded.
    for record, path in ((cif, CIF), (pw, PW)):
        file = _file_of_structure(record.node_uuid)
        assert isinstance(file, orm.SinglefileData)
        assert file.get_content(mode='rb') == path.read_bytes()
        assert file.filename == path.name
    imported = orm.load_group(group).nodes
    assert sorted(node.uuid for node in imported) == sorted([cif.node_uuid, pw.node_uuid])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_viewer_uploads_benchmark_runs(browser):
    """benchmarks/bench_viewer_uploads.py at a small size (its figures are in docs/uploads.md, not asserted)."""
    script = pathlib.Path(__file__).resolve().parents[2] / 'benchmarks' / 'bench_viewer_uploads.py'
    command = [sys.executable, str(script), '--imports', '0', '1', '--repeat', '1']
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line.split('|') for line in result.stdout.splitlines() if line.strip().startswith(('0 ', '1 '))]
    assert [row[0].strip() for row in rows] == ['0', '1'], result.stdout
    assert all(int(row[3]) >= 1 for row in rows), result.stdout  # the page read each upload at least once
