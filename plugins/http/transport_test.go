package httptransport_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"google.golang.org/protobuf/proto"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	httptransport "github.com/hookwire/hookwire/plugins/http"
	"github.com/hookwire/hookwire/plugins/sdk"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTransport returns a transport that may deliver to the loopback test
// servers over plain http (the dev policy); later options win.
func newTransport(t *testing.T, opts ...httptransport.Option) *httptransport.Transport {
	t.Helper()
	base := []httptransport.Option{httptransport.WithVersion("1.2.3"), httptransport.WithPolicy(httptransport.DevPolicy())}
	tr := httptransport.New(append(base, opts...)...)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func config(t *testing.T, fields map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatalf("config %v: %v", fields, err)
	}
	return s
}

func request(t *testing.T, url string) *transportv1.DeliveryRequest {
	return &transportv1.DeliveryRequest{
		Config:     config(t, map[string]any{"url": url}),
		Body:       []byte(`{"type":"order.created"}`),
		DeliveryId: "msg_1",
		Timeout:    durationpb.New(5 * time.Second),
	}
}

// captured is what the test server saw.
type captured struct {
	method string
	path   string
	header http.Header
	body   []byte
}

func TestDeliverSendsBodyAndHeadersExactly(t *testing.T) {
	got := make(chan captured, 1)
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- captured{r.Method, r.URL.RequestURI(), r.Header.Clone(), body}
		w.Header().Set("X-Receiver", "ok")
		w.Header().Add("X-Multi", "first")
		w.Header().Add("X-Multi", "second")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("thanks"))
	})

	body := make([]byte, 4096)
	_, _ = rand.Read(body) // arbitrary bytes, not valid UTF-8 or JSON
	req := &transportv1.DeliveryRequest{
		Config: config(t, map[string]any{
			"url":     srv.URL + "/hooks/in?tenant=a",
			"headers": map[string]any{"X-Source": "billing", "x-team": "payments"},
		}),
		Body:        body,
		ContentType: "application/octet-stream",
		Headers: map[string]string{
			"webhook-id":        "msg_2Lx",
			"webhook-timestamp": "1700000000",
			"webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= v1,aaa",
			"authorization":     "Bearer abc", // a subscription's target header
		},
		Timeout: durationpb.New(5 * time.Second),
	}
	res := newTransport(t).Deliver(context.Background(), req)

	if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS || res.GetStatusCode() != 202 || res.GetError() != "" {
		t.Fatalf("result = %v %d %q, want SUCCESS 202", res.GetOutcome(), res.GetStatusCode(), res.GetError())
	}
	c := <-got
	if c.method != http.MethodPost || c.path != "/hooks/in?tenant=a" {
		t.Errorf("request = %s %s, want POST /hooks/in?tenant=a", c.method, c.path)
	}
	if !bytes.Equal(c.body, body) {
		t.Error("body was not delivered byte-for-byte")
	}
	want := map[string]string{
		"Content-Type":      "application/octet-stream",
		"User-Agent":        "Hookwire/1.2.3",
		"Webhook-Id":        "msg_2Lx",
		"Webhook-Timestamp": "1700000000",
		"Webhook-Signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= v1,aaa",
		"Authorization":     "Bearer abc",
		"X-Source":          "billing",
		"X-Team":            "payments",
		"Content-Length":    "4096",
	}
	for name, v := range want {
		if got := c.header.Values(name); len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %q, want exactly %q", name, got, v)
		}
	}
	if res.GetResponseHeaders()["x-receiver"] != "ok" || res.GetResponseHeaders()["x-multi"] != "first" {
		t.Errorf("response headers = %v, want lower-case names with first values", res.GetResponseHeaders())
	}
	if string(res.GetResponseBody()) != "thanks" {
		t.Errorf("response body = %q", res.GetResponseBody())
	}
	if res.GetLatency() == nil || res.GetLatency().AsDuration() <= 0 {
		t.Errorf("latency = %v, want positive", res.GetLatency())
	}
	if res.GetRetryAfter() != nil {
		t.Errorf("retry_after = %v without a Retry-After header", res.GetRetryAfter())
	}
}

func TestDeliverDefaultContentType(t *testing.T) {
	got := make(chan string, 1)
	srv := server(t, func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("Content-Type") })
	res := newTransport(t).Deliver(context.Background(), request(t, srv.URL))
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("result = %v %q", res.GetOutcome(), res.GetError())
	}
	if ct := <-got; ct != "application/json" {
		t.Errorf("content-type = %q, want application/json", ct)
	}
}

