package webui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hookwire/hookwire/controlplane/internal/webui"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/hookwire/hookwire/internal/browsertest"
	"google.golang.org/protobuf/types/known/structpb"
)

// setCookie gives a fresh browser the session of an HTTP sign-in, so a
// first load can be measured without the sign-in page's downloads.
func (b *tab) setCookie(c string) {
	b.t.Helper()
	name, value, _ := strings.Cut(c, "=")
	_, err := chromedp.Run(b.ctx, chromedp.Action[cdp.Empty](func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
		httpOnly := true
		return cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{Name: name, Value: value, URL: b.e.base + "/", Path: "/", HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteStrict})
	}))
	if err != nil {
		b.t.Fatal(err)
	}
}

// pageLoad is what the Performance API says about a load.
type pageLoad struct {
	DOMContentLoaded float64 `json:"dcl"`      // ms from navigation start
	Load             float64 `json:"load"`     // ms
	ListShown        float64 `json:"list"`     // ms until the first deliveries page was drawn
	Transferred      int     `json:"transfer"` // bytes over the wire (headers and bodies)
	Encoded          int     `json:"encoded"`  // bodies as sent (gzipped)
	Decoded          int     `json:"decoded"`  // bodies unpacked
	Requests         int     `json:"requests"`
	ListAPI          float64 `json:"api"` // ms the ListDeliveries call took (request to last byte)
}

const measureJS = `(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const marks = performance.getEntriesByName('hw:deliveries-page');
  let t = nav.transferSize, e = nav.encodedBodySize, d = nav.decodedBodySize;
  let api = -1;
  for (const r of res) { t += r.transferSize; e += r.encodedBodySize; d += r.decodedBodySize; if (r.name.includes('/deliveries?')) api = r.duration; }
  return JSON.stringify({dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, list: marks.length ? marks[0].startTime : -1,
    transfer: t, encoded: e, decoded: d, requests: res.length + 1, api});
})()`

