package api

import (
	"context"
	"strings"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// publish publishes one event to tenant with a publish-only key.
func publish(t *testing.T, s *Services, tenant string, ev *hookwirev1.Event) *hookwirev1.PublishEventResponse {
	t.Helper()
	resp, err := s.events.PublishEvent(asTenant(t.Context(), tenant, scopePublish), &hookwirev1.PublishEventRequest{Tenant: tenant, Event: ev})
	if err != nil {
		t.Fatalf("publish %s: %v", ev.GetType(), err)
	}
	return resp
}

func TestEventServicePublishFansOutAndExplains(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	orders := mustSubscription(t, s, "acme", httpSubscription(t, "order.*"))
	invoices := mustSubscription(t, s, "acme", httpSubscription(t, "invoice.*"))
	big := httpSubscription(t, "order.*")
	big.Filter = "payload.amount > 100"
	bigOrders := mustSubscription(t, s, "acme", big)

	resp := publish(t, s, "acme", &hookwirev1.Event{Type: "order.created", Payload: []byte(`{"amount": 5}`)})
	if resp.GetDeliveryCount() != 1 || resp.GetDuplicate() {
		t.Fatalf("publish answered %v; want one delivery (to %s)", resp, orders.GetId())
	}

	got, err := s.events.GetEvent(asTenant(t.Context(), "acme", scopeReadOnly), &hookwirev1.GetEventRequest{Tenant: "acme", Id: resp.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetEvent().GetContentType() != "application/json" || len(got.GetDeliveries()) != 1 ||
		got.GetDeliveries()[0].GetSubscriptionId() != orders.GetId() {
		t.Fatalf("GetEvent = %v; want the JSON event and its delivery to %s", got, orders.GetId())
	}
	reasons := map[string]*hookwirev1.UnmatchedSubscription{}
	for _, u := range got.GetUnmatchedSubscriptions() {
		reasons[u.GetSubscriptionId()] = u
	}
	if u := reasons[invoices.GetId()]; u.GetReason() != hookwirev1.NoMatchReason_NO_MATCH_REASON_EVENT_TYPE || !strings.Contains(u.GetDetail(), `"invoice.*"`) {
		t.Errorf("%s did not match because %v; want its event types named", invoices.GetId(), u)
	}
	if u := reasons[bigOrders.GetId()]; u.GetReason() != hookwirev1.NoMatchReason_NO_MATCH_REASON_FILTER || !strings.Contains(u.GetDetail(), "payload.amount > 100") {
		t.Errorf("%s did not match because %v; want its filter named", bigOrders.GetId(), u)
	}
}

func TestEventServicePublishRefusals(t *testing.T) {
	s := newTestServices(t, func(c *Config) { c.MaxPayloadBytes = 64 })
	mustTenant(t, s, "acme")
	mustTenant(t, s, "globex")
	ctx := asTenant(t.Context(), "acme", scopePublish)
	pub := func(ev *hookwirev1.Event) error {
		_, err := s.events.PublishEvent(ctx, &hookwirev1.PublishEventRequest{Tenant: "acme", Event: ev})
		return err
	}
	wantCode(t, pub(&hookwirev1.Event{Type: "hookwire.fake", Payload: []byte(`{}`)}), codes.InvalidArgument, `the "hookwire." prefix is reserved`)
	wantCode(t, pub(&hookwirev1.Event{Type: "order.created"}), codes.InvalidArgument, "payload is empty")
	wantCode(t, pub(&hookwirev1.Event{Type: "order.created", Payload: []byte(`{"a":`)}), codes.InvalidArgument, "not valid JSON")
	wantCode(t, pub(&hookwirev1.Event{Type: "order.created", Payload: []byte(`"` + strings.Repeat("x", 100) + `"`)}),
		codes.InvalidArgument, "payload is 102 bytes; the limit is 64 bytes")
	if err := pub(&hookwirev1.Event{Type: "order.created", Payload: []byte("plain words"), ContentType: "text/plain"}); err != nil {
		t.Errorf("a text payload with its content type: %v", err)
	}

	_, err := s.events.PublishEvent(asTenant(t.Context(), "acme", scopeReadOnly), &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{Type: "a", Payload: []byte(`{}`)}})
	wantCode(t, err, codes.PermissionDenied, "read-only")
	_, err = s.events.PublishEvent(ctx, &hookwirev1.PublishEventRequest{Tenant: "globex", Event: &hookwirev1.Event{Type: "a", Payload: []byte(`{}`)}})
	wantCode(t, err, codes.NotFound, `tenant "globex" not found`)
	// A publish key reads nothing.
	_, err = s.events.ListEvents(ctx, &hookwirev1.ListEventsRequest{Tenant: "acme"})
	wantCode(t, err, codes.PermissionDenied, "may only publish")
}

func TestEventServiceIdempotencyAndRawPublish(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	mustSubscription(t, s, "acme", httpSubscription(t, "order.*"))
	// The REST gateway passes the Idempotency-Key and Content-Type
	// headers as metadata.
	withHeaders := func(kv ...string) context.Context {
		return asTenant(metadata.NewIncomingContext(t.Context(), metadata.Pairs(kv...)), "acme", scopePublish)
	}
	req := &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(`{}`)}}
	first, err := s.events.PublishEvent(withHeaders(MetadataIdempotencyKey, "order-42"), req)
	if err != nil {
		t.Fatal(err)
	}
	req.Event.IdempotencyKey = ""
	again, err := s.events.PublishEvent(withHeaders(MetadataIdempotencyKey, "order-42"), req)
	if err != nil {
		t.Fatal(err)
	}
	if !again.GetDuplicate() || again.GetId() != first.GetId() || again.GetDeliveryCount() != 1 {
		t.Errorf("second publish with the key answered %v; want a duplicate of %s with its one delivery", again, first.GetId())
	}
	req.Event.IdempotencyKey = ""
	_, err = s.events.PublishEvent(withHeaders(MetadataIdempotencyKey, strings.Repeat("k", maxIdempotencyKeyLen+1)), req)
	wantCode(t, err, codes.InvalidArgument, "Idempotency-Key header is 257 bytes")

	raw, err := s.events.PublishRawEvent(withHeaders(MetadataContentType, "text/csv"), &hookwirev1.PublishRawEventRequest{Tenant: "acme", Type: "order.exported"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.events.GetEvent(asAdmin(t.Context()), &hookwirev1.GetEventRequest{Tenant: "acme", Id: raw.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetEvent().GetContentType() != "text/csv" {
		t.Errorf("raw event stored with content type %q; want the header's", got.GetEvent().GetContentType())
	}
}

func TestEventServiceFilterFailuresAndOperationalEvents(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	in := httpSubscription(t, "order.*")
	in.Filter = "payload.amount / payload.count > 1"
	sub := mustSubscription(t, s, "acme", in)

	resp := publish(t, s, "acme", &hookwirev1.Event{Type: "order.created", Payload: []byte(`{"amount": 3, "count": 0}`)})
	if resp.GetDeliveryCount() != 0 || len(resp.GetFilterErrors()) != 1 || resp.GetFilterErrors()[0].GetSubscriptionId() != sub.GetId() {
		t.Fatalf("publish answered %v; want no delivery and the filter error of %s", resp, sub.GetId())
	}
	s.Emit("acme", "hookwire.test.ping", map[string]any{"n": 1})

	admin := asAdmin(t.Context())
	list, err := s.events.ListEvents(admin, &hookwirev1.ListEventsRequest{Tenant: "acme", EventType: "hookwire.*"})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range list.GetEvents() {
		types = append(types, ev.GetType())
	}
	if strings.Join(types, ",") != "hookwire.test.ping,"+EventFilterFailed {
		t.Errorf("operational events %v; want the ping and then, before it, the filter failure", types)
	}

	now := time.Now()
	_, err = s.events.ListEvents(admin, &hookwirev1.ListEventsRequest{Tenant: "acme", StartTime: timestamppb.New(now), EndTime: timestamppb.New(now)})
	wantCode(t, err, codes.InvalidArgument, "start_time must be before end_time")
	_, err = s.events.ListEvents(admin, &hookwirev1.ListEventsRequest{Tenant: "acme", PageToken: "nonsense"})
	wantCode(t, err, codes.InvalidArgument, "page_token", "next_page_token")
	_, err = s.events.GetEvent(admin, &hookwirev1.GetEventRequest{Tenant: "acme", Id: "evt_nonsense"})
	wantCode(t, err, codes.NotFound, `event "evt_nonsense" not found`)
}
