// The tenant portal: one customer's webhook endpoints, through the REST
// API with the session's portal token. Everything shown comes from the
// API and goes into the page as text (textContent, input values): never
// as HTML.

const token = location.pathname.slice("/portal/".length);
// The token lives in memory only: out of the address bar, the history and
// any later Referer.
history.replaceState(null, "", "/portal/");

const app = document.getElementById("app");
const statusLine = document.getElementById("status");
let ctx = null; // the portal context: session, settings, event types

// el builds an element: attrs are properties (text, className, ...) or
// attributes ("aria-*", "for", "data-*"); children are nodes or strings
// (added as text).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k.includes("-") || k === "for" || k === "role") e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

function say(msg, bad = false) {
  statusLine.textContent = msg;
  statusLine.classList.toggle("bad", bad);
}

class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token }, referrerPolicy: "no-referrer", credentials: "omit" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { message: text }; }
  if (!resp.ok) {
    if (resp.status === 401) showGone();
    throw new APIError(resp.status, data.message || resp.statusText);
  }
  return data;
}

function showGone() {
  app.replaceChildren(el("h2", { text: "This link is no longer valid" }),
    el("p", { text: "Go back to the application you came from and open the webhook settings again." }));
}

const can = (f) => (ctx.session.features || []).includes(f);
const tenantPath = () => "/v1/tenants/" + encodeURIComponent(ctx.session.tenant);

