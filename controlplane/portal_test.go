package controlplane_test

// The tenant portal's API and page over REST, on an in-process server
// with a test clock: session lifetimes, the rate limit, what a portal
// token may and may not do, settings validation, and that the token
// stays out of logs and the audit log. The browser tests are in
// cmd/hookwire/e2e_portal_test.go.

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
)

type portalSessionJSON struct {
	ID         string `json:"id"`
	Token      string `json:"token"`
	URL        string `json:"url"`
	ExpireTime string `json:"expire_time"`
	Code       int    `json:"code"`
	Message    string `json:"message"`
}

// portalREST is a REST call with any bearer; it returns the status, the
// body and the headers.
func portalREST(t *testing.T, h *harness, method, path, bearer, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+h.srv.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), resp.Header
}

func newPortalSession(t *testing.T, h *harness, tenant, body string) portalSessionJSON {
	t.Helper()
	code, out, _ := portalREST(t, h, "POST", "/v1/tenants/"+tenant+"/portal-sessions", adminKey, body)
	var ps portalSessionJSON
	if err := json.Unmarshal([]byte(out), &ps); err != nil || code != 200 {
		t.Fatalf("create portal session: %d %s", code, out)
	}
	return ps
}

func TestPortalTokenExpires(t *testing.T) {
	c := &clock{}
	h := start(t, t.TempDir(), controlplane.Config{Now: c.now})
	h.setup("acme")
	ps := newPortalSession(t, h, "acme", `{"ttl":"60s"}`)
	if code, body, hdr := portalREST(t, h, "GET", ps.URL, "", ""); code != 200 || hdr.Get("Cache-Control") != "no-store" || strings.Contains(body, ps.Token) {
		t.Fatalf("fresh link: %d %v (the page must not carry the token)", code, hdr)
	}
	if code, body, _ := portalREST(t, h, "GET", "/v1/portal/context", ps.Token, ""); code != 200 || !strings.Contains(body, `"tenant":"acme"`) {
		t.Fatalf("context with a fresh token: %d %s", code, body)
	}
	c.advance(61 * time.Second)
	code, body, _ := portalREST(t, h, "GET", ps.URL, "", "")
	if code != 401 || !strings.Contains(body, "no longer valid") || strings.Contains(body, "acme") {
		t.Errorf("expired link: %d %s; want 401 and a page that names nothing", code, body)
	}
	code, body, _ = portalREST(t, h, "GET", "/v1/tenants/acme/subscriptions", ps.Token, "")
	if code != 401 || !strings.Contains(body, "expired") {
		t.Errorf("expired token's call: %d %s; want 401 saying it expired", code, body)
	}
	// Unknown and malformed tokens get the same page as expired ones.
	for _, p := range []string{"/portal/hwp_aaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "/portal/nonsense", "/portal/" + ps.Token[:len(ps.Token)-1] + "x"} {
		if code, gone, _ := portalREST(t, h, "GET", p, "", ""); code != 401 || gone != body && !strings.Contains(gone, "no longer valid") {
			t.Errorf("GET %s: %d %s", p, code, gone)
		}
	}
	// Listing drops expired sessions.
	_, list, _ := portalREST(t, h, "GET", "/v1/tenants/acme/portal-sessions", adminKey, "")
	if strings.Contains(list, ps.ID) {
		t.Errorf("an expired session is still listed: %s", list)
	}
}

func TestPortalSessionCreationIsRateLimitedPerTenant(t *testing.T) {
	c := &clock{}
	h := start(t, t.TempDir(), controlplane.Config{Now: c.now, PortalSessionRate: 1, PortalSessionBurst: 2})
	h.setup("acme")
	h.setup("globex")
	for range 2 {
		newPortalSession(t, h, "acme", `{}`)
	}
	code, body, hdr := portalREST(t, h, "POST", "/v1/tenants/acme/portal-sessions", adminKey, `{}`)
	if code != 429 || hdr.Get("Retry-After") != "1" || !strings.Contains(body, "portal sessions") {
		t.Fatalf("third session within the burst: %d %s Retry-After %q; want 429 with Retry-After 1", code, body, hdr.Get("Retry-After"))
	}
	newPortalSession(t, h, "globex", `{}`) // another tenant has its own budget
	c.advance(time.Second)
	newPortalSession(t, h, "acme", `{}`)
}

