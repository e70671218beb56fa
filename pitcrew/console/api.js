// The operator API, from the console's own origin. Nothing here ever builds HTML.

export class ApiError extends Error {
  constructor(status, body, path) {
    // pitcrew's 400 names the field, and its message already starts with it ("group: ...").
    let text = '';
    if (body && typeof body === 'object') {
      text = String(body.message || body.error || '');
      if (body.field && !text.startsWith(String(body.field))) text = text ? `${body.field}: ${text}` : String(body.field);
    }
    super(text || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.path = path;
  }

  // A route this version of pitcrew does not have: 404 (or 405) with no pitcrew error body.
  get notAvailable() {
    return (this.status === 404 || this.status === 405) &&
      !(this.body && typeof this.body === 'object' && this.body.error);
  }
}

export async function call(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const type = response.headers.get('Content-Type') || '';
  let data = null;
  if (type.includes('json')) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (!response.ok) throw new ApiError(response.status, data, path);
  return data;
}

export const get = (path, query) => call('GET', withQuery(path, query));
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);
export const del = (path) => call('DELETE', path);

export function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export const seg = (value) => encodeURIComponent(String(value));
