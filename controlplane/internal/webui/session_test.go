package webui_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/controlplane/internal/webui"
	"github.com/hookwire/hookwire/controlplane/tlstest"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

var consoleHdr = map[string]string{webui.HeaderName: "1", "Content-Type": "application/json"}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// signIn signs in over HTTP and returns the session cookie's header value.
func signIn(t *testing.T, e *env, key, tenant string) (string, *http.Cookie) {
	t.Helper()
	code, body, h := e.rest("POST", "/console/session", `{"key":"`+key+`","tenant":"`+tenant+`"}`, consoleHdr)
	if code != 200 {
		t.Fatalf("sign in: %d %s", code, body)
	}
	resp := http.Response{Header: h}
	for _, c := range resp.Cookies() {
		if c.Name == webui.CookieName {
			return body, c
		}
	}
	t.Fatalf("sign in set no %s cookie: %v", webui.CookieName, h)
	return "", nil
}

func TestConsoleSecurityHeaders(t *testing.T) {
	e := startEnv(t, false)
	for _, p := range []string{"/console/", "/console/index.html", "/console/app.css", "/console/js/app.js", "/console/session", "/console/nope"} {
		_, _, h := e.rest("GET", p, "", nil)
		if got := h.Get("Content-Security-Policy"); got != webui.CSP {
			t.Errorf("%s: CSP %q", p, got)
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: may be framed: %v", p, h)
		}
		if h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: referrer/nosniff headers: %v", p, h)
		}
	}
	code, body, h := e.rest("GET", "/console/js/app.js", "", nil)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") || !strings.Contains(body, "import") {
		t.Fatalf("app.js: %d %s", code, h.Get("Content-Type"))
	}
	code, _, _ = e.rest("GET", "/console/js/app.js", "", map[string]string{"If-None-Match": h.Get("ETag")})
	if code != http.StatusNotModified {
		t.Fatalf("revalidation: %d, want 304", code)
	}
	// /console redirects to /console/ (the client follows).
	if code, body, _ := e.rest("GET", "/console", "", nil); code != 200 || !strings.Contains(body, "js/app.js") {
		t.Fatalf("/console: %d %s", code, body)
	}
	// No file in the console has inline script or style, which the CSP
	// would block.
	_, index, _ := e.rest("GET", "/console/", "", nil)
	if strings.Contains(index, "<script>") || strings.Contains(index, "style=") || strings.Contains(index, "<style") {
		t.Fatalf("index.html has inline script or style")
	}
}