func TestPortalSessionRequestsAreChecked(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{PortalURL: "https://hooks.example.com/"})
	h.setup("acme")
	globexSub := h.setup("globex")
	ps := newPortalSession(t, h, "acme", `{}`)
	if ps.URL != "https://hooks.example.com/portal/"+ps.Token {
		t.Errorf("url %q, want it on --portal-url", ps.URL)
	}
	var ro, pub struct {
		Key string `json:"key"`
	}
	h.rest("POST", "/v1/tenants/acme/api-keys", adminKey, "application/json", []byte(`{"scope":"API_KEY_SCOPE_READ_ONLY"}`), &ro)
	h.rest("POST", "/v1/tenants/acme/api-keys", adminKey, "application/json", []byte(`{"scope":"API_KEY_SCOPE_PUBLISH"}`), &pub)
	for _, c := range []struct {
		key, body string
		code      int
		says      string
	}{
		{adminKey, `{"ttl":"86401s"}`, 400, "ttl"},
		{adminKey, `{"ttl":"10s"}`, 400, "ttl"},
		{adminKey, `{"features":["everything"]}`, 400, "features"},
		{adminKey, `{"labels":{"customer":"a"},"subscription_ids":["sub_x"]}`, 400, "not both"},
		{adminKey, `{"subscription_ids":["` + globexSub.GetId() + `"]}`, 404, "not found"},
		{ro.Key, `{}`, 403, "read-only"},
		{pub.Key, `{}`, 403, "publish"},
		{ps.Token, `{}`, 403, "portal tokens can only"},
	} {
		code, body, _ := portalREST(t, h, "POST", "/v1/tenants/acme/portal-sessions", c.key, c.body)
		if code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("create %s with %.8s...: %d %s; want %d saying %q", c.body, c.key, code, body, c.code, c.says)
		}
	}
}

