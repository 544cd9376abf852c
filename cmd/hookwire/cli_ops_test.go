package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// TestCLIOperatorActions runs retry, cancel, resend, recover and the
// operations commands against a server with no agent: every delivery stays
// pending, so the test decides which ones are cancelled and recovered.
func TestCLIOperatorActions(t *testing.T) {
	srv := startServer(t, t.TempDir())
	h := newHW(t, srv.grpcAddr).with("HOOKWIRE_TENANT=acme")
	h.ok("tenants", "create", "acme")
	var sub obj
	h.json(&sub, "subscriptions", "create", "--event-type", "order.*", "--url", "http://127.0.0.1:9/down")
	subID := sub["id"].(string)

	var ndjson strings.Builder
	for i := range 12 {
		fmt.Fprintf(&ndjson, `{"type":"order.created","payload":{"n":%d}}`+"\n", i)
	}
	var batch obj
	h.jsonIn(ndjson.String(), &batch, "events", "publish", "--batch")
	evtID := listOf(t, batch, "results")[0]["id"].(string)
	var list obj
	h.json(&list, "deliveries", "list", "--subscription", subID, "--status", "pending", "--all")
	dels := ids(listOf(t, list, "deliveries"))
	if len(dels) != 12 {
		t.Fatalf("pending deliveries: %d, want 12", len(dels))
	}

	// cancel four; the table view names the delivery
	if out := h.ok("deliveries", "cancel", dels[0]); !strings.Contains(out, "Cancelled "+dels[0]) || !strings.Contains(out, "cancelled") {
		t.Errorf("cancel table output:\n%s", out)
	}
	for _, id := range dels[1:4] {
		var d obj
		h.json(&d, "deliveries", "cancel", id)
		if d["status"] != "DELIVERY_STATUS_CANCELLED" || d["id"] != id {
			t.Fatalf("cancel %s = %v", id, d)
		}
	}
	h.fail(exitConflict, "only pending deliveries can be cancelled", "deliveries", "cancel", dels[0])
	h.fail(exitNotFound, "not found", "deliveries", "cancel", "dlv_01JAAAAAAAAAAAAAAAAAAAAAAA")
	h.fail(exitUsage, "missing ID", "deliveries", "cancel")

	// retry one cancelled delivery: pending again, due now
	var retried obj
	h.json(&retried, "deliveries", "retry", dels[3])
	if retried["status"] != "DELIVERY_STATUS_PENDING" || retried["next_attempt_time"] == nil {
		t.Fatalf("retry = %v", retried)
	}
	if out := h.ok("deliveries", "retry", dels[5]); !strings.Contains(out, "Retrying "+dels[5]) {
		t.Errorf("retry of a pending delivery:\n%s", out)
	}
	h.fail(exitNotFound, "not found", "deliveries", "retry", "--force", "dlv_01JAAAAAAAAAAAAAAAAAAAAAAA")
	h.with("HOOKWIRE_TENANT=").fail(exitUsage, "no tenant", "deliveries", "retry", dels[0])

	// resend: a new delivery of the event
	var resent obj
	h.json(&resent, "events", "resend", evtID, "--subscription", subID)
	if id, _ := resent["id"].(string); !strings.HasPrefix(id, "dlv_") || resent["event_id"] != evtID || resent["status"] != "DELIVERY_STATUS_PENDING" {
		t.Fatalf("resend = %v", resent)
	}
	for _, id := range dels {
		if id == resent["id"] {
			t.Fatalf("resend reused delivery id %s", id)
		}
	}
	h.fail(exitUsage, "--subscription is required", "events", "resend", evtID)
	h.fail(exitNotFound, "subscription", "events", "resend", evtID, "--subscription", "sub_01JAAAAAAAAAAAAAAAAAAAAAAA")
	h.fail(exitNotFound, "event", "events", "resend", "evt_01JAAAAAAAAAAAAAAAAAAAAAAA", "--subscription", subID)

	// recover: 13 deliveries examined, the 3 still cancelled re-queued;
	// progress goes to stderr as plain lines (not a terminal), the final
	// operation to stdout.
	res := h.run("subscriptions", "recover", subID, "--since", "1h", "-o", "json")
	if res.code != 0 {
		t.Fatalf("recover: exit %d\n%s", res.code, res.stderr)
	}
	var op obj
	decodeJSON(t, res.stdout, &op)
	if op["done"] != true || op["processed"] != "13" || op["total"] != "13" || op["requeued"] != "3" || op["error"] != nil {
		t.Fatalf("recover operation = %v", op)
	}
	if !strings.Contains(res.stderr, "Started op_") || !strings.Contains(res.stderr, "13/13") || !strings.Contains(res.stderr, "requeued 3") ||
		strings.Contains(res.stderr, "\r") {
		t.Errorf("recover progress on stderr:\n%q", res.stderr)
	}
	h.json(&list, "deliveries", "list", "--subscription", subID, "--status", "cancelled", "--all")
	if n := len(listOf(t, list, "deliveries")); n != 0 {
		t.Errorf("%d deliveries still cancelled after recover", n)
	}
	opID := op["id"].(string)

	// operations get and watch of a finished operation
	var got obj
	h.json(&got, "operations", "get", opID)
	if got["id"] != opID || got["requeued"] != "3" || got["done"] != true {
		t.Errorf("operations get = %v", got)
	}
	if out := h.ok("operations", "get", opID); !strings.Contains(out, "State:") || !strings.Contains(out, "done") || !strings.Contains(out, "13 of 13") {
		t.Errorf("operations get table:\n%s", out)
	}
	var watched obj
	h.json(&watched, "operations", "watch", opID)
	if watched["id"] != opID || watched["done"] != true {
		t.Errorf("operations watch = %v", watched)
	}
	if out := h.ok("operations", "watch", opID); !strings.Contains(out, "Requeued:") {
		t.Errorf("operations watch table:\n%s", out)
	}
	h.fail(exitNotFound, "not found", "operations", "get", "op_nope")
	h.fail(exitNotFound, "not found", "operations", "watch", "op_nope")
	h.ok("tenants", "create", "other")
	h.fail(exitNotFound, "not found", "operations", "get", "--tenant", "other", opID) // operations belong to a tenant

	// --no-wait returns the operation as started; --all covers succeeded
	// ones too (none here, and pending ones are never re-queued).
	var started obj
	h.json(&started, "subscriptions", "recover", subID, "--start", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "--all", "--no-wait")
	if id, _ := started["id"].(string); !strings.HasPrefix(id, "op_") || !strings.Contains(fmt.Sprint(started["description"]), "all") {
		t.Fatalf("recover --no-wait = %v", started)
	}
	var all obj
	h.json(&all, "operations", "watch", started["id"].(string))
	if all["done"] != true || all["processed"] != "13" || all["requeued"] != nil {
		t.Errorf("recover --all = %v", all)
	}

	// recover errors
	h.fail(exitUsage, "not both", "subscriptions", "recover", subID, "--since", "1h", "--start", "2026-01-01T00:00:00Z")
	h.fail(exitUsage, "RFC 3339", "subscriptions", "recover", subID, "--start", "yesterday")
	h.fail(exitUsage, "positive", "subscriptions", "recover", subID, "--since", "-1h")
	h.fail(exitInvalid, "start_time must be before end_time", "subscriptions", "recover", subID,
		"--start", "2026-01-02T00:00:00Z", "--end", "2026-01-01T00:00:00Z")
	h.fail(exitNotFound, "not found", "subscriptions", "recover", "sub_01JAAAAAAAAAAAAAAAAAAAAAAA")
	h.fail(exitUsage, "missing SUB", "subscriptions", "recover")
}

