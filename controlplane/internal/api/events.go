package api

// Reading events back: GetEvent (an event, its deliveries, and why the
// tenant's other subscriptions got none) and ListEvents.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const (
	// eventDeliveriesShown bounds the deliveries GetEvent lists.
	eventDeliveriesShown = 1000
	// unmatchedShown bounds the unmatched subscriptions GetEvent explains.
	unmatchedShown = 1000
	// eventScan bounds how many stored events (of any tenant) one
	// ListEvents call examines; see store.ListEvents.
	eventScan = 10000
	// eventPageBytes ends a ListEvents page with payloads (view FULL) once
	// they add up to this, so that a page stays under the 4 MiB a gRPC
	// client accepts by default.
	eventPageBytes = 3 << 20
)

func (s *Services) GetEvent(ctx context.Context, req *hookwirev1.GetEventRequest) (*hookwirev1.GetEventResponse, error) {
	// Like a list, an unknown tenant is named as such (and a deleted
	// tenant's events, still being purged, are not shown).
	if err := s.authorizeListing(ctx, req.GetTenant()); err != nil {
		return nil, err
	}
	tenant := req.GetTenant()
	what := "event " + quote(req.GetId())
	eid, err := ids.Parse(ids.Event, req.GetId())
	if err != nil {
		return nil, storeError(store.ErrNotFound, what)
	}
	ev, err := s.cfg.Store.GetEvent(tenant, eid)
	if err != nil {
		return nil, storeError(err, what)
	}
	resp := &hookwirev1.GetEventResponse{Event: ev}
	traces, err := s.cfg.Store.EventTraces([]ids.ID{eid})
	if err != nil {
		return nil, storeError(err, what)
	}
	resp.Traceparent, resp.Tracestate = traces[0].GetTraceparent(), traces[0].GetTracestate()
	deliveries, err := s.cfg.Store.EventDeliveries(tenant, eid)
	if err != nil {
		return nil, storeError(err, "deliveries of "+what)
	}
	// The deliveries a publish creates carry the event's receive time as
	// their create time; a re-send is made later.
	matched := map[string]bool{}
	for _, d := range deliveries {
		resent := !proto.Equal(d.GetCreateTime(), ev.GetReceiveTime())
		if !resent {
			matched[d.GetSubscriptionId()] = true
		}
		if len(resp.Deliveries) == eventDeliveriesShown {
			resp.DeliveriesTruncated = true
			continue
		}
		resp.Deliveries = append(resp.Deliveries, &hookwirev1.EventDelivery{
			DeliveryId: d.GetId(), SubscriptionId: d.GetSubscriptionId(), Status: d.GetStatus(),
			AttemptCount: d.GetAttemptCount(), CreateTime: d.GetCreateTime(), Resent: resent,
		})
	}
	resp.UnmatchedSubscriptions, resp.UnmatchedTruncated, err = s.explainUnmatched(ev, matched)
	if err != nil {
		return nil, storeError(err, "subscriptions of tenant "+quote(tenant))
	}
	return resp, nil
}

// explainUnmatched lists the tenant's subscriptions, in creation order,
// that are not in matched, each with why it did not take ev: worked out
// now, from the subscription as it is now (see UnmatchedSubscription in
// event.proto). It stops after unmatchedShown and reports whether it did.
func (s *Services) explainUnmatched(ev *hookwirev1.Event, matched map[string]bool) ([]*hookwirev1.UnmatchedSubscription, bool, error) {
	received := ev.GetReceiveTime().AsTime()
	fev := filter.NewEvent(ev.GetType(), ev.GetContentType(), ev.GetPayload(), ev.GetMetadata())
	var out []*hookwirev1.UnmatchedSubscription
	after := ""
	for {
		recs, err := s.cfg.Store.ListSubscriptions(ev.GetTenant(), after, 500)
		if err != nil {
			return nil, false, err
		}
		for _, rec := range recs {
			sub := rec.GetSubscription()
			if matched[sub.GetId()] {
				continue
			}
			if len(out) == unmatchedShown {
				return out, true, nil
			}
			out = append(out, s.explainOne(ev, fev, received, sub))
		}
		if len(recs) < 500 {
			return out, false, nil
		}
		after = recs[len(recs)-1].GetSubscription().GetId()
	}
}

