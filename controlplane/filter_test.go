package controlplane_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// issueFilter is the filter of issue 11: four comprehensions nested over
// the same payload list. Before the fix, a publish with 30 to 1,000 items
// answered 200, created no delivery, and said, logged and counted nothing.
const issueFilter = `payload.items.all(a, payload.items.all(b, payload.items.all(c, payload.items.all(d, a+b+c+d >= 0))))`

// costRefusal is how a save of issueFilter is refused by a server with the
// default 1 MiB payload limit.
const costRefusal = "invalid filter: the filter is too expensive: its estimated cost is unbounded (beyond 2^64 units)" +
	" for a payload of up to 1048576 bytes (the server's --max-payload-bytes), in which a list or object has up to 524288 entries and a string up to 1048576 characters," +
	" over the budget of 16877216 units; comprehensions nested over payload lists (such as payload.items.all(a, payload.items.all(b, ...))) multiply the lengths of the lists"

func itemsPayload(n int) string {
	return `{"items":[` + strings.TrimSuffix(strings.Repeat("1,", n), ",") + `]}`
}

func httpTarget() *hookwirev1.Target {
	cfg, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:1/hook"})
	return &hookwirev1.Target{Transport: "http", Config: cfg}
}

// restError is the JSON error body of the REST gateway.
type restError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func TestFilterCostCheckedWhenSaved(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	subs := hookwirev1.NewSubscriptionServiceClient(h.conn)

	// gRPC create: InvalidArgument with the estimate and the budget.
	_, err := subs.CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: &hookwirev1.Subscription{
		EventTypes: []string{"order.*"}, Filter: issueFilter, Target: httpTarget(),
	}})
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != costRefusal {
		t.Fatalf("create over budget: %v\nwant InvalidArgument: %s", err, costRefusal)
	}
	// REST create: 400 with the same message.
	body, _ := json.Marshal(map[string]any{"event_types": []string{"order.*"}, "filter": issueFilter,
		"target": map[string]any{"transport": "http", "config": map[string]any{"url": "http://127.0.0.1:1/hook"}}})
	var rerr restError
	if code := h.rest("POST", "/v1/tenants/acme/subscriptions", adminKey, "application/json", body, &rerr); code != 400 || rerr.Message != costRefusal {
		t.Fatalf("REST create over budget: HTTP %d %+v", code, rerr)
	}

	// An update to such a filter is refused too, and changes nothing.
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, Filter: `payload.amount > 100`})
	_, err = subs.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme",
		Subscription: &hookwirev1.Subscription{Id: sub.GetId(), EventTypes: []string{"order.*"}, Target: httpTarget(), Filter: issueFilter},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"filter"}}})
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != costRefusal {
		t.Fatalf("update over budget: %v", err)
	}
	if code := h.rest("PATCH", "/v1/tenants/acme/subscriptions/"+sub.GetId()+"?update_mask=filter", adminKey, "application/json",
		[]byte(`{"event_types":["order.*"],"target":{"transport":"http","config":{"url":"http://127.0.0.1:1/hook"}},"filter":`+quoteJSON(issueFilter)+`}`), &rerr); code != 400 || rerr.Message != costRefusal {
		t.Fatalf("REST update over budget: HTTP %d %+v", code, rerr)
	}
	got, err := subs.GetSubscription(h.ctx(), &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil || got.GetFilter() != `payload.amount > 100` {
		t.Fatalf("after the refused updates: %v, %v", got.GetFilter(), err)
	}

	// Ordinary filters are accepted, alternately over gRPC and REST.
	for i, expr := range []string{
		`payload.amount > 100 && metadata["region"] == "eu"`,
		`payload.status == "paid" && payload.currency in ["EUR", "USD"]`,
		`has(payload.customer) && payload.customer.tier in ["gold", "platinum"]`,
		`type.startsWith("order.") && payload.customer.email.endsWith("@example.com")`,
		`payload.items.exists(i, i.sku == "A")`,
		`payload.items.all(i, i.qty > 0 && i.price * i.qty < 1000)`,
		`payload.items.exists(i, i.sku == "A" && i.qty > 2 || i.tags.size() > 3)`,
		`size(payload.items.filter(i, i.qty > 1)) > 0`,
		`"vip" in payload.tags`,
		`payload.tags.exists(t, t.startsWith("urgent"))`,
		`payload.description.contains("urgent") || payload.email.matches("^[^@]+@example\\.com$")`,
		`timestamp(payload.created_at) > timestamp("2024-01-01T00:00:00Z")`,
		`metadata.exists(k, k.startsWith("x-") && metadata[k] == "1")`,
	} {
		if i%2 == 0 {
			if _, err := subs.CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: &hookwirev1.Subscription{
				EventTypes: []string{"order.*"}, Filter: expr, Target: httpTarget(),
			}}); err != nil {
				t.Errorf("gRPC create with %s: %v", expr, err)
			}
			continue
		}
		body, _ := json.Marshal(map[string]any{"event_types": []string{"order.*"}, "filter": expr,
			"target": map[string]any{"transport": "http", "config": map[string]any{"url": "http://127.0.0.1:1/hook"}}})
		var out map[string]any
		if code := h.rest("POST", "/v1/tenants/acme/subscriptions", adminKey, "application/json", body, &out); code != 200 || out["filter"] != expr {
			t.Errorf("REST create with %s: HTTP %d %v", expr, code, out)
		}
	}
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// filterFailedEvent is the payload of hookwire.filter.failed.
type filterFailedEvent struct {
	SubscriptionID string `json:"subscription_id"`
	EventID        string `json:"event_id"`
	EventType      string `json:"event_type"`
	Reason         string `json:"reason"`
	Error          string `json:"error"`
	Suppressed     int    `json:"suppressed"`
}