// TestProgressLine checks the progress bar and plain lines.
func TestProgressLine(t *testing.T) {
	op := &hookwirev1.Operation{Processed: 500, Total: 1000, Requeued: 17}
	got := progressLine(op, 250, true)
	want := "[===============>              ] 500/1000   50%  requeued 17  250/s  ETA 2s"
	if got != want {
		t.Errorf("bar:\n got %q\nwant %q", got, want)
	}
	if got := progressLine(op, 0, false); got != "500/1000   50%  requeued 17  ETA -" {
		t.Errorf("plain, no rate yet: %q", got)
	}
	op.Processed, op.Done = 1000, true
	if got := progressLine(op, 400, true); !strings.HasPrefix(got, "[==============================] 1000/1000  100%") || !strings.HasSuffix(got, "done") {
		t.Errorf("done bar: %q", got)
	}
	op.Error = "disk full"
	if got := progressLine(op, 0, false); !strings.HasSuffix(got, "failed") {
		t.Errorf("failed: %q", got)
	}

	// plain output: the first update, then at most every progressInterval,
	// and always the last
	var b strings.Builder
	now := time.Unix(1000, 0)
	p := newProgress(&b, false, func() time.Time { return now })
	p.update(&hookwirev1.Operation{Processed: 0, Total: 100})
	now = now.Add(time.Second)
	p.update(&hookwirev1.Operation{Processed: 10, Total: 100})
	now = now.Add(2 * time.Second)
	p.update(&hookwirev1.Operation{Processed: 30, Total: 100})
	now = now.Add(time.Second)
	p.update(&hookwirev1.Operation{Processed: 100, Total: 100, Requeued: 4, Done: true})
	p.finish()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "30/100") || !strings.Contains(lines[1], "10/s") || !strings.Contains(lines[1], "ETA 7s") ||
		!strings.Contains(lines[2], "requeued 4") {
		t.Errorf("plain progress:\n%s", b.String())
	}

	// terminal: redrawn in place, ended with a newline
	b.Reset()
	p = newProgress(&b, true, func() time.Time { return now })
	p.update(&hookwirev1.Operation{Processed: 1, Total: 2})
	p.update(&hookwirev1.Operation{Processed: 2, Total: 2, Done: true})
	p.finish()
	if out := b.String(); strings.Count(out, "\r\x1b[K") != 2 || !strings.HasSuffix(out, "done\n") {
		t.Errorf("terminal progress: %q", out)
	}
}

