package api

// EventService: publishing (an event is acknowledged once it and its
// fan-out deliveries are durable, then the deliveries go to the
// dispatcher) and reading events back: GetEvent (an event, its
// deliveries, and why the tenant's other subscriptions got none) and
// ListEvents. Filter failures found while publishing are reported by
// filterreport.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/dispatch"
	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	"github.com/hookwire/hookwire/controlplane/internal/tracing"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
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

// eventService implements EventService; operational events (Emit) are
// published through it too.
type eventService struct {
	hookwirev1.UnimplementedEventServiceServer
	*Services
	// filterReports rate-limits reports of filter failures
	// (filterreport.go).
	filterReports filterReports
}

const defaultContentType = "application/json"

func (s *eventService) PublishEvent(ctx context.Context, req *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error) {
	if err := authorize(ctx, req.GetTenant(), accessPublish); err != nil {
		return nil, err
	}
	resp, err := s.publish(ctx, req.GetTenant(), []*hookwirev1.Event{req.GetEvent()})
	if err != nil {
		return nil, err
	}
	return resp[0], nil
}

func (s *eventService) PublishEvents(ctx context.Context, req *hookwirev1.PublishEventsRequest) (*hookwirev1.PublishEventsResponse, error) {
	if err := authorize(ctx, req.GetTenant(), accessPublish); err != nil {
		return nil, err
	}
	resp, err := s.publish(ctx, req.GetTenant(), req.GetEvents())
	if err != nil {
		return nil, err
	}
	return &hookwirev1.PublishEventsResponse{Results: resp}, nil
}

// MetadataContentType carries the HTTP Content-Type of a raw publish from
// the gateway.
const MetadataContentType = "x-hookwire-content-type"

func (s *eventService) PublishRawEvent(ctx context.Context, req *hookwirev1.PublishRawEventRequest) (*hookwirev1.PublishEventResponse, error) {
	if err := authorize(ctx, req.GetTenant(), accessPublish); err != nil {
		return nil, err
	}
	ct := req.GetBody().GetContentType()
	if ct == "" {
		if v := metadata.ValueFromIncomingContext(ctx, MetadataContentType); len(v) > 0 {
			ct = v[0]
		}
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	ev := &hookwirev1.Event{Type: req.GetType(), Payload: req.GetBody().GetData(), ContentType: ct}
	resp, err := s.publish(ctx, req.GetTenant(), []*hookwirev1.Event{ev})
	if err != nil {
		return nil, err
	}
	return resp[0], nil
}

// MetadataIdempotencyKey carries the REST Idempotency-Key header.
const MetadataIdempotencyKey = "x-hookwire-idempotency-key"

// maxIdempotencyKeyLen is Event.idempotency_key's max_len in event.proto.
const maxIdempotencyKeyLen = 256

// reservedType refuses an event type in Hookwire's own namespace; field
// names where the type was given.
func reservedType(field, typ string) error {
	if strings.HasPrefix(typ, catalog.OperationalPrefix) {
		return status.Errorf(codes.InvalidArgument, "%s %q: the %q prefix is reserved for events Hookwire publishes itself", field, typ, catalog.OperationalPrefix)
	}
	return nil
}

func (s *eventService) publish(ctx context.Context, tenant string, events []*hookwirev1.Event) ([]*hookwirev1.PublishEventResponse, error) {
	for i, in := range events {
		if err := reservedType(fmt.Sprintf("event %d: type", i), in.GetType()); err != nil {
			return nil, err
		}
	}
	if len(events) == 1 && events[0].GetIdempotencyKey() == "" {
		if v := metadata.ValueFromIncomingContext(ctx, MetadataIdempotencyKey); len(v) > 0 && v[0] != "" {
			// The header skipped protovalidate: apply the field's limit.
			if len(v[0]) > maxIdempotencyKeyLen {
				return nil, status.Errorf(codes.InvalidArgument, "Idempotency-Key header is %d bytes; the limit is %d", len(v[0]), maxIdempotencyKeyLen)
			}
			events[0].IdempotencyKey = v[0]
		}
	}
	return s.publishInternal(ctx, tenant, events)
}

// publishInternal stores events and their fan-out and hands the deliveries
// to the dispatcher. Operational events come straight here.
func (s *eventService) publishInternal(ctx context.Context, tenant string, events []*hookwirev1.Event) ([]*hookwirev1.PublishEventResponse, error) {
	return s.publishRouted(ctx, tenant, events, nil)
}

// publishRouted is publishInternal, but when only is set each event goes
// to that subscription alone, whatever its types and filter say (a test
// event, SendTestEvent).
func (s *eventService) publishRouted(ctx context.Context, tenant string, events []*hookwirev1.Event, only *catalog.Sub) ([]*hookwirev1.PublishEventResponse, error) {
	now := s.cfg.Now()
	nowPB := timestamppb.New(now)
	batch := make([]*store.NewEvent, len(events))
	subsOf := make([][]*catalog.Sub, len(events))
	failedOf := make([][]catalog.FilterFailure, len(events))
	resp := make([]*hookwirev1.PublishEventResponse, len(events))
	trace := tracing.EventTrace(ctx) // nil unless a publish span is running
	for i, in := range events {
		if n := len(in.GetPayload()); n > s.cfg.MaxPayloadBytes {
			return nil, payloadTooLarge(n, s.cfg.MaxPayloadBytes)
		}
		ct := in.GetContentType()
		if ct == "" {
			ct = defaultContentType
		}
		if isJSON(ct) && len(in.GetPayload()) == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "event %d: payload is empty; send a JSON value as payload (or set content_type for other bytes)", i)
		}
		if isJSON(ct) && !json.Valid(in.GetPayload()) {
			return nil, status.Errorf(codes.InvalidArgument, "event %d: payload is not valid JSON but content_type is %q; send JSON or set content_type to what the payload is", i, ct)
		}
		eid := ids.New(now)
		ev := &hookwirev1.Event{
			Id: ids.Format(ids.Event, eid), Tenant: tenant, Type: in.GetType(), Payload: in.GetPayload(),
			ContentType: ct, Metadata: in.GetMetadata(), ReceiveTime: nowPB,
			IdempotencyKey: in.GetIdempotencyKey(), OrderingKey: in.GetOrderingKey(),
		}
		ne := &store.NewEvent{ID: eid, Event: ev, Trace: trace}
		// Event types and filters, through the catalog's index.
		var (
			match  []*catalog.Sub
			failed []catalog.FilterFailure
		)
		if only != nil {
			match = []*catalog.Sub{only}
		} else {
			match, failed = s.cfg.Catalog.MatchEvent(tenant, filter.NewEvent(ev.GetType(), ct, ev.GetPayload(), ev.GetMetadata()))
		}
		failedOf[i] = failed
		for _, sub := range match {
			did := ids.New(now)
			ne.Deliveries = append(ne.Deliveries, store.NewDelivery{ID: did, SubID: sub.ID, Ordered: sub.Ordered, Delivery: &hookwirev1.Delivery{
				Id: ids.Format(ids.Delivery, did), Tenant: tenant, EventId: ev.GetId(), SubscriptionId: sub.IDText,
				EventType: ev.GetType(), Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING,
				NextAttemptTime: nowPB, CreateTime: nowPB, UpdateTime: nowPB, OrderingKey: orderingKeyFor(sub, ev),
			}})
			subsOf[i] = append(subsOf[i], sub)
		}
		batch[i] = ne
	}
	if err := s.cfg.Store.Publish(ctx, tenant, batch); err != nil {
		return nil, storeError(err, "tenant "+quote(tenant))
	}
	var ready []dispatch.Ready
	var failures []filterFailure
	stored := 0
	for i, ne := range batch {
		if ne.DuplicateOf != nil {
			resp[i] = &hookwirev1.PublishEventResponse{Id: ids.Format(ids.Event, *ne.DuplicateOf), DeliveryCount: int32(ne.DuplicateDeliveries), Duplicate: true}
			continue
		}
		stored++
		resp[i] = &hookwirev1.PublishEventResponse{Id: ne.Event.GetId(), DeliveryCount: int32(len(ne.Deliveries)), FilterErrors: filterErrors(failedOf[i])}
		for _, f := range failedOf[i] {
			failures = append(failures, filterFailure{FilterFailure: f, eventID: ne.Event.GetId(), eventType: ne.Event.GetType()})
		}
		for j, nd := range ne.Deliveries {
			ready = append(ready, dispatch.Ready{ID: nd.ID, Sub: subsOf[i][j], EventID: ne.ID, EventType: ne.Event.GetType(),
				Payload: ne.Event.GetPayload(), ContentType: ne.Event.GetContentType(), Waiting: nd.Waiting, Trace: trace})
		}
	}
	s.enqueue(ready)
	s.cfg.Metrics.Published(stored, len(ready))
	s.reportFilterFailures(tenant, failures)
	tracing.Published(ctx, resp)
	return resp, nil
}