function applyTheme() {
  const root = document.documentElement;
  const primary = root.dataset.primary;
  if (primary && /^#[0-9a-fA-F]{6}$/.test(primary)) {
    // CSSOM, which the page's style-src 'self' allows.
    root.style.setProperty("--primary", primary);
    // Text on the accent colour: black or white, whichever contrasts more
    // (WCAG relative luminance).
    const lin = (i) => { const c = parseInt(primary.slice(i, i + 2), 16) / 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    const lum = 0.2126 * lin(1) + 0.7152 * lin(3) + 0.0722 * lin(5);
    root.style.setProperty("--on-primary", (lum + 0.05) / 0.05 > 1.05 / (lum + 0.05) ? "#000000" : "#ffffff");
  }
}

async function start() {
  applyTheme();
  if (!token) { showGone(); return; }
  try {
    ctx = await api("GET", "/v1/portal/context");
  } catch (e) {
    if (e.status !== 401) say("Cannot load the portal: " + e.message, true);
    return;
  }
  await showEndpoints();
}

async function listEndpoints() {
  let out = [], page = "";
  do {
    const q = "?page_size=1000" + (page ? "&page_token=" + encodeURIComponent(page) : "");
    const r = await api("GET", tenantPath() + "/subscriptions" + q);
    out = out.concat(r.subscriptions || []);
    page = r.next_page_token || "";
  } while (page);
  return out;
}

const urlOf = (sub) => (sub.target && sub.target.config && sub.target.config.url) || "";
const statusText = (s) => ({ SUBSCRIPTION_STATUS_ENABLED: "Enabled", SUBSCRIPTION_STATUS_PAUSED: "Paused", SUBSCRIPTION_STATUS_DISABLED: "Disabled" })[s] || "Unknown";

async function showEndpoints() {
  app.setAttribute("aria-busy", "true");
  let subs;
  try {
    subs = await listEndpoints();
  } catch (e) {
    say("Cannot list endpoints: " + e.message, true);
    return;
  }
  const list = el("ul", { className: "endpoints", "aria-label": "Endpoints" });
  for (const sub of subs) list.append(endpointItem(sub));
  const head = el("div", { className: "row" }, el("h2", { text: "Endpoints" }),
    can("endpoints.write") ? el("button", { type: "button", className: "primary", id: "add-endpoint", text: "Add endpoint", onclick: () => showForm(null) }) : null);
  const empty = subs.length === 0 ? el("p", { className: "muted", text: "No endpoints yet." }) : null;
  app.replaceChildren(head, empty, list);
  app.setAttribute("aria-busy", "false");
}

function endpointItem(sub) {
  const actions = el("div", { className: "actions" },
    el("button", { type: "button", text: "Deliveries", onclick: () => showDeliveries(sub) }),
    can("events.test") ? el("button", { type: "button", text: "Send test event", onclick: () => showTest(sub) }) : null,
    can("endpoints.write") ? el("button", { type: "button", text: "Edit", onclick: () => showForm(sub) }) : null,
    can("endpoints.write") ? el("button", { type: "button", text: sub.status === "SUBSCRIPTION_STATUS_ENABLED" ? "Pause" : "Resume", onclick: () => setPaused(sub, sub.status === "SUBSCRIPTION_STATUS_ENABLED") }) : null,
    can("secrets.rotate") ? el("button", { type: "button", text: "Rotate secret", onclick: () => rotate(sub) }) : null,
    can("endpoints.write") ? el("button", { type: "button", className: "danger", text: "Delete", onclick: () => remove(sub) }) : null);
  return el("li", { className: "card endpoint", "data-id": sub.id },
    el("div", { className: "url", text: urlOf(sub) || "(" + ((sub.target && sub.target.transport) || "?") + " endpoint)" }),
    sub.description ? el("p", { className: "description", text: sub.description }) : null,
    el("p", { className: "meta" },
      el("span", { className: "badge " + (sub.status || "").toLowerCase(), text: statusText(sub.status) }), " ",
      el("span", { text: "Events: " + (sub.event_types || []).join(", ") })),
    actions);
}

// eventTypePicker offers the catalog's types as checkboxes (and "all").
function eventTypePicker(selected) {
  const box = el("fieldset", { className: "types" }, el("legend", { text: "Events to receive" }));
  const types = [{ name: "*", description: "All events" }].concat(ctx.event_types || []);
  for (const t of types) {
    const id = "type-" + t.name.replace(/[^A-Za-z0-9_-]/g, "_");
    box.append(el("div", { className: "check" },
      el("input", { type: "checkbox", id, value: t.name, checked: selected.includes(t.name) }),
      el("label", { for: id }, el("code", { text: t.name }), t.description ? " — " + t.description : "")));
  }
  const other = selected.filter((n) => !types.some((t) => t.name === n));
  box.append(el("label", { for: "type-other", text: "Other types (comma-separated)" }),
    el("input", { type: "text", id: "type-other", value: other.join(", "), autocomplete: "off" }));
  box.read = () => {
    const picked = [...box.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value);
    const extra = box.querySelector("#type-other").value.split(",").map((s) => s.trim()).filter(Boolean);
    return [...new Set(picked.concat(extra))];
  };
  return box;
}

function showForm(sub) {
  const editing = sub !== null;
  const url = el("input", { type: "url", id: "ep-url", required: true, value: editing ? urlOf(sub) : "", placeholder: "https://example.com/webhooks", autocomplete: "url" });
  const desc = el("input", { type: "text", id: "ep-desc", value: editing ? sub.description || "" : "", maxLength: 1000 });
  const types = eventTypePicker(editing ? sub.event_types || [] : ["*"]);
  const form = el("form", { className: "card form", "aria-label": editing ? "Edit endpoint" : "Add endpoint", noValidate: false },
    el("h2", { text: editing ? "Edit endpoint" : "Add endpoint" }),
    el("label", { for: "ep-url", text: "Endpoint URL" }), url,
    el("label", { for: "ep-desc", text: "Description" }), desc,
    types,
    el("div", { className: "actions" },
      el("button", { type: "submit", className: "primary", id: "save-endpoint", text: editing ? "Save" : "Create" }),
      el("button", { type: "button", text: "Cancel", onclick: showEndpoints })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const eventTypes = types.read();
    if (eventTypes.length === 0) { say("Pick at least one event type.", true); return; }
    const body = { description: desc.value, event_types: eventTypes, target: { transport: "http", config: { url: url.value } } };
    try {
      if (editing) {
        await api("PATCH", tenantPath() + "/subscriptions/" + encodeURIComponent(sub.id) + "?update_mask=description,event_types,target.config.url", body);
        say("Endpoint saved.");
        await showEndpoints();
      } else {
        const made = await api("POST", tenantPath() + "/subscriptions", body);
        say("Endpoint created.");
        await showEndpoints();
        showSecret(made.signing_secret, "Endpoint created");
      }
    } catch (e) {
      say("Cannot save the endpoint: " + e.message, true);
    }
  });
  app.replaceChildren(form);
  url.focus();
}

// showSecret shows a signing secret once, with a copy button.
function showSecret(secret, heading) {
  if (!secret) return;
  const value = el("input", { type: "text", id: "secret-value", readOnly: true, value: secret, "aria-label": "Signing secret" });
  const box = el("section", { className: "card secret", id: "secret", "aria-labelledby": "secret-title", tabIndex: -1 },
    el("h2", { id: "secret-title", text: heading + ": your signing secret" }),
    el("p", { text: "Copy it now: it is shown only once. Use it to verify the webhook-signature header of each delivery." }),
    value,
    el("div", { className: "actions" },
      el("button", { type: "button", className: "primary", id: "copy-secret", text: "Copy", onclick: async () => {
        try { await navigator.clipboard.writeText(secret); say("Secret copied."); } catch { value.select(); say("Press Ctrl+C to copy the selected secret."); }
      } }),
      el("button", { type: "button", text: "Done", onclick: () => { box.remove(); } })));
  app.prepend(box);
  box.focus();
}

// ask shows a confirmation in the page (browsers may block confirm() in a
// frame of another origin) and resolves to the answer.
function ask(question, yes, danger = false) {
  return new Promise((resolve) => {
    const previous = document.activeElement;
    const finish = (answer) => { box.remove(); if (previous && previous.focus) previous.focus(); resolve(answer); };
    const box = el("section", { className: "card confirm", id: "confirm", role: "alertdialog", "aria-labelledby": "confirm-text", tabIndex: -1 },
      el("p", { id: "confirm-text", text: question }),
      el("div", { className: "actions" },
        el("button", { type: "button", id: "confirm-yes", className: danger ? "danger" : "primary", text: yes, onclick: () => finish(true) }),
        el("button", { type: "button", id: "confirm-no", text: "Cancel", onclick: () => finish(false) })));
    box.addEventListener("keydown", (ev) => { if (ev.key === "Escape") finish(false); });
    const old = document.getElementById("confirm");
    if (old) old.remove();
    app.prepend(box);
    box.querySelector("#confirm-no").focus();
  });
}

async function setPaused(sub, pause) {
  try {
    await api("POST", tenantPath() + "/subscriptions/" + encodeURIComponent(sub.id) + (pause ? ":pause" : ":resume"), {});
    say(pause ? "Endpoint paused: deliveries wait until you resume it." : "Endpoint resumed.");
    await showEndpoints();
  } catch (e) {
    say("Cannot " + (pause ? "pause" : "resume") + ": " + e.message, true);
  }
}

async function remove(sub) {
  if (!await ask("Delete the endpoint " + (urlOf(sub) || sub.id) + "? Its pending deliveries are cancelled.", "Delete", true)) return;
  try {
    await api("DELETE", tenantPath() + "/subscriptions/" + encodeURIComponent(sub.id));
    say("Endpoint deleted.");
    await showEndpoints();
  } catch (e) {
    say("Cannot delete: " + e.message, true);
  }
}

async function rotate(sub) {
  if (!await ask("Rotate the signing secret? The old one keeps working for a while, so you can switch.", "Rotate")) return;
  try {
    const r = await api("POST", tenantPath() + "/subscriptions/" + encodeURIComponent(sub.id) + ":rotateSecret", {});
    await showEndpoints();
    showSecret(r.subscription && r.subscription.signing_secret, "Secret rotated");
  } catch (e) {
    say("Cannot rotate: " + e.message, true);
  }
}

function showTest(sub) {
  const types = ctx.event_types || [];
  if (types.length === 0) { say("There are no event types to send yet.", true); return; }
  const select = el("select", { id: "test-type" });
  for (const t of types) select.append(el("option", { value: t.name, text: t.name }));
  const payload = el("textarea", { id: "test-payload", rows: 8, spellcheck: false });
  const desc = el("p", { className: "muted", id: "test-type-desc" });
  const fill = () => {
    const t = types.find((x) => x.name === select.value) || {};
    payload.value = t.example_payload || "{}";
    desc.textContent = t.description || "";
  };
  select.addEventListener("change", fill);
  fill();
  const form = el("form", { className: "card form", "aria-label": "Send test event" },
    el("h2", { text: "Send a test event" }),
    el("p", { className: "url", text: urlOf(sub) }),
    el("label", { for: "test-type", text: "Event type" }), select, desc,
    el("label", { for: "test-payload", text: "Payload (JSON)" }), payload,
    el("div", { className: "actions" },
      el("button", { type: "submit", className: "primary", id: "send-test", text: "Send" }),
      el("button", { type: "button", text: "Back", onclick: showEndpoints })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", tenantPath() + "/subscriptions/" + encodeURIComponent(sub.id) + ":sendTestEvent", { event_type: select.value, payload: payload.value });
      say("Test event sent.");
      await showDeliveries(sub);
    } catch (e) {
      say("Cannot send: " + e.message, true);
    }
  });
  app.replaceChildren(form);
  select.focus();
}

