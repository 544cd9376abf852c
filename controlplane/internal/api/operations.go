package api

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// operations tracks long-running operations in memory. They do not survive
// a restart; a recover interrupted by one can simply be started again
// (re-queuing a delivery twice is harmless).
type operations struct {
	mu      sync.Mutex
	ops     map[string]*operation
	changed *sync.Cond
}

type operation struct {
	op *hookwirev1.Operation
}

func newOperations() *operations {
	o := &operations{ops: map[string]*operation{}}
	o.changed = sync.NewCond(&o.mu)
	return o
}

func (o *operations) start(tenant, description string, now time.Time) *hookwirev1.Operation {
	op := &hookwirev1.Operation{
		Id: "op_" + newOpID(), Tenant: tenant, Description: description,
		CreateTime: timestamppb.New(now), UpdateTime: timestamppb.New(now),
	}
	o.mu.Lock()
	o.ops[op.Id] = &operation{op: op}
	o.mu.Unlock()
	return proto.Clone(op).(*hookwirev1.Operation)
}

func (o *operations) update(id string, now time.Time, change func(*hookwirev1.Operation)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if x := o.ops[id]; x != nil {
		change(x.op)
		x.op.UpdateTime = timestamppb.New(now)
		o.changed.Broadcast()
	}
}

func (o *operations) get(tenant, id string) (*hookwirev1.Operation, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	x := o.ops[id]
	if x == nil || x.op.GetTenant() != tenant {
		return nil, false
	}
	return proto.Clone(x.op).(*hookwirev1.Operation), true
}

// wait blocks until the operation's update time passes since, it is done,
// or ctx ends.
func (o *operations) wait(ctx context.Context, id string, since time.Time) {
	stop := context.AfterFunc(ctx, func() {
		o.mu.Lock()
		o.changed.Broadcast()
		o.mu.Unlock()
	})
	defer stop()
	o.mu.Lock()
	defer o.mu.Unlock()
	for ctx.Err() == nil {
		x := o.ops[id]
		if x == nil || x.op.GetDone() || x.op.GetUpdateTime().AsTime().After(since) {
			return
		}
		o.changed.Wait()
	}
}

func newOpID() string { return ids.New(time.Now()).String() }

// --- operator actions ---

func (s *deliveryService) requeue(del *hookwirev1.Delivery, now time.Time) {
	del.Status = hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING
	del.ScheduleBase = del.GetAttemptCount()
	del.NextAttemptTime = timestamppb.New(now)
	del.UpdateTime = timestamppb.New(now)
	del.WaitingReason = ""
}

// changeTries bounds how often changeOne decides again when the delivery
// changed between its read and its write.
const changeTries = 8

// changeOne applies apply to one delivery durably: it reads the delivery,
// lets apply decide on a copy, and stores the result only if the delivery
// has not changed meanwhile (status, attempt count and update time as
// read); otherwise it reads and decides again. The change is recorded in
// the audit log as action by the caller in ctx, in the same write.
func (s *deliveryService) changeOne(ctx context.Context, tenant, id, action string, apply func(*hookwirev1.Delivery) (bool, error)) (*hookwirev1.Delivery, error) {
	for range changeTries {
		del, err := s.cfg.Store.GetDelivery(tenant, id)
		if err != nil {
			return nil, storeError(err, "delivery "+quote(id))
		}
		after := clone(del)
		ok, err := apply(after)
		if err != nil {
			return nil, err
		}
		if !ok {
			return del, nil
		}
		did, _ := ids.Parse(ids.Delivery, id)
		count := del.GetAttemptCount()
		ch := &store.DeliveryChange{DeliveryID: did, Ordered: s.subOrdered(del.GetSubscriptionId()),
			IfStatus: []hookwirev1.DeliveryStatus{del.GetStatus()}, IfAttemptCount: &count, IfUpdateTime: del.GetUpdateTime(),
			Fields: store.ChangedFields(del, after), Set: after}
		e := &auditEntry{tenant: tenant, action: action, resource: deliveryResource(tenant, id), before: del, after: after}
		if ch.Audit, err = s.auditEvent(ctx, e); err != nil {
			return nil, err
		}
		if _, err := s.cfg.Store.ChangeDeliveries(ctx, []*store.DeliveryChange{ch}); err != nil {
			return nil, storeError(err, "delivery "+quote(id))
		}
		if !ch.Applied {
			continue // changed since it was read: decide again
		}
		s.noteChanged([]*store.DeliveryChange{ch})
		if sub, err := ids.Parse(ids.Subscription, del.GetSubscriptionId()); err == nil {
			s.poke(sub)
		}
		return ch.Result, nil
	}
	return nil, status.Errorf(codes.Aborted, "delivery %s kept changing while it was being updated; try again", quote(id))
}

