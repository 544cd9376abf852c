package controlplane_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func (h *deliveryHarness) getEvent(id string) *hookwirev1.GetEventResponse {
	h.t.Helper()
	resp, err := hookwirev1.NewEventServiceClient(h.conn).GetEvent(h.ctx(), &hookwirev1.GetEventRequest{Tenant: "acme", Id: id})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

// GetEvent shows the event as published, its deliveries, and why each
// other subscription got none: decided at read time from the
// subscription as it is now, and flagged when it changed since.
func TestGetEventShowsDeliveriesAndWhyNot(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	subs := hookwirev1.NewSubscriptionServiceClient(h.conn)
	taker := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	paused := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.created"}})
	if _, err := subs.PauseSubscription(h.ctx(), &hookwirev1.PauseSubscriptionRequest{Tenant: "acme", Id: paused.GetId()}); err != nil {
		t.Fatal(err)
	}
	invoices := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"invoice.*", "refund.issued"}})
	big := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, Filter: `payload.total > 100`})
	broken := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, Filter: `payload.name > 1`})
	later := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"payment.*"}})

	pub := h.publish("order.created", `{"total": 50, "name": "x"}`, func(e *hookwirev1.Event) {
		e.Metadata = map[string]string{"region": "eu"}
		e.IdempotencyKey = "order-50"
	})
	if pub.GetDeliveryCount() != 2 {
		t.Fatalf("publish: %v", pub)
	}

	// Afterwards: a new subscription, one changed so that it now takes
	// the event, and a re-send to the filtered one.
	h.clock.advance(time.Minute)
	newer := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	_, err := subs.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme",
		Subscription: &hookwirev1.Subscription{Id: later.GetId(), EventTypes: []string{"order.*"}, Target: isoTarget()},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"event_types"}}})
	if err != nil {
		t.Fatal(err)
	}
	resent, err := hookwirev1.NewDeliveryServiceClient(h.conn).ResendEvent(h.ctx(), &hookwirev1.ResendEventRequest{Tenant: "acme", EventId: pub.GetId(), SubscriptionId: big.GetId()})
	if err != nil {
		t.Fatal(err)
	}

	got := h.getEvent(pub.GetId())
	ev := got.GetEvent()
	if ev.GetId() != pub.GetId() || ev.GetTenant() != "acme" || ev.GetType() != "order.created" || string(ev.GetPayload()) != `{"total": 50, "name": "x"}` ||
		ev.GetContentType() != "application/json" || ev.GetMetadata()["region"] != "eu" || ev.GetIdempotencyKey() != "order-50" || ev.GetReceiveTime() == nil {
		t.Errorf("event: %v", ev)
	}
	deliveries := map[string]*hookwirev1.EventDelivery{}
	for _, d := range got.GetDeliveries() {
		deliveries[d.GetSubscriptionId()] = d
	}
	if len(got.GetDeliveries()) != 3 || got.GetDeliveriesTruncated() {
		t.Errorf("deliveries: %v", got.GetDeliveries())
	}
	for _, sub := range []*hookwirev1.Subscription{taker, paused} {
		d := deliveries[sub.GetId()]
		if d == nil || d.GetResent() || d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING || !strings.HasPrefix(d.GetDeliveryId(), "dlv_") {
			t.Errorf("delivery to %s (a paused subscription still takes events): %v", sub.GetId(), d)
		}
	}
	if d := deliveries[big.GetId()]; d == nil || !d.GetResent() || d.GetDeliveryId() != resent.GetId() {
		t.Errorf("re-sent delivery: %v, want %s marked resent", d, resent.GetId())
	}

	type why struct {
		reason  hookwirev1.NoMatchReason
		detail  string
		changed bool
	}
	want := map[string]why{
		invoices.GetId(): {hookwirev1.NoMatchReason_NO_MATCH_REASON_EVENT_TYPE, `event type "order.created" matches none of its event types ("invoice.*", "refund.issued")`, false},
		big.GetId():      {hookwirev1.NoMatchReason_NO_MATCH_REASON_FILTER, `its filter is false for this event: payload.total > 100`, false},
		broken.GetId():   {hookwirev1.NoMatchReason_NO_MATCH_REASON_FILTER_ERROR, `no such overload`, false},
		newer.GetId():    {hookwirev1.NoMatchReason_NO_MATCH_REASON_CREATED_AFTER_EVENT, `after the event was received`, false},
		later.GetId():    {hookwirev1.NoMatchReason_NO_MATCH_REASON_CHANGED_SINCE_EVENT, `its settings then are not recorded`, true},
	}
	var order []string
	for _, u := range got.GetUnmatchedSubscriptions() {
		order = append(order, u.GetSubscriptionId())
		w, ok := want[u.GetSubscriptionId()]
		if !ok {
			t.Errorf("unexpected unmatched subscription %v", u)
			continue
		}
		if u.GetReason() != w.reason || !strings.Contains(u.GetDetail(), w.detail) || u.GetChangedSinceEvent() != w.changed {
			t.Errorf("%s: %v %q changed=%v; want %v containing %q changed=%v", u.GetSubscriptionId(), u.GetReason(), u.GetDetail(), u.GetChangedSinceEvent(), w.reason, w.detail, w.changed)
		}
	}
	if wantOrder := []string{invoices.GetId(), big.GetId(), broken.GetId(), later.GetId(), newer.GetId()}; !slices.Equal(order, wantOrder) {
		t.Errorf("unmatched in order %v, want creation order %v", order, wantOrder)
	}

	// REST: the same, with the JSON payload as the JSON value itself.
	body, code, _ := h.restFull("GET", "/v1/tenants/acme/events/"+pub.GetId(), "")
	if code != 200 {
		t.Fatalf("REST GetEvent: %d %s", code, body)
	}
	if !strings.Contains(string(body), `"payload":{"total": 50, "name": "x"}`) {
		t.Errorf("REST payload is not the JSON value as published: %s", body)
	}
	var rest struct {
		Event struct {
			ID          string            `json:"id"`
			Metadata    map[string]string `json:"metadata"`
			ContentType string            `json:"content_type"`
		} `json:"event"`
		Deliveries []struct {
			SubscriptionID string `json:"subscription_id"`
			Status         string `json:"status"`
			Resent         bool   `json:"resent"`
		} `json:"deliveries"`
		Unmatched []struct {
			SubscriptionID string `json:"subscription_id"`
			Reason         string `json:"reason"`
			Detail         string `json:"detail"`
		} `json:"unmatched_subscriptions"`
	}
	if err := json.Unmarshal(body, &rest); err != nil {
		t.Fatalf("REST GetEvent answer %s: %v", body, err)
	}
	if rest.Event.ID != pub.GetId() || rest.Event.Metadata["region"] != "eu" || len(rest.Deliveries) != 3 || len(rest.Unmatched) != 5 ||
		rest.Unmatched[0].Reason != "NO_MATCH_REASON_EVENT_TYPE" || rest.Deliveries[0].Status != "DELIVERY_STATUS_PENDING" {
		t.Errorf("REST GetEvent: %+v", rest)
	}
}