func TestDeliverOutcomeByStatus(t *testing.T) {
	tests := []struct {
		status int
		want   transportv1.Outcome
	}{
		{200, transportv1.Outcome_OUTCOME_SUCCESS},
		{204, transportv1.Outcome_OUTCOME_SUCCESS},
		{299, transportv1.Outcome_OUTCOME_SUCCESS},
		{410, transportv1.Outcome_OUTCOME_GONE},
		{429, transportv1.Outcome_OUTCOME_THROTTLED},
		{502, transportv1.Outcome_OUTCOME_THROTTLED},
		{503, transportv1.Outcome_OUTCOME_THROTTLED},
		{504, transportv1.Outcome_OUTCOME_THROTTLED},
		{400, transportv1.Outcome_OUTCOME_FAILED},
		{401, transportv1.Outcome_OUTCOME_FAILED},
		{404, transportv1.Outcome_OUTCOME_FAILED},
		{500, transportv1.Outcome_OUTCOME_FAILED},
		{501, transportv1.Outcome_OUTCOME_FAILED},
		{304, transportv1.Outcome_OUTCOME_FAILED},
	}
	tr := newTransport(t)
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			srv := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tt.status) })
			res := tr.Deliver(context.Background(), request(t, srv.URL))
			if res.GetOutcome() != tt.want || res.GetStatusCode() != int32(tt.status) {
				t.Errorf("status %d: result = %v %d, want %v", tt.status, res.GetOutcome(), res.GetStatusCode(), tt.want)
			}
			if tt.want != transportv1.Outcome_OUTCOME_SUCCESS && !strings.Contains(res.GetError(), "answered") {
				t.Errorf("status %d: error %q does not say what the target answered", tt.status, res.GetError())
			}
		})
	}
}

func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	tr := newTransport(t)
	for _, code := range []int{301, 302, 303, 307, 308} {
		var followed atomic.Bool
		srv := server(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/moved" {
				followed.Store(true)
				return
			}
			http.Redirect(w, r, "/moved", code)
		})
		res := tr.Deliver(context.Background(), request(t, srv.URL+"/hook"))
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_FAILED || res.GetStatusCode() != int32(code) {
			t.Errorf("redirect %d: result = %v %d, want FAILED %d", code, res.GetOutcome(), res.GetStatusCode(), code)
		}
		if !strings.Contains(res.GetError(), `"/moved"`) || !strings.Contains(res.GetError(), "not followed") {
			t.Errorf("redirect %d: error %q should name the location and say it was not followed", code, res.GetError())
		}
		if followed.Load() {
			t.Errorf("redirect %d was followed", code)
		}
	}
}

func TestDeliverRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header string
		want   time.Duration
		absent bool
	}{
		{"delta-seconds", "120", 120 * time.Second, false},
		{"zero", "0", 0, false},
		{"http-date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, false},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0, false},
		{"huge", "99999999999999", 365 * 24 * time.Hour, false},
		{"negative", "-5", 0, true},
		{"garbage", "soon", 0, true},
	}
	tr := newTransport(t, httptransport.WithClock(func() time.Time { return now }))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", tt.header)
				w.WriteHeader(http.StatusTooManyRequests)
			})
			res := tr.Deliver(context.Background(), request(t, srv.URL))
			if res.GetOutcome() != transportv1.Outcome_OUTCOME_THROTTLED {
				t.Fatalf("outcome = %v, want THROTTLED", res.GetOutcome())
			}
			if tt.absent {
				if res.GetRetryAfter() != nil {
					t.Errorf("Retry-After %q gave %v, want none", tt.header, res.GetRetryAfter().AsDuration())
				}
				return
			}
			if res.GetRetryAfter() == nil || res.GetRetryAfter().AsDuration() != tt.want {
				t.Errorf("Retry-After %q gave %v, want %v", tt.header, res.GetRetryAfter(), tt.want)
			}
		})
	}
}

func TestDeliverCapsResponseBody(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 20<<10) // 320 KiB
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(big)
	})
	res := newTransport(t).Deliver(context.Background(), request(t, srv.URL))
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_FAILED {
		t.Fatalf("outcome = %v %q", res.GetOutcome(), res.GetError())
	}
	if got := res.GetResponseBody(); len(got) != httptransport.MaxResponseBody || !bytes.Equal(got, big[:httptransport.MaxResponseBody]) {
		t.Errorf("excerpt is %d bytes, want the first %d", len(got), httptransport.MaxResponseBody)
	}
}

// A response header value that is not UTF-8 (obs-text) must not make the
// result unencodable: it is kept with the bad bytes replaced.
func TestDeliverNonUTF8ResponseHeader(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Latin1", "caf\xe9")
		w.WriteHeader(http.StatusNoContent)
	})
	res := newTransport(t).Deliver(context.Background(), request(t, srv.URL))
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("outcome = %v %q", res.GetOutcome(), res.GetError())
	}
	if got := res.GetResponseHeaders()["x-latin1"]; got != "caf\uFFFD" {
		t.Errorf("x-latin1 = %q, want %q", got, "caf\uFFFD")
	}
	if _, err := proto.Marshal(res); err != nil {
		t.Fatalf("result does not encode: %v", err)
	}
}

