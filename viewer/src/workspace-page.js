// The workspace page (no ?id=): the workspace's structures, a page at a time (the API's cursors), searchable by id
// prefix, reduced formula or elements (the list route's id_prefix, formula and elements parameters). The search is
// kept in the address (?by=formula&q=Fe2O3), so a search can be shared and survives a reload; the cursors are not.
//
// Other parts of the workspace page (an upload form, say) add themselves to #workspace-actions and call
// reloadWorkspace() when the list changed.
import { requestApi } from './request-api.js';
import { sourceText } from './structure-page.js';
import { showUploads } from './uploads.js';

/** The search fields: the `by` values and the list route's parameter for each. */
export const SEARCH_PARAMETERS = { id: 'id_prefix', formula: 'formula', elements: 'elements' };
const DEFAULT_LIMIT = 50;
/** A search page may come back empty with a cursor (the store reads a bounded number of rows per call): follow at
 * most this many such cursors before showing the empty page with its Next button. */
const EMPTY_PAGES_FOLLOWED = 5;

const $ = (id) => document.getElementById(id);

const state = {
  workspace: undefined,
  limit: DEFAULT_LIMIT,
  by: 'id',
  q: '',
  cursors: [null], // the cursor of each page shown so far; the last is the current page's
  next: null,
  setState: () => {},
};

function searchQuery() {
  const q = state.q.trim();
  return q ? { [SEARCH_PARAMETERS[state.by]]: q } : {};
}

function renderRows(page) {
  const rows = $('list-rows');
  rows.replaceChildren();
  for (const item of page.items) {
    const link = document.createElement('a');
    link.href = `?${new URLSearchParams({ workspace: page.workspace, id: item.id })}`;
    link.textContent = item.id;
    const cells = [link, item.chemical_formula_reduced ?? '', String(item.nsites ?? ''), sourceText(item.source)];
    const row = document.createElement('tr');
    row.dataset.id = item.id;
    for (const cell of cells) {
      const td = document.createElement('td');
      td.append(cell);
      row.append(td);
    }
    rows.append(row);
  }
}

function renderTitle(page) {
  const number = state.cursors.length;
  const first = (number - 1) * state.limit + 1;
  const range = page.items.length ? `${first}–${first + page.items.length - 1}` : 'none';
  const what = state.q.trim() ? `matching ${state.by} “${state.q.trim()}”` : '';
  $('list-title').textContent = `Workspace ${page.workspace}: structures ${what ? `${what}, ` : ''}${range}`;
  document.title = `${page.workspace} · Structure viewer`;
  $('list-page').textContent = `Page ${number}`;
  $('list-prev').disabled = number === 1;
  $('list-next').disabled = page.next_cursor === null;
  document.body.dataset.page = String(number);
  document.body.dataset.rows = String(page.items.length);
  document.body.dataset.loads = String(Number(document.body.dataset.loads ?? 0) + 1);
}

async function loadPage() {
  state.setState('loading', 'Loading the workspace…');
  let cursor = state.cursors[state.cursors.length - 1];
  let page;
  for (let followed = 0; ; followed += 1) {
    const query = { workspace: state.workspace, limit: state.limit, cursor: cursor ?? undefined, ...searchQuery() };
    page = await requestApi('/api/structures', { query });
    if (page.items.length > 0 || page.next_cursor === null || followed >= EMPTY_PAGES_FOLLOWED) break;
    cursor = page.next_cursor;
    state.cursors[state.cursors.length - 1] = cursor;
  }
  state.workspace = page.workspace;
  renderRows(page);
  renderTitle(page);
  state.next = page.next_cursor;
  $('list').hidden = false;
  state.setState('listed');
}

/** Read the current page again (after something changed the workspace). */
export function reloadWorkspace() {
  return loadPage().catch((error) => state.setState('error', error.message));
}

function keepSearchInAddress() {
  const params = new URLSearchParams(window.location.search);
  for (const name of ['by', 'q']) params.delete(name);
  if (state.q.trim()) {
    params.set('by', state.by);
    params.set('q', state.q.trim());
  }
  window.history.replaceState(null, '', `${window.location.pathname}?${params}`);
}

function wire() {
  $('search').addEventListener('submit', (event) => {
    event.preventDefault();
    state.by = $('search-by').value;
    state.q = $('search-q').value;
    state.cursors = [null];
    keepSearchInAddress();
    reloadWorkspace();
  });
  $('list-next').addEventListener('click', () => {
    if (state.next === null) return;
    state.cursors.push(state.next);
    reloadWorkspace();
  });
  $('list-prev').addEventListener('click', () => {
    if (state.cursors.length === 1) return;
    state.cursors.pop();
    reloadWorkspace();
  });
}

/** Show the list of `workspace` (params: the page's URLSearchParams); `setState` reports progress. */
export async function showWorkspace(workspace, params, setState) {
  state.workspace = workspace;
  state.setState = setState;
  const limit = Number.parseInt(params.get('limit') ?? '', 10);
  state.limit = Number.isInteger(limit) && limit >= 1 && limit <= 200 ? limit : DEFAULT_LIMIT;
  const by = params.get('by');
  state.by = by && Object.hasOwn(SEARCH_PARAMETERS, by) ? by : 'id';
  state.q = params.get('q') ?? '';
  $('search-by').value = state.by;
  $('search-q').value = state.q;
  wire();
  await loadPage();
  await showUploads(state.workspace, { reload: reloadWorkspace });
}
