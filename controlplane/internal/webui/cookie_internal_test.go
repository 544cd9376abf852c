package webui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/secrets"
)

func testKeyring(t *testing.T, b byte) *secrets.Keyring {
	t.Helper()
	raw := make([]byte, secrets.KeySize)
	for i := range raw {
		raw[i] = b
	}
	k, err := secrets.NewMasterKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	r, err := secrets.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSessionCookie: Secure with TLS, expiry enforced, and a cookie opens
// on any server with the same master key and on no other.
func TestSessionCookie(t *testing.T) {
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	ring := testKeyring(t, 1)
	c := New(Config{Keyring: func() *secrets.Keyring { return ring }, Secure: true, Now: func() time.Time { return now }})
	rec := httptest.NewRecorder()
	if err := c.setCookie(rec, &session{Key: "hwk_secret", Scope: "API_KEY_SCOPE_ADMIN", Expiry: now.Add(DefaultSessionTTL).Unix()}); err != nil {
		t.Fatal(err)
	}
	ck := rec.Result().Cookies()[0]
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge != int(DefaultSessionTTL/time.Second) {
		t.Fatalf("cookie: %+v", ck)
	}
	req := func() *http.Request {
		r := httptest.NewRequest("GET", "/v1/tenants", nil)
		r.AddCookie(ck)
		r.Header.Set(HeaderName, "1")
		return r
	}
	// Another server sharing the master key opens it.
	other := New(Config{Keyring: func() *secrets.Keyring { return testKeyring(t, 1) }, Now: func() time.Time { return now }})
	if s, err := other.openCookie(req()); err != nil || s.Key != "hwk_secret" {
		t.Fatalf("same master key: %v %v", s, err)
	}
	r := req()
	other.authorize(r)
	if r.Header.Get("Authorization") != "Bearer hwk_secret" {
		t.Fatalf("authorize: %q", r.Header.Get("Authorization"))
	}
	// Without the console header the cookie is ignored.
	r = req()
	r.Header.Del(HeaderName)
	other.authorize(r)
	if r.Header.Get("Authorization") != "" {
		t.Fatal("cookie honoured without the console header")
	}
	// A server with another master key does not.
	stranger := New(Config{Keyring: func() *secrets.Keyring { return testKeyring(t, 2) }, Now: func() time.Time { return now }})
	if _, err := stranger.openCookie(req()); err == nil || !strings.Contains(err.Error(), "sign in again") {
		t.Fatalf("other master key: %v", err)
	}
	// Expired.
	now = now.Add(DefaultSessionTTL)
	if _, err := c.openCookie(req()); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired session: %v", err)
	}
}

// TestNoHTMLSinks keeps the console's scripts off the APIs that parse
// strings as HTML or code: data reaches the page only as text.
func TestNoHTMLSinks(t *testing.T) {
	sinks := []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setTimeout('", "setTimeout(\""}
	n := 0
	loadAssets().Files(func(name string, body []byte) {
		if !strings.HasSuffix(name, ".js") && !strings.HasSuffix(name, ".html") {
			return
		}
		n++
		for _, s := range sinks {
			if strings.Contains(string(body), s) {
				t.Errorf("%s uses %s", name, s)
			}
		}
	})
	if n < 6 {
		t.Fatalf("checked %d files", n)
	}
}
