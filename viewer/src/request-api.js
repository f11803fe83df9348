// requestApi: the one way the viewer talks to the read API. It adds the bearer token to every request and turns
// the API's 401 and 404 answers into errors the page can show as clear messages. Without a token it sends nothing.

const TOKEN_KEY = 'structstore.token';

/** The caller has no token, or the API refused it (401): the page asks them to sign in. */
export class SignInRequired extends Error {
  constructor(message = 'Sign in to view structures.') {
    super(message);
    this.name = 'SignInRequired';
  }
}

/** The structure (or workspace) does not exist for this caller (404). */
export class NotFound extends Error {
  constructor(message) {
    super(message);
    this.name = 'NotFound';
  }
}

/** Any other failed answer of the API. */
export class ApiError extends Error {
  constructor(status, message) {
    super(`The structure API answered ${status}: ${message}`);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** Where the token lives: this tab's sessionStorage (never a cookie, so it is sent only where requestApi adds it). */
export const tokenStore = {
  get() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token) {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
  /** Take a token handed over in the URL fragment (#token=...), then remove it from the address bar and history. */
  takeFromFragment(location = window.location, history = window.history) {
    const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
    const token = fragment.get('token');
    if (token) {
      this.set(token);
      history.replaceState(null, '', location.pathname + location.search);
    }
  },
};

async function detailOf(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === 'string') return body.detail;
    return JSON.stringify(body.detail ?? body);
  } catch {
    return response.statusText || 'no details';
  }
}

/**
 * Request an API path with the bearer token (GET unless `method` says otherwise, with `body` and extra `headers`).
 * `query` adds query parameters; `as` is 'json' (default), 'text' or 'response' (the successful Response itself, for
 * its headers or a Blob). With `headers: {'If-None-Match': etag}` and `as: 'response'`, a 304 is returned too (the
 * request then bypasses the browser's cache, so the 304 reaches the caller).
 * Throws SignInRequired (no token, or 401), NotFound (404) or ApiError (any other failure).
 */
export async function requestApi(path, { query = {}, as = 'json', method = 'GET', body, headers = {} } = {}) {
  const token = tokenStore.get();
  if (!token) throw new SignInRequired();
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  const conditional = Object.keys(headers).some((name) => name.toLowerCase() === 'if-none-match');
  const response = await fetch(url, {
    method,
    body,
    headers: { ...headers, Authorization: `Bearer ${token}` },
    credentials: 'omit',
    ...(conditional ? { cache: 'no-store' } : {}),
  });
  if (response.status === 401) {
    tokenStore.clear();
    throw new SignInRequired(`Your sign-in was refused (${await detailOf(response)}). Sign in again.`);
  }
  if (response.status === 404) throw new NotFound(await detailOf(response));
  if (response.status === 304 && conditional && as === 'response') return response;
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  if (as === 'response') return response;
  return as === 'text' ? response.text() : response.json();
}
