// The executions panel: the AiiDA processes that took or produced the structure shown, with their state, read
// through requestApi (/api/structures/{id}/executions) and refreshed every few seconds. The API answers with an ETag
// and `Cache-Control: private, no-cache`, so the browser revalidates each refresh and an unchanged list costs a 304.
import { requestApi } from './request-api.js';

/** How often the list is read again (milliseconds). */
export const REFRESH_MS = 3000;
const TERMINAL = new Set(['finished', 'excepted', 'killed']);

const $ = (id) => document.getElementById(id);

function cell(content, className) {
  const td = document.createElement('td');
  td.append(content);
  if (className) td.className = className;
  return td;
}

function exitText(item) {
  if (item.exit_status === null || item.exit_status === undefined) return TERMINAL.has(item.state) ? '—' : '';
  return item.exit_message ? `${item.exit_status}: ${item.exit_message}` : String(item.exit_status);
}

function whereText(item) {
  const parts = [];
  if (item.computer) parts.push(item.computer);
  if (item.scheduler && item.scheduler.job_id) {
    parts.push(`job ${item.scheduler.job_id}${item.scheduler.state ? ` (${item.scheduler.state})` : ''}`);
  }
  return parts.join(', ');
}

function render(page) {
  const rows = $('executions-rows');
  rows.replaceChildren();
  for (const item of page.items) {
    const row = document.createElement('tr');
    row.dataset.uuid = item.uuid;
    row.dataset.state = item.state;
    const label = document.createElement('span');
    label.textContent = item.process_label;
    label.title = `${item.kind} ${item.uuid}`;
    row.append(
      cell(label),
      cell(item.state, `state state-${item.state}`),
      cell(exitText(item), 'exit'),
      cell(whereText(item), 'where'),
      cell((item.roles ?? []).join(', '), 'role'),
      cell(new Date(item.modified_at).toLocaleString(), 'modified'),
    );
    rows.append(row);
  }
  const active = page.items.filter((item) => !TERMINAL.has(item.state)).length;
  $('executions-title').textContent =
    page.items.length === 0
      ? 'No executions recorded for this structure'
      : `Executions: ${page.items.length}${active ? `, ${active} active` : ''}`;
  $('executions-table').hidden = page.items.length === 0;
  $('executions').hidden = false;
  document.body.dataset.executions = String(page.items.length);
  document.body.dataset.executionsRefreshed = String(Number(document.body.dataset.executionsRefreshed ?? 0) + 1);
}

/** Show the executions of structure `id` and keep them fresh; errors leave the last list in place. */
export async function showExecutions(id, workspace) {
  const path = `/api/structures/${encodeURIComponent(id)}/executions`;
  const refresh = async () => render(await requestApi(path, { query: { workspace, limit: 100 } }));
  await refresh();
  const timer = setInterval(() => {
    refresh().catch((error) => {
      $('executions-title').textContent = `Executions (not refreshed: ${error.message})`;
    });
  }, REFRESH_MS);
  window.addEventListener('pagehide', () => clearInterval(timer));
}
