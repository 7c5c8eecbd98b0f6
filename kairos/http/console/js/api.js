// The public API, called with the key this tab signed in with. Errors carry the API's body (message, errors[]).
const KEY = "kairos.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
  // [{field, reason}], from the API's error body (a single message becomes one entry without a field).
  get errors() {
    if (Array.isArray(this.body.errors) && this.body.errors.length) return this.body.errors;
    return [{ field: null, reason: this.message }];
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function signIn(key) {
  sessionStorage.setItem(KEY, key);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${apiKey()}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = { message: text };
  }
  if (!resp.ok) throw new ApiError(resp.status, doc);
  return { status: resp.status, body: doc, headers: resp.headers };
}

export const get = (path) => api("GET", path).then((r) => r.body);

// Insights answer 202 with a URL to poll (Location) while their query runs.
export async function polled(method, path, body, { tries = 90, onWait } = {}) {
  let r = await api(method, path, body);
  for (let i = 0; r.status === 202 && i < tries; i++) {
    if (onWait) onWait(r.body);
    const wait = Math.min(Number(r.headers.get("Retry-After") || 1), 5) * 1000;
    await new Promise((ok) => setTimeout(ok, wait));
    r = await api("GET", r.headers.get("Location") || (r.body && r.body.location) || path);
  }
  return r.body;
}