// TestConsolePerformance measures first loads in headless Chromium: the
// overview, and the deliveries list of a tenant with 10,000 deliveries
// (paged with the API's page tokens, 50 a page), and paging through it.
func TestConsolePerformance(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 10,000 events")
	}
	e := startEnv(t, false) // no agent: every delivery waits
	e.tenant("acme")
	cfg, _ := structpb.NewStruct(map[string]any{"url": e.recv.URL + "/hook"})
	if _, err := hookwirev1.NewSubscriptionServiceClient(e.conn).CreateSubscription(e.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme",
		Subscription: &hookwirev1.Subscription{EventTypes: []string{"order.*"}, Target: &hookwirev1.Target{Transport: "http", Config: cfg}}}); err != nil {
		t.Fatal(err)
	}
	const total = 10000
	for i := 0; i < total; i += 1000 {
		evs := make([]*hookwirev1.Event, 1000)
		for j := range evs {
			evs[j] = &hookwirev1.Event{Type: "order.created", Payload: fmt.Appendf(nil, `{"n":%d}`, i+j)}
		}
		if _, err := hookwirev1.NewEventServiceClient(e.conn).PublishEvents(e.ctx(), &hookwirev1.PublishEventsRequest{Tenant: "acme", Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	_, ck := signIn(t, e, adminKey, "acme")
	cookie := ck.Name + "=" + ck.Value

	measure := func(name, hash string, ready string) pageLoad {
		b := newTab(t, e, browsertest.Options{}) // a fresh browser: empty cache
		b.setCookie(cookie)
		b.do(chromedp.Navigate(e.base + "/console/" + hash))
		b.wait(name, ready, 20*time.Second)
		b.wait("the load event", `performance.getEntriesByType('navigation')[0].loadEventEnd > 0`, 10*time.Second)
		var pl pageLoad
		if err := json.Unmarshal([]byte(eval[string](b, measureJS)), &pl); err != nil {
			t.Fatal(err)
		}
		t.Logf("PERF %s: DOMContentLoaded %.0f ms, load %.0f ms, list drawn %.0f ms (its API call %.0f ms), %d requests, %d bytes transferred (%d B bodies gzipped, %d B unpacked)",
			name, pl.DOMContentLoaded, pl.Load, pl.ListShown, pl.ListAPI, pl.Requests, pl.Transferred, pl.Encoded, pl.Decoded)
		return pl
	}
	raw, gz := webui.AssetBytes()
	t.Logf("PERF bundle: %d bytes in all, %d bytes gzipped", raw, gz)

	measure("overview (first load)", "#/t/acme/overview", `!!document.querySelector('#stats > :not(.muted), #stats > p')`)
	pl := measure("deliveries, 10,000 in the tenant (first load)", "#/t/acme/deliveries",
		`document.querySelectorAll('#delivery-list tbody tr').length === 50`)
	if pl.ListShown <= 0 || pl.ListShown > 5000 {
		t.Fatalf("the first page of 10,000 deliveries took %.0f ms to draw", pl.ListShown)
	}
	if pl.Transferred > 200<<10 {
		t.Fatalf("first load moved %d bytes; the console should stay small", pl.Transferred)
	}

	// Paging: each Next is one API call for 50 deliveries.
	b := newTab(t, e, browsertest.Options{})
	b.setCookie(cookie)
	b.do(chromedp.Navigate(e.base + "/console/#/t/acme/deliveries"))
	b.wait("page 1", `document.getElementById('delivery-list') && document.getElementById('delivery-list').dataset.page === '1'`, 20*time.Second)
	var worst float64
	var all []float64
	for p := 2; p <= 6; p++ {
		start := eval[float64](b, `performance.now()`)
		b.do(chromedp.Click(chromedp.CSS(`.pager button:last-child`)))
		b.wait(fmt.Sprint("page ", p), fmt.Sprintf(`document.getElementById('delivery-list').dataset.page === '%d'`, p), 10*time.Second)
		took := eval[float64](b, `performance.getEntriesByName('hw:deliveries-page').at(-1).startTime`) - start
		worst = max(worst, took)
		all = append(all, took)
	}
	slices.Sort(all)
	t.Logf("PERF deliveries, next page (50 of 10,000): median of 5 %.0f ms, worst %.0f ms", all[2], worst)
	if n := eval[int](b, `document.querySelectorAll('#delivery-list tbody tr').length`); n != 50 {
		t.Fatalf("page 6 has %d rows", n)
	}
	if n := eval[int](b, `document.getElementsByTagName('*').length`); n > 3000 {
		t.Fatalf("the page holds %d elements after paging: rows are not replaced", n)
	}
	if txt := b.text(); !strings.Contains(txt, "no connected agent") {
		t.Fatalf("waiting deliveries do not say why: %s", txt[:min(len(txt), 2000)])
	}
	b.shotViewport("deliveries-10k")
}

// statsFixture is a DeliveryStats answer as the stats API sends it
// (proto3 JSON: int64 as strings, durations as "0.120s").
func statsFixture(now time.Time) string {
	var buckets []string
	start := now.Add(-60 * time.Minute).Truncate(time.Minute)
	for i := 0; i < 60; i++ {
		ok, fail, to := 40+i%13*3, i%7, 0
		if i > 40 && i < 46 {
			fail, to = 25, 6
		}
		buckets = append(buckets, fmt.Sprintf(`{"start_time":%q,"created":"%d","succeeded":"%d","retrying":"%d","dead":"0",
		  "attempts_by_outcome":{"OUTCOME_SUCCESS":"%d","OUTCOME_FAILED":"%d","OUTCOME_TIMEOUT":"%d"},
		  "latency":{"p50":"0.0%02ds","p90":"0.%03ds","p99":"0.%03ds"},"queue":{"waiting_retry":"%d","waiting_agent":"%d"}}`,
			start.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), ok+fail, ok, fail, ok, fail, to, 20+i%9, 80+i%17*4, 150+i%23*30, fail*2, i%3))
	}
	return fmt.Sprintf(`{"start_time":%q,"step":"60s","buckets":[%s],
	  "subscriptions":[{"subscription_id":"sub_billing","attempts":"2900","succeeded":"2890","retrying":"8","dead":"2","success_rate":0.9966,"latency":{"p50":"0.031s","p90":"0.120s","p99":"0.410s"}},
	                   {"subscription_id":"sub_crm","attempts":"610","succeeded":"520","retrying":"80","dead":"10","success_rate":0.852,"latency":{"p50":"0.210s","p90":"1.900s","p99":"4.800s"}}],
	  "queue":{"waiting_retry":"17","waiting_agent":"3"}}`, start.Format(time.RFC3339), strings.Join(buckets, ","))
}

// TestConsoleCharts draws the overview's pictures from canned stats in the
// browser and checks what they show.
func TestConsoleCharts(t *testing.T) {
	e := startEnv(t, false)
	e.tenant("acme")
	b := newTab(t, e, browsertest.Options{})
	b.signIn(adminKey, "acme")
	b.wait("overview", `document.getElementById('stats') && !document.getElementById('stats').innerText.includes('Loading')`, 10*time.Second)
	fixture := statsFixture(time.Now())
	got := eval[string](b, `import('/console/js/views.js').then(m => {
	  const el = m.statsCharts(`+fixture+`, {sub_billing: 'Billing (sub_billing)'});
	  document.getElementById('stats').replaceChildren(el);
	  const svgs = [...document.querySelectorAll('#stats svg')];
	  return JSON.stringify({svgs: svgs.length, labels: svgs.map(s => s.getAttribute('aria-label')),
	    bars: document.querySelectorAll('#stats svg:first-of-type rect').length,
	    paths: document.querySelectorAll('#stats path.line').length,
	    retry: document.getElementById('q-retry').textContent, agent: document.getElementById('q-agent').textContent,
	    text: document.getElementById('stats').innerText});
	})`)
	var r struct {
		Svgs               int
		Labels             []string
		Bars, Paths        int
		Retry, Agent, Text string
	}
	if err := json.Unmarshal([]byte(got), &r); err != nil {
		t.Fatal(err)
	}
	// 4 charts: outcomes, latency, queue depth, success rate.
	if r.Svgs != 4 || r.Paths != 5 || r.Retry != "17" || r.Agent != "3" {
		t.Fatalf("charts: %+v", r)
	}
	// 60 success bars, 60 (some empty) failed, 6 timeouts: only the non-zero ones are drawn.
	if r.Bars < 60+50+5 {
		t.Fatalf("outcome bars: %d", r.Bars)
	}
	for _, want := range []string{"Billing (sub_billing)", "99.7%", "85.2%", "sub_crm", "1.90 s"} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("charts lack %q:\n%s", want, r.Text)
		}
	}
	if !strings.Contains(r.Labels[0], "Attempts by outcome") || !strings.Contains(r.Labels[3], "sub_crm: 85.2%") {
		t.Fatalf("chart labels: %q", r.Labels)
	}
	b.shot("overview")
	b.checkA11y("overview")
	// The dark theme (prefers-color-scheme: dark) passes the same check.
	if _, err := chromedp.Run(b.ctx, chromedp.Action[cdp.Empty](func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
		return cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
	})); err != nil {
		t.Fatal(err)
	}
	if !eval[bool](b, `matchMedia('(prefers-color-scheme: dark)').matches`) {
		t.Fatal("dark scheme not emulated")
	}
	b.checkA11y("overview, dark")
	b.shot("overview-dark")
	// The check itself finds an unlabelled control and faint text.
	f := eval[string](b, `(() => { const m = document.getElementById('main');
	  const i = document.createElement('input'); m.appendChild(i);
	  const p = document.createElement('p'); p.textContent = 'faint text'; p.style.color = getComputedStyle(document.documentElement).backgroundColor; m.appendChild(p);
	  const f = (`+a11yJSExpr+`)(); i.remove(); p.remove(); return f; })()`)
	if !strings.Contains(f, "unlabelled <input") || !strings.Contains(f, `contrast 1.`) {
		t.Fatalf("the accessibility check misses faults: %q", f)
	}
	if os.Getenv(ScreenshotsEnv) != "" {
		m := newTab(t, e, browsertest.Options{Width: 360, Height: 740})
		m.do(chromedp.EmulateViewport(360, 740))
		m.signIn(adminKey, "acme")
		m.wait("overview", `document.getElementById('stats') && !document.getElementById('stats').innerText.includes('Loading')`, 10*time.Second)
		eval[string](m, `import('/console/js/views.js').then(m => { document.getElementById('stats').replaceChildren(m.statsCharts(`+fixture+`, {})); return ''; })`)
		m.shot("overview-360px")
	}
}

