package main

// The tenant portal in a real browser: headless Chromium opens a portal
// link of the real hookwire server; the customer adds an endpoint (a
// loopback sink), copies its secret, sends a test event that the real
// agent delivers, sees the attempt and resends it. The same token is then
// tried against another tenant's data from the page itself and over plain
// HTTP, revoked, and shown to be refused.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/hookwire/hookwire/internal/browsertest"
)

// portalSession is CreatePortalSession's answer.
type portalSession struct {
	ID         string `json:"id"`
	Token      string `json:"token"`
	URL        string `json:"url"`
	ExpireTime string `json:"expire_time"`
}

func createPortalSession(t *testing.T, httpAddr, tenant, body string) portalSession {
	t.Helper()
	var ps portalSession
	if code := restCall(t, httpAddr, "POST", "/v1/tenants/"+tenant+"/portal-sessions", body, &ps); code != 200 {
		t.Fatalf("create portal session: HTTP %d %+v", code, ps)
	}
	if !strings.HasPrefix(ps.Token, "hwp_") || ps.URL != "/portal/"+ps.Token || ps.ExpireTime == "" {
		t.Fatalf("portal session %+v: want an hwp_ token, the URL /portal/<token> and an expire_time", ps)
	}
	return ps
}

// bearerCall is a REST call with a portal token (or any bearer).
func bearerCall(t *testing.T, httpAddr, token, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+httpAddr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// pageAnswer is what pageFetch's script returns.
type pageAnswer struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// pageFetch runs fetch(path) with the token inside the page and returns
// the HTTP status and body: what the page's own code could get.
func pageFetch(t *testing.T, ctx context.Context, token, method, path string) (int, string) {
	t.Helper()
	js := fmt.Sprintf(`fetch(%q, {method: %q, headers: {Authorization: "Bearer " + %q}}).then(async r => ({status: r.status, body: await r.text()}))`, path, method, token)
	out, err := chromedp.Run(ctx, chromedp.Evaluate[pageAnswer](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch %s in the page: %v", path, err)
	}
	return out.Status, out.Body
}

func TestPortalInBrowser(t *testing.T) {
	browsertest.Require(t)
	srv := startServerArgs(t, t.TempDir())
	startAgent(t, srv.grpcAddr, "portal-agent")
	sk := newMarkupSink(t)
	addr := srv.httpAddr

	const xss = `<img src=x onerror="window.__xss=1">`
	if code, body := restRaw(t, addr, "POST", "/v1/tenants", `{"id":"acme","display_name":"Acme Inc"}`); code != 200 {
		t.Fatalf("create tenant acme: %d %s", code, body)
	}
	// The catalog: one type whose description and example carry markup.
	if code, body := restRaw(t, addr, "POST", "/v1/tenants/acme/event-types",
		`{"name":"order.created","description":"An order was placed `+strings.ReplaceAll(xss, `"`, `\"`)+`","example_payload":"{\"id\":\"ord_1\",\"note\":\"<img src=x onerror=window.__xss=2>\"}"}`); code != 200 {
		t.Fatalf("create event type: %d %s", code, body)
	}
	if code, body := restRaw(t, addr, "PUT", "/v1/tenants/acme/portal-settings",
		`{"frame_ancestors":["https://app.example.com","http://localhost:3000"],"primary_color":"#AA3300","theme":"PORTAL_THEME_DARK","title":"Acme webhooks"}`); code != 200 {
		t.Fatalf("portal settings: %d %s", code, body)
	}
	// Another customer's endpoint in acme, and globex's endpoint: the
	// session must see neither.
	var other struct {
		ID string `json:"id"`
	}
	restCall(t, addr, "POST", "/v1/tenants/acme/subscriptions",
		`{"event_types":["*"],"target":{"transport":"http","config":{"url":"`+sk.url+`?other"}},"metadata":{"customer":"cus_2"},"description":"someone else"}`, &other)
	globexSub, _ := createSubscription(t, addr, "globex", sk.url+"?globex")

	ps := createPortalSession(t, addr, "acme",
		`{"labels":{"customer":"cus_1"},"ttl":"3600s","features":["endpoints.write","secrets.rotate","deliveries.resend","events.test"],"customer":"Customer One"}`)

	// The page's headers: frame-ancestors from the allowlist, no referrer.
	resp, err := http.Get("http://" + addr + ps.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(csp, "frame-ancestors https://app.example.com http://localhost:3000") ||
		!strings.Contains(csp, "script-src 'self'") || resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET portal page: %d, headers %v", resp.StatusCode, resp.Header)
	}
	if strings.Contains(string(page), ps.Token) {
		t.Fatalf("the page's HTML carries the token")
	}

	ctx := browsertest.NewWith(t, browsertest.Options{Width: 360, Height: 800})
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	str := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	num := func(expr string) int {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	xpath := func(x string) chromedp.Search { return chromedp.Search(x) }
	// shot writes a screenshot for docs/CONSOLE.md when
	// scripts/screenshots.sh sets HOOKWIRE_CONSOLE_SCREENSHOTS.
	shot := func(name string) {
		t.Helper()
		dir := os.Getenv("HOOKWIRE_CONSOLE_SCREENSHOTS")
		if dir == "" {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	do("open the portal", chromedp.Navigate("http://"+addr+ps.URL), chromedp.WaitVisible(css("#add-endpoint")))
	if path := str("path", chromedp.Evaluate[string](`location.pathname`)); path != "/portal/" {
		t.Errorf("address bar path after load %q: the token must leave it", path)
	}
	if primary := str("primary", chromedp.Evaluate[string](`getComputedStyle(document.documentElement).getPropertyValue("--primary").trim()`)); !strings.EqualFold(primary, "#aa3300") {
		t.Errorf("--primary is %q, want the tenant's #AA3300", primary)
	}
	if fg := str("button text colour", chromedp.Evaluate[string](`getComputedStyle(document.getElementById("add-endpoint")).color`)); fg != "rgb(255, 255, 255)" {
		t.Errorf("text on the #AA3300 accent is %s, want white (the better contrast)", fg)
	}
	if listed := str("read the list", chromedp.Text(css("#app"))); strings.Contains(listed, "someone else") || strings.Contains(listed, "globex") {
		t.Fatalf("the page lists another customer's endpoints: %q", listed)
	}

	// Add an endpoint; its secret is shown once.
	do("add an endpoint",
		chromedp.Click(css("#add-endpoint")),
		chromedp.WaitVisible(css("#ep-url")),
		chromedp.SendKeys(css("#ep-url"), sk.url),
		chromedp.SendKeys(css("#ep-desc"), "Orders "+xss),
		chromedp.Click(css("#save-endpoint")),
		chromedp.WaitVisible(css("#secret-value")))
	secret := str("secret", chromedp.Value(css("#secret-value")))
	shot("portal-secret")
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret shown after create: %q", secret)
	}
	var subs struct {
		Subscriptions []struct {
			ID          string            `json:"id"`
			Description string            `json:"description"`
			Metadata    map[string]string `json:"metadata"`
		} `json:"subscriptions"`
	}
	restCall(t, addr, "GET", "/v1/tenants/acme/subscriptions", "", &subs)
	var mine string
	for _, s := range subs.Subscriptions {
		if s.Metadata["customer"] == "cus_1" {
			mine = s.ID
			if s.Description != "Orders "+xss {
				t.Errorf("stored description %q", s.Description)
			}
		}
	}
	if mine == "" {
		t.Fatalf("the endpoint made in the portal does not carry the session's labels: %+v", subs)
	}
	do("close the secret", chromedp.Click(xpath("//section[@id='secret']//button[text()='Done']")), chromedp.WaitNotPresent(css("#secret")))
	shot("portal-endpoints")
	if desc := str("description", chromedp.Text(css("li.endpoint .description"))); desc != "Orders "+xss {
		t.Errorf("the description shows as %q, want the markup as text", desc)
	}
	if num(`document.body.textContent.includes("whsec_") ? 1 : 0`) != 0 {
		t.Errorf("the secret is still on the page after Done")
	}

	// Edit the endpoint; pause and resume it.
	do("edit", chromedp.Click(xpath("//li[contains(@class,'endpoint')]//button[text()='Edit']")), chromedp.WaitVisible(css("#ep-desc")),
		chromedp.SetValue(css("#ep-desc"), "Orders and refunds"), chromedp.Click(css("#save-endpoint")),
		chromedp.WaitVisible(xpath("//li[contains(@class,'endpoint')]//p[@class='description'][text()='Orders and refunds']")))
	var stored struct {
		Description string `json:"description"`
		Status      string `json:"status"`
		Target      struct {
			Config struct {
				URL string `json:"url"`
			} `json:"config"`
		} `json:"target"`
	}
	restCall(t, addr, "GET", "/v1/tenants/acme/subscriptions/"+mine, "", &stored)
	if stored.Description != "Orders and refunds" || stored.Target.Config.URL != sk.url {
		t.Errorf("after the edit the endpoint is %+v", stored)
	}
	do("pause", chromedp.Click(xpath("//li[contains(@class,'endpoint')]//button[text()='Pause']")),
		chromedp.WaitVisible(xpath("//li[contains(@class,'endpoint')]//button[text()='Resume']")))
	restCall(t, addr, "GET", "/v1/tenants/acme/subscriptions/"+mine, "", &stored)
	if stored.Status != "SUBSCRIPTION_STATUS_PAUSED" {
		t.Errorf("after Pause the endpoint is %s", stored.Status)
	}
	do("resume", chromedp.Click(xpath("//li[contains(@class,'endpoint')]//button[text()='Resume']")),
		chromedp.WaitVisible(xpath("//li[contains(@class,'endpoint')]//button[text()='Pause']")))

	// Send a test event of the catalog's type: the agent delivers it.
	do("open send test event",
		chromedp.Click(xpath("//li[contains(@class,'endpoint')]//button[text()='Send test event']")),
		chromedp.WaitVisible(css("#test-payload")))
	if example := str("example", chromedp.Value(css("#test-payload"))); !strings.Contains(example, `"ord_1"`) {
		t.Errorf("the test form's payload %q is not the type's example", example)
	}
	do("send it", chromedp.Click(css("#send-test")), chromedp.WaitVisible(css("#refresh-deliveries")))
	sk.await(1, 30*time.Second)
	for _, got := range sk.all() {
		verify(t, secret, got[0])
		if !strings.Contains(string(got[0].body), `"ord_1"`) {
			t.Errorf("delivered body %s, want the example payload", got[0].body)
		}
	}

	// The attempt appears: the test clicks Refresh, as a user would,
	// until the row shows the sink's 200.
	deadline := time.Now().Add(30 * time.Second)
	for {
		do("refresh deliveries", chromedp.Click(css("#refresh-deliveries")), chromedp.WaitVisible(css("tr.delivery, td.muted")))
		resp := str("response", chromedp.Evaluate[string](`(document.querySelector("tr.delivery td.response") || {}).textContent || ""`))
		if resp == "200" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivery's attempt did not show 200 in the page (last %q)", resp)
		}
		do("pause", chromedp.Sleep(200*time.Millisecond))
	}

	// The attempt's details show what the endpoint answered, markup as text.
	do("open the attempts", chromedp.Click(css("tr.attempts summary")), chromedp.WaitVisible(css("tr.attempts pre.body")))
	if lat := str("latency", chromedp.Text(css("tr.delivery td:nth-child(4)"))); !regexp.MustCompile(`^[0-9.]+ (ms|s)$`).MatchString(lat) {
		t.Errorf("latency shows as %q; want it in ms or s for people", lat)
	}
	// Usable at 360 px: nothing on the page is wider than the window.
	if wide := str("overflow", chromedp.Evaluate[string](`[document.documentElement, ...document.querySelectorAll('#app *')].filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'hidden').map(e => e.tagName + '.' + e.className + ' ' + e.scrollWidth + '>' + e.clientWidth).join(', ')`)); wide != "" {
		t.Errorf("at 360 px these are wider than their box (sideways scrolling): %s", wide)
	}
	shot("portal-attempts")
	if got := str("response body", chromedp.Text(css("tr.attempts pre.body"))); got != markupBody {
		t.Errorf("the response body shows as %q, want %q as text", got, markupBody)
	}
	if got := str("response headers", chromedp.Text(css("tr.attempts pre.headers"))); !strings.Contains(got, markupHeader) {
		t.Errorf("the response headers show as %q, want %q among them as text", got, markupHeader)
	}
	if imgs, flag := num(`document.querySelectorAll("img").length`), num(`window.__xss === undefined ? 0 : 1`); imgs != 0 || flag != 0 {
		t.Errorf("the endpoint's answer became elements: %d <img>, flag %d", imgs, flag)
	}

	// Resend: a new delivery reaches the sink.
	do("resend", chromedp.Click(css("button.resend")), chromedp.WaitVisible(xpath("(//tr[contains(@class,'delivery')])[2]")))
	sk.await(2, 30*time.Second)

	// Nothing of the markup ran: no image element, no flag.
	do("back to the test form", chromedp.Click(xpath("//button[text()='Back to endpoints']")), chromedp.WaitVisible(css("#add-endpoint")),
		chromedp.Click(xpath("//li[contains(@class,'endpoint')]//button[text()='Send test event']")),
		chromedp.WaitVisible(css("#test-type-desc")))
	if imgs, flag := num(`document.querySelectorAll("img").length`), num(`window.__xss === undefined ? 0 : 1`); imgs != 0 || flag != 0 {
		t.Errorf("markup from the API became elements: %d <img>, flag %d", imgs, flag)
	}
	if d := str("type description", chromedp.Text(css("#test-type-desc"))); !strings.Contains(d, xss) {
		t.Errorf("the type's description shows as %q, want its markup as text", d)
	}
	if overflow := num(`document.documentElement.scrollWidth - document.documentElement.clientWidth`); overflow > 0 {
		t.Errorf("at 360 px the page scrolls sideways by %d px", overflow)
	}

	// Rotate the secret (confirmed in the page): a new one is shown once.
	do("rotate", chromedp.Click(xpath("//button[text()='Back']")), chromedp.WaitVisible(css("#add-endpoint")),
		chromedp.Click(xpath("//li[contains(@class,'endpoint')]//button[text()='Rotate secret']")),
		chromedp.WaitVisible(css("#confirm-yes")), chromedp.Click(css("#confirm-yes")),
		chromedp.WaitVisible(css("#secret-value")))
	if rotated := str("rotated secret", chromedp.Value(css("#secret-value"))); !strings.HasPrefix(rotated, "whsec_") || rotated == secret {
		t.Errorf("secret after rotation %q (before %q)", rotated, secret)
	}
	do("close the secret", chromedp.Click(xpath("//section[@id='secret']//button[text()='Done']")), chromedp.WaitNotPresent(css("#secret")))

	// The same token against another tenant's and another customer's
	// data, from the page and over plain HTTP: all look missing.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/tenants/globex/subscriptions"},
		{"GET", "/v1/tenants/globex/subscriptions/" + globexSub},
		{"GET", "/v1/tenants/globex/deliveries?subscription_id=" + globexSub},
		{"GET", "/v1/tenants/acme/subscriptions/" + other.ID},
		{"GET", "/v1/tenants/acme/deliveries?subscription_id=" + other.ID},
		{"DELETE", "/v1/tenants/acme/subscriptions/" + other.ID},
	} {
		code, body := pageFetch(t, ctx, ps.Token, c.method, c.path)
		hcode, hbody := bearerCall(t, addr, ps.Token, c.method, c.path, "")
		if code != 404 || hcode != 404 {
			t.Errorf("%s %s with acme's customer token: page %d %s, HTTP %d %s; want 404", c.method, c.path, code, body, hcode, hbody)
		}
	}
	for _, path := range []string{"/v1/tenants/acme/events", "/v1/tenants/acme/api-keys", "/v1/tenants/acme/audit-events", "/v1/tenants"} {
		code, body := pageFetch(t, ctx, ps.Token, "GET", path)
		if code != 403 || !strings.Contains(body, "portal tokens can only") {
			t.Errorf("GET %s with a portal token: %d %s; want 403 saying what portal tokens can do", path, code, body)
		}
	}
	code, body := pageFetch(t, ctx, ps.Token, "GET", "/v1/tenants/acme/subscriptions")
	if code != 200 || strings.Contains(body, other.ID) || !strings.Contains(body, mine) {
		t.Errorf("acme's list with the token: %d %s; want only the session's endpoint", code, body)
	}

	// Delete, from the keyboard: Escape cancels, then the button deletes.
	do("delete, cancelled", chromedp.Click(xpath("//li[contains(@class,'endpoint')]//button[text()='Delete']")),
		chromedp.WaitVisible(css("#confirm-no")), chromedp.KeyEvent(kb.Escape), chromedp.WaitNotPresent(css("#confirm")))
	if n := num(`document.querySelectorAll("li.endpoint").length`); n != 1 {
		t.Fatalf("%d endpoints after a cancelled delete, want 1", n)
	}
	do("delete", chromedp.Click(xpath("//li[contains(@class,'endpoint')]//button[text()='Delete']")),
		chromedp.WaitVisible(css("#confirm-yes")), chromedp.Click(css("#confirm-yes")),
		chromedp.WaitNotPresent(css("li.endpoint")))
	if code, _ := bearerCall(t, addr, e2eAdminKey, "GET", "/v1/tenants/acme/subscriptions/"+mine, ""); code != 404 {
		t.Errorf("the deleted endpoint: HTTP %d, want 404", code)
	}
	if code, _ := bearerCall(t, addr, e2eAdminKey, "GET", "/v1/tenants/acme/subscriptions/"+other.ID, ""); code != 200 {
		t.Errorf("another customer's endpoint after the delete: HTTP %d, want 200", code)
	}

	// Revoked: refused at once, by the API and by the page.
	if code, body := restRaw(t, addr, "POST", "/v1/tenants/acme/portal-sessions/"+ps.ID+":revoke", `{}`); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, _ := pageFetch(t, ctx, ps.Token, "GET", "/v1/tenants/acme/subscriptions"); code != 401 {
		t.Errorf("a revoked token's call: HTTP %d, want 401", code)
	}
	do("open a revoked link", chromedp.Navigate("http://"+addr+ps.URL))
	if gone := str("gone page", chromedp.Text(css("h1"))); gone != "This link is no longer valid" {
		t.Errorf("revoked link shows %q", gone)
	}
	if resp, err := http.Get("http://" + addr + ps.URL); err != nil || resp.StatusCode != 401 {
		t.Errorf("GET a revoked link: %v %v, want 401", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
}

// TestPortalFrameAncestorsInBrowser embeds the portal in a page of another
// origin: allowed there, it loads; not allowed, Chromium blocks it.
func TestPortalFrameAncestorsInBrowser(t *testing.T) {
	browsertest.Require(t)
	srv := startServerArgs(t, t.TempDir())
	addr := srv.httpAddr
	if code, body := restRaw(t, addr, "POST", "/v1/tenants", `{"id":"acme"}`); code != 200 {
		t.Fatalf("create tenant: %d %s", code, body)
	}
	// The tenant's site: a page on another loopback origin with an iframe.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	site := "http://localhost:" + fmt.Sprint(lis.Addr().(*net.TCPAddr).Port)
	var frameSrc string
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>tenant site</title><iframe id="portal" src="%s" width="360" height="600"></iframe>`, frameSrc)
	})}
	go func() { _ = hs.Serve(lis) }()
	t.Cleanup(func() { hs.Close() })

	framed := func(t *testing.T) bool {
		ps := createPortalSession(t, addr, "acme", `{"features":["endpoints.write"]}`)
		frameSrc = "http://" + addr + ps.URL
		ctx := browsertest.New(t)
		// Chromium reports a refused frame on the parent's console.
		refused := make(chan struct{}, 1)
		go func() {
			for m, err := range chromedp.Console(ctx) {
				if err != nil {
					return
				}
				if strings.Contains(m.Text, "frame-ancestors") {
					select {
					case refused <- struct{}{}:
					default:
					}
				}
			}
		}()
		// Chromium's frame tree says what the frame shows: the portal, or
		// an error page in its place when frame-ancestors refuses it.
		if err := chromedp.Do(ctx, chromedp.Navigate(site+"/")); err != nil {
			t.Fatal(err)
		}
		var loaded bool
		deadline := time.Now().Add(20 * time.Second)
		for {
			// A frame of another origin runs in its own renderer: it is
			// a target of its own, showing the portal or an error page.
			targets, err := chromedp.Targets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var frameURLs []string
			for _, ti := range targets {
				if ti.Type == "iframe" {
					frameURLs = append(frameURLs, ti.URL)
				}
			}
			if slices.Contains(frameURLs, "http://"+addr+"/portal/") {
				loaded = true // the portal's script ran (it drops the token from the URL)
				break
			}
			select {
			case <-refused:
				return false
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("the frame neither loaded nor failed within 20s: frame targets %q", frameURLs)
			}
			if err := chromedp.Do(ctx, chromedp.Sleep(100*time.Millisecond)); err != nil { // no event to wait on across origins
				t.Fatal(err)
			}
		}
		return loaded
	}

	// No allowlist: 'none', the frame is blocked.
	if framed(t) {
		t.Errorf("the portal loaded in a frame of %s with no frame-ancestors allowed", site)
	}
	body, _ := json.Marshal(map[string]any{"frame_ancestors": []string{site}})
	if code, out := restRaw(t, addr, "PUT", "/v1/tenants/acme/portal-settings", string(body)); code != 200 {
		t.Fatalf("settings: %d %s", code, out)
	}
	if !framed(t) {
		t.Errorf("the portal did not load in a frame of %s, which the tenant allows", site)
	}
}

// The markup a hostile endpoint answers with; the portal must show it as
// text.
const (
	markupBody   = `<img src=x onerror="window.__xss=4">ok`
	markupHeader = `<img src=x onerror=window.__xss=5>`
)

// newMarkupSink is newSink whose answer is 200 with markup in its body and
// in a header.
func newMarkupSink(t *testing.T) *sink {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{t: t, url: "http://" + lis.Addr().String() + "/hook", got: map[string][]received{}, hits: make(chan received, 1000)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{id: r.Header.Get("webhook-id"), path: r.URL.Path, body: body, headers: r.Header.Clone()}
		s.mu.Lock()
		s.got[rec.id] = append(s.got[rec.id], rec)
		s.mu.Unlock()
		w.Header().Set("X-Note", markupHeader)
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, markupBody)
		s.hits <- rec
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	return s
}