func (s *deliveryService) subOrdered(id string) bool {
	sid, err := ids.Parse(ids.Subscription, id)
	if err != nil {
		return false
	}
	sub := s.cfg.Catalog.Get(sid)
	return sub != nil && sub.Ordered
}

// tenantSub is the tenant's subscription id from the catalog; NotFound if
// it is malformed, unknown or another tenant's.
func (s *deliveryService) tenantSub(tenant, id string) (*catalog.Sub, error) {
	if sid, err := ids.Parse(ids.Subscription, id); err == nil {
		if sub := s.cfg.Catalog.Get(sid); sub != nil && sub.Tenant == tenant {
			return sub, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "subscription %s not found", quote(id))
}

func (s *deliveryService) RetryDelivery(ctx context.Context, req *hookwirev1.RetryDeliveryRequest) (*hookwirev1.Delivery, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	return s.changeOne(ctx, req.GetTenant(), req.GetId(), auditDeliveryRetry, func(d *hookwirev1.Delivery) (bool, error) {
		switch d.GetStatus() {
		case hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED:
			if !req.GetForce() {
				return false, status.Error(codes.FailedPrecondition, "the delivery already succeeded; pass force to send it again")
			}
		case hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING:
			d.NextAttemptTime = timestamppb.New(now)
			d.UpdateTime = timestamppb.New(now)
			return true, nil
		}
		s.requeue(d, now)
		return true, nil
	})
}

func (s *deliveryService) CancelDelivery(ctx context.Context, req *hookwirev1.CancelDeliveryRequest) (*hookwirev1.Delivery, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	return s.changeOne(ctx, req.GetTenant(), req.GetId(), auditDeliveryCancel, func(d *hookwirev1.Delivery) (bool, error) {
		if d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
			return false, status.Errorf(codes.FailedPrecondition, "only pending deliveries can be cancelled; this one is %s", d.GetStatus())
		}
		d.Status = hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED
		d.NextAttemptTime = nil
		d.LastError = "cancelled by an operator"
		d.UpdateTime = timestamppb.New(now)
		return true, nil
	})
}

func (s *deliveryService) ResendEvent(ctx context.Context, req *hookwirev1.ResendEventRequest) (*hookwirev1.Delivery, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	eid, err := ids.Parse(ids.Event, req.GetEventId())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "event %s not found", quote(req.GetEventId()))
	}
	sub, err := s.tenantSub(req.GetTenant(), req.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	sid := sub.ID
	ev, err := s.cfg.Store.GetEvent(req.GetTenant(), eid)
	if err != nil {
		return nil, storeError(err, "event "+quote(req.GetEventId()))
	}
	now := s.cfg.Now()
	nowPB := timestamppb.New(now)
	did := ids.New(now)
	nd := &store.NewDelivery{ID: did, SubID: sid, Ordered: sub.Ordered, Delivery: &hookwirev1.Delivery{
		Id: ids.Format(ids.Delivery, did), Tenant: req.GetTenant(), EventId: ev.GetId(), SubscriptionId: sub.IDText,
		EventType: ev.GetType(), Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING,
		NextAttemptTime: nowPB, CreateTime: nowPB, UpdateTime: nowPB, OrderingKey: orderingKeyFor(sub, ev),
	}}
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditDeliveryResend, resource: deliveryResource(req.GetTenant(), nd.Delivery.GetId()), after: nd.Delivery})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.AddDeliveries(ctx, req.GetTenant(), eid, []*store.NewDelivery{nd}, audit); err != nil {
		return nil, storeError(err, "event "+quote(req.GetEventId()))
	}
	s.noteCreated(nd.Delivery)
	s.poke(sid)
	s.cfg.Metrics.DeliveriesCreated(1)
	return nd.Delivery, nil
}

