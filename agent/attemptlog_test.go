package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

// syncBuffer is a bytes.Buffer safe for the delivery goroutines' logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAttemptLoggedAtDebugWithoutSecrets(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	tr := &fakeTransport{name: "fake", deliver: echo}
	cfg := testConfig(t, addr, tr)
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	startAgent(t, cfg, testHooks{})

	const payload, signature = "PAYLOAD-MARKER-7f3a", "v1,SIGNATURE-MARKER-c41d"
	as := assignment("l1", "fake")
	as.Attempt = 3
	as.Request.Body = []byte(payload)
	as.Request.EventType = "order.created"
	as.Request.Headers["webhook-signature"] = signature
	c := cp.accept(t)
	c.send(t, welcome())
	c.send(t, assign(as))
	got, _, _ := c.results(t, 1)
	checkResult(t, got["l1"], "l1", transportv1.Outcome_OUTCOME_SUCCESS)
	c.send(t, acks(true, "l1"))

	out := logs.String()
	var line map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if m["msg"] == "attempt finished" {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no attempt line in:\n%s", out)
	}
	for k, want := range map[string]any{
		"level": "DEBUG", "delivery": "dlv-l1", "attempt": float64(3), "lease": "l1", "transport": "fake",
		"event_type": "order.created", "outcome": "success", "status_code": float64(200),
	} {
		if line[k] != want {
			t.Errorf("attempt line %s = %v, want %v", k, line[k], want)
		}
	}
	if _, ok := line["duration"]; !ok {
		t.Errorf("attempt line lacks duration: %v", line)
	}
	for _, secret := range []string{payload, "SIGNATURE-MARKER"} {
		if strings.Contains(out, secret) {
			t.Errorf("log output contains %q:\n%s", secret, out)
		}
	}
}
