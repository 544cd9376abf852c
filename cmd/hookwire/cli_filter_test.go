package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIPublishShowsFilterErrors: a subscription whose filter cannot be
// evaluated for an event is named in the publish output, with the reason,
// for single and batch publishes; a filter over the cost budget is refused
// on create with the estimate.
func TestCLIPublishShowsFilterErrors(t *testing.T) {
	srv := startServer(t, t.TempDir())
	h := newHW(t, srv.grpcAddr).with("HOOKWIRE_TENANT=acme")
	h.ok("tenants", "create", "acme")
	dir := t.TempDir()
	write := func(name, filter string) string {
		path := filepath.Join(dir, name)
		doc := `{"event_types":["order.*"],"filter":` + quoteJSONString(filter) + `,"target":{"transport":"http","config":{"url":"http://127.0.0.1:1/hook"}}}`
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var sub obj
	h.json(&sub, "subscriptions", "create", "-f", write("amount.json", "payload.amount > 100"))
	subID := sub["id"].(string)

	out := h.ok("events", "publish", "--type", "order.created", "--data", `{"amount":"150"}`)
	if !strings.Contains(out, "Published evt_") || !strings.Contains(out, "(0 deliveries).\nNot delivered to "+subID+": the filter failed on this event: no such overload\n") {
		t.Errorf("publish output:\n%s", out)
	}
	var pub obj
	h.json(&pub, "events", "publish", "--type", "order.created", "--data", `{"amount":"150"}`)
	errs := listOf(t, pub, "filter_errors")
	if len(errs) != 1 || errs[0]["subscription_id"] != subID || errs[0]["error"] != "the filter failed on this event: no such overload" {
		t.Errorf("publish -o json: %v", pub)
	}
	// An event without the field is no match and no error.
	if out := h.ok("events", "publish", "--type", "order.created", "--data", `{}`); strings.Contains(out, "Not delivered") {
		t.Errorf("publish without amount:\n%s", out)
	}

	out = h.okIn(`{"type":"order.a","payload":{"amount":1}}`+"\n"+`{"type":"order.b","payload":{"amount":"x"}}`+"\n", "events", "publish", "--batch")
	if !strings.Contains(out, "Published 2 events (0 deliveries) in 1 request.\nLine 2, evt_") || !strings.Contains(out, ": Not delivered to "+subID+": the filter failed on this event: no such overload\n") ||
		strings.Contains(out, "Line 1") {
		t.Errorf("batch publish output:\n%s", out)
	}

	h.fail(exitInvalid, "the filter is too expensive: its estimated cost is unbounded", "subscriptions", "create", "-f",
		write("nested.json", "payload.items.all(a, payload.items.all(b, payload.items.all(c, payload.items.all(d, a+b+c+d >= 0))))"))
}

func quoteJSONString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
