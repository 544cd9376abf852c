// Views: overview (charts), subscriptions, events, tenants, agents.
import { h, replace, enumName, fmtTime, fmtDur, badge, field, table, notice, seconds, flash } from './dom.js';
import { api, qs, stream, tp } from './api.js';
import { stackedBars, lines, meters, legend } from './charts.js';
import { toRFC3339 } from './deliveries.js';

// kv is a description list of the pairs whose value is not empty.
function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== '' && v !== undefined && v !== null).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

function link(ctx, rest, text) {
  return h('a', { href: `#/t/${encodeURIComponent(ctx.tenant)}/${rest}` }, text);
}

// button runs fn on click, disabled while it runs; fn's string is shown.
function button(label, fn, opts = {}) {
  const b = h('button', { type: 'button', class: opts.class, disabled: opts.disabled }, label);
  b.addEventListener('click', async () => {
    if (opts.confirm && !window.confirm(opts.confirm)) return;
    b.disabled = true;
    try {
      const msg = await fn();
      if (msg) notice(msg, 'ok');
    } catch (e) {
      notice(e.message, 'error');
    } finally {
      if (b.isConnected) b.disabled = false;
    }
  });
  return b;
}

// ---- Overview: the stats pictures ----

export const OUTCOMES = ['OUTCOME_SUCCESS', 'OUTCOME_FAILED', 'OUTCOME_TIMEOUT', 'OUTCOME_THROTTLED', 'OUTCOME_GONE', 'OUTCOME_UNREACHABLE'];

const int = (v) => Number(v || 0); // int64 fields are JSON strings

// statsCharts draws the DeliveryStats answer (GET /v1/tenants/{t}/stats).
export function statsCharts(stats, subNames) {
  const buckets = stats.buckets || [];
  const times = buckets.map((b) => new Date(b.start_time));
  const seen = new Set(OUTCOMES);
  for (const b of buckets) for (const k of Object.keys(b.attempts_by_outcome || {})) seen.add(k);
  const series = [...seen].filter((k) => buckets.some((b) => int((b.attempts_by_outcome || {})[k]) > 0));
  const outs = series.length ? series : ['OUTCOME_SUCCESS'];
  const q = stats.queue || {};
  const subs = (stats.subscriptions || []).map((s) => ({ label: subNames[s.subscription_id] || s.subscription_id, value: Number(s.success_rate || 0), s }));
  const lat = (k) => buckets.map((b) => (b.latency && b.latency[k] ? seconds(b.latency[k]) : null));
  const ms = (v) => (v >= 1 ? `${v.toFixed(1)}s` : v >= 0.01 ? `${Math.round(v * 1000)}ms` : `${(v * 1000).toFixed(1)}ms`);
  return h('div', { class: 'charts' },
    h('section', { class: 'card', 'aria-labelledby': 'c-queue' }, h('h2', { id: 'c-queue' }, 'Queue now'),
      h('dl', { class: 'stat-row' },
        h('div', null, h('dt', null, 'Waiting for a retry'), h('dd', { id: 'q-retry' }, String(int(q.waiting_retry)))),
        h('div', null, h('dt', null, 'Waiting for an agent'), h('dd', { id: 'q-agent' }, String(int(q.waiting_agent)))))),
    h('section', { class: 'card', 'aria-labelledby': 'c-out' }, h('h2', { id: 'c-out' }, 'Attempts per interval by outcome'),
      stackedBars('Attempts by outcome', buckets.map((b, i) => ({ time: times[i], values: Object.fromEntries(outs.map((k) => [enumName(k, 'OUTCOME_'), int((b.attempts_by_outcome || {})[k])])) })), outs.map((k) => enumName(k, 'OUTCOME_'))),
      legend(outs.map((k) => enumName(k, 'OUTCOME_')))),
    h('section', { class: 'card', 'aria-labelledby': 'c-lat' }, h('h2', { id: 'c-lat' }, 'Latency percentiles'),
      lines('Attempt latency', times, [{ name: 'p50', points: lat('p50') }, { name: 'p90', points: lat('p90') }, { name: 'p99', points: lat('p99') }], ms),
      legend(['p50', 'p90', 'p99'])),
    h('section', { class: 'card', 'aria-labelledby': 'c-qd' }, h('h2', { id: 'c-qd' }, 'Queue depth'),
      lines('Queue depth', times, [
        { name: 'waiting for retry', points: buckets.map((b) => (b.queue ? int(b.queue.waiting_retry) : null)) },
        { name: 'waiting for an agent', points: buckets.map((b) => (b.queue ? int(b.queue.waiting_agent) : null)) }], (v) => String(Math.round(v)), true),
      legend(['waiting for retry', 'waiting for an agent'])),
    h('section', { class: 'card wide', 'aria-labelledby': 'c-subs' }, h('h2', { id: 'c-subs' }, 'Success rate per subscription'),
      subs.length ? meters('Success rate per subscription', subs) : h('p', { class: 'muted' }, 'No attempts in this period.'),
      subs.length ? table(null, ['Subscription', 'Attempts', 'Succeeded', 'Retrying', 'Dead', 'Success', 'p50', 'p90', 'p99'], subs.map(({ label, s }) => h('tr', null,
        h('td', null, label), h('td', { class: 'num' }, String(int(s.attempts))), h('td', { class: 'num' }, String(int(s.succeeded))),
        h('td', { class: 'num' }, String(int(s.retrying))), h('td', { class: 'num' }, String(int(s.dead))),
        h('td', { class: 'num' }, `${(Number(s.success_rate || 0) * 100).toFixed(1)}%`),
        h('td', null, fmtDur(s.latency && s.latency.p50)), h('td', null, fmtDur(s.latency && s.latency.p90)), h('td', null, fmtDur(s.latency && s.latency.p99))))) : null));
}