func TestPortalSettingsAreValidated(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	h.setup("acme")
	for _, bad := range []string{
		`{"frame_ancestors":["http://app.example.com"]}`,
		`{"frame_ancestors":["https://*.com"]}`,
		`{"frame_ancestors":["*"]}`,
		`{"frame_ancestors":["https://app.example.com/path"]}`,
		`{"frame_ancestors":["javascript:alert(1)"]}`,
		`{"frame_ancestors":["https://a.example.com; script-src *"]}`,
		`{"frame_ancestors":["https://user@a.example.com"]}`,
		`{"frame_ancestors":["https://10.0.0.1"]}`,
		`{"frame_ancestors":["https://App.Example.com"]}`,
		`{"logo_url":"http://cdn.example.com/logo.png"}`,
		`{"logo_url":"https://cdn.example.com/\"onerror=\"x"}`,
		`{"primary_color":"red"}`,
		`{"theme":"PORTAL_THEME_NEON"}`,
	} {
		code, body, _ := portalREST(t, h, "PUT", "/v1/tenants/acme/portal-settings", adminKey, bad)
		if code != 400 {
			t.Errorf("settings %s: %d %s; want 400", bad, code, body)
		}
	}
	code, body, _ := portalREST(t, h, "PUT", "/v1/tenants/acme/portal-settings", adminKey,
		`{"frame_ancestors":["https://app.example.com/","https://*.example.org","http://localhost:3000","https://app.example.com:8443"],"logo_url":"https://cdn.example.com/logo.svg","primary_color":"#AABBCC","theme":"PORTAL_THEME_LIGHT"}`)
	var got struct {
		FrameAncestors []string `json:"frame_ancestors"`
		PrimaryColor   string   `json:"primary_color"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 200 ||
		strings.Join(got.FrameAncestors, " ") != "https://app.example.com https://*.example.org http://localhost:3000 https://app.example.com:8443" || got.PrimaryColor != "#aabbcc" {
		t.Fatalf("good settings: %d %s; want the origins normalised and the colour in lower case", code, body)
	}
	ps := newPortalSession(t, h, "acme", `{}`)
	_, page, hdr := portalREST(t, h, "GET", ps.URL, "", "")
	if csp := hdr.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "frame-ancestors https://app.example.com https://*.example.org http://localhost:3000 https://app.example.com:8443") {
		t.Errorf("CSP %q", csp)
	}
	if hdr.Get("X-Frame-Options") != "" {
		t.Errorf("X-Frame-Options %q with an allowlist: it would override frame-ancestors in old browsers", hdr.Get("X-Frame-Options"))
	}
	if !strings.Contains(page, `data-theme="light"`) || !strings.Contains(page, `data-primary="#aabbcc"`) || !strings.Contains(page, `src="https://cdn.example.com/logo.svg"`) {
		t.Errorf("the page does not carry the theme: %s", page)
	}
	// An empty allowlist: nobody may frame the page.
	portalREST(t, h, "PUT", "/v1/tenants/acme/portal-settings", adminKey, `{}`)
	_, _, hdr = portalREST(t, h, "GET", ps.URL, "", "")
	if csp := hdr.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "frame-ancestors 'none'") || hdr.Get("X-Frame-Options") != "DENY" {
		t.Errorf("no allowlist: CSP %q, X-Frame-Options %q", csp, hdr.Get("X-Frame-Options"))
	}
	for _, asset := range []string{"/portal/assets/portal.js", "/portal/assets/portal.css"} {
		code, _, hdr := portalREST(t, h, "GET", asset, "", "")
		if code != 200 || hdr.Get("X-Content-Type-Options") != "nosniff" || hdr.Get("ETag") == "" {
			t.Errorf("GET %s: %d %v", asset, code, hdr)
		}
	}
}

// TestPortalGateLimitsWhatATokenDoes: the gate's rules beyond the method
// list (the isolation matrix covers that): features, the scope of
// labels, the fields an endpoint may have, and resends.
func TestPortalGateLimitsWhatATokenDoes(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	tenantSub := h.setup("acme") // the tenant's own, outside the labels
	portalREST(t, h, "POST", "/v1/tenants/acme/event-types", adminKey, `{"name":"order.created","example_payload":"{\"id\":1}"}`)
	ps := newPortalSession(t, h, "acme", `{"labels":{"customer":"cus_1"},"features":["endpoints.write","events.test"]}`)
	tok := ps.Token
	call := func(method, path, body string) (int, string) {
		t.Helper()
		code, out, _ := portalREST(t, h, method, path, tok, body)
		return code, out
	}
	target := `"target":{"transport":"http","config":{"url":"https://hooks.customer.example/in"}}`
	for _, c := range []struct {
		body string
		code int
		says string
	}{
		{`{"event_types":["*"],"target":{"transport":"nats","config":{"url":"nats://x"}}}`, 403, "http endpoints only"},
		{`{"event_types":["*"],"target":{"transport":"http","config":{"url":"https://x.example"},"headers":{"x-a":"b"}}}`, 403, "only the http URL"},
		{`{"event_types":["*"],"target":{"transport":"http","config":{"url":"https://x.example","method":"PUT"}}}`, 403, "only the url"},
		{`{"event_types":["*"],` + target + `,"metadata":{"customer":"cus_2"}}`, 403, "metadata"},
		{`{"event_types":["*"],` + target + `,"filter":"true"}`, 403, "subscription.filter"},
		{`{"event_types":["*"],` + target + `,"agent_selector":"region=eu"}`, 403, "subscription.agent_selector"},
	} {
		if code, out := call("POST", "/v1/tenants/acme/subscriptions", c.body); code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("create %s: %d %s; want %d saying %q", c.body, code, out, c.code, c.says)
		}
	}
	var made struct {
		ID       string            `json:"id"`
		Metadata map[string]string `json:"metadata"`
		Secret   string            `json:"signing_secret"`
	}
	code, out := call("POST", "/v1/tenants/acme/subscriptions", `{"event_types":["order.*"],"description":"mine",`+target+`}`)
	if err := json.Unmarshal([]byte(out), &made); err != nil || code != 200 || made.Metadata["customer"] != "cus_1" || !strings.HasPrefix(made.Secret, "whsec_") {
		t.Fatalf("create an http endpoint: %d %s; want it tagged with the session's labels and its secret", code, out)
	}
	sub := "/v1/tenants/acme/subscriptions/" + made.ID
	// The endpoint receives only this customer's events (metadata), and
	// an event without the key is no match rather than a filter error.
	for _, c := range []struct {
		metadata string
		want     bool
	}{{`{"customer":"cus_1"}`, true}, {`{"customer":"cus_2"}`, false}, {`{}`, false}, {`{"customer":"cus_1\" || true || \""}`, false}} {
		code, out, _ := portalREST(t, h, "POST", "/v1/tenants/acme/events", adminKey, `{"type":"order.created","payload":{},"metadata":`+c.metadata+`}`)
		var pub struct {
			ID           string `json:"id"`
			FilterErrors []any  `json:"filter_errors"`
		}
		if err := json.Unmarshal([]byte(out), &pub); err != nil || code != 200 || len(pub.FilterErrors) != 0 {
			t.Fatalf("publish with metadata %s: %d %s", c.metadata, code, out)
		}
		_, dels, _ := portalREST(t, h, "GET", "/v1/tenants/acme/deliveries?event_id="+pub.ID+"&subscription_id="+made.ID, adminKey, "")
		if got := strings.Contains(dels, made.ID); got != c.want {
			t.Errorf("event with metadata %s delivered to the customer's endpoint: %v, want %v (%s)", c.metadata, got, c.want, dels)
		}
	}
	for _, c := range []struct {
		method, path, body string
		code               int
		says               string
	}{
		{"PATCH", sub + "?update_mask=metadata", `{"metadata":{"customer":"cus_2"}}`, 403, "update_mask"},
		{"PATCH", sub + "?update_mask=filter", `{"filter":"true"}`, 403, "update_mask"},
		{"PATCH", sub + "?update_mask=target.config.url", `{"target":{"transport":"nats","config":{"url":"nats://x"}}}`, 403, "http endpoints only"},
		{"POST", sub + ":rotateSecret", `{}`, 403, `secrets.rotate\" feature`},
		{"POST", "/v1/tenants/acme/subscriptions/" + tenantSub.GetId() + ":sendTestEvent", `{"event_type":"order.created"}`, 404, "not found"},
		{"GET", "/v1/tenants/acme/deliveries", "", 403, "subscription_id"},
		{"GET", "/v1/tenants/acme/deliveries:tail", "", 403, "portal tokens can only"},
		{"POST", "/v1/tenants/acme/events", `{"type":"order.created","payload":{}}`, 403, "portal tokens can only"},
		{"POST", "/v1/tenants/acme/subscriptions/" + made.ID + ":recover", `{}`, 403, "portal tokens can only"},
	} {
		if code, out := call(c.method, c.path, c.body); code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("%s %s %s: %d %s; want %d saying %q", c.method, c.path, c.body, code, out, c.code, c.says)
		}
	}
	if code, out := call("PATCH", sub+"?update_mask=description,event_types,target.config.url", `{"description":"changed","event_types":["order.created"],`+target+`}`); code != 200 || !strings.Contains(out, `"changed"`) || !strings.Contains(out, `"customer":"cus_1"`) {
		t.Errorf("an allowed update: %d %s", code, out)
	}
	// A test event reaches only the session's endpoint.
	var sent struct {
		EventID  string `json:"event_id"`
		Delivery struct {
			SubscriptionID string `json:"subscription_id"`
		} `json:"delivery"`
	}
	code, out = call("POST", sub+":sendTestEvent", `{"event_type":"order.created"}`)
	if err := json.Unmarshal([]byte(out), &sent); err != nil || code != 200 || sent.Delivery.SubscriptionID != made.ID {
		t.Fatalf("send test event: %d %s", code, out)
	}
	_, evDels, _ := portalREST(t, h, "GET", "/v1/tenants/acme/deliveries?event_id="+sent.EventID, adminKey, "")
	if strings.Count(evDels, `"subscription_id"`) != 1 {
		t.Errorf("the test event has deliveries %s; want only the session's endpoint's", evDels)
	}
	if code, out := call("POST", sub+":sendTestEvent", `{"event_type":"order.unknown"}`); code != 404 || !strings.Contains(out, "event catalog") {
		t.Errorf("a type not in the catalog: %d %s", code, out)
	}
	// An operator's key (the console) may test-send a type the catalog
	// does not list; it too reaches only that subscription, even one whose
	// types do not include it.
	code, out, _ = portalREST(t, h, "POST", sub+":sendTestEvent", adminKey, `{"event_type":"ops.check","payload":"{\"probe\":1}"}`)
	if err := json.Unmarshal([]byte(out), &sent); err != nil || code != 200 || sent.Delivery.SubscriptionID != made.ID {
		t.Fatalf("operator test event of an uncatalogued type: %d %s", code, out)
	}
	if _, evDels, _ := portalREST(t, h, "GET", "/v1/tenants/acme/deliveries?event_id="+sent.EventID, adminKey, ""); strings.Count(evDels, `"subscription_id"`) != 1 {
		t.Errorf("the operator's test event has deliveries %s; want only the one subscription's", evDels)
	}
	for _, bad := range []string{`{"event_type":"hookwire.fake"}`, `{"event_type":"no spaces"}`} {
		if code, out, _ := portalREST(t, h, "POST", sub+":sendTestEvent", adminKey, bad); code != 400 {
			t.Errorf("operator test event %s: %d %s; want 400", bad, code, out)
		}
	}

	// Resending an event of the tenant the endpoint never received would
	// show the customer another customer's event: it looks missing.
	pub := publishEvent(t, h, "acme", "invoice.paid") // the endpoint takes order.created only
	ps2 := newPortalSession(t, h, "acme", `{"labels":{"customer":"cus_1"},"features":["deliveries.resend"]}`)
	code, out, _ = portalREST(t, h, "POST", "/v1/tenants/acme/events/"+pub+":resend", ps2.Token, `{"subscription_id":"`+made.ID+`"}`)
	if code != 404 {
		t.Errorf("resend of an event the endpoint never got: %d %s; want 404", code, out)
	}
	code, out, _ = portalREST(t, h, "POST", "/v1/tenants/acme/events/"+sent.EventID+":resend", ps2.Token, `{"subscription_id":"`+made.ID+`"}`)
	if code != 200 {
		t.Errorf("resend of the endpoint's own event: %d %s", code, out)
	}

	// A session of a fixed list of endpoints cannot create more.
	ps3 := newPortalSession(t, h, "acme", `{"subscription_ids":["`+made.ID+`"],"features":["endpoints.write"]}`)
	code, out, _ = portalREST(t, h, "POST", "/v1/tenants/acme/subscriptions", ps3.Token, `{"event_types":["*"],`+target+`}`)
	if code != 403 || !strings.Contains(out, "fixed list") {
		t.Errorf("create with an id-scoped session: %d %s", code, out)
	}
	code, out, _ = portalREST(t, h, "GET", "/v1/tenants/acme/subscriptions", ps3.Token, "")
	if code != 200 || !strings.Contains(out, made.ID) || strings.Contains(out, tenantSub.GetId()) {
		t.Errorf("list with an id-scoped session: %d %s", code, out)
	}
	// Read-only session: no writes at all.
	ro := newPortalSession(t, h, "acme", `{"labels":{"customer":"cus_1"}}`)
	code, out, _ = portalREST(t, h, "DELETE", sub, ro.Token, "")
	if code != 403 || !strings.Contains(out, `endpoints.write\" feature`) {
		t.Errorf("delete with a read-only session: %d %s", code, out)
	}
}

