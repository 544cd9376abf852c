package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"
)

// TestBenchSmoke runs every bench scenario through the real binary with
// tiny sizes, so the harness keeps working as the system changes. It checks
// that the JSON report parses and that each scenario delivered something
// and lost nothing; the performance targets are not asserted.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole bench suite (about 30s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const backlog, simAgents = 300, 10
	cmd := exec.CommandContext(ctx, hookwireBin, "bench", "all", "-o", "json",
		"--duration", "1s", "--warmup", "200ms", "--baseline-duration", "300ms",
		"--agents", "1", "--rate", "200", "--rest-rates", "50,200",
		"--ingest-clients", "4", "--batch-size", "50",
		"--fanout-subs", "20", "--fanout-events", "3", "--match-subs", "50",
		"--backlog-size", "300", "--sim-agents", "10", "--cluster-rate", "50", "--cluster-kills", "1",
		"--chaos-rate", "50", "--chaos-kills", "1", "--chaos-faults", "500,reset,kill-server,kill-plugin,quiet,disk-full", "--chaos-fault-rate", "0.2", "--chaos-settle", "60s")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("bench took %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("hookwire bench: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep struct {
		Baselines []struct {
			Rate float64 `json:"per_second"`
		} `json:"baselines"`
		Scenarios []struct {
			Name    string `json:"name"`
			Variant string `json:"variant"`
			Failed  string `json:"failed"`
			Metrics []struct {
				Key   string  `json:"key"`
				Value float64 `json:"value"`
			} `json:"metrics"`
			Processes []struct {
				Role       string  `json:"role"`
				CPUSeconds float64 `json:"cpu_seconds"`
				PeakRSS    int64   `json:"peak_rss_bytes"`
			} `json:"processes"`
			Extra struct {
				Skipped        map[string]string `json:"skipped_faults"`
				Injected       map[string]int    `json:"faults_injected"`
				LatenessSource string            `json:"retry_lateness_source"`
			} `json:"extra"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	if len(rep.Baselines) == 0 || rep.Baselines[0].Rate <= 0 {
		t.Errorf("no baseline: %+v", rep.Baselines)
	}
	seen := map[string]bool{}
	for _, s := range rep.Scenarios {
		seen[s.Name] = true
		if s.Failed != "" {
			t.Errorf("scenario %s %s failed: %s", s.Name, s.Variant, s.Failed)
			continue
		}
		m := map[string]float64{}
		for _, x := range s.Metrics {
			m[x.Key] = x.Value
		}
		want := func(key string, ok func(float64) bool, what string) {
			t.Helper()
			v, found := m[key]
			if !found || !ok(v) {
				t.Errorf("scenario %s: %s = %v (reported: %t), want %s", s.Name, key, v, found, what)
			}
		}
		positive := func(v float64) bool { return v > 0 }
		zero := func(v float64) bool { return v == 0 }
		switch s.Name {
		case "e2e", "latency":
			want("achieved", positive, "> 0")
			want("latency_p50", positive, "> 0")
			want("lost", zero, "0")
		case "e2e-rest":
			for _, k := range []string{"delivered", "ratio_to_baseline", "cpu_per_delivery", "publish_ack_p50", "latency_p50", "at50_achieved", "at200_publish_ack_p50", "at200_latency_p50"} {
				want(k, positive, "> 0")
			}
			for _, k := range []string{"at50_cpu_per_event", "at50_cpu_server_per_event", "at50_cpu_agent_per_event", "at50_cpu_plugin_per_event"} {
				want(k, func(float64) bool { return true }, "reported")
			}
			// The bench's client and sink did work, so hookwire's CPU can be
			// set against theirs.
			for _, k := range []string{"at50_bench_cpu_per_event", "bench_cpu_per_delivery", "cpu_vs_bench", "at50_cpu_vs_bench"} {
				want(k, positive, "> 0")
			}
			want("lost", zero, "0")
		case "cluster":
			for _, k := range []string{"one_delivered", "three_delivered", "ratio_three_to_one", "one_cpu_per_delivery", "three_cpu_per_delivery",
				"three_publish_ack_p50", "failover_max", "election_max", "failover_acked"} {
				want(k, positive, "> 0")
			}
			want("failovers", func(v float64) bool { return v == 1 }, "1")
			want("failover_unacked", zero, "0")
			want("lost", zero, "0")
		case "ingest":
			want("rest_single_rate", positive, "> 0")
			want("grpc_single_rate", positive, "> 0")
			want("grpc_batch_rate", positive, "> 0")
		case "fanout":
			want("created_rate", positive, "> 0")
			want("delivered_rate", positive, "> 0")
			want("match_event_type_batch_event_big", positive, "> 0")
			want("match_cel_filter_batch_event_big", positive, "> 0")
			want("lost", zero, "0")
		case "backlog":
			want("drained", func(v float64) bool { return v == backlog }, "the whole backlog")
			want("restart_time", positive, "> 0")
			want("lost", zero, "0")
		case "agents":
			want("connected", func(v float64) bool { return v == simAgents }, "every simulated agent")
			want("rss", positive, "> 0")
		case "chaos":
			want("arrived", positive, "> 0")
			want("server_kills", positive, "> 0")
			want("plugin_kills", positive, "> 0")
			want("lost", zero, "0")
			want("duplicates_other_id", zero, "0")
			want("max_deliveries_per_webhook", func(v float64) bool { return v >= 1 }, ">= 1")
			want("quiesced", func(v float64) bool { return v == 1 }, "1")
			anything := func(float64) bool { return true }
			for _, k := range []string{"retry_lateness_p50", "retry_lateness_p99", "retry_lateness_max", "quiet_retry_lateness_p99", "quiet_overdue", "agent_exits"} {
				want(k, anything, "reported")
			}
			want("quiet_arrived", positive, "> 0")
			if why := s.Extra.Skipped["disk-full"]; why != "" {
				t.Logf("disk-full skipped: %s", why)
				want("disk_fills", zero, "0 (skipped)")
			} else {
				want("disk_fills", func(v float64) bool { return v == 1 }, "1")
				want("disk_recovered", anything, "reported")
			}
			if s.Extra.LatenessSource == "" || s.Extra.Injected["kill-plugin"] == 0 || s.Extra.Injected["quiet"] != 1 {
				t.Errorf("chaos extra: %+v", s.Extra)
			}
		}
		if s.Name != "agents" {
			cpu := 0.0
			for _, p := range s.Processes {
				cpu += p.CPUSeconds
			}
			if len(s.Processes) == 0 || cpu <= 0 {
				t.Errorf("scenario %s: no process accounting: %+v", s.Name, s.Processes)
			}
		}
	}
	for _, name := range []string{"e2e", "e2e-rest", "latency", "ingest", "fanout", "backlog", "agents", "chaos", "cluster"} {
		if !seen[name] {
			t.Errorf("scenario %s missing from the report", name)
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", stderr.String())
	}
}