func (s *deliveryService) RecoverDeliveries(ctx context.Context, req *hookwirev1.RecoverDeliveriesRequest) (*hookwirev1.Operation, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	sub, err := s.tenantSub(req.GetTenant(), req.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	sid := sub.ID
	now := s.cfg.Now()
	from, to := now.Add(-30*24*time.Hour), now
	if t := req.GetStartTime(); t != nil {
		from = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		to = t.AsTime()
	}
	if !from.Before(to) {
		return nil, status.Error(codes.InvalidArgument, "start_time must be before end_time")
	}
	all := req.GetScope() == hookwirev1.RecoverScope_RECOVER_SCOPE_ALL
	scope := "failed"
	if all {
		scope = "all"
	}
	count, err := s.cfg.Store.CountSubDeliveries(sid, from, to)
	if err != nil {
		return nil, storeError(err, "deliveries of subscription "+quote(sub.IDText))
	}
	total := int64(count)
	op := s.ops.start(req.GetTenant(), fmt.Sprintf("recover %s deliveries of %s created %s to %s", scope, sub.IDText, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339)), now)
	s.ops.update(op.Id, now, func(o *hookwirev1.Operation) { o.Total = total })
	op.Total = total
	s.auditAfter(ctx, &auditEntry{tenant: req.GetTenant(), action: auditDeliveriesRecover, resource: subscriptionResource(req.GetTenant(), sub.IDText), after: op,
		details: map[string]any{"scope": scope, "start_time": from.UTC().Format(time.RFC3339Nano), "end_time": to.UTC().Format(time.RFC3339Nano)}})
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.runRecover(op.Id, sid, sub.Ordered, from, to, all)
	}()
	return op, nil
}

func (s *deliveryService) runRecover(opID string, sid ids.ID, ordered bool, from, to time.Time, all bool) {
	ctx := s.bgCtx
	var after *ids.ID
	for ctx.Err() == nil {
		list, err := s.cfg.Store.SubDeliveries(sid, from, to, after, 500)
		if err != nil {
			s.ops.update(opID, s.cfg.Now(), func(o *hookwirev1.Operation) { o.Done, o.Error = true, err.Error() })
			return
		}
		if len(list) == 0 {
			break
		}
		now := s.cfg.Now()
		dels, err := s.cfg.Store.GetDeliveries(list)
		if err != nil {
			s.ops.update(opID, s.cfg.Now(), func(o *hookwirev1.Operation) { o.Done, o.Error = true, err.Error() })
			return
		}
		var changes []*store.DeliveryChange
		for i, d := range dels {
			switch d.GetStatus() {
			case hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD, hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED:
			case hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED:
				if !all {
					continue
				}
			default:
				continue // pending, or gone
			}
			after := clone(d)
			s.requeue(after, now)
			count := d.GetAttemptCount()
			// Only if it is still as read: finished with that attempt count.
			changes = append(changes, &store.DeliveryChange{DeliveryID: list[i], Ordered: ordered,
				IfStatus: []hookwirev1.DeliveryStatus{d.GetStatus()}, IfAttemptCount: &count,
				Fields: store.ChangedFields(d, after), Set: after})
		}
		if _, err := s.cfg.Store.ChangeDeliveries(ctx, changes); err != nil {
			s.ops.update(opID, s.cfg.Now(), func(o *hookwirev1.Operation) { o.Done, o.Error = true, err.Error() })
			return
		}
		s.noteChanged(changes)
		requeued := 0
		for _, ch := range changes {
			if ch.Applied {
				requeued++
			}
		}
		s.poke(sid)
		s.ops.update(opID, now, func(o *hookwirev1.Operation) {
			o.Processed += int64(len(list))
			o.Requeued += int64(requeued)
		})
		last := list[len(list)-1]
		after = &last
	}
	s.ops.update(opID, s.cfg.Now(), func(o *hookwirev1.Operation) { o.Done = true })
}

func (s *deliveryService) GetOperation(ctx context.Context, req *hookwirev1.GetOperationRequest) (*hookwirev1.Operation, error) {
	if err := authorize(ctx, req.GetTenant(), accessRead); err != nil {
		return nil, err
	}
	op, ok := s.ops.get(req.GetTenant(), req.GetId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "operation %s not found (operations are kept in memory until the server restarts)", quote(req.GetId()))
	}
	return op, nil
}

func (s *deliveryService) WatchOperation(req *hookwirev1.WatchOperationRequest, stream hookwirev1.DeliveryService_WatchOperationServer) error {
	ctx := stream.Context()
	if err := authorize(ctx, req.GetTenant(), accessRead); err != nil {
		return err
	}
	var since time.Time
	for {
		op, ok := s.ops.get(req.GetTenant(), req.GetId())
		if !ok {
			return status.Errorf(codes.NotFound, "operation %s not found", quote(req.GetId()))
		}
		if err := stream.Send(op); err != nil {
			return err
		}
		if op.GetDone() {
			return nil
		}
		since = op.GetUpdateTime().AsTime()
		s.ops.wait(ctx, req.GetId(), since)
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}