// explainOne says why sub did not take ev.
func (s *Services) explainOne(ev *hookwirev1.Event, fev *filter.Event, received time.Time, sub *hookwirev1.Subscription) *hookwirev1.UnmatchedSubscription {
	u := &hookwirev1.UnmatchedSubscription{SubscriptionId: sub.GetId()}
	if created := sub.GetCreateTime().AsTime(); created.After(received) {
		u.Reason = hookwirev1.NoMatchReason_NO_MATCH_REASON_CREATED_AFTER_EVENT
		u.Detail = fmt.Sprintf("the subscription was created at %s, after the event was received (%s)", stampText(created), stampText(received))
		return u
	}
	updated := sub.GetUpdateTime().AsTime()
	u.ChangedSinceEvent = updated.After(received)
	id, err := ids.Parse(ids.Subscription, sub.GetId())
	var cs *catalog.Sub
	if err == nil {
		cs = s.cfg.Catalog.Get(id)
	}
	if cs == nil || cs.Tenant != ev.GetTenant() {
		// Stored but not (or no longer) in the catalog: it is being
		// created or deleted right now.
		u.Reason = hookwirev1.NoMatchReason_NO_MATCH_REASON_UNKNOWN
		u.Detail = "the subscription is being changed right now; read the event again"
		return u
	}
	verdict, evalErr := s.cfg.Catalog.Explain(cs, fev)
	switch verdict {
	case catalog.TypeMismatch:
		u.Reason = hookwirev1.NoMatchReason_NO_MATCH_REASON_EVENT_TYPE
		types := make([]string, 0, len(cs.EventTypes()))
		for _, t := range cs.EventTypes() {
			types = append(types, quote(t))
		}
		u.Detail = fmt.Sprintf("event type %s matches none of its event types (%s)", quote(ev.GetType()), strings.Join(types, ", "))
		if strings.HasPrefix(ev.GetType(), catalog.OperationalPrefix) {
			u.Detail += fmt.Sprintf("; Hookwire's own %s events match only patterns that start with %s", quote(catalog.OperationalPrefix+"*"), quote(catalog.OperationalPrefix))
		}
	case catalog.PayloadNotJSON:
		u.Reason = hookwirev1.NoMatchReason_NO_MATCH_REASON_FILTER
		u.Detail = fmt.Sprintf("it has a filter, and the payload (content type %s) is not JSON; filters match only JSON payloads", quote(ev.GetContentType()))
	case catalog.FilterFalse:
		u.Reason = hookwirev1.NoMatchReason_NO_MATCH_REASON_FILTER
		u.Detail = fmt.Sprintf("its filter is false for this event: %s", sub.GetFilter())
	case catalog.FilterFailed:
		u.Reason = hookwirev1.NoMatchReason_NO_MATCH_REASON_FILTER_ERROR
		u.Detail = evalErr.Error()
	case catalog.Takes:
		if u.ChangedSinceEvent {
			u.Reason = hookwirev1.NoMatchReason_NO_MATCH_REASON_CHANGED_SINCE_EVENT
			u.Detail = fmt.Sprintf("as it is now the subscription takes this event; it was changed at %s, after the event was received (%s), and its settings then are not recorded; resend the event if it should have it", stampText(updated), stampText(received))
		} else {
			u.Reason = hookwirev1.NoMatchReason_NO_MATCH_REASON_UNKNOWN
			u.Detail = "as it is now the subscription takes this event and it has not changed since; nothing recorded says why it got no delivery (was it created while the event was being published?)"
		}
	}
	return u
}

// stampText is a time in reasons: RFC 3339 in UTC, to the millisecond.
func stampText(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func (s *Services) ListEvents(ctx context.Context, req *hookwirev1.ListEventsRequest) (*hookwirev1.ListEventsResponse, error) {
	if err := s.authorizeListing(ctx, req.GetTenant()); err != nil {
		return nil, err
	}
	f := store.EventFilter{
		IdempotencyKey: req.GetIdempotencyKey(),
		WithoutPayload: req.GetView() != hookwirev1.EventView_EVENT_VIEW_FULL,
		MaxPageBytes:   eventPageBytes,
	}
	if v := req.GetEventType(); v != "" {
		f.Type = catalog.CompilePattern(v).Match
	}
	if t := req.GetStartTime(); t != nil {
		f.Start = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		f.End = t.AsTime()
	}
	if !f.Start.IsZero() && !f.End.IsZero() && !f.Start.Before(f.End) {
		return nil, status.Error(codes.InvalidArgument, "start_time must be before end_time")
	}
	var before *ids.ID
	if v := req.GetPageToken(); v != "" {
		id, err := ids.Parse(ids.Event, v)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "page_token: %v; pass the next_page_token of the previous page", err)
		}
		before = &id
	}
	list, next, err := s.cfg.Store.ListEvents(req.GetTenant(), f, before, pageSize(req.GetPageSize()), eventScan)
	if err != nil {
		return nil, storeError(err, "events")
	}
	resp := &hookwirev1.ListEventsResponse{Events: list}
	if next != nil {
		resp.NextPageToken = ids.Format(ids.Event, *next)
	}
	return resp, nil
}