// TestConsoleSubscriptionActions works as a tenant-admin key: edit, rotate
// the secret, test-send, recover with progress; a read-only key sees the
// same pages with the buttons off; a narrow screen scrolls no sideways.
func TestConsoleSubscriptionActions(t *testing.T) {
	e := startEnv(t, true)
	e.tenant("acme")
	cfg, _ := structpb.NewStruct(map[string]any{"url": e.recv.URL + "/hook"})
	sub, err := hookwirev1.NewSubscriptionServiceClient(e.conn).CreateSubscription(e.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme",
		Subscription: &hookwirev1.Subscription{Description: "Invoices", EventTypes: []string{"invoice.paid"}, Target: &hookwirev1.Target{Transport: "http", Config: cfg}}})
	if err != nil {
		t.Fatal(err)
	}
	e.publish("acme", "invoice.paid", `{"n":1}`)
	waitFor(t, "the first delivery", 15*time.Second, func() bool { return e.recv.count() >= 1 })

	key := e.apiKey("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN)
	b := newTab(t, e, browsertest.Options{})
	b.signIn(key, "acme")
	if nav := eval[string](b, `document.getElementById('nav').innerText`); strings.Contains(nav, "Agents") || strings.Contains(nav, "Tenants") {
		t.Fatalf("a tenant key sees admin sections: %s", nav)
	}
	b.go_("#/t/acme/subscriptions/" + sub.GetId())
	b.wait("the subscription page", `!!document.querySelector('#test-send')`, 10*time.Second)
	b.do(chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`))

	// Edit the description.
	b.do(chromedp.SetValue(chromedp.CSS(`form[aria-label="Edit subscription"] input[name=description]`), "Invoices to ERP"),
		chromedp.Click(chromedp.CSS(`form[aria-label="Edit subscription"] button[type=submit]`)))
	b.wait("the saved description", `document.querySelector('h1').innerText.includes('Invoices to ERP')`, 10*time.Second)

	// Rotate the secret: the new one is shown once.
	b.do(chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('.actions button')].find(x => x.innerText === 'Rotate secret').click()`))
	b.wait("the new secret", `document.getElementById('notice').innerText.includes('whsec_')`, 10*time.Second)

	// Recover since an hour ago, everything: the progress bar fills.
	since := time.Now().Add(-time.Hour).Format("2006-01-02T15:04")
	b.do(chromedp.SetValue(chromedp.CSS(`input[name=since]`), since), chromedp.SetValue(chromedp.CSS(`select[name=scope]`), "RECOVER_SCOPE_ALL"),
		chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('button')].find(x => x.innerText === 'Recover').click()`))
	b.wait("the recover to finish", `document.querySelector('progress') && !document.querySelector('progress').hidden && document.querySelector('form[aria-label="Recover deliveries"] [role=status]').innerText.startsWith('Done')`, 15*time.Second)
	if p := eval[string](b, `document.querySelector('progress').value + '/' + document.querySelector('progress').max + ' ' + document.querySelector('form[aria-label="Recover deliveries"] [role=status]').innerText`); !strings.Contains(p, "1 re-queued") {
		t.Fatalf("recover progress: %s", p)
	}
	b.shot("subscription-actions")
	b.checkA11y("subscription")

	// A live view of successful attempts only, in another browser.
	lv := newTab(t, e, browsertest.Options{})
	lv.signIn(key, "acme")
	lv.go_("#/t/acme/live?result=TAIL_RESULT_SUCCEEDED&subscription_id=" + sub.GetId())
	lv.wait("the live stream to open", `document.querySelector('[role=status][data-connected]') !== null`, 15*time.Second)
	if v := eval[string](lv, `document.querySelector('select[name=result]').value`); v != "TAIL_RESULT_SUCCEEDED" {
		t.Fatalf("live filter shows %q", v)
	}

	// Test-send: lands on the new delivery, which succeeds.
	before := e.recv.count()
	b.do(chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('button')].find(x => x.innerText === 'Send test event').click()`))
	b.wait("the test delivery's page", `location.hash.includes('/deliveries/dlv_')`, 10*time.Second)
	waitFor(t, "the test delivery at the receiver", 15*time.Second, func() bool { return e.recv.count() > before })
	lv.wait("the successful attempt, live", `[...document.querySelectorAll('#live-rows tr.k-attempt')].some(r => r.innerText.includes('success'))`, 15*time.Second)
	if n := eval[int](lv, `document.querySelectorAll('#live-rows tr.k-created').length`); n != 0 {
		t.Fatalf("the attempts-only live view shows %d created rows", n)
	}

	// A read-only key: same pages, no working buttons.
	ro := e.apiKey("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY)
	r := newTab(t, e, browsertest.Options{Width: 360, Height: 740})
	r.do(chromedp.EmulateViewport(360, 740)) // headless windows are at least 500 px wide
	r.signIn(ro, "acme")
	r.go_("#/t/acme/subscriptions/" + sub.GetId())
	r.wait("the subscription page", `!!document.querySelector('#test-send')`, 10*time.Second)
	if n := eval[int](r, `[...document.querySelectorAll('main button')].filter(b => !b.disabled).length`); n != 0 {
		t.Fatalf("a read-only key has %d working buttons", n)
	}
	if !strings.Contains(r.text(), "read-only") {
		t.Fatal("the page does not say the key is read-only")
	}
	for _, hash := range []string{"#/t/acme/subscriptions/" + sub.GetId(), "#/t/acme/deliveries", "#/t/acme/live", "#/t/acme/events"} {
		r.go_(hash)
		r.wait(hash, `!document.getElementById('main').innerText.startsWith('Loading')`, 10*time.Second)
		if w := eval[int](r, `document.documentElement.scrollWidth`); w > 360 || eval[int](r, `window.innerWidth`) != 360 {
			t.Errorf("%s scrolls sideways at 360 px: %d px wide", hash, w)
		}
	}
	r.go_("#/t/acme/deliveries")
	r.wait("deliveries", `!!document.querySelector('#delivery-list table')`, 10*time.Second)
	r.shot("deliveries-360px")
}
