package controlplane_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"google.golang.org/protobuf/types/known/durationpb"
)

// scrape reads one series' value from /metrics.
func scrape(t *testing.T, addr string) func(series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return func(series string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("series %s not in /metrics:\n%s", series, body)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
}

func TestMetricsAfterDeliveries(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{AdminAddr: "127.0.0.1:0"})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	for range 3 {
		h.publish("order.created", `{}`)
	}
	as := h.agent.assignments(t, 3)
	ok := outcome(as[0], transportv1.Outcome_OUTCOME_SUCCESS, 0)
	ok.Result.Latency = durationpb.New(12 * time.Millisecond)
	h.agent.report(t, ok, outcome(as[1], transportv1.Outcome_OUTCOME_SUCCESS, 0), outcome(as[2], transportv1.Outcome_OUTCOME_THROTTLED, 0))

	get := scrape(t, h.srv.AdminAddr())
	for series, want := range map[string]float64{
		"hookwire_events_published_total":                        3,
		"hookwire_deliveries_created_total":                      3,
		`hookwire_attempts_total{outcome="success"}`:             2,
		`hookwire_attempts_total{outcome="throttled"}`:           1,
		`hookwire_deliveries_finished_total{status="succeeded"}`: 2,
		"hookwire_agents_connected":                              1,
		"hookwire_queue_in_flight":                               0,
		"hookwire_attempt_duration_seconds_count":                1,
	} {
		if got := get(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if n := get("hookwire_store_commit_batch_writes_count"); n < 2 {
		t.Errorf("commits observed = %v, want at least the publishes' and the results'", n)
	}
	if w := get("hookwire_store_commit_batch_writes_sum"); w < get("hookwire_store_commit_batch_writes_count") {
		t.Errorf("writes %v fewer than commits", w)
	}
	if size := get("hookwire_store_bytes"); size <= 0 {
		t.Errorf("store size %v", size)
	}
	if resp, err := http.Get("http://" + h.srv.AdminAddr() + "/debug/pprof/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("pprof index: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

func TestMetricsBacklogWaitingForRetryAndForAgent(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{AdminAddr: "127.0.0.1:0"})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"invoice.*"}, AgentSelector: "region=mars"})
	h.publish("order.created", `{}`)
	h.publish("order.created", `{}`)
	h.publish("invoice.paid", `{}`) // agent-1 has no region label
	as := h.agent.assignments(t, 2)
	h.agent.report(t, outcome(as[0], transportv1.Outcome_OUTCOME_FAILED, 0), outcome(as[1], transportv1.Outcome_OUTCOME_CONNECTION_ERROR, 0))

	expect := func(step string, want map[string]float64) {
		t.Helper()
		get := scrape(t, h.srv.AdminAddr())
		for series, v := range want {
			if got := get(series); got != v {
				t.Errorf("%s: %s = %v, want %v", step, series, got, v)
			}
		}
	}
	expect("after two failures", map[string]float64{
		"hookwire_queue_waiting_retry":                        2,
		`hookwire_queue_waiting_agent{reason="selector"}`:     1,
		`hookwire_queue_waiting_agent{reason="no_transport"}`: 0,
		`hookwire_queue_waiting_agent{reason="circuit_open"}`: 0,
		`hookwire_queue_held{reason="paused"}`:                0,
		`hookwire_queue_held{reason="disabled"}`:              0,
		"hookwire_queue_in_flight":                            0,
	})

	// The retry delay (5s) passes: the two are due and assigned again.
	h.advance(6 * time.Second)
	as = h.agent.assignments(t, 2)
	expect("retries assigned", map[string]float64{"hookwire_queue_waiting_retry": 0, "hookwire_queue_in_flight": 2})
	h.agent.report(t, outcome(as[0], transportv1.Outcome_OUTCOME_SUCCESS, 0), outcome(as[1], transportv1.Outcome_OUTCOME_SUCCESS, 0))

	// An agent the selector matches connects and delivers the invoice.
	mars := mustDialAgent(t, h.conn, adminKey, &hookwirev1.Hello{AgentId: "mars", MaxInFlight: 10, Labels: map[string]string{"region": "mars"}})
	a := mars.assignments(t, 1)[0]
	mars.report(t, outcome(a, transportv1.Outcome_OUTCOME_SUCCESS, 0))
	expect("after the matching agent delivered", map[string]float64{
		"hookwire_queue_waiting_retry":                           0,
		`hookwire_queue_waiting_agent{reason="selector"}`:        0,
		"hookwire_queue_in_flight":                               0,
		`hookwire_deliveries_finished_total{status="succeeded"}`: 3,
	})
}

