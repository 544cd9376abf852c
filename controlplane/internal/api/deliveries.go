package api

// DeliveryService: reading deliveries and their attempts (here), operator
// actions and long-running operations (operations.go), and tailing
// (tail.go).

import (
	"context"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// deliveryService implements DeliveryService.
type deliveryService struct {
	hookwirev1.UnimplementedDeliveryServiceServer
	*Services
	// ops are the long-running operations (RecoverDeliveries).
	ops *operations
}

func (s *deliveryService) ListDeliveries(ctx context.Context, req *hookwirev1.ListDeliveriesRequest) (*hookwirev1.ListDeliveriesResponse, error) {
	if err := s.authorizeListing(ctx, req.GetTenant()); err != nil {
		return nil, err
	}
	var f store.DeliveryFilter
	f.Status = req.GetStatus()
	f.EventType = req.GetEventType()
	if t := req.GetStartTime(); t != nil {
		f.Start = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		f.End = t.AsTime()
	}
	if v := req.GetEventId(); v != "" {
		id, err := ids.Parse(ids.Event, v)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "event_id: %v", err)
		}
		f.EventID = &id
	}
	if v := req.GetSubscriptionId(); v != "" {
		id, err := ids.Parse(ids.Subscription, v)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "subscription_id: %v", err)
		}
		f.SubID = &id
	}
	var before *ids.ID
	if v := req.GetPageToken(); v != "" {
		id, err := ids.Parse(ids.Delivery, v)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "page_token: %v", err)
		}
		before = &id
	}
	list, next, err := s.cfg.Store.ListDeliveries(req.GetTenant(), f, before, pageSize(req.GetPageSize()))
	if err != nil {
		return nil, storeError(err, "deliveries")
	}
	s.explainWaiting(list...)
	resp := &hookwirev1.ListDeliveriesResponse{Deliveries: list}
	if next != nil {
		resp.NextPageToken = ids.Format(ids.Delivery, *next)
	}
	return resp, nil
}

func (s *deliveryService) GetDelivery(ctx context.Context, req *hookwirev1.GetDeliveryRequest) (*hookwirev1.Delivery, error) {
	if err := authorize(ctx, req.GetTenant(), accessRead); err != nil {
		return nil, err
	}
	d, err := s.cfg.Store.GetDelivery(req.GetTenant(), req.GetId())
	if err != nil {
		return nil, storeError(err, "delivery "+quote(req.GetId()))
	}
	s.explainWaiting(d)
	return d, nil
}

func (s *deliveryService) ListAttempts(ctx context.Context, req *hookwirev1.ListAttemptsRequest) (*hookwirev1.ListAttemptsResponse, error) {
	if err := authorize(ctx, req.GetTenant(), accessRead); err != nil {
		return nil, err
	}
	list, err := s.cfg.Store.ListAttempts(req.GetTenant(), req.GetDeliveryId())
	if err != nil {
		return nil, storeError(err, "delivery "+quote(req.GetDeliveryId()))
	}
	return &hookwirev1.ListAttemptsResponse{Attempts: list}, nil
}

// explainWaiting fills waiting_reason of pending deliveries that have none
// stored, from what the dispatcher knows now (paused, open circuit, no
// agent hosting the transport or matching the selector).
func (s *deliveryService) explainWaiting(list ...*hookwirev1.Delivery) {
	for _, d := range list {
		if d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING || d.GetWaitingReason() != "" {
			continue
		}
		id, err := ids.Parse(ids.Subscription, d.GetSubscriptionId())
		if err != nil {
			continue
		}
		if disp := s.disp.Load(); disp != nil {
			d.WaitingReason = disp.WaitingReason(s.cfg.Catalog.Get(id))
		}
	}
}
