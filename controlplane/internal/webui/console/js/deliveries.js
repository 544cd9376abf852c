// Deliveries: the filtered, paged list; one delivery with its attempts and
// the retry / cancel / resend buttons; the live tail.
import { h, replace, enumName, fmtTime, fmtDur, badge, field, table, decodeB64, notice } from './dom.js';
import { api, qs, stream, tp } from './api.js';

const STATUSES = ['', 'DELIVERY_STATUS_PENDING', 'DELIVERY_STATUS_SUCCEEDED', 'DELIVERY_STATUS_DEAD', 'DELIVERY_STATUS_CANCELLED'];
export const PAGE_SIZE = 50;

export function statusBadge(st) {
  const n = enumName(st, 'DELIVERY_STATUS_');
  return badge(n || 'unknown', n);
}

export function outcomeName(o) {
  return enumName(o, 'OUTCOME_');
}

function link(ctx, rest, text) {
  return h('a', { href: `#/t/${encodeURIComponent(ctx.tenant)}/${rest}` }, text);
}

// toRFC3339 turns a datetime-local value into an RFC 3339 time.
export function toRFC3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return isNaN(d) ? '' : d.toISOString();
}

function toLocalInput(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (isNaN(d)) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export async function deliveries(ctx) {
  if (ctx.id) return delivery(ctx);
  const q = ctx.query;
  const filters = {
    status: q.get('status') || '',
    subscription_id: q.get('subscription_id') || '',
    event_type: q.get('event_type') || '',
    event_id: q.get('event_id') || '',
    start_time: q.get('start_time') || '',
    end_time: q.get('end_time') || '',
  };
  const statusSel = h('select', { name: 'status' }, STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s ? enumName(s, 'DELIVERY_STATUS_') : 'any')));
  const subIn = h('input', { name: 'subscription_id', value: filters.subscription_id, placeholder: 'sub_…', spellcheck: 'false' });
  const typeIn = h('input', { name: 'event_type', value: filters.event_type, placeholder: 'order.created', spellcheck: 'false' });
  const fromIn = h('input', { type: 'datetime-local', name: 'start_time', value: toLocalInput(filters.start_time) });
  const toIn = h('input', { type: 'datetime-local', name: 'end_time', value: toLocalInput(filters.end_time) });
  const form = h('form', { class: 'filters', 'aria-label': 'Filter deliveries' },
    field('Status', statusSel), field('Subscription', subIn), field('Event type', typeIn),
    field('Created from', fromIn), field('Created before', toIn),
    h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Apply')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const nq = qs({ status: statusSel.value, subscription_id: subIn.value.trim(), event_type: typeIn.value.trim(), event_id: filters.event_id, start_time: toRFC3339(fromIn.value), end_time: toRFC3339(toIn.value) });
    location.hash = `#/t/${encodeURIComponent(ctx.tenant)}/deliveries${nq}`;
  });
  const listBox = h('div', { id: 'delivery-list' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  replace(ctx.main, h('h1', null, 'Deliveries'), form, listBox, pager);

  // Pages are fetched with the API's page tokens; tokens of the pages
  // before are kept so Previous works without refetching from the start.
  const tokens = [''];
  let page = 0;
  const show = async () => {
    const t0 = performance.now();
    const resp = await api('GET', tp(ctx.tenant, `/deliveries${qs({ ...filters, page_size: PAGE_SIZE, page_token: tokens[page] })}`), undefined, ctx.signal);
    const list = resp.deliveries || [];
    tokens[page + 1] = resp.next_page_token || '';
    const rows = list.map((d) => h('tr', null,
      h('td', null, link(ctx, `deliveries/${encodeURIComponent(d.id)}`, d.id)),
      h('td', null, statusBadge(d.status), d.waiting_reason ? h('div', { class: 'waiting' }, d.waiting_reason) : null),
      h('td', null, d.event_type || ''),
      h('td', null, link(ctx, `subscriptions/${encodeURIComponent(d.subscription_id)}`, d.subscription_id)),
      h('td', { class: 'num' }, String(d.attempt_count || 0)),
      h('td', null, outcomeName(d.last_outcome)),
      h('td', null, fmtTime(d.create_time)),
      h('td', null, d.status === 'DELIVERY_STATUS_PENDING' ? fmtTime(d.next_attempt_time) : '')));
    replace(listBox, list.length ? table(`Page ${page + 1}`, ['Delivery', 'Status', 'Event type', 'Subscription', 'Attempts', 'Last outcome', 'Created', 'Next attempt'], rows) : h('p', { class: 'muted' }, page ? 'No more deliveries.' : 'No deliveries match.'));
    const prev = h('button', { type: 'button', disabled: page === 0 }, '← Previous');
    const next = h('button', { type: 'button', disabled: !tokens[page + 1] }, 'Next →');
    prev.addEventListener('click', () => { page--; show().catch(fail); });
    next.addEventListener('click', () => { page++; show().catch(fail); });
    replace(pager, prev, h('span', { class: 'muted' }, ` page ${page + 1} · ${list.length} shown · ${Math.round(performance.now() - t0)} ms `), next);
    listBox.dataset.page = String(page + 1);
    performance.mark('hw:deliveries-page');
  };
  const fail = (e) => notice(e.message, 'error');
  await show();
}

async function delivery(ctx) {
  const base = tp(ctx.tenant, `/deliveries/${encodeURIComponent(ctx.id)}`);
  const [d, at] = await Promise.all([
    api('GET', base, undefined, ctx.signal),
    api('GET', `${base}/attempts`, undefined, ctx.signal),
  ]);
  let sub = null;
  try { sub = await api('GET', tp(ctx.tenant, `/subscriptions/${encodeURIComponent(d.subscription_id)}`), undefined, ctx.signal); } catch { /* deleted */ }
  const attempts = at.attempts || [];
  const reload = () => deliveries(ctx).catch((e) => notice(e.message, 'error'));
  const act = (label, fn, confirmText) => {
    const b = h('button', { type: 'button', disabled: !ctx.canWrite }, label);
    b.addEventListener('click', async () => {
      if (confirmText && !window.confirm(confirmText)) return;
      b.disabled = true;
      try {
        const msg = await fn();
        await reload();
        notice(msg, 'ok');
      } catch (e) {
        notice(e.message, 'error');
        b.disabled = false;
      }
    });
    return b;
  };
  const actions = h('div', { class: 'actions' },
    act('Retry now', async () => { await api('POST', `${base}:retry`, { force: d.status === 'DELIVERY_STATUS_SUCCEEDED' }); return 'Retry queued.'; }),
    d.status === 'DELIVERY_STATUS_PENDING' ? act('Cancel', async () => { await api('POST', `${base}:cancel`, {}); return 'Delivery cancelled.'; }, 'Cancel this delivery?') : null,
    act('Resend event', async () => {
      const r = await api('POST', tp(ctx.tenant, `/events/${encodeURIComponent(d.event_id)}:resend`), { subscription_id: d.subscription_id });
      return `Resent as a new delivery ${r.id || ''}.`;
    }));
  const reqHeaders = ['webhook-id', 'webhook-timestamp', 'webhook-signature', 'content-type'];
  const custom = (sub && sub.target && sub.target.headers) || {};
  const dl = (pairs) => h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== '' && v !== undefined && v !== null).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
  replace(ctx.main,
    h('p', null, link(ctx, 'deliveries', '← Deliveries')),
    h('h1', null, 'Delivery ', h('code', null, d.id)),
    dl([
      ['Status', statusBadge(d.status)],
      ['Waiting because', d.waiting_reason ? h('strong', { class: 'waiting' }, d.waiting_reason) : ''],
      ['Event', link(ctx, `events/${encodeURIComponent(d.event_id)}`, d.event_id)],
      ['Event type', d.event_type],
      ['Subscription', link(ctx, `subscriptions/${encodeURIComponent(d.subscription_id)}`, d.subscription_id)],
      ['Attempts', String(d.attempt_count || 0)],
      ['Last outcome', outcomeName(d.last_outcome)],
      ['Last error', d.last_error],
      ['Next attempt', d.status === 'DELIVERY_STATUS_PENDING' ? fmtTime(d.next_attempt_time) : ''],
      ['Created', fmtTime(d.create_time)],
      ['Updated', fmtTime(d.update_time)],
      ['Ordering key', d.ordering_key],
    ]),
    actions,
    // Attempts record the headers they were sent with; older ones (or a
    // delivery not yet attempted) get the shape of what will be sent.
    attempts.some((a) => a.request_headers) ? null : [
      h('h2', null, 'Request headers'),
      h('p', { class: 'muted' }, 'Every attempt carries the Standard Webhooks headers, signed on the control plane when it goes out, and the subscription\'s own headers (shown redacted: they often carry credentials).'),
      dl([...reqHeaders.map((k) => [k, k === 'webhook-id' ? d.id : k === 'content-type' ? 'as published' : '(per attempt)']),
        ...Object.keys(custom).sort().map((k) => [k, '<redacted>'])])],
    h('h2', null, `Attempts (${attempts.length})`),
    attempts.length ? h('ol', { class: 'attempts' }, attempts.map((a) => attemptItem(a))) : h('p', { class: 'muted' }, d.waiting_reason ? `No attempt yet: ${d.waiting_reason}.` : 'No attempt yet.'));
}