func TestConsoleSignIn(t *testing.T) {
	e := startEnv(t, false)
	e.tenant("acme")
	e.tenant("globex")

	// Bad keys and bad requests get a message saying what to fix.
	for _, c := range []struct {
		body string
		hdr  map[string]string
		code int
		msg  string
	}{
		{`{"key":"nope"}`, consoleHdr, 401, "invalid API key"},
		{`{"key":""}`, consoleHdr, 400, "enter an API key"},
		{`{"key":"` + adminKey + `"}`, map[string]string{"Content-Type": "application/json"}, 403, webui.HeaderName},
		{`{"key":"` + adminKey + `"}`, with(consoleHdr, "Origin", "http://evil.example"), 403, "not this server"},
		{`key=` + adminKey, with(consoleHdr, "Content-Type", "application/x-www-form-urlencoded"), 415, "JSON"},
		{`{"key":"` + adminKey + `","tenant":"nope"}`, consoleHdr, 404, "nope"},
	} {
		code, body, h := e.rest("POST", "/console/session", c.body, c.hdr)
		if code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("sign in %s: %d %s, want %d with %q", c.body, code, body, c.code, c.msg)
		}
		if h.Get("Set-Cookie") != "" {
			t.Errorf("failed sign in set a cookie: %s", h.Get("Set-Cookie"))
		}
	}

	// The admin key: an HttpOnly, SameSite=Strict cookie, not Secure on
	// plain HTTP, that holds no readable key.
	who, ck := signIn(t, e, adminKey, "")
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Secure {
		t.Fatalf("cookie attributes: %+v", ck)
	}
	if strings.Contains(ck.Value, adminKey) || strings.Contains(who, adminKey) {
		t.Fatal("the key is readable in the cookie or the answer")
	}
	var w struct {
		Admin bool
		Scope string
	}
	_ = json.Unmarshal([]byte(who), &w)
	if !w.Admin || w.Scope != "API_KEY_SCOPE_ADMIN" {
		t.Fatalf("admin sign-in: %s", who)
	}
	cookie := ck.Name + "=" + ck.Value

	// The cookie works only with the console header.
	if code, body, _ := e.rest("GET", "/v1/tenants", "", map[string]string{"Cookie": cookie, webui.HeaderName: "1"}); code != 200 || !strings.Contains(body, "acme") {
		t.Fatalf("console call: %d %s", code, body)
	}
	if code, _, _ := e.rest("GET", "/v1/tenants", "", map[string]string{"Cookie": cookie}); code != 401 {
		t.Fatalf("cookie without the console header: %d, want 401", code)
	}
	if code, _, _ := e.rest("POST", "/v1/tenants", `{"id":"pwned"}`, map[string]string{"Cookie": cookie, "Content-Type": "text/plain"}); code != 401 {
		t.Fatalf("a form-like POST with the cookie: %d, want 401", code)
	}
	// A request's own Authorization wins over the cookie.
	if code, _, _ := e.rest("GET", "/v1/tenants", "", map[string]string{"Cookie": cookie, webui.HeaderName: "1", "Authorization": "Bearer wrong"}); code != 401 {
		t.Fatalf("explicit bad Authorization with a cookie: %d, want 401", code)
	}
	if code, body, _ := e.rest("GET", "/console/session", "", map[string]string{"Cookie": cookie, webui.HeaderName: "1"}); code != 200 || !strings.Contains(body, `"admin":true`) {
		t.Fatalf("who am I: %d %s", code, body)
	}
	// A tampered cookie is no session.
	bad := ck.Name + "=" + ck.Value[:len(ck.Value)-4] + "AAAA"
	if code, body, _ := e.rest("GET", "/console/session", "", map[string]string{"Cookie": bad, webui.HeaderName: "1"}); code != 401 || !strings.Contains(body, "sign in again") {
		t.Fatalf("tampered cookie: %d %s", code, body)
	}
	if code, _, _ := e.rest("GET", "/v1/tenants", "", map[string]string{"Cookie": bad, webui.HeaderName: "1"}); code != 401 {
		t.Fatalf("tampered cookie on the API: %d", code)
	}
	// Sign out clears the cookie.
	code, _, h := e.rest("DELETE", "/console/session", "", map[string]string{"Cookie": cookie, webui.HeaderName: "1"})
	if code != 204 || !strings.Contains(h.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("sign out: %d %v", code, h.Get("Set-Cookie"))
	}

	// Tenant keys: the key says its tenant and scope (GetCaller), and the
	// console can do no more than the key.
	ro := e.apiKey("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY)
	if code, body, _ := e.rest("POST", "/console/session", `{"key":"`+ro+`"}`, consoleHdr); code != 200 || !strings.Contains(body, `"tenant":"acme"`) || !strings.Contains(body, "API_KEY_SCOPE_READ_ONLY") {
		t.Fatalf("tenant key without tenant: %d %s; want the key's own tenant and scope", code, body)
	}
	if code, body, _ := e.rest("POST", "/console/session", `{"key":"`+ro+`","tenant":"globex"}`, consoleHdr); code != 404 {
		t.Fatalf("tenant key, other tenant: %d %s", code, body)
	}
	who, ck = signIn(t, e, ro, "acme")
	if !strings.Contains(who, "API_KEY_SCOPE_READ_ONLY") || !strings.Contains(who, `"tenant":"acme"`) {
		t.Fatalf("read-only sign-in: %s", who)
	}
	cookie = ck.Name + "=" + ck.Value
	h2 := map[string]string{"Cookie": cookie, webui.HeaderName: "1", "Content-Type": "application/json"}
	if code, _, _ := e.rest("GET", "/v1/tenants/acme/deliveries", "", h2); code != 200 {
		t.Fatalf("read-only key reads: %d", code)
	}
	if code, _, _ := e.rest("POST", "/v1/tenants/acme/subscriptions", `{"event_types":["x"],"target":{"transport":"http","config":{"url":"http://127.0.0.1:1/"}}}`, h2); code != 403 {
		t.Fatalf("read-only key writes through the console: %d, want 403", code)
	}
	if code, _, _ := e.rest("GET", "/v1/tenants/globex/deliveries", "", h2); code != 404 {
		t.Fatalf("read-only key reads another tenant: %d, want 404", code)
	}
	if code, _, _ := e.rest("GET", "/v1/tenants", "", h2); code != 403 {
		t.Fatalf("tenant key lists tenants: %d, want 403", code)
	}
	ta := e.apiKey("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN)
	if who, _ := signIn(t, e, ta, "acme"); !strings.Contains(who, "API_KEY_SCOPE_TENANT_ADMIN") {
		t.Fatalf("tenant-admin sign-in: %s", who)
	}
	pub := e.apiKey("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_PUBLISH)
	if code, body, _ := e.rest("POST", "/console/session", `{"key":"`+pub+`","tenant":"acme"}`, consoleHdr); code != 403 || !strings.Contains(body, "only publish") {
		t.Fatalf("publish key: %d %s", code, body)
	}
}

// TestConsoleSecureCookieOverTLS: with TLS on the REST listener the
// session cookie is Secure.
func TestConsoleSecureCookieOverTLS(t *testing.T) {
	certs := tlstest.New(t)
	mk, err := controlplane.ParseMasterKey(testMasterKey)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := controlplane.Start(context.Background(), controlplane.Config{
		DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", AdminKey: adminKey, MasterKey: mk,
		TLS: &controlplane.TLSConfig{CertFile: certs.Server.Cert, KeyFile: certs.Server.Key},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	pem, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("POST", "https://"+srv.HTTPAddr()+"/console/session", strings.NewReader(`{"key":"`+adminKey+`"}`))
	for k, v := range consoleHdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cks := resp.Cookies()
	if resp.StatusCode != 200 || len(cks) != 1 || !cks[0].Secure || !cks[0].HttpOnly || cks[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign in over TLS: %d %+v", resp.StatusCode, cks)
	}
}