export async function overview(ctx) {
  const range = ctx.query.get('range') === 'day' ? 'day' : 'hour';
  const now = Date.now();
  const span = range === 'day' ? 24 * 3600e3 : 3600e3;
  const step = range === 'day' ? '900s' : '60s';
  const pick = h('div', { class: 'seg', role: 'group', 'aria-label': 'Period' },
    h('a', { href: `#/t/${encodeURIComponent(ctx.tenant)}/overview?range=hour`, 'aria-current': range === 'hour' ? 'true' : null }, 'Last hour'),
    h('a', { href: `#/t/${encodeURIComponent(ctx.tenant)}/overview?range=day`, 'aria-current': range === 'day' ? 'true' : null }, 'Last day'));
  const body = h('div', { id: 'stats' }, h('p', { class: 'muted' }, 'Loading statistics…'));
  replace(ctx.main, h('h1', null, `Overview · ${ctx.tenant}`), pick, body);
  const subNames = {};
  try {
    const subs = await api('GET', tp(ctx.tenant, '/subscriptions?page_size=200'), undefined, ctx.signal);
    for (const s of subs.subscriptions || []) subNames[s.id] = s.description ? `${s.description} (${s.id})` : s.id;
  } catch { /* names are a nicety */ }
  try {
    const stats = await api('GET', tp(ctx.tenant, `/stats${qs({ start_time: new Date(now - span).toISOString(), end_time: new Date(now).toISOString(), step })}`), undefined, ctx.signal);
    replace(body, statsCharts(stats, subNames));
  } catch (e) {
    if (e.status === 404 && e.message === 'Not Found') { // the route itself is missing
      replace(body, h('p', { class: 'muted' }, 'This server does not serve statistics (GET /v1/tenants/{tenant}/stats).'));
    } else {
      replace(body, h('p', { class: 'error', role: 'alert' }, `Statistics: ${e.message}`));
    }
  }
  if (ctx.me.admin) {
    try {
      const c = await api('GET', '/v1/cluster', undefined, ctx.signal);
      body.appendChild(h('section', { class: 'card', 'aria-labelledby': 'c-cluster' }, h('h2', { id: 'c-cluster' }, 'Cluster'),
        table(null, ['Server', 'Address', 'Role', 'Applied', 'Lag'], (c.peers || []).map((p) => h('tr', null,
          h('td', null, p.id), h('td', null, p.address || ''), h('td', null, p.leader ? 'leader' : p.voter ? 'voter' : 'non-voter'),
          h('td', { class: 'num' }, String(p.applied_index || '')), h('td', { class: 'num' }, String(p.lag || '0'))))))); 
    } catch { /* not fatal */ }
  }
}

