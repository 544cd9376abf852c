package verify_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/hookwire/hookwire/controlplane/signing/verify"
)

// recorder is a next handler that remembers what reached it.
type recorder struct {
	calls int
	body  []byte
	id    string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.calls++
	rec.body, _ = io.ReadAll(r.Body)
	rec.id = r.Header.Get("webhook-id")
	w.WriteHeader(http.StatusNoContent)
}

func request(body []byte, h http.Header) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(body))
	for k, v := range h {
		r.Header[k] = v
	}
	return r
}

func TestMiddlewarePassesVerifiedRequests(t *testing.T) {
	body := []byte(`{"type":"order.paid"}`)
	k := edPair(t)
	next := &recorder{}
	h := verify.Middleware(verifier(t, k), next)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, request(body, signed(t, now, "dlv_ok", body, k)))
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d (%s), want 204 from next", w.Code, w.Body)
	}
	if next.calls != 1 || !bytes.Equal(next.body, body) || next.id != "dlv_ok" {
		t.Fatalf("next saw %d calls, body %q, id %q", next.calls, next.body, next.id)
	}
}

func TestMiddlewareRejects(t *testing.T) {
	body := []byte(`{"type":"order.paid"}`)
	k := hmacPair(t)
	good := signed(t, now, "dlv_1", body, k)
	tests := []struct {
		name   string
		req    *http.Request
		v      *verify.Verifier
		code   int
		reason string
		kind   error
	}{
		{"tampered body", request([]byte(`{"type":"order.refunded"}`), good), nil, 401, "no matching webhook signature", verify.ErrNoMatchingSignature},
		{"no headers", request(body, nil), nil, 400, "missing webhook headers", verify.ErrMissingHeaders},
		{"stale", request(body, signed(t, now.Add(-10*time.Minute), "dlv_1", body, k)), nil, 401, "webhook timestamp too old", verify.ErrTimestampTooOld},
		{"future", request(body, signed(t, now.Add(10*time.Minute), "dlv_1", body, k)), nil, 401, "webhook timestamp too new", verify.ErrTimestampTooNew},
		{"malformed", func() *http.Request {
			r := request(body, good)
			r.Header.Set("webhook-timestamp", "soon")
			return r
		}(), nil, 400, "malformed webhook header", verify.ErrMalformedHeader},
		{"too large by length", request(body, good), verifier(t, k).With(verify.WithMaxBodyBytes(8)), 413, "webhook body too large", nil},
		{"too large, length unknown", func() *http.Request {
			r := request(body, good)
			r.ContentLength = -1
			r.Body = io.NopCloser(bytes.NewReader(body))
			return r
		}(), verifier(t, k).With(verify.WithMaxBodyBytes(8)), 413, "webhook body too large", nil},
		{"unreadable body", func() *http.Request {
			r := request(body, good)
			r.ContentLength = -1
			r.Body = io.NopCloser(iotest.ErrReader(errors.New("connection reset")))
			return r
		}(), nil, 400, "webhook body unreadable", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.v
			if v == nil {
				v = verifier(t, k)
			}
			var rejected error
			v = v.With(verify.WithOnReject(func(_ *http.Request, err error) { rejected = err }))
			next := &recorder{}
			w := httptest.NewRecorder()
			verify.Middleware(v, next).ServeHTTP(w, tt.req)
			if w.Code != tt.code {
				t.Errorf("status %d, want %d", w.Code, tt.code)
			}
			if got := strings.TrimSpace(w.Body.String()); got != tt.reason {
				t.Errorf("reason %q, want %q", got, tt.reason)
			}
			if next.calls != 0 {
				t.Error("next was called for a rejected request")
			}
			if rejected == nil || (tt.kind != nil && !errors.Is(rejected, tt.kind)) {
				t.Errorf("OnReject got %v, want %v", rejected, tt.kind)
			}
		})
	}
}

func TestMiddlewareBodyAtLimit(t *testing.T) {
	body := bytes.Repeat([]byte("a"), 64)
	k := hmacPair(t)
	next := &recorder{}
	h := verify.Middleware(verifier(t, k).With(verify.WithMaxBodyBytes(64)), next)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, request(body, signed(t, now, "dlv_l", body, k)))
	if w.Code != http.StatusNoContent || !bytes.Equal(next.body, body) {
		t.Fatalf("64-byte body with a 64-byte limit: status %d, next saw %d bytes", w.Code, len(next.body))
	}
}

// A real server round trip: signed requests pass, others do not.
func TestMiddlewareOverHTTP(t *testing.T) {
	k := edPair(t)
	next := &recorder{}
	srv := httptest.NewServer(verify.Middleware(verifier(t, k), next))
	defer srv.Close()
	body := []byte(`{"n":1}`)
	post := func(b []byte, h http.Header) int {
		req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range h {
			req.Header[name] = v
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(body, signed(t, now, "dlv_h", body, k)); code != http.StatusNoContent {
		t.Errorf("signed: %d", code)
	}
	if code := post([]byte(`{"n":2}`), signed(t, now, "dlv_h", body, k)); code != http.StatusUnauthorized {
		t.Errorf("tampered: %d", code)
	}
	if next.calls != 1 {
		t.Errorf("next called %d times, want 1", next.calls)
	}
}
