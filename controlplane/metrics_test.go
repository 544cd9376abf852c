package controlplane_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
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