// ---- Subscriptions ----

function subStatus(s) {
  const n = enumName(s.status, 'SUBSCRIPTION_STATUS_');
  return badge(n || 'unknown', n);
}

export async function subscriptions(ctx) {
  if (ctx.id === 'new') return subscriptionForm(ctx, null);
  if (ctx.id) return subscription(ctx);
  const token = ctx.query.get('page_token') || '';
  const resp = await api('GET', tp(ctx.tenant, `/subscriptions${qs({ page_size: 50, page_token: token })}`), undefined, ctx.signal);
  const list = resp.subscriptions || [];
  replace(ctx.main, h('div', { class: 'head' }, h('h1', null, 'Subscriptions'),
    ctx.canWrite ? h('a', { class: 'btn primary', href: `#/t/${encodeURIComponent(ctx.tenant)}/subscriptions/new` }, 'New subscription') : null),
  list.length ? table(null, ['Subscription', 'Description', 'Event types', 'Target', 'Status'], list.map((s) => h('tr', null,
    h('td', null, link(ctx, `subscriptions/${encodeURIComponent(s.id)}`, s.id)),
    h('td', null, s.description || ''),
    h('td', null, (s.event_types || []).join(', ')),
    h('td', null, targetText(s.target)),
    h('td', null, subStatus(s), s.disabled_reason ? h('div', { class: 'waiting' }, s.disabled_reason) : null)))) : h('p', { class: 'muted' }, 'No subscriptions yet.'),
  resp.next_page_token ? h('p', null, link(ctx, `subscriptions?page_token=${encodeURIComponent(resp.next_page_token)}`, 'Next page →')) : null);
}

function targetText(t) {
  if (!t) return '';
  const url = t.config && t.config.url;
  return `${t.transport}${url ? `: ${url}` : ''}`;
}

function subscriptionForm(ctx, s) {
  const desc = h('input', { name: 'description', value: s ? s.description || '' : '' });
  const types = h('input', { name: 'event_types', value: s ? (s.event_types || []).join(', ') : '', required: true, placeholder: 'order.*, invoice.paid', spellcheck: 'false' });
  const transport = h('input', { name: 'transport', value: s ? s.target.transport : 'http', required: true, disabled: !!s, spellcheck: 'false' });
  const url = h('input', { name: 'url', type: 'url', value: s && s.target.config ? s.target.config.url || '' : '', required: true, placeholder: 'https://example.com/hook', spellcheck: 'false' });
  const filter = h('textarea', { name: 'filter', rows: '2', spellcheck: 'false' });
  filter.value = s ? s.filter || '' : '';
  const selector = h('input', { name: 'agent_selector', value: s ? s.agent_selector || '' : '', placeholder: 'region=eu-west', spellcheck: 'false' });
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'card form', 'aria-label': s ? 'Edit subscription' : 'New subscription' },
    field('Description', desc), field('Event types', types, 'Comma-separated names or patterns; "*" matches one or more segments.'),
    field('Transport', transport), field('URL', url),
    field('Filter (CEL, optional)', filter, 'e.g. payload.amount > 100'), field('Agent selector (optional)', selector, 'Kubernetes-style labels, e.g. region=eu-west'),
    err, h('button', { type: 'submit', class: 'primary' }, s ? 'Save changes' : 'Create subscription'));
  const secretBox = h('div');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const sub = {
      description: desc.value,
      event_types: types.value.split(',').map((x) => x.trim()).filter(Boolean),
      target: { transport: transport.value.trim(), config: { url: url.value.trim() } },
      filter: filter.value.trim(),
      agent_selector: selector.value.trim(),
    };
    try {
      if (s) {
        await api('PATCH', tp(ctx.tenant, `/subscriptions/${encodeURIComponent(s.id)}?update_mask=description,event_types,target.config.url,filter,agent_selector`), { ...sub, target: { config: { url: sub.target.config.url } } });
        notice('Saved.', 'ok');
        await subscriptions(ctx);
      } else {
        const created = await api('POST', tp(ctx.tenant, '/subscriptions'), sub);
        if (created.signing_secret) flash(`Subscription created. Signing secret (shown once, store it now): ${created.signing_secret}`, 'secret');
        location.hash = `#/t/${encodeURIComponent(ctx.tenant)}/subscriptions/${encodeURIComponent(created.id)}`;
      }
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
  if (s) return form;
  replace(ctx.main, h('p', null, link(ctx, 'subscriptions', '← Subscriptions')), h('h1', null, 'New subscription'), form, secretBox);
  desc.focus();
  return form;
}