// nextFilterFailed waits for the next assignment of a
// hookwire.filter.failed event (skipping those of other events), checks
// that it is a delivery to watcher and decodes it.
func (h *deliveryHarness) nextFilterFailed(watcher string) filterFailedEvent {
	h.t.Helper()
	a := h.next()
	for a.GetRequest().GetEventType() != "hookwire.filter.failed" {
		a = h.next()
	}
	if sub := h.delivery(a.GetDeliveryId()).GetSubscriptionId(); sub != watcher {
		h.t.Fatalf("hookwire.filter.failed delivered to %s, want %s", sub, watcher)
	}
	var ev filterFailedEvent
	if err := json.Unmarshal(a.GetRequest().GetBody(), &ev); err != nil {
		h.t.Fatalf("hookwire.filter.failed body %q: %v", a.GetRequest().GetBody(), err)
	}
	return ev
}

// deliveriesOf counts the deliveries of a subscription.
func (h *deliveryHarness) deliveriesOf(sub string) int {
	h.t.Helper()
	resp, err := hookwirev1.NewDeliveryServiceClient(h.conn).ListDeliveries(h.ctx(), &hookwirev1.ListDeliveriesRequest{Tenant: "acme", SubscriptionId: sub, PageSize: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	return len(resp.GetDeliveries())
}

func TestFilterErrorsAreVisible(t *testing.T) {
	var logs logSink
	h := startDelivery(t, t.TempDir(), controlplane.Config{
		AdminAddr: "127.0.0.1:0",
		Logger:    slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	events := hookwirev1.NewEventServiceClient(h.conn)
	amount := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, Filter: `payload.amount > 100`})
	watcher := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"hookwire.filter.failed"}})
	// A subscription to operational events whose filter fails on them:
	// its failures are counted and logged, but raise no further event.
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"hookwire.*"}, Filter: `payload.suppressed > "0"`})
	// CEL's message for comparing a string, a list, a map, null... with a
	// number ("no such overload", sometimes naming the operator).
	const typeError = "the filter failed on this event: no such overload"
	wantErrors := func(what string, got []*hookwirev1.FilterError) {
		t.Helper()
		if len(got) != 1 || got[0].GetSubscriptionId() != amount.GetId() || !strings.HasPrefix(got[0].GetError(), typeError) {
			t.Errorf("%s: filter_errors %v, want [%s: %s...]", what, got, amount.GetId(), typeError)
		}
	}
	metric := func() float64 { return scrape(t, h.srv.AdminAddr())(`hookwire_filter_errors_total{reason="error"}`) }
	if n := metric(); n != 0 {
		t.Fatalf("filter errors before any publish: %v", n)
	}

	// gRPC single publish: an amount that is a string cannot be compared.
	first := h.publish("order.created", `{"amount":"150"}`)
	if first.GetDeliveryCount() != 0 {
		t.Errorf("deliveries %d", first.GetDeliveryCount())
	}
	wantErrors("gRPC publish", first.GetFilterErrors())
	ev := h.nextFilterFailed(watcher.GetId())
	want := filterFailedEvent{SubscriptionID: amount.GetId(), EventID: first.GetId(), EventType: "order.created", Reason: "error", Error: typeError}
	if ev != want {
		t.Errorf("operational event %+v, want %+v", ev, want)
	}
	// The operational event's own filter failure was counted (2), raised nothing.
	if n := metric(); n != 2 {
		t.Errorf("hookwire_filter_errors_total{reason=\"error\"} = %v, want 2", n)
	}

	// A missing field is no match, and no error.
	if r := h.publish("order.created", `{"total":150}`); r.GetDeliveryCount() != 0 || len(r.GetFilterErrors()) != 0 {
		t.Errorf("missing field: %v", r)
	}
	// The filter still works on events it can evaluate.
	if r := h.publish("order.created", `{"amount":150}`); r.GetDeliveryCount() != 1 || len(r.GetFilterErrors()) != 0 {
		t.Errorf("amount 150: %v", r)
	}

	// Every publish path answers with the failures: gRPC batch and raw,
	// REST single, batch and raw.
	batch, err := events.PublishEvents(h.ctx(), &hookwirev1.PublishEventsRequest{Tenant: "acme", Events: []*hookwirev1.Event{
		{Type: "order.created", Payload: []byte(`{"amount":150}`)},
		{Type: "order.created", Payload: []byte(`{"amount":"x"}`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r := batch.GetResults(); len(r) != 2 || r[0].GetDeliveryCount() != 1 || len(r[0].GetFilterErrors()) != 0 {
		t.Errorf("gRPC batch: %v", r)
	} else {
		wantErrors("gRPC batch, second event", r[1].GetFilterErrors())
	}
	raw, err := events.PublishRawEvent(h.ctx(), &hookwirev1.PublishRawEventRequest{Tenant: "acme", Type: "order.created",
		Body: &httpbody.HttpBody{ContentType: "application/json", Data: []byte(`{"amount":[1]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	wantErrors("gRPC raw publish", raw.GetFilterErrors())

	type restAnswer struct {
		ID           string `json:"id"`
		FilterErrors []struct {
			SubscriptionID string `json:"subscription_id"`
			Error          string `json:"error"`
		} `json:"filter_errors"`
	}
	wantREST := func(what string, a restAnswer) {
		t.Helper()
		if len(a.FilterErrors) != 1 || a.FilterErrors[0].SubscriptionID != amount.GetId() || !strings.HasPrefix(a.FilterErrors[0].Error, typeError) {
			t.Errorf("%s: %+v", what, a)
		}
	}
	var single restAnswer
	if code := h.rest("POST", "/v1/tenants/acme/events", adminKey, "application/json", []byte(`{"type":"order.created","payload":{"amount":true}}`), &single); code != 200 {
		t.Fatalf("REST publish: HTTP %d", code)
	}
	wantREST("REST publish", single)
	var restBatch struct {
		Results []restAnswer `json:"results"`
	}
	if code := h.rest("POST", "/v1/tenants/acme/events:batchPublish", adminKey, "application/json",
		[]byte(`{"events":[{"type":"order.a","payload":{"amount":"1"}},{"type":"order.b","payload":{}}]}`), &restBatch); code != 200 || len(restBatch.Results) != 2 {
		t.Fatalf("REST batch: HTTP %d %+v", code, restBatch)
	}
	wantREST("REST batch, first event", restBatch.Results[0])
	if len(restBatch.Results[1].FilterErrors) != 0 {
		t.Errorf("REST batch, second event (no amount): %+v", restBatch.Results[1])
	}
	var restRaw restAnswer
	if code := h.rest("POST", "/v1/tenants/acme/events:publishRaw?type=order.raw", adminKey, "application/json", []byte(`{"amount":{}}`), &restRaw); code != 200 {
		t.Fatalf("REST raw publish: HTTP %d", code)
	}
	wantREST("REST raw publish", restRaw)

	// Counted every time: 2 + 5 more failures of amount's filter.
	if n := metric(); n != 7 {
		t.Errorf("hookwire_filter_errors_total{reason=\"error\"} = %v, want 7", n)
	}
	if n := scrape(t, h.srv.AdminAddr())(`hookwire_filter_errors_total{reason="cost"}`); n != 0 {
		t.Errorf(`hookwire_filter_errors_total{reason="cost"} = %v`, n)
	}
	// Raised once per minute per subscription: still one event.
	if n := h.deliveriesOf(watcher.GetId()); n != 1 {
		t.Errorf("hookwire.filter.failed deliveries %d, want 1 within the minute", n)
	}
	// A minute later the next failure is raised with the count of those
	// that were not.
	h.clock.advance(filterFailureInterval)
	later := h.publish("order.updated", `{"amount":"null"}`)
	wantErrors("after a minute", later.GetFilterErrors())
	ev = h.nextFilterFailed(watcher.GetId())
	want = filterFailedEvent{SubscriptionID: amount.GetId(), EventID: later.GetId(), EventType: "order.updated", Reason: "error", Error: typeError, Suppressed: 5}
	if ev != want {
		t.Errorf("second operational event %+v, want %+v", ev, want)
	}

	// Logged, rate-limited the same way: two lines for amount's filter.
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m["msg"] == "subscription filter could not be evaluated; the event was not delivered to it" && m["subscription"] == amount.GetId() {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d log lines about the filter, want 2:\n%s", len(lines), logs.String())
	}
	for k, want := range map[string]any{"level": "WARN", "tenant": "acme", "event": first.GetId(), "event_type": "order.created", "reason": "error", "err": first.GetFilterErrors()[0].GetError(), "suppressed": float64(0)} {
		if lines[0][k] != want {
			t.Errorf("log line %s = %v, want %v", k, lines[0][k], want)
		}
	}
	if lines[1]["suppressed"] != float64(5) || lines[1]["event"] != later.GetId() {
		t.Errorf("second log line %v", lines[1])
	}
}

// filterFailureInterval is the documented rate limit of
// hookwire.filter.failed per subscription (docs/FILTERS.md).
const filterFailureInterval = time.Minute

// TestIssueFilterNeverDropsSilently is issue 11's reproduction. The
// filter cannot be saved on a server with the default payload limit; one
// saved earlier (here under a 14-byte payload limit, for which it is
// cheap) keeps loading after the limit is raised, matches small events,
// and every event it cannot finish within the budget shows in the publish
// answer, the metric and an operational event.
func TestIssueFilterNeverDropsSilently(t *testing.T) {
	dir := t.TempDir()
	old := start(t, dir, controlplane.Config{MaxPayloadBytes: 14})
	if _, err := hookwirev1.NewTenantServiceClient(old.conn).CreateTenant(old.ctx(), &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	saved, err := hookwirev1.NewSubscriptionServiceClient(old.conn).CreateSubscription(old.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme",
		Subscription: &hookwirev1.Subscription{EventTypes: []string{"order.*"}, Filter: issueFilter, Target: httpTarget()}})
	if err != nil {
		t.Fatalf("save under 14-byte payloads: %v", err)
	}
	old.stop()

	// The default limits: the stored filter loads and runs.
	h := startDelivery(t, dir, controlplane.Config{AdminAddr: "127.0.0.1:0"})
	watcher := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"hookwire.filter.failed"}})
	if r := h.publish("order.created", itemsPayload(5)); r.GetDeliveryCount() != 1 || len(r.GetFilterErrors()) != 0 {
		t.Fatalf("5 items: %v", r)
	}
	if sub := h.delivery(h.next().GetDeliveryId()).GetSubscriptionId(); sub != saved.GetId() {
		t.Fatalf("5 items: delivered to %s", sub)
	}
	for i, n := range []int{30, 1000} {
		r := h.publish("order.created", itemsPayload(n))
		if r.GetDeliveryCount() != 0 || len(r.GetFilterErrors()) != 1 || r.GetFilterErrors()[0].GetSubscriptionId() != saved.GetId() {
			t.Fatalf("%d items: %v", n, r)
		}
		msg := r.GetFilterErrors()[0].GetError()
		if !strings.HasPrefix(msg, "the filter did not finish within 250ms on this event") && msg != "the filter exceeded its cost budget of 16877216 units on this event" {
			t.Errorf("%d items: error %q", n, msg)
		}
		if i == 0 {
			ev := h.nextFilterFailed(watcher.GetId())
			if ev.SubscriptionID != saved.GetId() || ev.EventID != r.GetId() || ev.Reason != "cost" || ev.Error != msg {
				t.Errorf("operational event %+v for %s", ev, r.GetId())
			}
		}
	}
	if n := scrape(t, h.srv.AdminAddr())(`hookwire_filter_errors_total{reason="cost"}`); n != 2 {
		t.Errorf(`hookwire_filter_errors_total{reason="cost"} = %v, want 2`, n)
	}

	// It cannot be saved again as it is, but the subscription's other
	// fields stay editable (its filter unchanged).
	subs := hookwirev1.NewSubscriptionServiceClient(h.conn)
	_, err = subs.CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme",
		Subscription: &hookwirev1.Subscription{EventTypes: []string{"order.*"}, Filter: issueFilter, Target: httpTarget()}})
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != costRefusal {
		t.Errorf("save with the default limits: %v", err)
	}
	for _, paths := range [][]string{{"description"}, {"description", "filter"}} {
		up, err := subs.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme",
			Subscription: &hookwirev1.Subscription{Id: saved.GetId(), Description: fmt.Sprint(paths), Filter: issueFilter, EventTypes: []string{"order.*"}, Target: httpTarget()},
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: paths}})
		if err != nil || up.GetFilter() != issueFilter {
			t.Errorf("update %v of the saved subscription: %v, %v", paths, up, err)
		}
	}
}

// TestFilterNonJSONIsNoError: a raw publish of a body that is not JSON
// never matches a filter, and is no filter error.
func TestFilterNonJSONIsNoError(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, Filter: `payload.amount > 100`})
	var out struct {
		DeliveryCount int               `json:"delivery_count"`
		FilterErrors  []json.RawMessage `json:"filter_errors"`
	}
	if code := h.rest("POST", "/v1/tenants/acme/events:publishRaw?type=order.pdf", adminKey, "application/pdf", []byte("%PDF"), &out); code != 200 {
		t.Fatalf("HTTP %d", code)
	}
	if out.DeliveryCount != 0 || len(out.FilterErrors) != 0 {
		t.Errorf("non-JSON raw publish: %+v", out)
	}
}
