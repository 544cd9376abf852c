package controlplane_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
)

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reads c (discarding what the server sends) until the server
// closes it, and reports how long that took; it fails the test if c is
// still open after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	took, err := waitClosed(c, limit)
	if err != nil {
		t.Fatal(err)
	}
	return took
}

// waitClosed is closedWithin for any goroutine: an error if c is still
// open after limit.
func waitClosed(c net.Conn, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(limit)); err != nil {
		return 0, err
	}
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return 0, fmt.Errorf("connection still open after %v", limit)
	}
	return time.Since(start), nil
}

// A REST body trickling in a byte at a time is cut off at the body
// timeout instead of holding the connection (and a goroutine) forever.
func TestSlowRESTBodyIsCutOff(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{Listeners: controlplane.ListenerLimits{HTTPBodyTimeout: 300 * time.Millisecond}})
	c := dialRaw(t, h.srv.HTTPAddr())
	head := "POST /v1/tenants HTTP/1.1\r\nHost: hookwire\r\nAuthorization: Bearer " + adminKey +
		"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	// The slow client: a byte every 50ms, for at most 5s.
	type closed struct {
		took time.Duration
		err  error
	}
	done := make(chan closed, 1)
	go func() {
		took, err := waitClosed(c, 5*time.Second)
		done <- closed{took, err}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("slow body: %v", r.err)
			}
			if took := r.took; took > 3*time.Second {
				t.Fatalf("slow body cut off after %v, want about the 300ms body timeout", took)
			}
			return
		case <-tick.C:
			_, _ = c.Write([]byte(" ")) // may fail once the server closed it
		}
	}
}

// A keep-alive REST connection left idle is closed at the idle timeout.
func TestIdleRESTConnectionIsClosed(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{Listeners: controlplane.ListenerLimits{HTTPIdleTimeout: 300 * time.Millisecond}})
	c := dialRaw(t, h.srv.HTTPAddr())
	if _, err := io.WriteString(c, "GET /openapi.json HTTP/1.1\r\nHost: hookwire\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("first request: %d (close %v), want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	if took := closedWithin(t, c, 5*time.Second); took > 3*time.Second {
		t.Fatalf("idle connection closed after %v", took)
	}
}

// A gRPC connection that sends the HTTP/2 preface and then nothing is
// closed once it has been idle for GRPCMaxConnectionIdle.
func TestIdleGRPCConnectionIsClosed(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{Listeners: controlplane.ListenerLimits{GRPCMaxConnectionIdle: 300 * time.Millisecond}})
	c := dialRaw(t, h.srv.GRPCAddr())
	preface := "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	settings := []byte{0, 0, 0, 4, 0, 0, 0, 0, 0} // empty SETTINGS frame
	if _, err := c.Write(append([]byte(preface), settings...)); err != nil {
		t.Fatal(err)
	}
	// The server says GOAWAY at once when the idle time is up ...
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(5 * time.Second))
	hdr := make([]byte, 9)
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			t.Fatalf("no GOAWAY within 5s of an idle connection: %v", err)
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
			t.Fatal(err)
		}
		if hdr[3] == 7 { // GOAWAY
			break
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("GOAWAY after %v of idleness, want about 300ms", took)
	}
	// ... and closes the connection after grpc-go's grace for a client
	// that does not answer (a few seconds), not never.
	closedWithin(t, c, 15*time.Second)
}