// publishEvent publishes an event of type as the admin and returns its id.
func publishEvent(t *testing.T, h *harness, tenant, typ string) string {
	t.Helper()
	code, out, _ := portalREST(t, h, "POST", "/v1/tenants/"+tenant+"/events", adminKey, `{"type":"`+typ+`","payload":{"other":"customer"}}`)
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 200 {
		t.Fatalf("publish: %d %s", code, out)
	}
	return r.ID
}

// TestPortalTokenStaysOutOfLogsAndAudit drives the portal at debug log
// level, with good, bad and revoked tokens, and looks for the token's
// secret in everything the server wrote and recorded.
func TestPortalTokenStaysOutOfLogsAndAudit(t *testing.T) {
	logs := &logSink{}
	h := start(t, t.TempDir(), controlplane.Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	h.setup("acme")
	ps := newPortalSession(t, h, "acme", `{"labels":{"customer":"c"},"features":["endpoints.write"]}`)
	portalREST(t, h, "GET", ps.URL, "", "")
	portalREST(t, h, "GET", ps.URL+"/../x", "", "")
	portalREST(t, h, "GET", "/v1/portal/context", ps.Token, "")
	portalREST(t, h, "POST", "/v1/tenants/acme/subscriptions", ps.Token, `{"event_types":["*"],"target":{"transport":"http","config":{"url":"https://x.example/h"}}}`)
	portalREST(t, h, "GET", "/v1/tenants/acme/api-keys", ps.Token, "")
	portalREST(t, h, "POST", "/v1/tenants/acme/portal-sessions/"+ps.ID+":revoke", adminKey, `{}`)
	portalREST(t, h, "GET", ps.URL, "", "")
	portalREST(t, h, "GET", "/v1/portal/context", ps.Token, "")
	_, audit, _ := portalREST(t, h, "GET", "/v1/tenants/acme/audit-events?page_size=1000", adminKey, "")
	if !strings.Contains(audit, "portal_session.create") || !strings.Contains(audit, ps.ID) {
		t.Fatalf("the audit log does not record the session (by id): %s", audit)
	}
	secret := ps.Token[len(ps.ID)+1:]
	for what, text := range map[string]string{"the server log": logs.String(), "the audit log": audit} {
		if strings.Contains(text, secret) || strings.Contains(text, url.PathEscape(ps.Token)) {
			t.Errorf("%s carries the portal token", what)
		}
	}
}

// TestPortalAPIIsNotOpenToCSRF: the API takes its credentials from the
// Authorization header only, so what a cross-site form can send (no
// header, form encoding, any cookie) is refused and changes nothing.
func TestPortalAPIIsNotOpenToCSRF(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	h.setup("acme")
	ps := newPortalSession(t, h, "acme", `{"features":["endpoints.write"]}`)
	form := url.Values{"event_types": {"*"}, "target.transport": {"http"}, "target.config.url": {"https://evil.example/"}}
	req, _ := http.NewRequest("POST", "http://"+h.srv.HTTPAddr()+"/v1/tenants/acme/subscriptions", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.AddCookie(&http.Cookie{Name: "token", Value: ps.Token})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 && resp.StatusCode != 401 {
		t.Errorf("a cross-site form post: %d, want it refused", resp.StatusCode)
	}
	// A text/plain form can carry a JSON body; without the header it is
	// still unauthenticated.
	req, _ = http.NewRequest("POST", "http://"+h.srv.HTTPAddr()+"/v1/tenants/acme/subscriptions",
		strings.NewReader(`{"event_types":["*"],"target":{"transport":"http","config":{"url":"https://evil.example/"}}}`))
	req.Header.Set("Content-Type", "text/plain")
	req.AddCookie(&http.Cookie{Name: "token", Value: ps.Token})
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("a cross-site text/plain post: %d, want 401", resp.StatusCode)
	}
	_, list, _ := portalREST(t, h, "GET", "/v1/tenants/acme/subscriptions", adminKey, "")
	if strings.Contains(list, "evil.example") {
		t.Errorf("the form post created a subscription: %s", list)
	}
	_, _, hdr := portalREST(t, h, "GET", ps.URL, "", "")
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q: want form-action 'none' and connect-src 'self'", csp)
	}
}