// hangingServer answers nothing until the test ends or the client goes away.
// It reads the request body first so that net/http notices the client
// hanging up and cancels the request context.
func hangingServer(t *testing.T) (srv *httptest.Server, arrived <-chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	got := make(chan struct{}, 16)
	srv = server(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv, got
}

func TestDeliverTimeout(t *testing.T) {
	srv, _ := hangingServer(t)
	req := request(t, srv.URL)
	req.Timeout = durationpb.New(100 * time.Millisecond)
	start := time.Now()
	res := newTransport(t).Deliver(context.Background(), req)
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_TIMEOUT {
		t.Errorf("outcome = %v %q, want TIMEOUT", res.GetOutcome(), res.GetError())
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("timed-out delivery took %v, want about 100ms", elapsed)
	}

	// The caller's context deadline counts too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if res := newTransport(t).Deliver(ctx, request(t, srv.URL)); res.GetOutcome() != transportv1.Outcome_OUTCOME_TIMEOUT {
		t.Errorf("outcome with a ctx deadline = %v %q, want TIMEOUT", res.GetOutcome(), res.GetError())
	}
}

func TestDeliverConnectionErrors(t *testing.T) {
	// A port that nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	_ = ln.Close()

	// A server that accepts and hangs up without answering.
	hangup := server(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})

	// A TLS server whose certificate the transport does not trust.
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tlsSrv.Config.ErrorLog = nil
	t.Cleanup(tlsSrv.Close)

	tests := []struct{ name, url, mention string }{
		{"refused", refused, "refused"},
		{"hang-up", hangup.URL, "EOF"},
		{"tls", tlsSrv.URL, "certificate"},
	}
	tr := newTransport(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tr.Deliver(context.Background(), request(t, tt.url))
			if res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR {
				t.Errorf("outcome = %v %q, want CONNECTION_ERROR", res.GetOutcome(), res.GetError())
			}
			if !strings.Contains(res.GetError(), tt.mention) {
				t.Errorf("error %q does not mention %q", res.GetError(), tt.mention)
			}
		})
	}
}

// TestDeliverDNSError checks the classification of a failed lookup without
// asking a real resolver: the dialer fails the way net.Resolver does.
func TestDeliverDNSError(t *testing.T) {
	rt := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "hooks.example.invalid", IsNotFound: true}}
	}}
	tr := newTransport(t, httptransport.WithRoundTripper(rt))
	res := tr.Deliver(context.Background(), request(t, "http://hooks.example.invalid/x"))
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR || !strings.Contains(res.GetError(), "no such host") {
		t.Errorf("result = %v %q, want CONNECTION_ERROR mentioning the lookup failure", res.GetOutcome(), res.GetError())
	}
}

func TestDeliverCanceled(t *testing.T) {
	srv, arrived := hangingServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-arrived
		cancel()
	}()
	res := newTransport(t).Deliver(ctx, request(t, srv.URL))
	<-done
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR || !strings.Contains(res.GetError(), "canceled") {
		t.Errorf("outcome = %v %q, want CONNECTION_ERROR saying it was canceled", res.GetOutcome(), res.GetError())
	}
}