// TestCLIRetrySucceeded re-sends a delivery that succeeded: refused without
// --force, and with it the receiver gets the same webhook-id again.
func TestCLIRetrySucceeded(t *testing.T) {
	sk := newSink(t)
	srv := startServer(t, t.TempDir())
	startAgent(t, srv.grpcAddr, "retry-agent")
	h := newHW(t, srv.grpcAddr).with("HOOKWIRE_TENANT=acme")
	h.ok("tenants", "create", "acme")
	h.ok("subscriptions", "create", "--event-type", "order.*", "--url", sk.url)
	h.ok("events", "publish", "--type", "order.created", "--data", `{"id": 1}`)
	sk.await(1, 30*time.Second)
	var id string
	for k := range sk.all() {
		id = k
	}
	// The delivery succeeds once the agent's result is stored.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var d obj
		h.json(&d, "deliveries", "get", id)
		if d["status"] == "DELIVERY_STATUS_SUCCEEDED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s did not succeed: %v", id, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := h.fail(exitConflict, "already succeeded", "deliveries", "retry", id)
	if !strings.Contains(r.stderr, "hint: pass --force") {
		t.Errorf("no --force hint:\n%s", r.stderr)
	}
	var d obj
	h.json(&d, "deliveries", "retry", "--force", id)
	if d["status"] != "DELIVERY_STATUS_PENDING" {
		t.Fatalf("retry --force = %v", d)
	}
	deadline = time.Now().Add(30 * time.Second)
	for len(sk.all()[id]) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %s %d times after retry --force, want 2", id, len(sk.all()[id]))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