// latencyText renders a JSON duration ("0.001020907s") for people: "1.0 ms",
// "250 ms", "2.41 s".
function latencyText(d) {
  const sec = parseFloat(d);
  if (!d || Number.isNaN(sec)) return "—";
  if (sec < 0.01) return (sec * 1000).toFixed(1) + " ms";
  if (sec < 1) return Math.round(sec * 1000) + " ms";
  return sec.toFixed(2) + " s";
}

const outcomeText = (o) => (o || "").replace(/^OUTCOME_/, "").toLowerCase().replace(/_/g, " ");
const deliveryStatus = (s) => (s || "").replace(/^DELIVERY_STATUS_/, "").toLowerCase();

async function showDeliveries(sub) {
  const back = el("button", { type: "button", text: "Back to endpoints", onclick: showEndpoints });
  const refresh = el("button", { type: "button", id: "refresh-deliveries", text: "Refresh", onclick: () => showDeliveries(sub) });
  const table = el("table", { className: "deliveries" },
    el("caption", { text: "Recent deliveries to " + (urlOf(sub) || sub.id) }),
    el("thead", {}, el("tr", {}, ...["Event", "Status", "Response", "Latency", "Time", ""].map((h) => el("th", { scope: "col", text: h })))));
  const body = el("tbody");
  table.append(body);
  app.replaceChildren(el("div", { className: "row" }, el("h2", { text: "Deliveries" }), el("div", { className: "actions" }, refresh, back)), el("div", { className: "scroll" }, table));
  let list;
  try {
    list = await api("GET", tenantPath() + "/deliveries?page_size=20&subscription_id=" + encodeURIComponent(sub.id));
  } catch (e) {
    say("Cannot list deliveries: " + e.message, true);
    return;
  }
  const dels = list.deliveries || [];
  if (dels.length === 0) body.append(el("tr", {}, el("td", { colSpan: 6, className: "muted", text: "No deliveries yet." })));
  // The attempts of every delivery, fetched in parallel.
  const attemptsOf = await Promise.all(dels.map((d) =>
    api("GET", tenantPath() + "/deliveries/" + encodeURIComponent(d.id) + "/attempts").then((r) => r.attempts || [], () => [])));
  dels.forEach((d, i) => {
    const attempts = attemptsOf[i];
    const last = attempts[attempts.length - 1];
    const resend = can("deliveries.resend") ? el("button", { type: "button", className: "resend", text: "Resend", "aria-label": "Resend event " + d.event_id, onclick: async () => {
      try {
        await api("POST", tenantPath() + "/events/" + encodeURIComponent(d.event_id) + ":resend", { subscription_id: sub.id });
        say("Event resent.");
        await showDeliveries(sub);
      } catch (e) { say("Cannot resend: " + e.message, true); }
    } }) : null;
    body.append(el("tr", { className: "delivery", "data-id": d.id },
      el("td", {}, el("code", { text: d.event_type || "" })),
      el("td", { className: "delivery-status", text: deliveryStatus(d.status) + " (" + (d.attempt_count || 0) + " attempt" + (d.attempt_count === 1 ? "" : "s") + ")" }),
      el("td", { className: "response", text: last ? (last.status_code ? String(last.status_code) : outcomeText(last.outcome)) + (last.error ? " — " + last.error : "") : "—" }),
      el("td", { text: last ? latencyText(last.latency) : "—" }),
      el("td", {}, el("time", { dateTime: d.create_time || "", text: d.create_time ? new Date(d.create_time).toLocaleString() : "" })),
      el("td", {}, resend)));
    if (attempts.length > 0) {
      body.append(el("tr", { className: "attempts" }, el("td", { colSpan: 6 }, attemptDetails(attempts))));
    }
  });
}

// bodyText decodes a response body excerpt (base64 in JSON) as UTF-8 text.
function bodyText(b64) {
  if (!b64) return "";
  try {
    const bin = atob(b64);
    return new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)));
  } catch { return "(binary)"; }
}

// attemptDetails lists a delivery's attempts: what the endpoint answered,
// shown as text.
function attemptDetails(attempts) {
  const box = el("details", { className: "attempt-details" }, el("summary", { text: "Attempts (" + attempts.length + ")" }));
  for (const a of attempts) {
    const headers = Object.entries(a.response_headers || {}).map(([k, v]) => k + ": " + v).join("\n");
    const text = bodyText(a.response_body);
    box.append(el("div", { className: "attempt" },
      el("p", { className: "meta", text: "#" + a.number + " · " + (a.start_time ? new Date(a.start_time).toLocaleString() : "") + " · " +
        (a.status_code ? "HTTP " + a.status_code : outcomeText(a.outcome)) + (a.latency ? " · " + latencyText(a.latency) : "") + (a.error ? " · " + a.error : "") }),
      headers ? el("pre", { className: "headers", text: headers }) : null,
      text ? el("pre", { className: "body", text: text }) : null));
  }
  return box;
}

start();
