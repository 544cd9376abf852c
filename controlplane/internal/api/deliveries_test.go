package api

import (
	"context"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	deliveryPending   = hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING
	deliveryCancelled = hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED
)

// oneDelivery publishes an event to a new subscription of tenant and
// returns the subscription and the event's one delivery.
func oneDelivery(t *testing.T, s *Services, tenant string) (*hookwirev1.Subscription, *hookwirev1.Delivery) {
	t.Helper()
	sub := mustSubscription(t, s, tenant, httpSubscription(t, "order.*"))
	ev := publish(t, s, tenant, &hookwirev1.Event{Type: "order.created", Payload: []byte(`{}`)})
	list, err := s.deliveries.ListDeliveries(asAdmin(t.Context()), &hookwirev1.ListDeliveriesRequest{Tenant: tenant, EventId: ev.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetDeliveries()) != 1 {
		t.Fatalf("event %s has deliveries %v; want one", ev.GetId(), list.GetDeliveries())
	}
	return sub, list.GetDeliveries()[0]
}

func TestDeliveryServiceReads(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	mustTenant(t, s, "globex")
	sub, d := oneDelivery(t, s, "acme")
	if d.GetStatus() != deliveryPending || d.GetSubscriptionId() != sub.GetId() || d.GetEventType() != "order.created" {
		t.Fatalf("delivery %v", d)
	}
	ctx := asTenant(t.Context(), "acme", scopeReadOnly)
	got, err := s.deliveries.GetDelivery(ctx, &hookwirev1.GetDeliveryRequest{Tenant: "acme", Id: d.GetId()})
	if err != nil || got.GetId() != d.GetId() {
		t.Fatalf("GetDelivery = %v, %v", got, err)
	}
	attempts, err := s.deliveries.ListAttempts(ctx, &hookwirev1.ListAttemptsRequest{Tenant: "acme", DeliveryId: d.GetId()})
	if err != nil || len(attempts.GetAttempts()) != 0 {
		t.Errorf("ListAttempts of an undelivered delivery = %v, %v", attempts, err)
	}
	bySub, err := s.deliveries.ListDeliveries(ctx, &hookwirev1.ListDeliveriesRequest{Tenant: "acme", SubscriptionId: sub.GetId(), Status: deliveryCancelled})
	if err != nil || len(bySub.GetDeliveries()) != 0 {
		t.Errorf("cancelled deliveries of %s = %v, %v; want none", sub.GetId(), bySub, err)
	}

	_, err = s.deliveries.GetDelivery(asTenant(t.Context(), "globex", scopeTenantAdmin), &hookwirev1.GetDeliveryRequest{Tenant: "globex", Id: d.GetId()})
	wantCode(t, err, codes.NotFound, "not found")
	_, err = s.deliveries.ListDeliveries(ctx, &hookwirev1.ListDeliveriesRequest{Tenant: "acme", EventId: "nonsense"})
	wantCode(t, err, codes.InvalidArgument, "event_id")
	_, err = s.deliveries.ListDeliveries(ctx, &hookwirev1.ListDeliveriesRequest{Tenant: "acme", PageToken: "nonsense"})
	wantCode(t, err, codes.InvalidArgument, "page_token")
	_, err = s.deliveries.ListDeliveries(asAdmin(t.Context()), &hookwirev1.ListDeliveriesRequest{Tenant: "nope"})
	wantCode(t, err, codes.NotFound, `tenant "nope" not found`)
}

func TestDeliveryServiceOperatorActionsAreAudited(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	sub, d := oneDelivery(t, s, "acme")
	ctx := asTenant(t.Context(), "acme", scopeTenantAdmin)

	_, err := s.deliveries.CancelDelivery(asTenant(t.Context(), "acme", scopeReadOnly), &hookwirev1.CancelDeliveryRequest{Tenant: "acme", Id: d.GetId()})
	wantCode(t, err, codes.PermissionDenied, "read-only")

	cancelled, err := s.deliveries.CancelDelivery(ctx, &hookwirev1.CancelDeliveryRequest{Tenant: "acme", Id: d.GetId()})
	if err != nil || cancelled.GetStatus() != deliveryCancelled || cancelled.GetLastError() != "cancelled by an operator" {
		t.Fatalf("cancel: %v, %v", cancelled, err)
	}
	ev := lastAudit(t, s, auditDeliveryCancel)
	if ev.GetResource() != "tenants/acme/deliveries/"+d.GetId() ||
		snapshotField(ev.GetBefore(), "status").GetStringValue() != deliveryPending.String() ||
		snapshotField(ev.GetAfter(), "status").GetStringValue() != deliveryCancelled.String() {
		t.Errorf("cancel audit record %v", ev)
	}
	_, err = s.deliveries.CancelDelivery(ctx, &hookwirev1.CancelDeliveryRequest{Tenant: "acme", Id: d.GetId()})
	wantCode(t, err, codes.FailedPrecondition, "only pending deliveries can be cancelled; this one is DELIVERY_STATUS_CANCELLED")

	retried, err := s.deliveries.RetryDelivery(ctx, &hookwirev1.RetryDeliveryRequest{Tenant: "acme", Id: d.GetId()})
	if err != nil || retried.GetStatus() != deliveryPending {
		t.Fatalf("retry: %v, %v", retried, err)
	}
	lastAudit(t, s, auditDeliveryRetry)

	resent, err := s.deliveries.ResendEvent(ctx, &hookwirev1.ResendEventRequest{Tenant: "acme", EventId: d.GetEventId(), SubscriptionId: sub.GetId()})
	if err != nil || resent.GetId() == d.GetId() || resent.GetStatus() != deliveryPending {
		t.Fatalf("resend: %v, %v; want a new pending delivery", resent, err)
	}
	if ev := lastAudit(t, s, auditDeliveryResend); ev.GetResource() != "tenants/acme/deliveries/"+resent.GetId() {
		t.Errorf("resend audit record on %s", ev.GetResource())
	}
	_, err = s.deliveries.ResendEvent(ctx, &hookwirev1.ResendEventRequest{Tenant: "acme", EventId: d.GetEventId(), SubscriptionId: "sub_nonsense"})
	wantCode(t, err, codes.NotFound, `subscription "sub_nonsense" not found`)
	_, err = s.deliveries.RetryDelivery(ctx, &hookwirev1.RetryDeliveryRequest{Tenant: "acme", Id: "dlv_nonsense"})
	wantCode(t, err, codes.NotFound, `delivery "dlv_nonsense" not found`)
}

func TestDeliveryServiceRecoverRunsAsAnOperation(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	mustTenant(t, s, "globex")
	sub, d := oneDelivery(t, s, "acme")
	ctx := asTenant(t.Context(), "acme", scopeTenantAdmin)
	if _, err := s.deliveries.CancelDelivery(ctx, &hookwirev1.CancelDeliveryRequest{Tenant: "acme", Id: d.GetId()}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	req := &hookwirev1.RecoverDeliveriesRequest{Tenant: "acme", SubscriptionId: sub.GetId(),
		StartTime: timestamppb.New(now.Add(-time.Hour)), EndTime: timestamppb.New(now.Add(time.Hour))}
	op, err := s.deliveries.RecoverDeliveries(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if op.GetTotal() != 1 {
		t.Errorf("operation %v; want a total of 1 delivery", op)
	}
	if ev := lastAudit(t, s, auditDeliveriesRecover); ev.GetResource() != "tenants/acme/subscriptions/"+sub.GetId() || ev.GetDetails().GetFields()["scope"].GetStringValue() != "failed" {
		t.Errorf("recover audit record %v", ev)
	}

	// WatchOperation ends when the operation is done.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	watch := &testStream[*hookwirev1.Operation]{ctx: wctx}
	if err := s.deliveries.WatchOperation(&hookwirev1.WatchOperationRequest{Tenant: "acme", Id: op.GetId()}, watch); err != nil {
		t.Fatal(err)
	}
	last := watch.sent[len(watch.sent)-1]
	if !last.GetDone() || last.GetError() != "" || last.GetRequeued() != 1 || last.GetProcessed() != 1 {
		t.Fatalf("operation ended as %v; want done with the one delivery requeued", last)
	}
	got, err := s.deliveries.GetDelivery(ctx, &hookwirev1.GetDeliveryRequest{Tenant: "acme", Id: d.GetId()})
	if err != nil || got.GetStatus() != deliveryPending {
		t.Errorf("recovered delivery: %v, %v", got, err)
	}

	// Operations are their tenant's only.
	_, err = s.deliveries.GetOperation(asTenant(t.Context(), "globex", scopeTenantAdmin), &hookwirev1.GetOperationRequest{Tenant: "globex", Id: op.GetId()})
	wantCode(t, err, codes.NotFound, "operation", "not found")
	req.StartTime, req.EndTime = req.GetEndTime(), req.GetStartTime()
	_, err = s.deliveries.RecoverDeliveries(ctx, req)
	wantCode(t, err, codes.InvalidArgument, "start_time must be before end_time")
}

func TestDeliveryServiceTailNeedsTheLeader(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	mustTenant(t, s, "globex")
	other := mustSubscription(t, s, "globex", httpSubscription(t, "order.*"))
	tail := func(req *hookwirev1.TailDeliveriesRequest) error {
		return s.deliveries.TailDeliveries(req, &testStream[*hookwirev1.TailDeliveriesResponse]{ctx: asAdmin(t.Context())})
	}
	wantCode(t, tail(&hookwirev1.TailDeliveriesRequest{Tenant: "nope"}), codes.NotFound, `tenant "nope" not found`)
	wantCode(t, tail(&hookwirev1.TailDeliveriesRequest{Tenant: "acme", SubscriptionId: "nonsense"}), codes.InvalidArgument, "subscription_id")
	wantCode(t, tail(&hookwirev1.TailDeliveriesRequest{Tenant: "acme", SubscriptionId: other.GetId()}), codes.NotFound, "not found in tenant \"acme\"")
	// Requests that are fine wait for a leader: this server has no
	// dispatcher.
	wantCode(t, tail(&hookwirev1.TailDeliveriesRequest{Tenant: "acme"}), codes.Unavailable, "not the cluster leader")
}
