package webui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/hookwire/hookwire/internal/browsertest"
)

// ScreenshotsEnv names a directory: when set, the browser tests write
// PNGs of the console's main pages there (scripts/screenshots.sh).
const ScreenshotsEnv = "HOOKWIRE_CONSOLE_SCREENSHOTS"

// tab drives one browser tab on the console of e.
type tab struct {
	t   *testing.T
	ctx context.Context
	e   *env
}

func newTab(t *testing.T, e *env, o browsertest.Options) *tab {
	return &tab{t: t, ctx: browsertest.NewWith(t, o), e: e}
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func eval[T any](b *tab, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// wait polls a JavaScript condition until it is true.
func (b *tab) wait(what, js string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!!(`+js+`)`))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
			b.t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, body)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// poll evaluates js until it gives a non-empty string, across navigations
// (which make a single Poll fail), and returns it.
func (b *tab) poll(what, js string, d time.Duration) string {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
		if err == nil && v != "" {
			return v
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// a11yJS lists accessibility faults of the page: form controls without a
// label, buttons and links without a name, charts without a label, and
// text whose contrast with its background is under WCAG AA (4.5:1; 3:1
// for large text).
const a11yJS = `(` + a11yJSExpr + `)()`

const a11yJSExpr = `(() => {
  const faults = [];
  const name = (el) => (el.getAttribute('aria-label') || el.innerText || el.textContent || '').trim();
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) faults.push('unlabelled ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('button, a[href]')) if (!name(el)) faults.push('nameless ' + el.outerHTML.slice(0, 80));
  for (const el of document.querySelectorAll('svg[role=img]')) if (!el.getAttribute('aria-label')) faults.push('unlabelled chart');
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bg = (el) => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c; } return [255, 255, 255]; };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || seen.has(el) || el.closest('svg') || !el.offsetParent) continue;
    seen.add(el);
    const st = getComputedStyle(el);
    if (parseFloat(st.opacity) < 1 || el.closest('button:disabled')) continue;
    const a = lum(rgb(st.color)), b = lum(bg(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.66 && parseInt(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) faults.push('contrast ' + ratio.toFixed(2) + ' ' + el.tagName + ' "' + n.textContent.trim().slice(0, 30) + '"');
  }
  if (document.querySelectorAll('h1').length !== 1) faults.push(document.querySelectorAll('h1').length + ' h1 elements');
  return faults.join('\n');
})`

// checkA11y fails the test on the page's accessibility faults.
func (b *tab) checkA11y(where string) {
	b.t.Helper()
	if f := eval[string](b, a11yJS); f != "" {
		b.t.Errorf("%s: accessibility faults:\n%s", where, f)
	}
}

// text is the main region's visible text.
func (b *tab) text() string { return eval[string](b, `document.getElementById('main').innerText`) }

// shot writes a screenshot of the page when ScreenshotsEnv is set.
func (b *tab) shot(name string) {
	b.t.Helper()
	dir := os.Getenv(ScreenshotsEnv)
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// shotViewport is shot of what the window shows, for long pages.
func (b *tab) shotViewport(name string) {
	b.t.Helper()
	dir := os.Getenv(ScreenshotsEnv)
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *tab) go_(hash string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`location.hash = ` + jsString(hash)))
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }

// signIn signs in through the form.
func (b *tab) signIn(key, tenant string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.e.base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#key")))
	b.shot("signin")
	b.checkA11y("sign in")
	b.do(chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.SendKeys(chromedp.CSS("#tenant"), tenant),
		chromedp.Click(chromedp.CSS("form.signin button[type=submit]")))
	b.wait("signed in", `!!document.querySelector('#who button')`, 10*time.Second)
}

// TestConsoleDeliveryFlow is the operator's path: sign in, create a
// subscription, publish, watch the delivery and its failed attempt appear
// live, open it, retry it and see it succeed.
func TestConsoleDeliveryFlow(t *testing.T) {
	e := startEnv(t, true)
	e.tenant("acme")
	e.recv.status.Store(500)
	e.recv.mu.Lock()
	e.recv.body = `{"error":"database locked"}`
	e.recv.mu.Unlock()
	b := newTab(t, e, browsertest.Options{})
	b.signIn(adminKey, "acme")
	b.wait("overview", `location.hash.includes('/t/acme/overview')`, 5*time.Second)

	// Create a subscription.
	b.go_("#/t/acme/subscriptions/new")
	b.do(chromedp.WaitVisible(chromedp.CSS("input[name=event_types]")),
		chromedp.SendKeys(chromedp.CSS("input[name=description]"), "Orders to billing"),
		chromedp.SendKeys(chromedp.CSS("input[name=event_types]"), "order.*"),
		chromedp.SendKeys(chromedp.CSS("input[name=url]"), e.recv.URL+"/hook"))
	b.shot("subscription-new")
	b.checkA11y("new subscription")
	b.do(chromedp.Click(chromedp.CSS("form.form button[type=submit]")))
	b.wait("the new subscription's page", `location.hash.includes('/subscriptions/sub_') && document.querySelector('h1 code') !== null`, 10*time.Second)
	subID := eval[string](b, `document.querySelector('h1 code').textContent`)
	if n := eval[string](b, `document.getElementById('notice').innerText`); !strings.Contains(n, "whsec_") {
		t.Fatalf("the signing secret is not shown once after create: %q", n)
	}
	b.shot("subscription")

	// A second subscription the event will not match.
	if code, body, _ := e.rest("POST", "/v1/tenants/acme/subscriptions", `{"description":"Invoices","event_types":["invoice.*"],"target":{"transport":"http","config":{"url":"`+e.recv.URL+`/invoices"}}}`,
		map[string]string{"Authorization": "Bearer " + adminKey}); code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}

	// The live view, then a publish: the delivery and its attempt appear.
	b.go_("#/t/acme/live")
	b.wait("the live stream to open", `document.querySelector('[role=status][data-connected]') !== null`, 15*time.Second)
	evID := e.publish("acme", "order.created", `{"id":42,"total":"9.99"}`)
	b.wait("the created delivery, live", `!!document.querySelector('#live-rows tr.k-created')`, 10*time.Second)
	b.wait("the failed attempt, live", `[...document.querySelectorAll('#live-rows tr.k-attempt')].some(r => r.innerText.includes('500'))`, 15*time.Second)
	b.shot("live")
	b.checkA11y("live")
	dlvID := eval[string](b, `document.querySelector('#live-rows tr.k-attempt').dataset.delivery`)
	if !strings.HasPrefix(dlvID, "dlv_") {
		t.Fatalf("delivery id %q", dlvID)
	}
	row := eval[string](b, `document.querySelector('#live-rows tr.k-attempt').innerText`)
	for _, want := range []string{"order.created", subID, "agent-1", "failed"} {
		if !strings.Contains(row, want) {
			t.Errorf("live attempt row %q lacks %q", row, want)
		}
	}

	// The deliveries list, filtered by subscription, shows it.
	b.go_("#/t/acme/deliveries?subscription_id=" + subID)
	b.wait("the deliveries list", `!!document.querySelector('#delivery-list table')`, 10*time.Second)
	if txt := b.text(); !strings.Contains(txt, dlvID) || !strings.Contains(txt, "pending") {
		t.Fatalf("deliveries list: %s", txt)
	}
	b.shot("deliveries")
	b.checkA11y("deliveries")

	// Its page: the attempt with status, response body and agent.
	b.do(chromedp.Click(chromedp.CSS(`a[href$="/deliveries/` + dlvID + `"]`)))
	b.wait("the delivery page", `document.querySelectorAll('.attempt').length >= 1`, 10*time.Second)
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('details').forEach(d => d.open = true)`))
	txt := b.text()
	for _, want := range []string{"HTTP 500", "agent-1", "database locked", "webhook-signature", evID} {
		if !strings.Contains(txt, want) {
			t.Errorf("delivery page lacks %q:\n%s", want, txt)
		}
	}
	// The attempt's own request headers: the signature it went out with.
	if sig := eval[string](b, `[...document.querySelectorAll('.attempt .request-headers dt')].filter(x => x.innerText === 'webhook-signature').map(x => x.nextElementSibling.innerText).join('')`); !strings.HasPrefix(sig, "v1,") {
		t.Errorf("the attempt's recorded webhook-signature shows as %q", sig)
	}
	b.shot("delivery")
	b.checkA11y("delivery")

	// The receiver recovers; Retry now sends it again at once.
	e.recv.status.Store(200)
	b.do(chromedp.Click(chromedp.CSS(`.actions button`))) // "Retry now" is the first action
	b.wait("the retry to be queued", `document.getElementById('notice').innerText.includes('Retry queued')`, 10*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.go_("#/t/acme/deliveries/" + dlvID + "?r=" + fmt.Sprint(time.Now().UnixNano()))
		b.wait("the delivery page", `document.querySelectorAll('.attempt').length >= 1`, 10*time.Second)
		if strings.Contains(b.text(), "succeeded") && eval[bool](b, `[...document.querySelectorAll('.attempt h3')].some(h => h.innerText.includes('success'))`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retried delivery did not succeed:\n%s", b.text())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The event browser: the list filtered by a pattern, then the event's
	// payload and which subscriptions matched and why not.
	b.go_("#/t/acme/events?event_type=order.*")
	b.wait("the events list", `!!document.querySelector('main table')`, 10*time.Second)
	if txt := b.text(); !strings.Contains(txt, evID) {
		t.Fatalf("events list lacks %s: %s", evID, txt)
	}
	b.do(chromedp.Click(chromedp.CSS(`main a[href$="/events/` + evID + `"]`)))
	b.wait("the event page", `!!document.getElementById('payload')`, 10*time.Second)
	if p := eval[string](b, `document.getElementById('payload').textContent`); !strings.Contains(p, "\"total\": \"9.99\"") {
		t.Fatalf("payload not pretty-printed: %q", p)
	}
	if txt := b.text(); !strings.Contains(txt, subID) || !strings.Contains(txt, "matched at publish") ||
		!strings.Contains(txt, `event type "order.created" matches none of its event types ("invoice.*")`) {
		t.Fatalf("event page: %s", txt)
	}
	b.shot("event")
	b.checkA11y("event")

	// Agents: the real agent, connected, with its labels and transport.
	b.go_("#/agents")
	b.wait("the agents page", `document.getElementById('main').innerText.includes('agent-1')`, 10*time.Second)
	if txt := b.text(); !strings.Contains(txt, "connected") || !strings.Contains(txt, "region=test") || !strings.Contains(txt, "http") {
		t.Fatalf("agents page: %s", txt)
	}
	b.shot("agents")
	b.checkA11y("agents")

	// Pause from the subscription page: a new delivery waits, and says why.
	b.go_("#/t/acme/subscriptions/" + subID)
	b.wait("the subscription page", `[...document.querySelectorAll('.actions button')].some(x => x.innerText === 'Pause')`, 10*time.Second)
	b.do(chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('.actions button')].find(x => x.innerText === 'Pause').click()`))
	b.wait("paused", `[...document.querySelectorAll('.actions button')].some(x => x.innerText === 'Resume')`, 10*time.Second)
	e.publish("acme", "order.updated", `{"id":43}`)
	b.go_("#/t/acme/deliveries?status=DELIVERY_STATUS_PENDING")
	b.wait("the waiting reason", `!!document.querySelector('#delivery-list .waiting')`, 10*time.Second)
	if w := eval[string](b, `document.querySelector('#delivery-list .waiting').textContent`); !strings.Contains(w, "paused") {
		t.Fatalf("waiting reason %q", w)
	}
	b.shot("deliveries-waiting")

	// The overview from the stats API: the two attempts, the success rate.
	b.go_("#/t/acme/overview")
	b.wait("the statistics", `document.getElementById('stats') && !document.getElementById('stats').innerText.includes('Loading')`, 10*time.Second)
	if n := eval[int](b, `document.querySelectorAll('#stats svg').length`); n != 4 {
		t.Fatalf("overview from the stats API: %d charts:\n%s", n, b.text())
	}
	// One failed and one successful attempt at least (an automatic retry
	// may add a failure; a minute boundary may split them into two bars).
	if n := eval[int](b, `document.querySelectorAll('#stats section:nth-child(2) svg rect').length`); n < 2 {
		t.Fatalf("attempt bars from the stats API after a failed and a successful attempt: %d:\n%s", n, b.text())
	}
	if txt := b.text(); !strings.Contains(txt, subID) || !(strings.Contains(txt, "50.0%") || strings.Contains(txt, "33.3%")) ||
		!strings.Contains(txt, "success") || !strings.Contains(txt, "failed") {
		t.Fatalf("no success rate for %s (one success in two or three attempts) from the stats API:\n%s", subID, txt)
	}
	b.checkA11y("overview from the stats API")
	b.shot("overview-live")

	// Tenants: create one from the console.
	b.go_("#/tenants")
	b.wait("the tenants page", `!!document.querySelector('form[aria-label="New tenant"]')`, 10*time.Second)
	b.do(chromedp.SendKeys(chromedp.CSS(`input[name=id]`), "globex"), chromedp.SendKeys(chromedp.CSS(`input[name=display_name]`), "Globex"),
		chromedp.Click(chromedp.CSS(`form[aria-label="New tenant"] button[type=submit]`)))
	b.wait("the new tenant's overview", `location.hash.includes('/t/globex/overview')`, 10*time.Second)
	if code, _, _ := e.rest("GET", "/v1/tenants/globex", "", map[string]string{"Authorization": "Bearer " + adminKey}); code != 200 {
		t.Fatalf("tenant created in the console: %d", code)
	}

	// Join tokens and draining an agent.
	b.go_("#/agents")
	b.wait("the agents page", `!!document.querySelector('form[aria-label="New join token"]')`, 10*time.Second)
	b.do(chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
		chromedp.SendKeys(chromedp.CSS(`form[aria-label="New join token"] input[name=name]`), "edge"),
		chromedp.SendKeys(chromedp.CSS(`form[aria-label="New join token"] input[name=labels]`), "region=eu"),
		chromedp.Click(chromedp.CSS(`form[aria-label="New join token"] button[type=submit]`)))
	b.wait("the join token, shown once", `document.getElementById('notice').innerText.includes('hwj_')`, 10*time.Second)
	if txt := b.text(); !strings.Contains(txt, "edge") || !strings.Contains(txt, "region=eu") {
		t.Fatalf("join token list: %s", txt)
	}
	b.do(chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('main button')].find(x => x.innerText === 'Drain').click()`))
	b.wait("the drain", `document.getElementById('notice').innerText.includes('draining')`, 10*time.Second)
	waitFor(t, "the agent to leave", 15*time.Second, func() bool {
		_, body, _ := e.rest("GET", "/v1/agents", "", map[string]string{"Authorization": "Bearer " + adminKey})
		return !strings.Contains(body, "AGENT_STATE_CONNECTED")
	})

	// Sign out: the cookie is gone and the API refuses the console.
	b.do(chromedp.Click(chromedp.CSS(`#who button`)))
	b.wait("the sign-in form", `!!document.getElementById('key')`, 10*time.Second)
	if st := eval[int](b, `fetch('/v1/tenants', {headers: {'X-Hookwire-Console': '1'}}).then(r => r.status)`); st != 401 {
		t.Fatalf("after sign-out the API answered %d", st)
	}
}