// A payload that is not JSON is base64 over REST, and no filter matches it.
func TestGetEventOfARawPayload(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	filtered := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"*"}, Filter: `type == "invoice.rendered"`})
	data, code := h.restRaw("POST", "/v1/tenants/acme/events:publishRaw?type=invoice.rendered", "%PDF-1.7 \x00\x01", map[string]string{"Content-Type": "application/pdf"})
	var pub struct {
		ID string `json:"id"`
	}
	if code != 200 || json.Unmarshal(data, &pub) != nil || pub.ID == "" {
		t.Fatalf("raw publish: %d %s", code, data)
	}
	got := h.getEvent(pub.ID)
	if string(got.GetEvent().GetPayload()) != "%PDF-1.7 \x00\x01" || got.GetEvent().GetContentType() != "application/pdf" {
		t.Errorf("event: %v", got.GetEvent())
	}
	if u := got.GetUnmatchedSubscriptions(); len(u) != 1 || u[0].GetSubscriptionId() != filtered.GetId() ||
		u[0].GetReason() != hookwirev1.NoMatchReason_NO_MATCH_REASON_FILTER || !strings.Contains(u[0].GetDetail(), `payload (content type "application/pdf") is not JSON`) {
		t.Errorf("unmatched: %v", u)
	}
	body, code, _ := h.restFull("GET", "/v1/tenants/acme/events/"+pub.ID, "")
	if code != 200 || !strings.Contains(string(body), `"payload":"JVBERi0xLjcgAAE="`) {
		t.Errorf("REST GetEvent of a PDF: %d %s", code, body)
	}
}