function attemptItem(a) {
  const headers = a.response_headers || {};
  const sent = a.request_headers || {};
  const body = decodeB64(a.response_body);
  const late = a.due_time && a.start_time ? (new Date(a.start_time) - new Date(a.due_time)) / 1000 : null;
  return h('li', { class: 'attempt card' },
    h('h3', null, `Attempt ${a.number} · `, badge(outcomeName(a.outcome) || 'unknown', outcomeName(a.outcome)), a.status_code ? ` · HTTP ${a.status_code}` : ''),
    h('dl', { class: 'kv' },
      h('dt', null, 'Started'), h('dd', null, fmtTime(a.start_time)),
      h('dt', null, 'Latency'), h('dd', null, fmtDur(a.latency)),
      late !== null && late > 1 ? [h('dt', null, 'Went out late by'), h('dd', null, `${late.toFixed(1)} s`)] : null,
      h('dt', null, 'Agent'), h('dd', null, a.agent_id || ''),
      a.error ? [h('dt', null, 'Error'), h('dd', { class: 'error' }, a.error)] : null),
    Object.keys(sent).length ? h('details', { class: 'request-headers' }, h('summary', null, `Request headers (${Object.keys(sent).length})`),
      h('dl', { class: 'kv' }, Object.keys(sent).sort().map((k) => [h('dt', null, k), h('dd', null, sent[k])]))) : null,
    Object.keys(headers).length ? h('details', null, h('summary', null, `Response headers (${Object.keys(headers).length})`),
      h('dl', { class: 'kv' }, Object.keys(headers).sort().map((k) => [h('dt', null, k), h('dd', null, headers[k])]))) : null,
    body ? h('details', null, h('summary', null, `Response body (first ${body.length} characters)`), h('pre', { class: 'body' }, body)) : null);
}