async function subscription(ctx) {
  const base = tp(ctx.tenant, `/subscriptions/${encodeURIComponent(ctx.id)}`);
  const s = await api('GET', base, undefined, ctx.signal);
  const again = () => subscriptions(ctx);
  const paused = s.status === 'SUBSCRIPTION_STATUS_PAUSED' || s.status === 'SUBSCRIPTION_STATUS_DISABLED';
  const w = !ctx.canWrite;
  const testType = h('input', { name: 'test_type', value: (s.event_types || []).find((t) => !t.includes('*')) || ((s.event_types || [])[0] || 'console.test').replace(/\*/g, 'test'), spellcheck: 'false' });
  const testPayload = h('textarea', { name: 'test_payload', rows: '3', spellcheck: 'false' });
  testPayload.value = '{"test": true}';
  const since = h('input', { type: 'datetime-local', name: 'since' });
  const scope = h('select', { name: 'scope' }, h('option', { value: 'RECOVER_SCOPE_FAILED' }, 'failed (dead and cancelled)'), h('option', { value: 'RECOVER_SCOPE_ALL' }, 'all, including succeeded'));
  const progress = h('progress', { max: '1', value: '0', 'aria-label': 'Recover progress', hidden: true });
  const progressText = h('span', { class: 'muted', role: 'status' });
  replace(ctx.main,
    h('p', null, link(ctx, 'subscriptions', '← Subscriptions')),
    h('h1', null, s.description || 'Subscription', ' ', h('code', null, s.id)),
    kv([
      ['Status', [subStatus(s), s.disabled_reason ? ` ${s.disabled_reason}` : '']],
      ['Event types', (s.event_types || []).join(', ')],
      ['Target', targetText(s.target)],
      ['Headers', Object.keys((s.target && s.target.headers) || {}).map((k) => `${k}: <redacted>`).join(', ')],
      ['Filter', s.filter],
      ['Agent selector', s.agent_selector],
      ['Signature', enumName(s.signature_scheme, 'SIGNATURE_SCHEME_')],
      ['Signing public key', s.signing_public_key],
      ['Circuit', enumName(s.circuit_state, 'CIRCUIT_STATE_')],
      ['Failing since', fmtTime(s.failing_since)],
      ['Created', fmtTime(s.create_time)],
      ['Updated', fmtTime(s.update_time)],
    ]),
    h('div', { class: 'actions' },
      paused ? button('Resume', async () => { await api('POST', `${base}:resume`, {}); await again(); return 'Resumed.'; }, { disabled: w })
        : button('Pause', async () => { await api('POST', `${base}:pause`, {}); await again(); return 'Paused: deliveries wait until you resume.'; }, { disabled: w }),
      button('Rotate secret', async () => {
        const r = await api('POST', `${base}:rotateSecret`, {});
        await again();
        const sec = r.subscription && (r.subscription.signing_secret || r.subscription.signing_public_key);
        return `New ${r.subscription && r.subscription.signing_secret ? 'signing secret (shown once, store it now)' : 'public key'}: ${sec}. Previous keys sign until ${fmtTime(r.previous_keys_expire_time)}.`;
      }, { disabled: w, confirm: 'Rotate the signing secret? The old one keeps signing during the overlap (24h).' }),
      h('a', { class: 'btn', href: `#/t/${encodeURIComponent(ctx.tenant)}/deliveries?subscription_id=${encodeURIComponent(s.id)}` }, 'Deliveries'),
      h('a', { class: 'btn', href: `#/t/${encodeURIComponent(ctx.tenant)}/live?subscription_id=${encodeURIComponent(s.id)}` }, 'Live')),
    h('h2', null, 'Edit'),
    w ? h('p', { class: 'muted' }, 'This key is read-only.') : subscriptionForm(ctx, s),
    h('h2', null, 'Test-send an event'),
    h('form', { class: 'card form', id: 'test-send', 'aria-label': 'Test-send an event' },
      field('Event type', testType, 'Sent to this subscription only, whatever its types and filter say; no other subscription gets it.'),
      field('Payload (JSON)', testPayload),
      button('Send test event', async () => {
        try { JSON.parse(testPayload.value); } catch (e) { throw new Error(`Payload is not JSON: ${e.message}`); }
        const r = await api('POST', `${base}:sendTestEvent`, { event_type: testType.value.trim(), payload: testPayload.value });
        location.hash = `#/t/${encodeURIComponent(ctx.tenant)}/deliveries/${encodeURIComponent(r.delivery.id)}`;
        return `Test event ${r.event_id} sent.`;
      }, { disabled: !ctx.canWrite, class: 'primary' })),
    h('h2', null, 'Recover'),
    h('form', { class: 'card form', 'aria-label': 'Recover deliveries' },
      h('p', { class: 'muted' }, 'Send again the deliveries created since a time.'),
      field('Since', since), field('Which', scope),
      button('Recover', async () => {
        const start = toRFC3339(since.value);
        if (!start) throw new Error('Since: pick a date and time.');
        const op = await api('POST', `${base}:recover`, { start_time: start, scope: scope.value });
        progress.hidden = false;
        const show = (o) => {
          const total = Number(o.total || 0), done = Number(o.processed || 0);
          progress.max = total || 1;
          progress.value = o.done ? progress.max : done;
          progressText.textContent = o.error ? `Failed: ${o.error}` : `${o.done ? 'Done' : 'Working'}: ${done}${total ? ` of ${total}` : ''} examined, ${Number(o.requeued || 0)} re-queued.`;
        };
        show(op);
        if (!op.done) await stream(tp(ctx.tenant, `/operations/${encodeURIComponent(op.id)}:watch`), show, ctx.signal);
        return '';
      }, { disabled: w }),
      progress, ' ', progressText));
}

