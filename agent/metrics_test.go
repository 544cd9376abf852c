package agent

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetricsPassPromlint: the agent's metrics pass the checks of
// `promtool check metrics` (the same linter, promlint).
func TestMetricsPassPromlint(t *testing.T) {
	src, err := StaticTransports(context.Background(), &fakeTransport{name: "fake"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{ServerAddr: "127.0.0.1:1", Transports: src})
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := NewMetrics(a, func() uint64 { return 0 }).Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) == 0 {
		t.Fatal("the agent registers no metrics")
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
