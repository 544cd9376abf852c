package main

import (
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// TestAgentMetrics scrapes a real agent's /metrics after a delivery.
func TestAgentMetrics(t *testing.T) {
	sk := newSink(t)
	srv := startServer(t, t.TempDir())
	metricsAddr := freeAddr(t)
	startAgent(t, srv.grpcAddr, "metrics-agent", "--metrics-addr", metricsAddr)
	createSubscription(t, srv.httpAddr, "acme", sk.url)
	publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":{"n":1}}`)
	sk.await(1, 30*time.Second)

	want := map[string]*regexp.Regexp{
		"attempts": regexp.MustCompile(`(?m)^hookwire_agent_attempts_total 1$`),
		"acked":    regexp.MustCompile(`(?m)^hookwire_agent_results_acked_total 1$`),
		"conn":     regexp.MustCompile(`(?m)^hookwire_agent_connected 1$`),
		"restarts": regexp.MustCompile(`(?m)^hookwire_agent_plugin_restarts_total 0$`),
	}
	var body []byte
	// The ack follows the delivery by one round trip; poll briefly.
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if want["acked"].Match(body) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent metrics never showed the acknowledged result:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond) // polling a remote process's counters
	}
	for name, re := range want {
		if !re.Match(body) {
			t.Errorf("%s: %s not found in:\n%s", name, re, body)
		}
	}
}
