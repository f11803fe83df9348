// The uploads panel of the workspace page (#uploads in #workspace-actions): a form that sends a CIF or pw.x input to
// POST /api/structures/uploads as the raw request body, the status of each upload followed live until it is final
// (pending → importing → imported | failed), and the workspace's recent uploads.
//
// Following: GET /api/structures/uploads/{id} with If-None-Match (the ETag of the last answer), so a poll costs a 304
// while nothing changed; the delay grows on a backoff while nothing changes and starts over when something did; it
// stops at a final state (and when the page is left). The form shows only when the list route says the token may
// upload into the workspace (`may_upload`); otherwise the API's reason (`upload_refused`) is shown instead of a button
// that would fail. When an upload this page sent is imported, the page opens its structure (unless the user unticked
// "open when imported"); every imported upload in the list links to its structure, every failed one shows why.
import { NotFound, SignInRequired, requestApi } from './request-api.js';

export const UPLOADS_PATH = '/api/structures/uploads';
/** The states after which an upload never changes. */
export const FINAL = new Set(['imported', 'failed']);
/** How many recent uploads the panel lists (and follows, if not final). */
export const RECENT = 10;
/** The delays between two reads of an upload's status (milliseconds): from `first`, times `factor`, at most `max`. */
export const BACKOFF = { first: 500, factor: 1.5, max: 5000 };

const $ = (id) => document.getElementById(id);

/** The kind (`cif` or `pw`) a file name suggests, or null when it does not say. */
export function kindOfName(name) {
  const lower = String(name ?? '')
    .trim()
    .toLowerCase();
  if (lower.endsWith('.cif')) return 'cif';
  if (/\.(in|pwi|pw|inp)$/.test(lower)) return 'pw';
  return null;
}

/** The next delay before reading the status again: back to `first` after a change, else `factor` times longer. */
export function nextDelay(delay, changed, backoff = BACKOFF) {
  if (changed || delay === undefined || delay === null) return backoff.first;
  return Math.min(backoff.max, Math.round(delay * backoff.factor));
}

/** One line saying where an upload stands. */
export function statusText(upload) {
  const name = upload.filename;
  switch (upload.status) {
    case 'pending':
      return `${name}: pending, waiting for the importer`;
    case 'importing':
      return `${name}: importing into AiiDA…`;
    case 'imported':
      return `${name}: imported as ${upload.result_structure_id}`;
    case 'failed':
      return `${name}: failed: ${upload.message ?? 'no reason given'}`;
    default:
      return `${name}: ${upload.status}`;
  }
}

/** The viewer's address of the structure an upload was imported as (a query string), or null if not imported. */
export function structureHref(upload) {
  if (upload.status !== 'imported' || !upload.result_structure_id) return null;
  return `?${new URLSearchParams({ workspace: upload.workspace, id: upload.result_structure_id })}`;
}

/** The query of an upload: workspace, kind, file name and the optional structure id (left out when blank). */
export function uploadQuery({ workspace, kind, filename, structureId }) {
  const query = { workspace, kind, filename };
  const id = (structureId ?? '').trim();
  if (id) query.structure_id = id;
  return query;
}

function bump(name) {
  document.body.dataset[name] = String(Number(document.body.dataset[name] ?? 0) + 1);
}

/**
 * Follow `upload` (an answer of the API, with its `etag`) until it is final: `onChange(upload)` after each change
 * (and after the first good read that follows a failed one), `onError(error)` when a read failed (it is tried again,
 * unless the upload or the sign-in is gone).
 * Returns { stop() }.
 */