// TestMetricsHeldByPausedSubscription: due deliveries of a paused
// subscription are counted as held (paused), not as waiting for an agent
// (an agent that could take them is connected); after the resume they go
// out and the gauge returns to zero.
func TestMetricsHeldByPausedSubscription(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{AdminAddr: "127.0.0.1:0"})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	subs := hookwirev1.NewSubscriptionServiceClient(h.conn)
	if _, err := subs.PauseSubscription(h.ctx(), &hookwirev1.PauseSubscriptionRequest{Tenant: "acme", Id: sub.GetId()}); err != nil {
		t.Fatal(err)
	}
	h.publish("order.created", `{}`)
	h.publish("order.created", `{}`)
	get := scrape(t, h.srv.AdminAddr())
	for series, want := range map[string]float64{
		`hookwire_queue_held{reason="paused"}`:                2,
		`hookwire_queue_held{reason="disabled"}`:              0,
		`hookwire_queue_waiting_agent{reason="no_transport"}`: 0,
		`hookwire_queue_waiting_agent{reason="selector"}`:     0,
		`hookwire_queue_waiting_agent{reason="circuit_open"}`: 0,
	} {
		if got := get(series); got != want {
			t.Errorf("paused: %s = %v, want %v", series, got, want)
		}
	}
	resp, err := http.Get("http://" + h.srv.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), `hookwire_queue_waiting_agent{reason="paused"}`) || strings.Contains(string(body), `hookwire_queue_waiting_agent{reason="disabled"}`) {
		t.Errorf("paused/disabled still reported as waiting for an agent")
	}
	if _, err := subs.ResumeSubscription(h.ctx(), &hookwirev1.ResumeSubscriptionRequest{Tenant: "acme", Id: sub.GetId()}); err != nil {
		t.Fatal(err)
	}
	as := h.agent.assignments(t, 2)
	h.agent.report(t, outcome(as[0], transportv1.Outcome_OUTCOME_SUCCESS, 0), outcome(as[1], transportv1.Outcome_OUTCOME_SUCCESS, 0))
	if got := scrape(t, h.srv.AdminAddr())(`hookwire_queue_held{reason="paused"}`); got != 0 {
		t.Errorf("after resume and delivery: held paused = %v", got)
	}
}