func TestPortalURLIsChecked(t *testing.T) {
	for _, bad := range []string{"hooks.example.com", "ftp://hooks.example.com", "https://user:pw@hooks.example.com", "https://hooks.example.com/?x=1"} {
		_, err := controlplane.Start(t.Context(), controlplane.Config{DataDir: t.TempDir(), PortalURL: bad, MasterKey: mustMasterKey(t, testMasterKey)})
		if err == nil || !strings.Contains(err.Error(), "--portal-url") {
			t.Errorf("PortalURL %q: %v, want an error naming --portal-url", bad, err)
		}
	}
}

// TestPortalRevocationReachesEveryServer: in a three-server cluster, a
// session created through one server opens on all, and once revoked
// through another, no server accepts it: API calls at once (they are
// answered by the leader), the page as soon as the server has applied
// the revocation.
func TestPortalRevocationReachesEveryServer(t *testing.T) {
	hs := startCluster(t, nil)
	// Poll until a condition holds: elections and replication take a
	// moment.
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20s", what)
			}
			time.Sleep(20 * time.Millisecond) // polling replication
		}
	}
	eventually("create tenant acme", func() bool {
		code, _, _ := portalREST(t, hs[0], "POST", "/v1/tenants", adminKey, `{"id":"acme"}`)
		return code == 200
	})
	ps := newPortalSession(t, hs[1], "acme", `{}`)
	for i, h := range hs {
		eventually(fmt.Sprintf("the page through server %d", i+1), func() bool {
			code, _, _ := portalREST(t, h, "GET", ps.URL, "", "")
			return code == 200
		})
	}
	if code, body, _ := portalREST(t, hs[2], "POST", "/v1/tenants/acme/portal-sessions/"+ps.ID+":revoke", adminKey, `{}`); code != 200 {
		t.Fatalf("revoke through server 3: %d %s", code, body)
	}
	for i, h := range hs {
		if code, body, _ := portalREST(t, h, "GET", "/v1/portal/context", ps.Token, ""); code != 401 {
			t.Errorf("server %d answered a revoked token: %d %s", i+1, code, body)
		}
		eventually(fmt.Sprintf("the revoked page through server %d", i+1), func() bool {
			code, _, _ := portalREST(t, h, "GET", ps.URL, "", "")
			return code == 401
		})
	}
}