// ---- Events ----

export async function events(ctx) {
  if (ctx.id) return eventDetail(ctx);
  const typ = ctx.query.get('event_type') || '';
  const token = ctx.query.get('page_token') || '';
  const typeIn = h('input', { name: 'event_type', value: typ, placeholder: 'order.*', spellcheck: 'false' });
  const form = h('form', { class: 'filters', 'aria-label': 'Filter events' }, field('Event type', typeIn), h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Apply')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = `#/t/${encodeURIComponent(ctx.tenant)}/events${qs({ event_type: typeIn.value.trim() })}`;
  });
  const resp = await api('GET', tp(ctx.tenant, `/events${qs({ event_type: typ, page_size: 50, page_token: token })}`), undefined, ctx.signal);
  const list = resp.events || [];
  replace(ctx.main, h('h1', null, 'Events'), form,
    list.length ? table(null, ['Event', 'Type', 'Received', 'Content type'], list.map((ev) => h('tr', null,
      h('td', null, link(ctx, `events/${encodeURIComponent(ev.id)}`, ev.id)), h('td', null, ev.type),
      h('td', null, fmtTime(ev.receive_time)), h('td', null, ev.content_type || 'application/json')))) : h('p', { class: 'muted' }, 'No events on this page.'),
    resp.next_page_token ? h('p', null, link(ctx, `events${qs({ event_type: typ, page_token: resp.next_page_token })}`, 'Next page →')) : null);
}

