// The structure viewer: shows one structure of a workspace (?id=...&workspace=...) drawn with 3Dmol.js, with the
// executions that took or produced it, or the list of a workspace's structures without ?id. It reads only through
// requestApi (bearer token on every request).
import $3Dmol from '3dmol';
import { showExecutions } from './executions.js';
import { NotFound, SignInRequired, requestApi, tokenStore } from './request-api.js';

const $ = (id) => document.getElementById(id);

function setState(state, message = '') {
  document.body.dataset.state = state;
  const box = $('message');
  box.textContent = message;
  box.hidden = !message;
  box.className = state;
}

function showSignIn(message) {
  $('details').hidden = true;
  $('list').hidden = true;
  $('signin').hidden = false;
  setState('signin', message || 'Sign in to view structures: open this page with a token, or paste one below.');
}

function sourceText(source) {
  return source.filename ? `${source.filename} (${source.kind})` : source.kind;
}

function showDetails(record) {
  $('title').textContent = record.id;
  $('formula').textContent = record.summary.chemical_formula_reduced ?? '';
  $('site-count').textContent = String(record.summary.nsites ?? '');
  $('source').textContent = sourceText(record.source);
  $('node').textContent = record.aiida_node_uuid ?? '—';
  $('updated').textContent = new Date(record.updated_at).toLocaleString();
  $('details').hidden = false;
}

function draw(text, format) {
  const box = $('canvas-box');
  box.hidden = false;
  const viewer = $3Dmol.createViewer(box, { backgroundColor: 'white' });
  const model = viewer.addModel(text, format);
  if (format === 'cif') viewer.addUnitCell(model, { box: { color: '#444' } });
  viewer.setStyle({}, { sphere: { scale: 0.3 }, stick: { radius: 0.12 } });
  viewer.zoomTo();
  viewer.render(() => {
    document.body.dataset.atoms = String(model.selectedAtoms({}).length);
    setState('drawn');
  });
}

async function showStructure(id, workspace) {
  setState('loading', `Loading ${id}…`);
  const record = await requestApi(`/api/structures/${encodeURIComponent(id)}`, { query: { workspace } });
  showDetails(record);
  const format = record.views.includes('cif') ? 'cif' : 'xyz';
  const text = await requestApi(`/api/structures/${encodeURIComponent(id)}/view`, {
    query: { workspace, format },
    as: 'text',
  });
  draw(text, format);
  await showExecutions(id, workspace);
}

async function showList(workspace) {
  setState('loading', 'Loading the workspace…');
  const page = await requestApi('/api/structures', { query: { workspace, limit: 200 } });
  const rows = $('list-rows');
  rows.replaceChildren();
  for (const item of page.items) {
    const link = document.createElement('a');
    link.href = `?${new URLSearchParams({ workspace: page.workspace, id: item.id })}`;
    link.textContent = item.id;
    const cells = [link, item.chemical_formula_reduced ?? '', String(item.nsites ?? ''), sourceText(item.source)];
    const row = document.createElement('tr');
    for (const cell of cells) {
      const td = document.createElement('td');
      td.append(cell);
      row.append(td);
    }
    rows.append(row);
  }
  $('list-title').textContent = `Workspace ${page.workspace}: ${page.items.length} structures`;
  $('list').hidden = false;
  setState('listed');
}

async function main() {
  tokenStore.takeFromFragment();
  const params = new URLSearchParams(window.location.search);
  const id = params.get('id');
  const workspace = params.get('workspace') ?? undefined;
  $('signin').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token-input').value.trim();
    if (token) {
      tokenStore.set(token);
      window.location.reload();
    }
  });
  if (!tokenStore.get()) return showSignIn();
  try {
    if (id) await showStructure(id, workspace);
    else await showList(workspace);
  } catch (error) {
    if (error instanceof SignInRequired) showSignIn(error.message);
    else if (error instanceof NotFound) setState('notfound', `Not found: ${error.message}`);
    else setState('error', error.message);
  }
}

main();
