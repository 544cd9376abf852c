package portal

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// handlerFor serves the portal with a lookup that knows one token.
func handlerFor(t *testing.T, usable bool, lookupErr error) http.Handler {
	t.Helper()
	lookup := func(token string) (*hookwirev1.PortalSession, *hookwirev1.PortalSettings, bool, error) {
		if lookupErr != nil {
			return nil, nil, false, lookupErr
		}
		if token != "hwp_good" {
			return nil, nil, false, nil
		}
		return &hookwirev1.PortalSession{Id: "hwp_x", Tenant: "acme", ExpireTime: timestamppb.Now()},
			&hookwirev1.PortalSettings{Tenant: "acme", FrameAncestors: []string{"https://a.example"}, Title: `<script>alert(1)</script>`, PrimaryColor: "#123456"}, usable, nil
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "gateway") })
	return Handler(lookup, nil, next)
}

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestHandler(t *testing.T) {
	h := handlerFor(t, true, nil)
	if rec := get(t, h, "GET", "/v1/tenants"); rec.Body.String() != "gateway" {
		t.Errorf("other paths must reach the gateway: %q", rec.Body.String())
	}
	rec := get(t, h, "GET", "/portal/hwp_good")
	body := rec.Body.String()
	if rec.Code != 200 || strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("page: %d; the title must be escaped:\n%s", rec.Code, body)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.HasSuffix(csp, "frame-ancestors https://a.example") {
		t.Errorf("CSP %q", csp)
	}
	for path, code := range map[string]int{
		"/portal/hwp_unknown":         401,
		"/portal/":                    404,
		"/portal/a/b":                 404,
		"/portal/assets/portal.js":    200,
		"/portal/assets/portal.css":   200,
		"/portal/assets/index.html":   404, // the template is not an asset
		"/portal/assets/../portal.go": 404,
	} {
		if rec := get(t, h, "GET", path); rec.Code != code || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d %v, want %d with nosniff", path, rec.Code, rec.Header(), code)
		}
	}
	if rec := get(t, h, "POST", "/portal/hwp_good"); rec.Code != 405 {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
	js := get(t, h, "GET", "/portal/assets/portal.js")
	if ct := js.Header().Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("portal.js content type %q", ct)
	}
	req := httptest.NewRequest("GET", "/portal/assets/portal.js", nil)
	req.Header.Set("If-None-Match", js.Header().Get("ETag"))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 304 {
		t.Errorf("revalidation: %d, want 304", rec.Code)
	}
	// An unusable session keeps its tenant's frame-ancestors on the
	// "no longer valid" page, so an embedding site shows it.
	rec = get(t, handlerFor(t, false, nil), "GET", "/portal/hwp_good")
	if rec.Code != 401 || !strings.HasSuffix(rec.Header().Get("Content-Security-Policy"), "frame-ancestors https://a.example") {
		t.Errorf("expired session: %d %v", rec.Code, rec.Header())
	}
	if rec := get(t, handlerFor(t, true, errors.New("store closed")), "GET", "/portal/hwp_good"); rec.Code != 503 {
		t.Errorf("lookup failure: %d, want 503", rec.Code)
	}
}

// TestNoInnerHTML keeps the page's script to text-only DOM building.
func TestNoInnerHTML(t *testing.T) {
	js, err := assets.ReadFile("assets/portal.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(string(js), bad) {
			t.Errorf("portal.js uses %s: build the DOM with textContent", bad)
		}
	}
}