async function eventDetail(ctx) {
  const r = await api('GET', tp(ctx.tenant, `/events/${encodeURIComponent(ctx.id)}`), undefined, ctx.signal);
  const ev = r.event || {};
  const ct = ev.content_type || 'application/json';
  let payload;
  if (/json/.test(ct)) {
    payload = JSON.stringify(ev.payload, null, 2);
  } else {
    payload = `(base64, ${ct})\n${ev.payload || ''}`;
  }
  replace(ctx.main,
    h('p', null, link(ctx, 'events', '← Events')),
    h('h1', null, 'Event ', h('code', null, ev.id)),
    h('dl', { class: 'kv' },
      h('dt', null, 'Type'), h('dd', null, ev.type),
      h('dt', null, 'Received'), h('dd', null, fmtTime(ev.receive_time)),
      h('dt', null, 'Content type'), h('dd', null, ct),
      ev.idempotency_key ? [h('dt', null, 'Idempotency key'), h('dd', null, ev.idempotency_key)] : null,
      ev.ordering_key ? [h('dt', null, 'Ordering key'), h('dd', null, ev.ordering_key)] : null,
      Object.keys(ev.metadata || {}).length ? [h('dt', null, 'Metadata'), h('dd', null, Object.entries(ev.metadata).map(([k, v]) => `${k}=${v}`).join(', '))] : null),
    h('h2', null, 'Payload'),
    h('pre', { class: 'body', id: 'payload', tabindex: '0' }, payload),
    h('h2', null, 'Matched subscriptions'),
    (r.deliveries || []).length ? table(null, ['Delivery', 'Subscription', 'Status', 'Attempts', 'How'], r.deliveries.map((d) => h('tr', null,
      h('td', null, link(ctx, `deliveries/${encodeURIComponent(d.delivery_id)}`, d.delivery_id)),
      h('td', null, link(ctx, `subscriptions/${encodeURIComponent(d.subscription_id)}`, d.subscription_id)),
      h('td', null, enumName(d.status, 'DELIVERY_STATUS_')), h('td', { class: 'num' }, String(d.attempt_count || 0)),
      h('td', null, d.resent ? 'resent later' : 'matched at publish')))) : h('p', { class: 'muted' }, 'No subscription matched.'),
    r.deliveries_truncated ? h('p', { class: 'muted' }, 'More deliveries exist: see Deliveries filtered by this event.') : null,
    h('h2', null, 'Not matched, and why'),
    (r.unmatched_subscriptions || []).length ? table(null, ['Subscription', 'Reason', 'Detail'], r.unmatched_subscriptions.map((u) => h('tr', null,
      h('td', null, link(ctx, `subscriptions/${encodeURIComponent(u.subscription_id)}`, u.subscription_id)),
      h('td', null, enumName(u.reason, 'NO_MATCH_REASON_'), u.changed_since_event ? ' (changed since)' : ''),
      h('td', null, u.detail || '')))) : h('p', { class: 'muted' }, 'Every subscription matched.'),
    h('p', null, link(ctx, `deliveries?event_id=${encodeURIComponent(ev.id)}`, 'All deliveries of this event →')));
}

// ---- Tenants (admin) ----

export async function tenants(ctx) {
  const token = ctx.query.get('page_token') || '';
  const resp = await api('GET', `/v1/tenants${qs({ page_size: 100, page_token: token })}`, undefined, ctx.signal);
  const id = h('input', { name: 'id', required: true, pattern: '[a-z0-9-]+', spellcheck: 'false' });
  const name = h('input', { name: 'display_name' });
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'card form', 'aria-label': 'New tenant' }, field('Tenant id', id, 'Lower-case letters, digits and dashes.'), field('Display name', name), err,
    h('button', { type: 'submit', class: 'primary' }, 'Create tenant'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const t = await api('POST', '/v1/tenants', { id: id.value.trim(), display_name: name.value });
      location.hash = `#/t/${encodeURIComponent(t.id)}/overview`;
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
  replace(ctx.main, h('h1', null, 'Tenants'),
    table(null, ['Tenant', 'Name', 'Created'], (resp.tenants || []).map((t) => h('tr', null,
      h('td', null, h('a', { href: `#/t/${encodeURIComponent(t.id)}/overview` }, t.id)), h('td', null, t.display_name || ''), h('td', null, fmtTime(t.create_time))))),
    resp.next_page_token ? h('p', null, h('a', { href: `#/tenants?page_token=${encodeURIComponent(resp.next_page_token)}` }, 'Next page →')) : null,
    h('h2', null, 'New tenant'), form);
}

