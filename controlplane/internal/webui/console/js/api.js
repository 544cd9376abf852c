// The console's REST client. Every call carries X-Hookwire-Console: 1, so
// the server uses the session cookie; the key itself is never in reach of
// this code.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const base = { 'X-Hookwire-Console': '1' };

// api calls the REST API and returns the parsed JSON answer.
export async function api(method, path, body, signal) {
  const headers = { ...base, Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text }; }
  }
  if (!resp.ok) {
    const e = new ApiError(resp.status, data && data.code, (data && data.message) || `${resp.status} ${resp.statusText}`);
    // A 401 from the API means the session ended; from the session
    // endpoint itself it is the sign-in form's business.
    if (resp.status === 401 && !path.startsWith('/console/session')) window.dispatchEvent(new CustomEvent('hw-unauthenticated', { detail: e }));
    throw e;
  }
  return data;
}

// qs builds a query string from the non-empty values of obj.
export function qs(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
    else p.set(k, v);
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

// stream reads a REST stream (newline-delimited {"result": ...} lines)
// and calls onItem for each result until the stream ends or signal aborts.
export async function stream(path, onItem, signal, onOpen) {
  const resp = await fetch(path, { headers: { ...base, Accept: 'application/json' }, credentials: 'same-origin', signal, cache: 'no-store' });
  if (!resp.ok) {
    let msg = `${resp.status} ${resp.statusText}`;
    try { msg = (await resp.json()).message || msg; } catch { /* not JSON */ }
    if (resp.status === 401) window.dispatchEvent(new CustomEvent('hw-unauthenticated'));
    throw new ApiError(resp.status, 0, msg);
  }
  if (onOpen) onOpen();
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (!line) continue;
      const msg = JSON.parse(line);
      if (msg.error) throw new ApiError(0, msg.error.code, msg.error.message);
      if (msg.result) onItem(msg.result);
    }
  }
}

// session calls /console/session.
export async function session(method, body) {
  return api(method, '/console/session', body);
}

// tenantPath is /v1/tenants/{tenant} with the tenant escaped.
export function tp(tenant, rest) {
  return `/v1/tenants/${encodeURIComponent(tenant)}${rest || ''}`;
}