// TestConsoleXSS puts markup into every place data reaches the page: a
// payload, a description, event metadata, response headers and body. It
// must show as text and never run.
func TestConsoleXSS(t *testing.T) {
	e := startEnv(t, true)
	e.tenant("acme")
	const xss = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`
	e.recv.mu.Lock()
	e.recv.body = xss
	e.recv.header = `<svg onload="window.__pwned=3">`
	e.recv.mu.Unlock()
	code, body, _ := e.rest("POST", "/v1/tenants/acme/subscriptions",
		`{"description":"<img src=x onerror=\"window.__pwned=4\">","event_types":["x.*"],"target":{"transport":"http","config":{"url":"`+e.recv.URL+`/hook"}}}`,
		map[string]string{"Authorization": "Bearer " + adminKey})
	if code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	evID := e.publish("acme", "x.y", `{"html":"<img src=x onerror=\"window.__pwned=5\">","s":"</pre><script>window.__pwned=6</script>"}`)
	waitFor(t, "the delivery", 15*time.Second, func() bool { return e.recv.count() >= 1 })

	b := newTab(t, e, browsertest.Options{})
	b.signIn(adminKey, "acme")
	check := func(where string) {
		t.Helper()
		if v := eval[any](b, `window.__pwned === undefined ? null : window.__pwned`); v != nil {
			t.Fatalf("%s: injected script ran (%v)", where, v)
		}
		if n := eval[int](b, `document.querySelectorAll('main img, main script, main svg[onload], main [onerror]').length`); n != 0 {
			t.Fatalf("%s: %d injected elements in the page", where, n)
		}
	}
	b.go_("#/t/acme/subscriptions")
	b.wait("subscriptions", `document.getElementById('main').innerText.includes('onerror')`, 10*time.Second)
	check("subscriptions")
	b.go_("#/t/acme/events/" + evID)
	b.wait("event", `!!document.getElementById('payload')`, 10*time.Second)
	if p := eval[string](b, `document.getElementById('payload').textContent`); !strings.Contains(p, `<script>window.__pwned=6</script>`) {
		t.Fatalf("payload not shown as text: %q", p)
	}
	check("event")
	b.go_("#/t/acme/deliveries")
	b.wait("deliveries", `!!document.querySelector('#delivery-list a[href*="/deliveries/dlv_"]')`, 10*time.Second)
	b.do(chromedp.Click(chromedp.CSS(`#delivery-list a[href*="/deliveries/dlv_"]`)))
	b.wait("attempt", `document.querySelectorAll('.attempt').length >= 1`, 10*time.Second)
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('details').forEach(d => d.open = true)`))
	if txt := b.text(); !strings.Contains(txt, `<svg onload="window.__pwned=3">`) || !strings.Contains(txt, `<img src=x onerror="window.__pwned=1">`) {
		t.Fatalf("response header and body not shown as text:\n%s", txt)
	}
	check("delivery")
}

// TestConsoleCSRFAndFraming runs an attacker page on another origin of the
// same site (same host, other port: SameSite does not stop the cookie
// there) while the victim is signed in.
func TestConsoleCSRFAndFraming(t *testing.T) {
	e := startEnv(t, false)
	e.tenant("acme")
	target := e.base
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		switch r.URL.Path {
		case "/frame":
			fmt.Fprintf(w, `<!doctype html><iframe id="f" src="%s/console/"></iframe>`, target)
		case "/form":
			// A text/plain form makes a body the gateway would parse as JSON.
			fmt.Fprintf(w, `<!doctype html><form id="f" method="POST" enctype="text/plain" action="%s/v1/tenants"><input name='{"id":"pwned","display_name":"' value='"}'></form>`, target)
		case "/fetch":
			fmt.Fprintf(w, `<!doctype html><script>
window.results = [];
fetch(%[1]q + "/v1/tenants", {method: "POST", mode: "no-cors", credentials: "include", body: '{"id":"pwned2"}'}).then(() => results.push("no-cors sent"), e => results.push("no-cors " + e));
fetch(%[1]q + "/v1/tenants", {method: "POST", credentials: "include", headers: {"X-Hookwire-Console": "1", "Content-Type": "application/json"}, body: '{"id":"pwned3"}'}).then(r => results.push("cors " + r.status), e => results.push("cors blocked"));
fetch(%[1]q + "/console/session", {credentials: "include", headers: {"X-Hookwire-Console": "1"}}).then(r => r.text()).then(t => results.push("read " + t), e => results.push("read blocked"));
</script>`, target)
		}
	}))
	t.Cleanup(evil.Close)

	b := newTab(t, e, browsertest.Options{})
	// Keyboard only: type the key, Tab to the tenant, Enter submits.
	b.do(chromedp.Navigate(e.base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#key")))
	if f := eval[string](b, `document.activeElement.id`); f != "key" {
		t.Fatalf("the key field does not have the focus: %q", f)
	}
	b.do(chromedp.KeyEvent("not-a-key" + kb.Enter))
	b.wait("the sign-in error", `document.querySelector('form.signin [role=alert]').innerText.includes('invalid API key')`, 10*time.Second)
	b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("key").value = ""`), chromedp.Focus(chromedp.CSS("#key")),
		chromedp.KeyEvent(adminKey+kb.Tab+"acme"+kb.Enter))
	b.wait("signed in by keyboard", `!!document.querySelector('#who button')`, 10*time.Second)
	if c := eval[string](b, `document.cookie`); strings.Contains(c, "hw_console") {
		t.Fatalf("the session cookie is readable by scripts: %q", c)
	}
	if s := eval[string](b, `JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + location.href`); strings.Contains(s, adminKey) {
		t.Fatalf("the key leaked into storage or the URL: %s", s)
	}

	// Cross-origin form POST with the cookie: refused.
	b.do(chromedp.Navigate(evil.URL+"/form"), chromedp.WaitVisible(chromedp.CSS("#f")), chromedp.Evaluate[chromedp.Void](`document.getElementById('f').submit()`))
	ans := b.poll("the form's answer", `location.href.startsWith(`+jsString(target)+`) && document.body && document.body.innerText.includes('"code"') ? document.body.innerText : ""`, 10*time.Second)
	if !strings.Contains(ans, `"code":16`) {
		t.Fatalf("the cross-site form POST was not refused as unauthenticated: %s", ans)
	}
	// Cross-origin fetches: the no-cors one goes out without the header,
	// the one with the header is stopped by the preflight.
	b.do(chromedp.Navigate(evil.URL + "/fetch"))
	b.wait("the fetches", `window.results && window.results.length === 3`, 10*time.Second)
	res := eval[string](b, `window.results.join(' | ')`)
	if !strings.Contains(res, "cors blocked") || !strings.Contains(res, "read blocked") {
		t.Fatalf("cross-origin fetches: %s", res)
	}
	for _, id := range []string{"pwned", "pwned2", "pwned3"} {
		if code, _, _ := e.rest("GET", "/v1/tenants/"+id, "", map[string]string{"Authorization": "Bearer " + adminKey}); code != 404 {
			t.Fatalf("a cross-site request created tenant %s (%d)", id, code)
		}
	}

	// Framing: Chromium refuses to render the console in the frame.
	b.do(chromedp.Navigate(evil.URL + "/frame"))
	var child *cdp.Frame
	deadline := time.Now().Add(10 * time.Second)
	for child == nil || (child.URL == "about:blank" && child.UnreachableURL == "") {
		tree, err := chromedp.Run(b.ctx, chromedp.Action[*page.FrameTree](func(ctx context.Context, tg *chromedp.Target) (*page.FrameTree, error) {
			r, err := cdp.Call(ctx, tg, page.GetFrameTree, cdp.Empty{})
			return r.FrameTree, err
		}))
		if err != nil {
			t.Fatal(err)
		}
		if len(tree.ChildFrames) == 1 {
			child = tree.ChildFrames[0].Frame
		}
		if time.Now().After(deadline) {
			t.Fatalf("the frame did not load: %+v", child)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("framed console: url %q unreachable %q", child.URL, child.UnreachableURL)
	if strings.HasPrefix(child.URL, target) && child.UnreachableURL == "" {
		t.Fatalf("the console rendered inside a cross-origin frame: %+v", child)
	}
}
