package main

import (
	"strings"
	"testing"
	"time"
)

// TestCLIStats delivers events through a real agent to a sink and reads
// the statistics with `hookwire stats`: as JSON (the API's DeliveryStats)
// until they count every attempt, then as the table, then bad windows.
func TestCLIStats(t *testing.T) {
	srv := startServer(t, t.TempDir())
	startAgent(t, srv.grpcAddr, "stats-agent")
	target := newSink(t)
	h := newHW(t, srv.grpcAddr)
	h.ok("tenants", "create", "acme")
	var sub obj
	h.json(&sub, "subscriptions", "create", "--tenant", "acme", "--event-type", "order.*", "--url", target.url)
	id := sub["id"].(string)
	const events = 4
	for range events {
		h.ok("events", "publish", "--tenant", "acme", "--type", "order.created", "--data", `{"n":1}`)
	}
	target.await(events, 20*time.Second)

	var st obj
	deadline := time.Now().Add(20 * time.Second)
	for {
		h.json(&st, "stats", "--tenant", "acme", "--since", "10m", "-o", "json")
		var created, ok int
		for _, b := range listOf(t, st, "buckets") {
			created += atoiField(b["created"])
			ok += atoiField(b["succeeded"])
		}
		if created == events && ok == events {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never counted %d created and succeeded: %v", events, st)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	subs := listOf(t, st, "subscriptions")
	if len(subs) != 1 || subs[0]["subscription_id"] != id || subs[0]["success_rate"] != 1.0 || atoiField(subs[0]["attempts"]) != events {
		t.Fatalf("subscriptions: %v", subs)
	}
	if n := len(listOf(t, st, "buckets")); n != 10 && n != 11 {
		t.Fatalf("--since 10m: %d buckets", n)
	}

	table := h.ok("stats", "--tenant", "acme", "--subscription", id, "--since", "30m", "--step", "5m")
	for _, want := range []string{"TIME", "CREATED", "P99", "WAIT-RETRY", id, "100.0%", "Queue now: 0 waiting for a retry"} {
		if !strings.Contains(table, want) {
			t.Fatalf("table lacks %q:\n%s", want, table)
		}
	}

	h.fail(exitUsage, "whole number of minutes", "stats", "--tenant", "acme", "--step", "90s")
	h.fail(exitUsage, "positive", "stats", "--tenant", "acme", "--since", "-1h")
	h.fail(exitInvalid, "use step 120s or more", "stats", "--tenant", "acme", "--since", "48h")
	h.fail(exitNotFound, "not found", "stats", "--tenant", "acme", "--subscription", "sub_01J0000000000000000000000Z")
}

// atoiField reads a JSON int64 (a string in protojson) or a missing one (0).
func atoiField(v any) int {
	s, _ := v.(string)
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
