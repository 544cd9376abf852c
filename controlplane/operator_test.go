package controlplane_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestOperatorRetryAndResend(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	other := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"invoice.*"}})
	pub := h.publish("order.created", `{"n":1}`)
	a := h.next()
	h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_FAILED, 0))
	dsc := hookwirev1.NewDeliveryServiceClient(h.conn)

	// Retry now instead of in 5s.
	if _, err := dsc.RetryDelivery(h.ctx(), &hookwirev1.RetryDeliveryRequest{Tenant: "acme", Id: a.GetDeliveryId()}); err != nil {
		t.Fatal(err)
	}
	again := h.next()
	if again.GetDeliveryId() != a.GetDeliveryId() || again.GetAttempt() != 2 {
		t.Fatalf("retried %v", again)
	}
	h.agent.report(t, outcome(again, transportv1.Outcome_OUTCOME_SUCCESS, 0))
	// A succeeded delivery needs force.
	if _, err := dsc.RetryDelivery(h.ctx(), &hookwirev1.RetryDeliveryRequest{Tenant: "acme", Id: a.GetDeliveryId()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("retry of a succeeded delivery: %v", err)
	}
	if _, err := dsc.CancelDelivery(h.ctx(), &hookwirev1.CancelDeliveryRequest{Tenant: "acme", Id: a.GetDeliveryId()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("cancel of a succeeded delivery: %v", err)
	}

	// Re-send the event to a subscription whose types it does not match.
	d, err := dsc.ResendEvent(h.ctx(), &hookwirev1.ResendEventRequest{Tenant: "acme", EventId: pub.GetId(), SubscriptionId: other.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	re := h.next()
	if re.GetDeliveryId() != d.GetId() || string(re.GetRequest().GetBody()) != `{"n":1}` || d.GetSubscriptionId() != other.GetId() {
		t.Fatalf("re-sent %v as %v", d, re)
	}
	// Another tenant's event looks missing.
	if _, err := dsc.ResendEvent(h.ctx(), &hookwirev1.ResendEventRequest{Tenant: "acme", EventId: "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV", SubscriptionId: sub.GetId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("resend of a missing event: %v", err)
	}
}

func TestRecoveredAfterAFailureStreak(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"hookwire.subscription.recovered"}})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	for range 6 {
		h.publish("order.created", `{}`)
	}
	// Five failures in a row, then a success.
	for _, a := range h.agent.assignments(t, 5) {
		h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_FAILED, 0))
	}
	s := waitSub(t, h, sub.GetId(), func(s *hookwirev1.Subscription) bool { return s.GetFailingSince() != nil })
	if time.Since(s.GetFailingSince().AsTime()) > time.Minute {
		t.Fatalf("failing_since %v", s.GetFailingSince())
	}
	h.agent.report(t, outcome(h.next(), transportv1.Outcome_OUTCOME_SUCCESS, 0))
	ev := h.next()
	if ev.GetRequest().GetEventType() != "hookwire.subscription.recovered" || !strings.Contains(string(ev.GetRequest().GetBody()), `"failed_attempts":5`) {
		t.Fatalf("want subscription.recovered, got %s %s", ev.GetRequest().GetEventType(), ev.GetRequest().GetBody())
	}
	waitSub(t, h, sub.GetId(), func(s *hookwirev1.Subscription) bool { return s.GetFailingSince() == nil })
}
