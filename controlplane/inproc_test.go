package controlplane_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/controlplane/internal/api"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// The REST gateway calls the API over an in-process channel (inproc.go).
// These tests hold it to what a call over the network guarantees, through
// the public REST interface.

// restCall sends a REST request with key (none if "") and extra headers.
func restCall(t *testing.T, h *harness, method, path, key, body string, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+h.srv.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

func TestRESTInProcessKeepsTheGRPCGuarantees(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h := startDelivery(t, t.TempDir(), controlplane.Config{MaxPayloadBytes: 1000, TracerProvider: tp, NoSync: true})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "globex"}); err != nil {
		t.Fatal(err)
	}
	keys := hookwirev1.NewApiKeyServiceClient(h.conn)
	publishOnly, err := keys.CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: "acme", Scope: hookwirev1.ApiKeyScope_API_KEY_SCOPE_PUBLISH})
	if err != nil {
		t.Fatal(err)
	}
	globex, err := keys.CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: "globex"})
	if err != nil {
		t.Fatal(err)
	}
	const event = `{"type":"order.created","payload":{}}`

	t.Run("authentication and scopes", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path, key, body string
			code                          int
			msg                           string
		}{
			{"no key publishes", "POST", "/v1/tenants/acme/events", "", event, 401, "Bearer"},
			{"no key lists", "GET", "/v1/tenants/acme/subscriptions", "", "", 401, "Bearer"},
			{"no key tails", "GET", "/v1/tenants/acme/deliveries:tail", "", "", 401, "Bearer"},
			{"unknown key publishes", "POST", "/v1/tenants/acme/events", "hwk_nope", event, 401, ""},
			{"publish key publishes", "POST", "/v1/tenants/acme/events", publishOnly.GetKey(), event, 200, ""},
			{"publish key reads", "GET", "/v1/tenants/acme/subscriptions/" + sub.GetId(), publishOnly.GetKey(), "", 403, ""},
			{"publish key creates a tenant", "POST", "/v1/tenants", publishOnly.GetKey(), `{"id":"x"}`, 403, ""},
			{"other tenant's key publishes", "POST", "/v1/tenants/acme/events", globex.GetKey(), event, 404, "acme"},
			{"other tenant's key reads", "GET", "/v1/tenants/acme/subscriptions/" + sub.GetId(), globex.GetKey(), "", 404, "acme"},
			{"other tenant's key tails", "GET", "/v1/tenants/acme/deliveries:tail", globex.GetKey(), "", 404, "acme"},
		} {
			code, _, body := restCall(t, h.harness, tc.method, tc.path, tc.key, tc.body, nil)
			if code != tc.code || !strings.Contains(string(body), tc.msg) {
				t.Errorf("%s: HTTP %d %s, want %d containing %q", tc.name, code, body, tc.code, tc.msg)
			}
		}
		h.next() // the publish-only key's event
	})

	t.Run("payload too large with ErrorInfo", func(t *testing.T) {
		code, _, body := restCall(t, h.harness, "POST", "/v1/tenants/acme/events", adminKey,
			`{"type":"order.created","payload":"`+strings.Repeat("x", 2000)+`"}`, nil)
		var st struct {
			Code    int
			Message string
			Details []struct {
				Type   string `json:"@type"`
				Reason string
				Domain string
			}
		}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("HTTP %d %s: %v", code, body, err)
		}
		if code != http.StatusRequestEntityTooLarge || st.Code != 3 || !strings.Contains(st.Message, "the limit is 1000 bytes") ||
			len(st.Details) != 1 || st.Details[0].Type != "type.googleapis.com/google.rpc.ErrorInfo" ||
			st.Details[0].Reason != api.ReasonPayloadTooLarge || st.Details[0].Domain != api.ErrorDomain {
			t.Fatalf("HTTP %d %s", code, body)
		}
	})

	t.Run("exact payload bytes and Idempotency-Key", func(t *testing.T) {
		const payload = `{"z":1, "a":[1.50,2e3],"big":12345678901234567890}`
		var ids []string
		for i, want := range []bool{false, true} {
			code, _, body := restCall(t, h.harness, "POST", "/v1/tenants/acme/events", adminKey,
				`{"type":"order.created","payload":`+payload+`}`, map[string]string{"Idempotency-Key": "order-7"})
			var resp struct {
				ID        string
				Duplicate bool
			}
			if err := json.Unmarshal(body, &resp); err != nil || code != 200 || resp.Duplicate != want {
				t.Fatalf("publish %d: HTTP %d %s (%v), want duplicate %v", i, code, body, err, want)
			}
			ids = append(ids, resp.ID)
		}
		if ids[0] != ids[1] {
			t.Fatalf("the same Idempotency-Key gave events %v", ids)
		}
		if got := string(h.next().GetRequest().GetBody()); got != payload {
			t.Fatalf("delivered %q, want %q", got, payload)
		}
		assertNoAssignment(t, h) // the duplicate made no delivery
	})

	t.Run("header gRPC metadata cannot carry", func(t *testing.T) {
		code, _, body := restCall(t, h.harness, "POST", "/v1/tenants/acme/events", adminKey, event,
			map[string]string{"Idempotency-Key": "caf\u00e9"})
		if code != 400 || !strings.Contains(string(body), "header Idempotency-Key: the value must be printable ASCII") {
			t.Fatalf("HTTP %d %s", code, body)
		}
		assertNoAssignment(t, h) // refused before the handler
	})

	t.Run("traceparent continues the caller's trace", func(t *testing.T) {
		const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		exp.Reset()
		code, _, body := restCall(t, h.harness, "POST", "/v1/tenants/acme/events", adminKey, event,
			map[string]string{"traceparent": parent, "tracestate": "vendor=abc"})
		if code != 200 {
			t.Fatalf("HTTP %d %s", code, body)
		}
		h.next()
		var found bool
		for _, s := range exp.GetSpans() {
			if s.Name != "hookwire.v1.EventService/PublishEvent" {
				continue
			}
			found = true
			if s.Parent.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || s.Parent.SpanID().String() != "b7ad6b7169203331" ||
				s.SpanContext.TraceID() != s.Parent.TraceID() || s.Parent.TraceState().Get("vendor") != "abc" {
				t.Errorf("publish span parent %v in trace %v", s.Parent, s.SpanContext.TraceID())
			}
		}
		if !found {
			t.Fatalf("no publish span among %d", len(exp.GetSpans()))
		}
	})
}