func TestDeliverRejectsBadConfigWithoutPanicking(t *testing.T) {
	tr := newTransport(t)
	for _, cfg := range []*structpb.Struct{
		nil,
		{},
		config(t, map[string]any{"url": 42}),
		config(t, map[string]any{"url": "ftp://x"}),
		config(t, map[string]any{"url": "http://127.0.0.1/", "headers": "x"}),
		config(t, map[string]any{"url": "http://127.0.0.1/", "headers": map[string]any{"webhook-signature": "forged"}}),
	} {
		req := request(t, "http://127.0.0.1/")
		req.Config = cfg
		res := tr.Deliver(context.Background(), req)
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_REJECTED || res.GetError() == "" {
			t.Errorf("config %v: result = %v %q, want REJECTED with a reason", cfg, res.GetOutcome(), res.GetError())
		}
	}

	req := request(t, "http://127.0.0.1/")
	req.Headers = map[string]string{"webhook-id": "a\r\nX-Injected: 1"}
	if res := tr.Deliver(context.Background(), req); res.GetOutcome() != transportv1.Outcome_OUTCOME_REJECTED {
		t.Errorf("request header with CRLF: result = %v, want REJECTED", res.GetOutcome())
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]any
		want   []string // substrings, one per expected problem, in order
	}{
		{"https", map[string]any{"url": "https://example.com/hooks"}, nil},
		{"http loopback with headers", map[string]any{"url": "http://127.0.0.1:8080/x", "headers": map[string]any{"X-Source": "x", "X-Env": "prod"}}, nil},
		{"credentials", map[string]any{"url": "https://example.com", "headers": map[string]any{"Authorization": "Bearer x", "cookie": "a=b", "traceparent": "00-x"}},
			[]string{`"Authorization" carries credentials`, `"cookie" carries credentials`, `"traceparent" cannot be set`}},
		{"missing url", map[string]any{}, []string{"url is required"}},
		{"empty url", map[string]any{"url": ""}, []string{"url is empty"}},
		{"url not a string", map[string]any{"url": true}, []string{"url must be a string, not a boolean"}},
		{"ftp", map[string]any{"url": "ftp://x"}, []string{`url "ftp://x" must use http or https`}},
		{"relative", map[string]any{"url": "/hooks"}, []string{`url "/hooks" must be absolute`}},
		{"no host", map[string]any{"url": "http:///hooks"}, []string{`url "http:///hooks" has no host`}},
		{"unparsable", map[string]any{"url": "http://[::1"}, []string{`url "http://[::1" is not a valid URL`}},
		{"unknown field", map[string]any{"url": "https://example.com", "method": "PUT"}, []string{`unknown field "method"`}},
		{"headers not an object", map[string]any{"url": "https://example.com", "headers": []any{"a"}}, []string{"headers must be an object"}},
		{"reserved headers", map[string]any{"url": "https://example.com", "headers": map[string]any{
			"Content-Type": "text/plain", "webhook-id": "x", "Webhook-Signature": "x", "WEBHOOK-TIMESTAMP": "1", "Host": "evil",
		}}, []string{`"Content-Type" cannot be set`, `"Host" cannot be set`, `"WEBHOOK-TIMESTAMP" cannot be set`, `"Webhook-Signature" cannot be set`, `"webhook-id" cannot be set`}},
		{"crlf in value", map[string]any{"url": "https://example.com", "headers": map[string]any{"X-A": "a\r\nX-B: b"}}, []string{`header "X-A" has a value with a line break`}},
		{"bad name", map[string]any{"url": "https://example.com", "headers": map[string]any{"X A": "a"}}, []string{`header name "X A" is not a valid`}},
		{"non-string value", map[string]any{"url": "https://example.com", "headers": map[string]any{"X-N": 1}}, []string{`header "X-N" must have a string value`}},
		{"several problems", map[string]any{"url": "ftp://x", "extra": 1}, []string{`unknown field "extra"`, "must use http or https"}},
	}
	tr := newTransport(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, err := tr.Validate(context.Background(), config(t, tt.fields))
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if len(problems) != len(tt.want) {
				t.Fatalf("problems = %q, want %d matching %q", problems, len(tt.want), tt.want)
			}
			for i, want := range tt.want {
				if !strings.Contains(problems[i], want) {
					t.Errorf("problem %d = %q, want it to contain %q", i, problems[i], want)
				}
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	info, err := newTransport(t).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "http" || info.Version != "1.2.3" || len(info.APIVersions) != 1 || info.APIVersions[0] != sdk.APIVersion {
		t.Errorf("info = %+v", info)
	}
	if !strings.Contains(info.TargetSchema, `"required": ["url"]`) {
		t.Errorf("target schema does not require url: %s", info.TargetSchema)
	}
}

func TestDeliverReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := newTransport(t)
	for range 20 {
		if res := tr.Deliver(context.Background(), request(t, srv.URL)); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
			t.Fatalf("result = %v %q", res.GetOutcome(), res.GetError())
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential deliveries opened %d connections, want 1", n)
	}
}

func TestDeliverPassesW3CTraceContext(t *testing.T) {
	got := make(chan http.Header, 2)
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	})
	tr := newTransport(t)

	req := request(t, srv.URL)
	req.Headers = map[string]string{"traceparent": "stale-value-from-a-header"}
	req.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req.Tracestate = "vendor=a, other=b"
	if res := tr.Deliver(context.Background(), req); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("deliver: %v", res)
	}
	h := <-got
	if v := h.Values("Traceparent"); len(v) != 1 || v[0] != req.Traceparent {
		t.Errorf("traceparent = %q, want exactly %q", v, req.Traceparent)
	}
	if v := h.Get("Tracestate"); v != req.Tracestate {
		t.Errorf("tracestate = %q, want %q", v, req.Tracestate)
	}

	plain := request(t, srv.URL)
	if res := tr.Deliver(context.Background(), plain); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("deliver: %v", res)
	}
	h = <-got
	if _, ok := h["Traceparent"]; ok {
		t.Errorf("a request without trace context sent traceparent %q", h.Get("Traceparent"))
	}
}
