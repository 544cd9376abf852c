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

// TestDeletedTenantLeavesNothingForItsSuccessor: a tenant created again
// with the id of a deleted one sees none of the old tenant's events,
// deliveries, idempotency keys or audit events, and the old tenant's API
// keys do not open it; the deletion itself stays in the global audit log.
func TestDeletedTenantLeavesNothingForItsSuccessor(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	tenants := hookwirev1.NewTenantServiceClient(h.conn)
	subs := hookwirev1.NewSubscriptionServiceClient(h.conn)
	dels := hookwirev1.NewDeliveryServiceClient(h.conn)
	audit := hookwirev1.NewAuditServiceClient(h.conn)

	// The old tenant "acme": a subscription, a delivered event (with an
	// attempt), one still pending, an idempotency key and an API key.
	key, err := hookwirev1.NewApiKeyServiceClient(h.conn).CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: "acme", Name: "old"})
	if err != nil {
		t.Fatal(err)
	}
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	first := h.publish("order.created", `{"n":1}`, func(e *hookwirev1.Event) { e.IdempotencyKey = "order-1" })
	h.agent.report(t, outcome(h.next(), transportv1.Outcome_OUTCOME_SUCCESS, 0))
	h.publish("order.created", `{"n":2}`)
	if list, err := dels.ListDeliveries(h.ctx(), &hookwirev1.ListDeliveriesRequest{Tenant: "acme"}); err != nil || len(list.GetDeliveries()) != 2 {
		t.Fatalf("deliveries of the old tenant: %v, %v; want 2", list, err)
	}
	if got, err := audit.ListAuditEvents(h.ctx(), &hookwirev1.ListAuditEventsRequest{Tenant: "acme"}); err != nil || len(got.GetAuditEvents()) == 0 {
		t.Fatalf("audit log of the old tenant: %v, %v; want its changes", got, err)
	}

	if _, err := tenants.DeleteTenant(h.ctx(), &hookwirev1.DeleteTenantRequest{Id: "acme"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("delete with a subscription: %v, want FailedPrecondition", err)
	}
	if _, err := subs.DeleteSubscription(h.ctx(), &hookwirev1.DeleteSubscriptionRequest{Tenant: "acme", Id: sub.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := tenants.DeleteTenant(h.ctx(), &hookwirev1.DeleteTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tenants.GetTenant(h.ctx(), &hookwirev1.GetTenantRequest{Id: "acme"}); status.Code(err) != codes.NotFound {
		t.Fatalf("get after delete: %v, want NotFound", err)
	}

	// Create it again once the purge is done: until then the create is
	// refused with a message that says why and what to do.
	deadline := time.Now().Add(15 * time.Second)
	refusals := 0
	for {
		_, err := tenants.CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "acme"})
		if err == nil {
			break
		}
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "deletion is still in progress") || !strings.Contains(err.Error(), "retry") {
			t.Fatalf("create during the purge: %v, want FailedPrecondition saying the deletion is in progress", err)
		}
		refusals++
		if time.Now().After(deadline) {
			t.Fatalf("the deleted tenant's purge did not finish within 15s (%d refusals)", refusals)
		}
		time.Sleep(10 * time.Millisecond) // poll interval of the condition above
	}

	if list, err := dels.ListDeliveries(h.ctx(), &hookwirev1.ListDeliveriesRequest{Tenant: "acme"}); err != nil || len(list.GetDeliveries()) != 0 {
		t.Fatalf("deliveries of the new tenant: %v, %v; want none", list.GetDeliveries(), err)
	}
	if got, err := audit.ListAuditEvents(h.ctx(), &hookwirev1.ListAuditEventsRequest{Tenant: "acme"}); err != nil || len(got.GetAuditEvents()) != 0 {
		t.Fatalf("audit log of the new tenant: %v, %v; want empty", got.GetAuditEvents(), err)
	}
	// The old events are gone: resending one answers NotFound, and the
	// old idempotency key is free.
	fresh := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	if _, err := dels.ResendEvent(h.ctx(), &hookwirev1.ResendEventRequest{Tenant: "acme", EventId: first.GetId(), SubscriptionId: fresh.GetId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("resend an event of the deleted tenant: %v, want NotFound", err)
	}
	again := h.publish("order.created", `{"n":1}`, func(e *hookwirev1.Event) { e.IdempotencyKey = "order-1" })
	if again.GetDuplicate() || again.GetId() == first.GetId() {
		t.Fatalf("idempotency key of the deleted tenant still answers: %v", again)
	}
	// The old tenant's key opens nothing.
	if _, err := tenants.GetTenant(authedCtx(t, key.GetKey()), &hookwirev1.GetTenantRequest{Id: "acme"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("old tenant key on the new tenant: %v, want Unauthenticated", err)
	}
	// The deletion is recorded in the global log.
	global, err := audit.ListAuditEvents(h.ctx(), &hookwirev1.ListAuditEventsRequest{Tenant: "-", Action: "tenant.delete"})
	if err != nil || len(global.GetAuditEvents()) != 1 || global.GetAuditEvents()[0].GetResource() != "tenants/acme" {
		t.Fatalf("global audit of the deletion: %v, %v", global.GetAuditEvents(), err)
	}
}