// Past MaxConnections a listener closes new connections at once, says so
// in the log and counts them; a freed slot serves again.
func TestConnectionCap(t *testing.T) {
	logs := &logSink{}
	h := start(t, t.TempDir(), controlplane.Config{
		AdminAddr: "127.0.0.1:0",
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
		Listeners: controlplane.ListenerLimits{MaxConnections: 3},
	})
	addr := h.srv.HTTPAddr()
	held := make([]net.Conn, 3)
	for i := range held {
		held[i] = dialRaw(t, addr)
		// A request and its answer prove the server counted the connection.
		if _, err := io.WriteString(held[i], "GET /openapi.json HTTP/1.1\r\nHost: hookwire\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(held[i]), nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		resp.Body.Close()
	}
	extra := dialRaw(t, addr)
	if took := closedWithin(t, extra, 5*time.Second); took > 3*time.Second {
		t.Fatalf("connection over the cap closed after %v", took)
	}
	if !strings.Contains(logs.String(), "connection limit reached") || !strings.Contains(logs.String(), "max_connections=3") {
		t.Fatalf("no log line about the cap; log:\n%s", logs.String())
	}
	resp, err := http.Get("http://" + h.srv.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`hookwire_connections_refused_total{listener="http"} 1`, `hookwire_connections_open{listener="http"} 3`} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %q:\n%s", want, grepLines(string(body), "hookwire_connections"))
		}
	}

	// Close one: the next connection is served.
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "GET /openapi.json HTTP/1.1\r\nHost: hookwire\r\nConnection: close\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err == nil && resp.StatusCode == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one was freed: %v", err)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A 401 carries the RFC 6750 challenge: without credentials just the
// realm, with a key that is not accepted error="invalid_token".
func TestRESTUnauthorizedHasBearerChallenge(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	for _, tc := range []struct {
		auth, want string
	}{
		{"", `Bearer realm="hookwire"`},
		{"Bearer hwk_nosuchkey0000000_0000000000000000000000000000000", `Bearer realm="hookwire", error="invalid_token", error_description="invalid API key"`},
	} {
		req, _ := http.NewRequest("GET", "http://"+h.srv.HTTPAddr()+"/v1/tenants", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != tc.want {
			t.Errorf("auth %q: %d WWW-Authenticate %q, want 401 %q", tc.auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tc.want)
		}
	}
}

// REST error messages carry no gRPC wrapping ("rpc error: code = ...
// desc = ..."): the status code is already the HTTP status and the body's
// code.
func TestRESTErrorsHaveNoGRPCPrefix(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	if _, code, _ := h.restFull("POST", "/v1/tenants", `{"id":"acme"}`); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	body, code, _ := h.restFull("POST", "/v1/tenants/acme/events", `{"type":"a.b","payload":`)
	if code != 400 || strings.Contains(string(body), "rpc error") || !strings.Contains(string(body), "request body must be a JSON object") {
		t.Fatalf("truncated JSON: %d %s, want 400 with the decoder's message and no gRPC prefix", code, body)
	}
}

// A known path with a method it does not take is 405 with Allow listing
// the ones it does (not 501); an unknown path stays 404.
func TestRESTWrongMethodIs405WithAllow(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	for _, tc := range []struct{ method, path, allow string }{
		{"PUT", "/v1/tenants/acme/subscriptions/sub_x", "DELETE, GET, PATCH"},
		{"DELETE", "/v1/tenants", "GET, POST"},
		{"DELETE", "/v1/tenants/acme/events", "GET, POST"},
		{"POST", "/v1/tenants/acme/events/evt_x", "GET"},
	} {
		body, code, hdr := h.restFull(tc.method, tc.path, "")
		if code != 405 || hdr.Get("Allow") != tc.allow || !strings.Contains(string(body), "is not allowed") {
			t.Errorf("%s %s: %d Allow %q %s, want 405 Allow %q", tc.method, tc.path, code, hdr.Get("Allow"), body, tc.allow)
		}
	}
	if _, code, _ := h.restFull("GET", "/v1/no/such/path", ""); code != 404 {
		t.Errorf("unknown path: %d, want 404", code)
	}
}

// Names and keys with control characters are refused with 400 naming the
// field (NUL anywhere); a body over the limit is 413 on every path.
func TestRESTRefusesControlCharactersAndOversizeBodies(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{MaxPayloadBytes: 1000})
	if _, code, _ := h.restFull("POST", "/v1/tenants", `{"id":"acme"}`); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	for _, tc := range []struct{ method, path, body, field string }{
		{"POST", "/v1/tenants/acme/events", `{"type":"a.b","payload":{},"idempotency_key":"a\u0000b"}`, "event.idempotency_key"},
		{"POST", "/v1/tenants/acme/events", `{"type":"a.b","payload":{},"idempotency_key":"a\u0007b"}`, "event.idempotency_key"},
		{"POST", "/v1/tenants/acme/events", `{"type":"a.b","payload":{},"metadata":{"k":"a\u0000b"}}`, "event.metadata"},
		{"GET", "/v1/tenants/acme/deliveries/dlv_a%00b", "", "id"},
	} {
		body, code, _ := h.restFull(tc.method, tc.path, tc.body)
		if code != 400 || !strings.Contains(string(body), tc.field) {
			t.Errorf("%s %s %s: %d %s, want 400 naming %s", tc.method, tc.path, tc.body, code, body, tc.field)
		}
	}
	big := `{"description":"` + strings.Repeat("x", 20<<20) + `","event_types":["a.*"]}`
	if body, code, _ := h.restFull("POST", "/v1/tenants/acme/subscriptions", big); code != 413 {
		t.Errorf("20 MiB subscription body: %d %.200s, want 413", code, body)
	}
}
