// The API client: bearer tokens kept in sessionStorage, refreshed once on 401.

/** An error answered by the API: HTTP status, offending field and message. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field ? body.field : null;
    this.code = body && body.error ? body.error : null;
  }
}

const store = window.sessionStorage;

/** The current session: `{access, refresh, username, role}` or null. */
export function session() {
  const raw = store.getItem('sy.session');
  return raw ? JSON.parse(raw) : null;
}

function saveSession(body) {
  const prev = session() || {};
  const s = {
    access: body.access_token,
    refresh: body.refresh_token || prev.refresh || null,
    username: body.username || prev.username,
    role: body.role || prev.role,
  };
  store.setItem('sy.session', JSON.stringify(s));
  return s;
}

/** Forgets the session locally. */
export function clearSession() {
  store.removeItem('sy.session');
}

async function raw(method, path, body, auth) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const s = session();
  if (auth && s) headers.Authorization = `Bearer ${s.access}`;
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
}

async function refreshOnce() {
  const s = session();
  if (!s || !s.refresh) return false;
  const r = await raw('POST', '/api/v1/auth/refresh', { refresh_token: s.refresh }, false);
  if (!r.ok) return false;
  saveSession(await r.json());
  return true;
}

// Refresh tokens are single-use (a reused one revokes the session), so concurrent
// 401s share one refresh instead of each spending the same token.
let refreshing = null;
function refresh() {
  if (!refreshing) refreshing = refreshOnce().finally(() => { refreshing = null; });
  return refreshing;
}

let onUnauthorized = () => {};
/** Sets what happens when the session cannot be renewed. */
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

/** Calls the API; resolves to the decoded JSON (or the Response when `asResponse`). */
export async function api(method, path, body, { asResponse = false } = {}) {
  let r = await raw(method, path, body, true);
  if (r.status === 401 && (await refresh())) r = await raw(method, path, body, true);
  if (r.status === 401) onUnauthorized();
  if (!r.ok) {
    let b = null;
    try {
      b = await r.json();
    } catch {
      b = null;
    }
    throw new ApiError(r.status, b);
  }
  if (asResponse) return r;
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

/** Logs in and stores the session. */
export async function login(username, password) {
  const r = await raw('POST', '/api/v1/auth/login', { username, password }, false);
  const b = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, b);
  return saveSession(b);
}

/** First-boot setup: creates the first admin, then logs in. */
export async function setup(username, password, setupToken) {
  const body = { username, password };
  if (setupToken) body.setup_token = setupToken;
  const r = await raw('POST', '/api/v1/setup', body, false);
  const b = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, b);
  return login(username, password);
}

const RANK = { viewer: 0, operator: 1, admin: 2 };
/** Whether the session's role is at least `min`. */
export function can(min) {
  const s = session();
  return !!s && RANK[s.role] >= RANK[min];
}

/** Builds an element: `h('button', {class: 'x', onclick: f}, 'text', child)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Shows an API error next to the input named by its field (`doc.name` -> `name`). */
export function showFieldError(form, err) {
  for (const old of form.querySelectorAll('.field-error')) old.remove();
  for (const old of form.querySelectorAll('.invalid')) old.classList.remove('invalid');
  const field = err.field ? err.field.replace(/^doc\./, '') : null;
  // `schedule.days[1]` is shown at the `schedule.days` inputs.
  const input = field
    ? form.querySelector(`[name="${CSS.escape(field)}"]`) || form.querySelector(`[name="${CSS.escape(field.replace(/\[\d+\]$/, ''))}"]`)
    : null;
  const msg = h('div', { class: 'field-error', role: 'alert', dataset: { field: field || '' } },
    field ? `${field}: ${err.message}` : err.message);
  if (input) {
    input.classList.add('invalid');
    input.after(msg);
  } else {
    form.prepend(msg);
  }
  return msg;
}

/** Formats a Unix-ms time in local time. */
export function when(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

/**
 * Downloads an API attachment (the API needs the Authorization header, so a plain
 * link cannot do it): fetches it, hands the Blob to the browser through an object
 * URL and revokes the URL once the download has started. Resolves to the file name.
 */
export async function download(path, fallbackName) {
  const r = await api('GET', path, undefined, { asResponse: true });
  const cd = r.headers.get('Content-Disposition') || '';
  const m = /filename="?([^";]+)"?/.exec(cd);
  const name = m ? m[1] : fallbackName;
  const url = URL.createObjectURL(await r.blob());
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  try {
    a.click();
  } finally {
    a.remove();
    // The browser has taken its reference once the download starts.
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  }
  return name;
}
