package api

import (
	"context"
	"errors"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/dispatch"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// DefaultTailHeartbeat is how long a tail stream stays silent before the
// server sends a HEARTBEAT item, unless the request sets
// heartbeat_interval. Below the idle timeouts of common proxies and load
// balancers (often 30s or 60s).
const DefaultTailHeartbeat = 15 * time.Second

// TailDeliveries streams what happens to a tenant's deliveries from now on.
// The response headers are sent once the watch is in place, so a client
// that has them misses nothing published afterwards.
func (s *deliveryService) TailDeliveries(req *hookwirev1.TailDeliveriesRequest, stream hookwirev1.DeliveryService_TailDeliveriesServer) error {
	ctx := stream.Context()
	if err := authorize(ctx, req.GetTenant(), accessRead); err != nil {
		return err
	}
	if _, err := s.cfg.Store.GetTenant(req.GetTenant()); err != nil {
		return storeError(err, "tenant "+quote(req.GetTenant()))
	}
	f := dispatch.WatchFilter{
		Tenant: req.GetTenant(), Result: req.GetResult(), Outcomes: req.GetOutcomes(), AttemptsOnly: req.GetAttemptsOnly(),
	}
	if v := req.GetSubscriptionId(); v != "" {
		sid, err := ids.Parse(ids.Subscription, v)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "subscription_id: %v", err)
		}
		if sub := s.cfg.Catalog.Get(sid); sub == nil || sub.Tenant != req.GetTenant() {
			return status.Errorf(codes.NotFound, "subscription %s not found in tenant %s", quote(v), quote(req.GetTenant()))
		}
		f.Subscription = v
	}
	if v := req.GetEventType(); v != "" {
		p := catalog.CompilePattern(v)
		f.EventType = &p
	}
	heartbeat := DefaultTailHeartbeat
	if d := req.GetHeartbeatInterval().AsDuration(); d > 0 {
		heartbeat = d // 1s to 5m, checked by the proto's rule
	}
	d, err := s.leading()
	if err != nil {
		return err
	}
	w := d.Watch(f, 0)
	defer w.Close()
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		items, err := w.Next(ctx, heartbeat)
		switch {
		case errors.Is(err, dispatch.ErrWatchClosed):
			return status.Error(codes.Unavailable, "the control plane is shutting down; reconnect to go on tailing")
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return status.FromContextError(err).Err()
		case err != nil:
			return err
		}
		for _, it := range items {
			if err := stream.Send(it); err != nil {
				return err
			}
		}
	}
}
