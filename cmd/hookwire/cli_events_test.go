package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// events get and events list against a real server: the REST shape with
// -o json, the table views, paging and filters, and the exit codes.
func TestCLIEventsGetAndList(t *testing.T) {
	srv := startServer(t, t.TempDir())
	h := newHW(t, srv.grpcAddr).with("HOOKWIRE_TENANT=acme")
	h.ok("tenants", "create", "acme")
	h.ok("tenants", "create", "globex")
	var orders, invoices, big obj
	h.json(&orders, "subscriptions", "create", "--event-type", "order.*", "--url", "http://127.0.0.1:1/hook")
	h.json(&invoices, "subscriptions", "create", "--event-type", "invoice.*", "--url", "http://127.0.0.1:1/hook")
	subFile := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(subFile, []byte(`{"event_types": ["order.*"], "filter": "payload.total > 100",
		"target": {"transport": "http", "config": {"url": "http://127.0.0.1:1/hook"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.json(&big, "subscriptions", "create", "--file", subFile)

	var pub obj
	h.json(&pub, "events", "publish", "--type", "order.created", "--data", `{"total": 50}`, "--metadata", "region=eu")
	first := pub["id"].(string)
	h.okIn(`{"type": "invoice.paid", "payload": {"n": 1}, "idempotency_key": "inv-1"}`+"\n", "events", "publish", "--batch")
	pdf := filepath.Join(t.TempDir(), "a.pdf")
	if err := os.WriteFile(pdf, []byte("%PDF-1.7\x00\x01\x02"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.json(&pub, "events", "publish", "--type", "order.rendered", "--file", pdf, "--content-type", "application/pdf")
	rendered := pub["id"].(string)

	// get -o json: the REST answer, with the JSON payload as JSON.
	var got obj
	h.json(&got, "events", "get", first)
	ev := got["event"].(obj)
	if ev["id"] != first || ev["type"] != "order.created" || !reflect.DeepEqual(ev["payload"], obj{"total": float64(50)}) || ev["metadata"].(obj)["region"] != "eu" {
		t.Errorf("event: %v", ev)
	}
	ds := listOf(t, got, "deliveries")
	if len(ds) != 1 || ds[0]["subscription_id"] != orders["id"] || ds[0]["status"] != "DELIVERY_STATUS_PENDING" {
		t.Errorf("deliveries: %v", ds)
	}
	reasons := map[any]any{}
	for _, u := range listOf(t, got, "unmatched_subscriptions") {
		reasons[u["subscription_id"]] = u["reason"]
	}
	if want := map[any]any{invoices["id"]: "NO_MATCH_REASON_EVENT_TYPE", big["id"]: "NO_MATCH_REASON_FILTER"}; !reflect.DeepEqual(reasons, want) {
		t.Errorf("unmatched: %v, want %v", reasons, want)
	}

	// get: the table view.
	text := h.ok("events", "get", first)
	for _, want := range []string{"Type:", "order.created", "Metadata:", "region=eu", "Payload (13 bytes):\n{\"total\": 50}\n",
		"Deliveries (1):", orders["id"].(string), "matched", "Subscriptions without a delivery (2)", "event-type", `matches none of its event types ("invoice.*")`,
		"filter", "its filter is false for this event: payload.total > 100"} {
		if !strings.Contains(text, want) {
			t.Errorf("events get table lacks %q:\n%s", want, text)
		}
	}
	if text := h.ok("events", "get", rendered); !strings.Contains(text, "(binary, application/pdf; print it with --payload") {
		t.Errorf("events get of a PDF:\n%s", text)
	}
	if raw := h.ok("events", "get", rendered, "--payload"); raw != "%PDF-1.7\x00\x01\x02" {
		t.Errorf("--payload printed %q", raw)
	}

	// get: not found, in another tenant, bad flags.
	r := h.fail(exitNotFound, `event "evt_01J00000000000000000000000" not found`, "events", "get", "evt_01J00000000000000000000000")
	if !strings.Contains(r.stderr, "hookwire events list --tenant acme") {
		t.Errorf("NotFound hint:\n%s", r.stderr)
	}
	h.fail(exitNotFound, `event "`+first+`" not found`, "events", "get", first, "--tenant", "globex")
	h.fail(exitNotFound, `event "nope" not found`, "events", "get", "nope")
	h.fail(exitUsage, "missing ID", "events", "get")
	h.fail(exitUsage, "cannot be combined with --output", "events", "get", first, "--payload", "-o", "json")

	// list: newest first, filters, paging.
	var all obj
	h.json(&all, "events", "list")
	list := listOf(t, all, "events")
	if len(list) != 3 || list[0]["id"] != rendered || list[2]["id"] != first || list[2]["payload"] != nil {
		t.Fatalf("events list: %v", all)
	}
	var byType obj
	h.json(&byType, "events", "list", "--type", "order.*", "--since", "1h")
	if got := ids(listOf(t, byType, "events")); !reflect.DeepEqual(got, []string{rendered, first}) {
		t.Errorf("--type order.* --since 1h: %v", got)
	}
	var p1, p2 obj
	h.json(&p1, "events", "list", "--limit", "2")
	h.json(&p2, "events", "list", "--limit", "2", "--page-token", p1["next_page_token"].(string))
	if got := append(ids(listOf(t, p1, "events")), ids(listOf(t, p2, "events"))...); !reflect.DeepEqual(got, ids(list)) || p2["next_page_token"] != nil {
		t.Errorf("pages of 2: %v then %v, want %v", p1, p2, ids(list))
	}
	var byKey obj
	h.json(&byKey, "events", "list", "--idempotency-key", "inv-1", "--payloads")
	if kl := listOf(t, byKey, "events"); len(kl) != 1 || kl[0]["type"] != "invoice.paid" || !reflect.DeepEqual(kl[0]["payload"], obj{"n": float64(1)}) {
		t.Errorf("--idempotency-key inv-1 --payloads: %v", byKey)
	}
	table := h.ok("events", "list", "--payloads")
	if !strings.HasPrefix(table, "ID ") || !strings.Contains(table, "PAYLOAD") || !strings.Contains(table, `{"total": 50}`) || !strings.Contains(table, "(11 bytes, application/pdf)") {
		t.Errorf("events list table:\n%s", table)
	}
	r = h.run("events", "list", "--start", "2099-01-01T00:00:00Z")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No events match.") {
		t.Errorf("nothing matches: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var none obj
	h.json(&none, "events", "list", "--tenant", "globex")
	if len(listOf(t, none, "events")) != 0 {
		t.Errorf("globex lists acme's events: %v", none)
	}
	h.fail(exitUsage, "--since", "events", "list", "--since", "-1h")
	h.fail(exitUsage, "--start", "events", "list", "--start", "yesterday")
	h.fail(exitInvalid, "event_type", "events", "list", "--type", "order..created")
	h.fail(exitNotFound, `tenant "nosuch" not found`, "events", "list", "--tenant", "nosuch")
}