// logSink collects a JSON log safely across goroutines.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAttemptLoggedAtDebugWithoutSecrets(t *testing.T) {
	var logs logSink
	h := startDelivery(t, t.TempDir(), controlplane.Config{
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	secret := strings.TrimPrefix(sub.GetSigningSecret(), "whsec_")
	if secret == "" {
		t.Fatalf("no signing secret in %v", sub)
	}
	const marker = "PAYLOAD-MARKER-9d2e"
	ev := h.publish("order.created", `{"card":"`+marker+`"}`)
	a := h.next()
	signature := a.GetRequest().GetHeaders()["webhook-signature"]
	res := outcome(a, transportv1.Outcome_OUTCOME_FAILED, 0)
	res.Result.Latency = durationpb.New(25 * time.Millisecond)
	res.Result.ResponseBody = []byte("RESPONSE-MARKER")
	h.agent.report(t, res) // acknowledged after the line is written

	out := logs.String()
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m["msg"] == "attempt recorded" {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no attempt line in:\n%s", out)
	}
	for k, want := range map[string]any{
		"level": "DEBUG", "delivery": a.GetDeliveryId(), "event": ev.GetId(), "subscription": sub.GetId(), "tenant": "acme",
		"attempt": float64(1), "status_code": float64(500), "outcome": "failed", "agent": "agent-1",
		"status": "pending", "duration": float64(25 * time.Millisecond),
	} {
		if line[k] != want {
			t.Errorf("attempt line %s = %v, want %v", k, line[k], want)
		}
	}
	if next, _ := line["next_attempt"].(string); next == "" {
		t.Errorf("attempt line has no next_attempt: %v", line)
	}
	for _, s := range []string{secret, signature, marker, "RESPONSE-MARKER"} {
		if strings.Contains(out, s) {
			t.Errorf("log output contains %q", s)
		}
	}
}

// Every API call is counted by surface, method and code (REST calls run
// in process, counted as api="rest"), unary calls are timed, and the build
// is described by hookwire_build_info.
func TestMetricsPerRPCAndBuildInfo(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{AdminAddr: "127.0.0.1:0"})
	if _, code, _ := h.restFull("POST", "/v1/tenants", `{"id":"acme"}`); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	if _, code, _ := h.restFull("GET", "/v1/tenants/nope", ""); code != 404 {
		t.Fatalf("get unknown tenant: %d", code)
	}
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).GetTenant(h.ctx(), &hookwirev1.GetTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, h.srv.AdminAddr())
	for series, want := range map[string]float64{
		`hookwire_api_requests_total{api="rest",code="OK",method="hookwire.v1.TenantService/CreateTenant"}`:    1,
		`hookwire_api_requests_total{api="rest",code="NotFound",method="hookwire.v1.TenantService/GetTenant"}`: 1,
		`hookwire_api_requests_total{api="grpc",code="OK",method="hookwire.v1.TenantService/GetTenant"}`:       1,
		`hookwire_api_request_duration_seconds_count{api="grpc",method="hookwire.v1.TenantService/GetTenant"}`: 1,
	} {
		if got := m(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	resp, err := http.Get("http://" + h.srv.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^hookwire_build_info\{build_date="[^"]+",commit="[^"]+",goversion="go[^"]+",version="[^"]+"\} 1$`).Match(body) {
		t.Errorf("no hookwire_build_info series:\n%s", grepLines(string(body), "build_info"))
	}
}

// TestMetricsPassPromlint: what /metrics serves passes the checks of
// `promtool check metrics` (the same linter, promlint), after deliveries,
// retries and API calls have made every family show series.
func TestMetricsPassPromlint(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{AdminAddr: "127.0.0.1:0"})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	h.publish("order.created", `{"n":1}`)
	a := h.next()
	h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_FAILED, 0))
	if _, code, _ := h.restFull("GET", "/v1/tenants/nope", ""); code != 404 {
		t.Fatalf("get unknown tenant: %d", code)
	}
	resp, err := http.Get("http://" + h.srv.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	problems, err := promlint.New(resp.Body).Lint()
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestClusterMetricsOfAOneServerCluster: a plain server is a cluster of
// one, and its metrics say so.
func TestClusterMetricsOfAOneServerCluster(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{AdminAddr: "127.0.0.1:0"})
	if _, code, _ := h.restFull("POST", "/v1/tenants", `{"id":"acme"}`); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	m := scrape(t, h.srv.AdminAddr())
	for series, want := range map[string]float64{
		"hookwire_cluster_leader": 1, "hookwire_cluster_has_leader": 1, "hookwire_cluster_voters": 1, "hookwire_cluster_last_contact_seconds": 0,
	} {
		if got := m(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if term, applied, commit := m("hookwire_cluster_term"), m("hookwire_cluster_applied_index"), m("hookwire_cluster_commit_index"); term < 1 || applied < 1 || commit < applied {
		t.Errorf("term %v, applied index %v, commit index %v: want a term, writes applied, and commit >= applied", term, applied, commit)
	}
	if got := m(`hookwire_cluster_write_duration_seconds_count`); got < 1 {
		t.Errorf("hookwire_cluster_write_duration_seconds_count = %v, want the writes counted", got)
	}
}