export function followUpload(upload, etag, { onChange, onError, backoff = BACKOFF, schedule = setTimeout } = {}) {
  const path = `${UPLOADS_PATH}/${encodeURIComponent(upload.upload_id)}`;
  let current = upload;
  let tag = etag;
  let delay;
  let timer;
  let stopped = false;
  let erred = false; // the last read failed: the next good one reports the upload again

  const tick = async () => {
    let changed = false;
    try {
      const response = await requestApi(path, {
        query: { workspace: current.workspace },
        as: 'response',
        headers: tag ? { 'If-None-Match': tag } : {},
      });
      bump('uploadChecks');
      if (response.status === 304) {
        bump('uploadNotModified');
      } else {
        tag = response.headers.get('ETag');
        const next = await response.json();
        changed = next.status !== current.status || next.updated_at !== current.updated_at;
        current = next;
      }
      if ((changed || erred) && !stopped) onChange?.(current);
      erred = false;
    } catch (error) {
      erred = true;
      onError?.(error);
      if (error instanceof NotFound || error instanceof SignInRequired) return;
    }
    if (stopped || FINAL.has(current.status)) return;
    delay = nextDelay(delay, changed, backoff);
    timer = schedule(tick, delay);
  };

  if (!FINAL.has(current.status)) {
    delay = backoff.first;
    timer = schedule(tick, delay);
  }
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

const panel = {
  workspace: undefined,
  reload: () => {},
  followers: new Map(), // upload id → { stop }
  mine: new Set(), // the uploads this page sent (opened when imported)
  current: null, // the upload id the status line follows
};

function renderRow(upload) {
  const rows = $('uploads-rows');
  let row = rows.querySelector(`tr[data-upload-id="${CSS.escape(upload.upload_id)}"]`);
  if (!row) {
    row = document.createElement('tr');
    row.dataset.uploadId = upload.upload_id;
    rows.prepend(row);
    while (rows.children.length > RECENT) rows.lastElementChild.remove();
  }
  row.dataset.status = upload.status;
  const cells = [];
  const name = document.createElement('span');
  name.textContent = upload.filename;
  name.title = `${upload.size} bytes, sha256 ${upload.sha256}, uploaded by ${upload.uploaded_by}`;
  cells.push(name, upload.kind);
  const state = document.createElement('span');
  state.className = `upload-state upload-${upload.status}`;
  state.textContent = upload.status;
  cells.push(state);
  const href = structureHref(upload);
  if (href) {
    const link = document.createElement('a');
    link.href = href;
    link.textContent = `Open ${upload.result_structure_id}`;
    cells.push(link);
  } else {
    cells.push(upload.status === 'failed' ? (upload.message ?? '') : '');
  }
  cells.push(new Date(upload.created_at).toLocaleString());
  row.replaceChildren(
    ...cells.map((content) => {
      const td = document.createElement('td');
      td.append(content);
      return td;
    }),
  );
  $('uploads-table').hidden = false;
}

function renderStatus(upload, prefix = '') {
  const box = $('upload-status');
  box.replaceChildren(`${prefix}${statusText(upload)}`);
  box.dataset.status = upload.status;
  box.className = `upload-${upload.status}`;
  const href = structureHref(upload);
  if (href) {
    const link = document.createElement('a');
    link.id = 'upload-open-link';
    link.href = href;
    link.textContent = 'Open';
    box.append(' ', link);
  }
  box.hidden = false;
}

function showProblem(message) {
  const box = $('upload-status');
  box.replaceChildren(message);
  box.dataset.status = 'error';
  box.className = 'upload-error';
  box.hidden = false;
}

function changed(upload) {
  renderRow(upload);
  if (panel.current === upload.upload_id) renderStatus(upload);
  if (upload.status !== 'imported') return;
  const href = structureHref(upload);
  if (href && panel.mine.has(upload.upload_id) && $('upload-open').checked) {
    window.location.assign(href);
    return;
  }
  panel.reload();
}

function follow(upload, etag) {
  panel.followers.get(upload.upload_id)?.stop();
  const follower = followUpload(upload, etag, {
    onChange: changed,
    onError: (error) => {
      if (panel.current === upload.upload_id) showProblem(`${upload.filename}: status not refreshed: ${error.message}`);
    },
  });
  panel.followers.set(upload.upload_id, follower);
}

async function submit(event) {
  event.preventDefault();
  const file = $('upload-file').files[0];
  if (!file) return showProblem('Choose a file to upload.');
  const kind = $('upload-kind').value || kindOfName(file.name);
  if (!kind) return showProblem(`Choose what ${file.name} is (CIF or pw.x input): its name does not say.`);
  const button = $('upload-submit');
  button.disabled = true;
  showProblem(`Uploading ${file.name}…`);
  $('upload-status').dataset.status = 'uploading';
  try {
    const query = uploadQuery({
      workspace: panel.workspace,
      kind,
      filename: file.name,
      structureId: $('upload-structure-id').value,
    });
    const response = await requestApi(UPLOADS_PATH, {
      method: 'POST',
      body: file,
      query,
      headers: { 'Content-Type': 'application/octet-stream' },
      as: 'response',
    });
    const upload = await response.json();
    panel.mine.add(upload.upload_id);
    panel.current = upload.upload_id;
    renderRow(upload);
    renderStatus(upload, response.status === 201 ? '' : 'Uploaded before: ');
    if (FINAL.has(upload.status)) changed(upload);
    else follow(upload, response.headers.get('ETag'));
  } catch (error) {
    showProblem(`Upload of ${file.name} refused: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

function wire() {
  $('upload-file').addEventListener('change', () => {
    const file = $('upload-file').files[0];
    $('upload-kind').value = file ? (kindOfName(file.name) ?? '') : '';
  });
  $('upload-form').addEventListener('submit', (event) => {
    submit(event).catch((error) => showProblem(error.message));
  });
}

/**
 * Show the uploads panel of `workspace`: its recent uploads (the non-final ones followed), and the upload form if
 * the token may upload. `reload` reads the workspace's list again (after an import).
 */
export async function showUploads(workspace, { reload = () => {} } = {}) {
  panel.workspace = workspace;
  panel.reload = reload;
  window.addEventListener('pagehide', () => {
    for (const follower of panel.followers.values()) follower.stop();
  });
  let page;
  try {
    page = await requestApi(UPLOADS_PATH, { query: { workspace, limit: RECENT } });
  } catch (error) {
    if (error instanceof NotFound) return; // an API without uploads: no panel
    $('upload-refused').textContent = `Uploads are not available: ${error.message}`;
    $('upload-refused').hidden = false;
    $('uploads').hidden = false;
    return;
  }
  for (const upload of [...page.items].reverse()) renderRow(upload);
  if (page.may_upload) {
    $('upload-form').hidden = false;
    wire();
  } else {
    $('upload-refused').textContent = `Uploading is not possible with this sign-in: ${page.upload_refused}`;
    $('upload-refused').hidden = false;
  }
  $('uploads').hidden = false;
  document.body.dataset.uploads = page.may_upload ? 'ready' : 'refused';
  for (const upload of page.items) if (!FINAL.has(upload.status)) follow(upload, null);
}
