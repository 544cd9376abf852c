// DOM helpers. Data from the API is only ever put into the page as text
// (textContent, attribute values via setAttribute), never parsed as HTML.

// h builds an element: h('a', {href: '#/x', class: 'btn', onclick: fn}, 'text', child).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'value') el.value = v;
      else if (k === 'checked' || k === 'selected' || k === 'disabled') el[k] = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// clear removes every child of el.
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// replace puts children in el instead of what it held.
export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

// enumName shortens an enum value: DELIVERY_STATUS_PENDING -> pending.
export function enumName(v, prefix) {
  if (!v) return '';
  return String(v).replace(prefix, '').toLowerCase().replace(/_/g, ' ');
}

// fmtTime shows an RFC 3339 timestamp in the browser's zone, to the second.
export function fmtTime(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (isNaN(d)) return String(ts);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// seconds parses a proto3 JSON duration ("0.120s").
export function seconds(dur) {
  if (!dur) return 0;
  const n = parseFloat(String(dur));
  return isNaN(n) ? 0 : n;
}

// fmtDur shows a proto3 JSON duration in ms or s.
export function fmtDur(dur) {
  if (!dur) return '';
  const s = seconds(dur);
  if (s < 0.01) return `${(s * 1000).toFixed(1)} ms`;
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`;
}

// status renders a status badge.
export function badge(text, kind) {
  return h('span', { class: `badge badge-${kind || text.replace(/\s+/g, '-')}` }, text);
}

// field is a labelled form control.
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', { class: 'hint' }, hint) : null);
}

// table builds a table with a header row and one row per item.
export function table(caption, headers, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', null,
      caption ? h('caption', null, caption) : null,
      h('thead', null, h('tr', null, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows)));
}

// decodeB64 turns base64 bytes into text (UTF-8, replacing what is not).
export function decodeB64(b64) {
  if (!b64) return '';
  try {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  } catch {
    return b64;
  }
}

// notice shows a message in the page's live region (read by screen readers).
export function notice(text, kind) {
  const el = document.getElementById('notice');
  if (!el) return;
  replace(el, text ? h('div', { class: `msg msg-${kind || 'info'}`, role: kind === 'error' ? 'alert' : 'status' }, text) : null);
}

let pending = null;

// flash shows text after the next navigation (e.g. a secret shown once
// on the page a create leads to).
export function flash(text, kind) {
  pending = { text, kind };
}

// takeFlash returns the pending flash message, once.
export function takeFlash() {
  const p = pending;
  pending = null;
  return p;
}