func TestRESTInProcessRateLimitRetryAfter(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{APIRateLimit: 1, APIRateBurst: 2})
	// startDelivery spent one token (CreateTenant); the burst is 2.
	const event = `{"type":"order.created","payload":{}}`
	if code, _, body := restCall(t, h.harness, "POST", "/v1/tenants/acme/events", adminKey, event, nil); code != 200 {
		t.Fatalf("publish within the burst: HTTP %d %s", code, body)
	}
	for _, path := range []string{"/v1/tenants/acme/events", "/v1/tenants/acme"} {
		method, body := "POST", event
		if path == "/v1/tenants/acme" {
			method, body = "GET", ""
		}
		code, header, data := restCall(t, h.harness, method, path, adminKey, body, nil)
		if code != http.StatusTooManyRequests || header.Get("Retry-After") != "1" {
			t.Fatalf("%s %s over the limit: HTTP %d Retry-After %q %s", method, path, code, header.Get("Retry-After"), data)
		}
	}
	h.clock.advance(time.Second)
	if code, header, body := restCall(t, h.harness, "POST", "/v1/tenants/acme/events", adminKey, event, nil); code != 200 || header.Get("Retry-After") != "" {
		t.Fatalf("after a second: HTTP %d Retry-After %q %s", code, header.Get("Retry-After"), body)
	}
}

// A REST tail is a stream in process: shutdown ends it with Unavailable,
// and Close does not wait for the HTTP server's shutdown timeout.
func TestRESTTailEndsOnServerShutdown(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+h.srv.HTTPAddr()+"/v1/tenants/acme/deliveries:tail", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			lines <- "request: " + err.Error()
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	// The watch is in place once an item comes through.
	deadline := time.After(20 * time.Second)
	for seen := false; !seen; {
		h.publish("order.created", `{}`)
		select {
		case line := <-lines:
			if !strings.Contains(line, "TAIL_EVENT_KIND_CREATED") {
				t.Fatalf("first tail line %q", line)
			}
			seen = true
		case <-deadline:
			t.Fatal("no item on the REST tail within 20s")
		case <-time.After(200 * time.Millisecond):
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- h.srv.Close() }()
	var last string
	for line := range lines {
		last = line
	}
	if !strings.Contains(last, `"error"`) || !strings.Contains(last, "shutting down") {
		t.Fatalf("last tail line %q, want the Unavailable error", last)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(4 * time.Second): // under the HTTP shutdown's 5s
		t.Fatal("server Close waited on the REST tail")
	}
}
