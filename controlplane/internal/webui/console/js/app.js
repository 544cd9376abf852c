// The console's entry point: sign-in, navigation and the hash router.
// Routes (the key is never in a URL):
//   #/tenants  #/agents
//   #/t/<tenant>/overview | subscriptions[/<id>|/new] | deliveries[/<id>] | live | events[/<id>]
import { h, replace, notice, takeFlash } from './dom.js';
import { session, ApiError } from './api.js';
import * as views from './views.js';
import * as deliveries from './deliveries.js';

const state = { me: null, tenant: '', abort: null };

const routes = {
  overview: views.overview,
  subscriptions: views.subscriptions,
  deliveries: deliveries.deliveries,
  live: deliveries.live,
  events: views.events,
};

function main() { return document.getElementById('main'); }

function signInForm(message) {
  state.me = null;
  replace(document.getElementById('nav'));
  replace(document.getElementById('who'));
  const key = h('input', { type: 'password', name: 'key', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const tenant = h('input', { type: 'text', name: 'tenant', autocomplete: 'organization', spellcheck: 'false' });
  const err = h('p', { class: 'error', role: 'alert' }, message || '');
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-h' },
    h('h1', { id: 'signin-h' }, 'Sign in'),
    h('p', { class: 'muted' }, 'Sign in with a Hookwire API key. The console can see and do exactly what the key can.'),
    h('div', { class: 'field' }, h('label', { for: 'key' }, 'API key'), Object.assign(key, { id: 'key' })),
    h('div', { class: 'field' }, h('label', { for: 'tenant' }, 'Tenant'), Object.assign(tenant, { id: 'tenant' }),
      h('small', { class: 'hint' }, 'Optional: where the console opens with the admin key. A tenant key opens its own tenant.')),
    err,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    try {
      const me = await session('POST', { key: key.value, tenant: tenant.value });
      key.value = '';
      await signedIn(me, tenant.value.trim());
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
  replace(main(), form);
  key.focus();
}

async function signedIn(me, tenant) {
  state.me = me;
  state.tenant = me.tenant || tenant || localStorage.getItem('hw-tenant') || '';
  const out = h('button', { type: 'button', class: 'link' }, 'Sign out');
  out.addEventListener('click', async () => {
    try { await session('DELETE'); } catch { /* signed out anyway */ }
    location.hash = '';
    signInForm('Signed out.');
  });
  replace(document.getElementById('who'),
    h('span', { class: 'muted' }, me.admin ? 'admin key' : `${me.tenant} · ${me.scope.replace('API_KEY_SCOPE_', '').toLowerCase().replace('_', '-')}`), ' ', out);
  if (!location.hash || location.hash === '#/' || location.hash === '#') {
    location.hash = state.tenant ? `#/t/${encodeURIComponent(state.tenant)}/overview` : '#/tenants';
  } else {
    route();
  }
}

function nav(active) {
  const links = [];
  const t = state.tenant;
  if (t) {
    for (const [name, label] of [['overview', 'Overview'], ['subscriptions', 'Subscriptions'], ['deliveries', 'Deliveries'], ['live', 'Live'], ['events', 'Events']]) {
      links.push([`#/t/${encodeURIComponent(t)}/${name}`, label, name]);
    }
  }
  if (state.me && state.me.admin) {
    links.push(['#/tenants', 'Tenants', 'tenants']);
    links.push(['#/agents', 'Agents', 'agents']);
  }
  replace(document.getElementById('nav'), h('ul', null, links.map(([href, label, name]) =>
    h('li', null, h('a', { href, 'aria-current': name === active ? 'page' : null }, label)))));
}

async function route() {
  if (!state.me) return;
  if (state.abort) state.abort.abort();
  state.abort = new AbortController();
  const { signal } = state.abort;
  const raw = location.hash.replace(/^#\/?/, '');
  const [pathPart, queryPart] = raw.split('?');
  const parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(queryPart || '');
  let view, ctx;
  if (parts[0] === 't' && parts[1]) {
    if (!state.me.admin && parts[1] !== state.me.tenant) {
      location.hash = `#/t/${encodeURIComponent(state.me.tenant)}/overview`;
      return;
    }
    state.tenant = parts[1];
    if (state.me.admin) localStorage.setItem('hw-tenant', state.tenant);
    const name = parts[2] || 'overview';
    view = routes[name];
    ctx = { name, tenant: state.tenant, id: parts[3] || '', query, me: state.me, signal };
  } else if (parts[0] === 'tenants' && state.me.admin) {
    view = views.tenants;
    ctx = { name: 'tenants', query, me: state.me, signal };
  } else if (parts[0] === 'agents' && state.me.admin) {
    view = views.agents;
    ctx = { name: 'agents', query, me: state.me, signal };
  }
  nav(ctx ? ctx.name : '');
  const f = takeFlash();
  notice(f ? f.text : '', f && f.kind);
  const m = main();
  if (!view) {
    replace(m, h('h1', null, 'Not found'), h('p', null, 'This page does not exist. Pick a section above.'));
    return;
  }
  ctx.main = m;
  ctx.canWrite = state.me.admin || state.me.scope === 'API_KEY_SCOPE_TENANT_ADMIN';
  replace(m, h('p', { class: 'muted' }, 'Loading…'));
  try {
    await view(ctx);
  } catch (e) {
    if (signal.aborted) return;
    if (e instanceof ApiError && e.status === 401) return;
    replace(m, h('h1', null, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, e.message));
  }
}

window.addEventListener('hashchange', route);
window.addEventListener('hw-unauthenticated', () => signInForm('Your session ended: sign in again.'));

async function start() {
  try {
    const me = await session('GET');
    await signedIn(me, '');
  } catch {
    signInForm('');
  }
}

start();