// Unknown and other tenants' events are 404 with the same message, and a
// read-only key may read.
func TestGetEventNotFoundAndIsolation(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	pub := h.publish("order.created", `{"secret": "acme"}`)
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "globex"}); err != nil {
		t.Fatal(err)
	}
	keys := hookwirev1.NewApiKeyServiceClient(h.conn)
	globex, err := keys.CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: "globex", Name: "g"})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := keys.CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: "acme", Name: "r", Scope: hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY})
	if err != nil {
		t.Fatal(err)
	}
	var ok map[string]any
	if code := h.rest("GET", "/v1/tenants/acme/events/"+pub.GetId(), reader.GetKey(), "", nil, &ok); code != 200 {
		t.Errorf("read-only key: HTTP %d %v", code, ok)
	}

	missing := "evt_01JZZZZZZZZZZZZZZZZZZZZZZZ"
	_, err = hookwirev1.NewEventServiceClient(h.conn).GetEvent(h.ctx(), &hookwirev1.GetEventRequest{Tenant: "acme", Id: missing})
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != `event "`+missing+`" not found` {
		t.Errorf("unknown event over gRPC: %v", err)
	}
	_, err = hookwirev1.NewEventServiceClient(h.conn).GetEvent(h.ctx(), &hookwirev1.GetEventRequest{Tenant: "nosuch", Id: pub.GetId()})
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != `tenant "nosuch" not found` {
		t.Errorf("admin, unknown tenant: %v", err)
	}
	type apiError struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	for _, tc := range []struct{ name, path, key, message string }{
		{"unknown id", "/v1/tenants/acme/events/" + missing, adminKey, `event "` + missing + `" not found`},
		{"malformed id", "/v1/tenants/acme/events/nope", adminKey, `event "nope" not found`},
		{"another tenant's event in one's own tenant", "/v1/tenants/globex/events/" + pub.GetId(), globex.GetKey(), `event "` + pub.GetId() + `" not found`},
		{"another tenant's event in its tenant", "/v1/tenants/acme/events/" + pub.GetId(), globex.GetKey(), `tenant "acme" not found`},
		{"unknown tenant", "/v1/tenants/nosuch/events/" + pub.GetId(), globex.GetKey(), `tenant "nosuch" not found`},
	} {
		var e apiError
		code := h.rest("GET", tc.path, tc.key, "", nil, &e)
		if code != 404 || e.Code != int(codes.NotFound) || e.Message != tc.message {
			t.Errorf("%s: HTTP %d %+v, want 404 %q", tc.name, code, e, tc.message)
		}
		if strings.Contains(fmt.Sprint(e), `"secret"`) {
			t.Errorf("%s: leaks the payload: %+v", tc.name, e)
		}
	}
}