// orderingKeyFor is the ordering key a delivery keeps: only ordered
// subscriptions group by it.
func orderingKeyFor(sub *catalog.Sub, ev *hookwirev1.Event) string {
	if !sub.Ordered {
		return ""
	}
	return ev.GetOrderingKey()
}

// Emit publishes an operational event into a tenant's stream.
func (s *Services) Emit(tenant, eventType string, payload map[string]any) {
	data, err := json.Marshal(payload)
	if err != nil {
		s.cfg.Logger.Error("encode operational event", "type", eventType, "err", err)
		return
	}
	if _, err := s.events.publishInternal(context.Background(), tenant, []*hookwirev1.Event{{Type: eventType, Payload: data}}); err != nil {
		s.cfg.Logger.Error("publish operational event", "tenant", tenant, "type", eventType, "err", err)
	}
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (len(mt) > 5 && mt[len(mt)-5:] == "+json")
}

func (s *eventService) GetEvent(ctx context.Context, req *hookwirev1.GetEventRequest) (*hookwirev1.GetEventResponse, error) {
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
func (s *eventService) explainUnmatched(ev *hookwirev1.Event, matched map[string]bool) ([]*hookwirev1.UnmatchedSubscription, bool, error) {
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
func (s *eventService) explainOne(ev *hookwirev1.Event, fev *filter.Event, received time.Time, sub *hookwirev1.Subscription) *hookwirev1.UnmatchedSubscription {
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

func (s *eventService) ListEvents(ctx context.Context, req *hookwirev1.ListEventsRequest) (*hookwirev1.ListEventsResponse, error) {
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
	var err error
	if f.Start, f.End, err = timeRange(req.GetStartTime(), req.GetEndTime()); err != nil {
		return nil, err
	}
	before, err := pageBefore(req.GetPageToken(), ids.Event)
	if err != nil {
		return nil, err
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
