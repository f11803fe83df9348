// Downloads of authenticated API resources (the CIF view, the raw input). A plain link cannot carry the bearer
// token, so the file is fetched through requestApi, held as a Blob and saved through a temporary object URL
// (blob:), under the name the API offers in Content-Disposition.
import { requestApi } from './request-api.js';

/**
 * The file name a Content-Disposition header offers: `filename*` (RFC 8187, UTF-8) when present, else `filename`,
 * else `fallback`. Any path part is dropped; the API already sends safe names.
 */
export function offeredName(header, fallback) {
  if (!header) return fallback;
  const extended = /filename\*\s*=\s*UTF-8''([^;\s]+)/i.exec(header);
  let name = null;
  if (extended) {
    try {
      name = decodeURIComponent(extended[1]);
    } catch {
      name = null;
    }
  }
  if (!name) {
    const plain = /filename\s*=\s*"([^"]*)"/i.exec(header) ?? /filename\s*=\s*([^;\s]+)/i.exec(header);
    name = plain ? plain[1] : null;
  }
  name = name ? name.split(/[\\/]/).pop().trim() : '';
  return name || fallback;
}

/** Fetch `path` with the token and save it as a file; resolves to the name it was saved under. */
export async function download(path, { query = {}, fallbackName }) {
  const response = await requestApi(path, { query, as: 'response' });
  const name = offeredName(response.headers.get('Content-Disposition'), fallbackName);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  try {
    link.click();
  } finally {
    link.remove();
    // The download has started from the click; the URL is released once the browser has taken it.
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
  return name;
}

/** Make `button` download `path` when clicked, showing progress and errors in `status`. */
export function downloadButton(button, status, path, options) {
  button.addEventListener('click', async () => {
    button.disabled = true;
    status.textContent = 'Downloading…';
    try {
      const name = await download(path, options);
      status.textContent = `Saved ${name}`;
      button.dataset.saved = name;
    } catch (error) {
      status.textContent = `Download failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
}