// live shows deliveries as they happen, from the tail stream.
export async function live(ctx) {
  const rows = h('tbody', { id: 'live-rows' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Connecting…');
  const subIn = h('input', { name: 'subscription_id', value: ctx.query.get('subscription_id') || '', placeholder: 'sub_…', spellcheck: 'false' });
  const typeIn = h('input', { name: 'event_type', value: ctx.query.get('event_type') || '', placeholder: 'order.*', spellcheck: 'false' });
  const results = [['', 'everything'], ['TAIL_RESULT_SUCCEEDED', 'successful attempts'], ['TAIL_RESULT_FAILED', 'failed attempts'], ['TAIL_RESULT_RETRYING', 'failures to retry'], ['TAIL_RESULT_DEAD', 'failures, now dead']];
  const resultSel = h('select', { name: 'result' }, results.map(([v, t]) => h('option', { value: v, selected: v === (ctx.query.get('result') || '') }, t)));
  const form = h('form', { class: 'filters', 'aria-label': 'Filter the live view' }, field('Subscription', subIn), field('Event type', typeIn), field('Show', resultSel),
    h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Apply')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = `#/t/${encodeURIComponent(ctx.tenant)}/live${qs({ subscription_id: subIn.value.trim(), event_type: typeIn.value.trim(), result: resultSel.value })}`;
  });
  replace(ctx.main, h('h1', null, 'Live'), form, status,
    h('div', { class: 'table-wrap' }, h('table', { 'aria-describedby': 'live-h' },
      h('caption', { id: 'live-h' }, 'Newest first; the last 200 are kept'),
      h('thead', null, h('tr', null, ['Time', 'What', 'Delivery', 'Event type', 'Subscription', 'Status', 'Attempt', 'Outcome', 'Latency', 'Agent'].map((t) => h('th', { scope: 'col' }, t)))),
      rows)));
  const path = tp(ctx.tenant, `/deliveries:tail${qs({ subscription_id: ctx.query.get('subscription_id'), event_type: ctx.query.get('event_type'), result: ctx.query.get('result'), heartbeat_interval: '5s' })}`);
  let seen = 0;
  const onItem = (ev) => {
    const kind = enumName(ev.kind, 'TAIL_EVENT_KIND_');
    if (kind === 'heartbeat') { status.textContent = `Live · ${seen} items · last heartbeat ${fmtTime(ev.time)}`; return; }
    seen++;
    status.textContent = `Live · ${seen} items`;
    if (kind === 'dropped') {
      rows.insertBefore(h('tr', { class: 'dropped' }, h('td', { colspan: '10' }, `Missed ${ev.dropped} items (this page read too slowly).`)), rows.firstChild);
      return;
    }
    rows.insertBefore(h('tr', { class: `k-${kind}`, 'data-delivery': ev.delivery_id },
      h('td', null, fmtTime(ev.time)),
      h('td', null, kind),
      h('td', null, link(ctx, `deliveries/${encodeURIComponent(ev.delivery_id)}`, ev.delivery_id)),
      h('td', null, ev.event_type || ''),
      h('td', null, ev.subscription_id || ''),
      h('td', null, statusBadge(ev.delivery_status)),
      h('td', { class: 'num' }, ev.attempt ? String(ev.attempt) : ''),
      h('td', null, outcomeName(ev.outcome), ev.status_code ? ` (${ev.status_code})` : ''),
      h('td', null, fmtDur(ev.latency)),
      h('td', null, ev.agent_id || '')), rows.firstChild);
    while (rows.childNodes.length > 200) rows.removeChild(rows.lastChild);
  };
  // Reconnect after a failure with a growing pause, until the page changes.
  (async () => {
    let wait = 1000;
    while (!ctx.signal.aborted) {
      try {
        status.textContent = seen ? `Live · ${seen} items` : 'Live · waiting for deliveries…';
        await stream(path, onItem, ctx.signal, () => { status.dataset.connected = '1'; wait = 1000; });
      } catch (e) {
        if (ctx.signal.aborted) return;
        delete status.dataset.connected;
        status.textContent = `Disconnected: ${e.message}. Reconnecting…`;
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 30000);
    }
  })();
}