// ---- Agents and join tokens (admin) ----

export async function agents(ctx) {
  const [ag, jt] = await Promise.all([api('GET', '/v1/agents', undefined, ctx.signal), api('GET', '/v1/join-tokens', undefined, ctx.signal)]);
  const again = () => agents(ctx);
  const list = ag.agents || [];
  const labels = (m) => Object.entries(m || {}).map(([k, v]) => `${k}=${v}`).join(', ');
  const tokName = h('input', { name: 'name', required: true });
  const tokLabels = h('input', { name: 'labels', placeholder: 'region=eu-west, tier=edge', spellcheck: 'false' });
  const tokOut = h('div', { role: 'status' });
  const tokForm = h('form', { class: 'card form', 'aria-label': 'New join token' }, field('Name', tokName), field('Labels agents must carry', tokLabels), tokOut,
    h('button', { type: 'submit', class: 'primary' }, 'Create join token'));
  tokForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const lab = {};
    for (const part of tokLabels.value.split(',').map((x) => x.trim()).filter(Boolean)) {
      const [k, ...v] = part.split('=');
      lab[k.trim()] = v.join('=').trim();
    }
    try {
      const t = await api('POST', '/v1/join-tokens', { name: tokName.value.trim(), labels: lab });
      await again();
      notice(`Join token ${t.id} (shown once, store it now): ${t.token}`, 'secret');
    } catch (ex) {
      replace(tokOut, h('p', { class: 'error' }, ex.message));
    }
  });
  replace(ctx.main, h('h1', null, 'Agents'),
    list.length ? table(null, ['Agent', 'State', 'Labels', 'Transports', 'In flight', 'Credit', 'Last heartbeat', 'Version', ''], list.map((a) => {
      const st = enumName(a.state, 'AGENT_STATE_');
      return h('tr', null, h('td', null, a.id), h('td', null, badge(st, st)), h('td', null, labels(a.labels)),
        h('td', null, (a.transports || []).join(', ')), h('td', { class: 'num' }, String(a.in_flight || 0)), h('td', { class: 'num' }, String(a.credit || 0)),
        h('td', null, fmtTime(a.last_seen_time)), h('td', null, a.version || ''),
        h('td', null, st === 'connected' ? button('Drain', async () => {
          await api('POST', `/v1/agents/${encodeURIComponent(a.id)}:drain`, { reason: 'drained from the console' });
          return `Agent ${a.id} is draining: it finishes what it holds, then disconnects.`;
        }, { confirm: `Drain agent ${a.id}? It stops taking work and disconnects.` }) : ''));
    })) : h('p', { class: 'muted' }, 'No agent is connected.'),
    h('h2', null, 'Join tokens'),
    (jt.join_tokens || []).length ? table(null, ['Token', 'Name', 'Labels', 'Created', 'Expires', 'State', ''], jt.join_tokens.map((t) => h('tr', null,
      h('td', null, t.id), h('td', null, t.name || ''), h('td', null, labels(t.labels)), h('td', null, fmtTime(t.create_time)), h('td', null, fmtTime(t.expire_time) || 'never'),
      h('td', null, t.revoked ? 'revoked' : 'valid'),
      h('td', null, t.revoked ? '' : button('Revoke', async () => { await api('POST', `/v1/join-tokens/${encodeURIComponent(t.id)}:revoke`, {}); await again(); return `Revoked ${t.id}.`; }, { confirm: `Revoke ${t.id}? Agents that joined with it are disconnected.` }))))) : h('p', { class: 'muted' }, 'No join tokens.'),
    tokForm);
}
