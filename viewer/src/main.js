// The structure viewer: one structure of a workspace (?id=...&workspace=..., structure-page.js) drawn with 3Dmol.js,
// or without ?id the workspace's list (workspace-page.js). It reads only through requestApi (bearer token on every
// request); the token arrives in the URL fragment or through the sign-in form.
import { NotFound, SignInRequired, tokenStore } from './request-api.js';
import { showStructure } from './structure-page.js';
import { showWorkspace } from './workspace-page.js';

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
    if (id) await showStructure(id, workspace, setState);
    else await showWorkspace(workspace, params, setState);
  } catch (error) {
    if (error instanceof SignInRequired) showSignIn(error.message);
    else if (error instanceof NotFound) setState('notfound', `Not found: ${error.message}`);
    else setState('error', error.message);
  }
}

main();
