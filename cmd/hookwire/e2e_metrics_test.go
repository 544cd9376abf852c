package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAgentPprof checks that --pprof adds Go's profiles to the agent's
// metrics listener, and that they are not served without it.
func TestAgentPprof(t *testing.T) {
	srv := startServer(t, t.TempDir())
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// await polls until the agent's listener answers (the agent process
	// opens it after its plugins start).
	await := func(url string) (int, string) {
		for deadline := time.Now().Add(30 * time.Second); ; {
			code, body := get(url)
			if code != 0 || time.Now().After(deadline) {
				return code, body
			}
			time.Sleep(20 * time.Millisecond) // polling another process's listener
		}
	}

	with := freeAddr(t)
	startAgent(t, srv.grpcAddr, "pprof-agent", "--metrics-addr", with, "--pprof")
	if code, body := await("http://" + with + "/debug/pprof/cmdline"); code != http.StatusOK || !strings.Contains(body, "agent") {
		t.Errorf("--pprof: /debug/pprof/cmdline answered %d %q, want 200 with the agent's command line", code, body)
	}
	if code, _ := get("http://" + with + "/debug/pprof/goroutine?debug=1"); code != http.StatusOK {
		t.Errorf("--pprof: goroutine profile answered %d", code)
	}

	without := freeAddr(t)
	startAgent(t, srv.grpcAddr, "plain-agent", "--metrics-addr", without)
	if code, _ := await("http://" + without + "/metrics"); code != http.StatusOK {
		t.Fatalf("/metrics answered %d", code)
	}
	if code, _ := get("http://" + without + "/debug/pprof/cmdline"); code != http.StatusNotFound {
		t.Errorf("without --pprof: /debug/pprof/cmdline answered %d, want 404", code)
	}
}

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