func (h *deliveryHarness) listEvents(req *hookwirev1.ListEventsRequest) ([]string, []*hookwirev1.Event) {
	h.t.Helper()
	var out []string
	var events []*hookwirev1.Event
	for pages := 0; ; pages++ {
		if pages > 100 {
			h.t.Fatal("ListEvents does not stop paging")
		}
		resp, err := hookwirev1.NewEventServiceClient(h.conn).ListEvents(h.ctx(), req)
		if err != nil {
			h.t.Fatal(err)
		}
		if n := len(resp.GetEvents()); req.GetPageSize() > 0 && n > int(req.GetPageSize()) {
			h.t.Fatalf("page of %d events, page_size %d", n, req.GetPageSize())
		}
		for _, ev := range resp.GetEvents() {
			out = append(out, ev.GetId())
			events = append(events, ev)
		}
		if resp.GetNextPageToken() == "" {
			return out, events
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func TestListEventsPagesAndFilters(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "globex"}); err != nil {
		t.Fatal(err)
	}
	var all, orders []string // newest first
	var middleStart, middleEnd time.Time
	var middle []string
	for i := range 12 {
		if i == 4 {
			h.clock.advance(time.Hour)
			middleStart = time.Now().Add(time.Duration(h.clock.off.Load()))
		}
		if i == 8 {
			middleEnd = time.Now().Add(time.Duration(h.clock.off.Load()))
			h.clock.advance(time.Hour)
		}
		typ := "order.created"
		if i%3 == 2 {
			typ = "invoice.paid"
		}
		id := h.publish(typ, fmt.Sprintf(`{"i": %d}`, i), func(e *hookwirev1.Event) { e.IdempotencyKey = fmt.Sprintf("k%d", i) }).GetId()
		all = append([]string{id}, all...)
		if typ == "order.created" {
			orders = append([]string{id}, orders...)
		}
		if i >= 4 && i < 8 {
			middle = append([]string{id}, middle...)
		}
		// Another tenant's events in between, with the same keys.
		if _, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: "globex",
			Event: &hookwirev1.Event{Type: typ, Payload: []byte(`{}`), IdempotencyKey: fmt.Sprintf("k%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}

	got, events := h.listEvents(&hookwirev1.ListEventsRequest{Tenant: "acme", PageSize: 5})
	if !slices.Equal(got, all) {
		t.Errorf("all, 5 a page:\n got %v\nwant %v", got, all)
	}
	for _, ev := range events {
		if ev.GetPayload() != nil || ev.GetType() == "" || ev.GetReceiveTime() == nil || ev.GetContentType() != "application/json" {
			t.Errorf("BASIC view: %v", ev)
		}
	}
	_, events = h.listEvents(&hookwirev1.ListEventsRequest{Tenant: "acme", PageSize: 100, View: hookwirev1.EventView_EVENT_VIEW_FULL})
	if len(events) != 12 || string(events[0].GetPayload()) != `{"i": 11}` {
		t.Errorf("FULL view: %v", events)
	}
	if got, _ := h.listEvents(&hookwirev1.ListEventsRequest{Tenant: "acme", PageSize: 2, EventType: "order.*"}); !slices.Equal(got, orders) {
		t.Errorf("order.*:\n got %v\nwant %v", got, orders)
	}
	if got, _ := h.listEvents(&hookwirev1.ListEventsRequest{Tenant: "acme", EventType: "invoice.paid"}); len(got) != 4 {
		t.Errorf("invoice.paid: %v", got)
	}
	got, _ = h.listEvents(&hookwirev1.ListEventsRequest{Tenant: "acme", PageSize: 3, StartTime: timestamppb.New(middleStart), EndTime: timestamppb.New(middleEnd)})
	if !slices.Equal(got, middle) {
		t.Errorf("time range:\n got %v\nwant %v", got, middle)
	}
	if got, _ := h.listEvents(&hookwirev1.ListEventsRequest{Tenant: "acme", IdempotencyKey: "k3"}); !slices.Equal(got, []string{all[len(all)-4]}) {
		t.Errorf("idempotency key k3: %v, want %s", got, all[len(all)-4])
	}
	if got, _ := h.listEvents(&hookwirev1.ListEventsRequest{Tenant: "globex", PageSize: 1000}); len(got) != 12 || slices.ContainsFunc(got, func(id string) bool { return slices.Contains(all, id) }) {
		t.Errorf("globex lists %d events, or some of acme's: %v", len(got), got)
	}

	// Bad input.
	events2 := hookwirev1.NewEventServiceClient(h.conn)
	for _, tc := range []struct {
		req  *hookwirev1.ListEventsRequest
		want string
	}{
		{&hookwirev1.ListEventsRequest{Tenant: "acme", StartTime: timestamppb.New(middleEnd), EndTime: timestamppb.New(middleStart)}, "start_time must be before end_time"},
		{&hookwirev1.ListEventsRequest{Tenant: "acme", PageToken: "garbage"}, "page_token"},
		{&hookwirev1.ListEventsRequest{Tenant: "acme", EventType: "order..x"}, "event_type"},
		{&hookwirev1.ListEventsRequest{Tenant: "acme", PageSize: 1001}, "page_size"},
	} {
		_, err := events2.ListEvents(h.ctx(), tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want InvalidArgument about %s", tc.req, err, tc.want)
		}
	}

	// REST: query parameters, pages, and JSON payloads in the FULL view.
	var ids []string
	token := ""
	for range 20 {
		q := url.Values{"page_size": {"4"}, "event_type": {"order.*"}, "view": {"EVENT_VIEW_FULL"}}
		if token != "" {
			q.Set("page_token", token)
		}
		body, code, _ := h.restFull("GET", "/v1/tenants/acme/events?"+q.Encode(), "")
		if code != 200 {
			t.Fatalf("REST ListEvents: %d %s", code, body)
		}
		var page struct {
			Events []struct {
				ID      string          `json:"id"`
				Payload json.RawMessage `json:"payload"`
			} `json:"events"`
			Next string `json:"next_page_token"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("REST ListEvents answer %s: %v", body, err)
		}
		for _, ev := range page.Events {
			ids = append(ids, ev.ID)
			if !strings.HasPrefix(string(ev.Payload), `{"i": `) {
				t.Errorf("REST payload of %s: %s", ev.ID, ev.Payload)
			}
		}
		if token = page.Next; token == "" {
			break
		}
	}
	if !slices.Equal(ids, orders) {
		t.Errorf("REST order.*:\n got %v\nwant %v", ids, orders)
	}
	body, code, _ := h.restFull("GET", "/v1/tenants/acme/events?start_time=2026-01-02T00:00:00Z&end_time=2026-01-01T00:00:00Z", "")
	if code != 400 || !strings.Contains(string(body), "start_time must be before end_time") {
		t.Errorf("REST bad time range: %d %s", code, body)
	}
}
