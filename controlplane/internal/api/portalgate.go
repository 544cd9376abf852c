package api

// The portal tokens' gate: the one place that decides what a portal
// principal (a caller with an "hwp_..." token, see portal.go) may do. A
// portal token is not an API key: it reaches only the methods listed in
// portalRules, only for the subscriptions of its session's scope, and
// only with the session's features. Every other method, every stream and
// everything outside the scope is refused here, before the service runs;
// a subscription outside the scope is NotFound, exactly like one that
// does not exist, so a session learns nothing about the others.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// portalRule is how the gate checks one method for a portal principal:
// the feature it needs ("" for reads) and the check of the request (nil:
// only the tenant, which authorize checks).
type portalRule struct {
	feature string
	check   func(s *Services, g *portalGrant, req any) error
}

// portalRules are the methods a portal token may call.
var portalRules = map[string]portalRule{
	hookwirev1.SubscriptionService_ListSubscriptions_FullMethodName: {}, // the answer is filtered
	hookwirev1.SubscriptionService_GetSubscription_FullMethodName: {check: func(s *Services, g *portalGrant, req any) error {
		r := req.(*hookwirev1.GetSubscriptionRequest)
		return s.portalSub(g, r.GetTenant(), r.GetId())
	}},
	hookwirev1.SubscriptionService_CreateSubscription_FullMethodName: {feature: featureEndpointsWrite, check: portalCheckCreate},
	hookwirev1.SubscriptionService_UpdateSubscription_FullMethodName: {feature: featureEndpointsWrite, check: portalCheckUpdate},
	hookwirev1.SubscriptionService_DeleteSubscription_FullMethodName: {feature: featureEndpointsWrite, check: func(s *Services, g *portalGrant, req any) error {
		r := req.(*hookwirev1.DeleteSubscriptionRequest)
		return s.portalSub(g, r.GetTenant(), r.GetId())
	}},
	hookwirev1.SubscriptionService_PauseSubscription_FullMethodName: {feature: featureEndpointsWrite, check: func(s *Services, g *portalGrant, req any) error {
		r := req.(*hookwirev1.PauseSubscriptionRequest)
		return s.portalSub(g, r.GetTenant(), r.GetId())
	}},
	hookwirev1.SubscriptionService_ResumeSubscription_FullMethodName: {feature: featureEndpointsWrite, check: func(s *Services, g *portalGrant, req any) error {
		r := req.(*hookwirev1.ResumeSubscriptionRequest)
		return s.portalSub(g, r.GetTenant(), r.GetId())
	}},
	hookwirev1.SubscriptionService_RotateSubscriptionSecret_FullMethodName: {feature: featureSecretsRotate, check: func(s *Services, g *portalGrant, req any) error {
		r := req.(*hookwirev1.RotateSubscriptionSecretRequest)
		return s.portalSub(g, r.GetTenant(), r.GetId())
	}},
	hookwirev1.DeliveryService_ListDeliveries_FullMethodName: {check: func(s *Services, g *portalGrant, req any) error {
		r := req.(*hookwirev1.ListDeliveriesRequest)
		if r.GetSubscriptionId() == "" {
			return status.Error(codes.PermissionDenied, "a portal token lists the deliveries of one endpoint at a time: set subscription_id")
		}
		return s.portalSub(g, r.GetTenant(), r.GetSubscriptionId())
	}},
	hookwirev1.DeliveryService_GetDelivery_FullMethodName: {check: func(s *Services, g *portalGrant, req any) error {
		r := req.(*hookwirev1.GetDeliveryRequest)
		return s.portalDelivery(g, r.GetTenant(), r.GetId())
	}},
	hookwirev1.DeliveryService_ListAttempts_FullMethodName: {check: func(s *Services, g *portalGrant, req any) error {
		r := req.(*hookwirev1.ListAttemptsRequest)
		return s.portalDelivery(g, r.GetTenant(), r.GetDeliveryId())
	}},
	hookwirev1.DeliveryService_RetryDelivery_FullMethodName: {feature: featureDeliveriesResend, check: func(s *Services, g *portalGrant, req any) error {
		r := req.(*hookwirev1.RetryDeliveryRequest)
		return s.portalDelivery(g, r.GetTenant(), r.GetId())
	}},
	hookwirev1.DeliveryService_ResendEvent_FullMethodName:     {feature: featureDeliveriesResend, check: portalCheckResend},
	hookwirev1.EventTypeService_ListEventTypes_FullMethodName: {},
	hookwirev1.EventTypeService_GetEventType_FullMethodName:   {},
	hookwirev1.PortalService_GetPortalContext_FullMethodName:  {},
	hookwirev1.PortalService_SendTestEvent_FullMethodName: {feature: featureEventsTest, check: func(s *Services, g *portalGrant, req any) error {
		r := req.(*hookwirev1.SendTestEventRequest)
		return s.portalSub(g, r.GetTenant(), r.GetSubscriptionId())
	}},
}

// portalRefused is the answer to a method a portal token cannot call.
func portalRefused(method string) error {
	return status.Errorf(codes.PermissionDenied, "portal tokens can only manage the endpoints of their portal session (list, create, edit, delete, rotate secrets, see and resend deliveries, send test events); %s needs an API key", method)
}

// portalGate is the unary interceptor of the gate; it runs right after
// authentication.
func (s *Services) portalGate(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	p := principalFrom(ctx)
	if p == nil || p.portal == nil {
		return handler(ctx, req)
	}
	rule, ok := portalRules[info.FullMethod]
	if !ok {
		return nil, portalRefused(info.FullMethod)
	}
	g := p.portal
	if t, ok := req.(interface{ GetTenant() string }); ok && t.GetTenant() != g.session.GetTenant() {
		return nil, status.Errorf(codes.NotFound, "tenant %q not found", t.GetTenant())
	}
	if rule.feature != "" && !g.can(rule.feature) {
		return nil, status.Errorf(codes.PermissionDenied, "this portal session does not have the %q feature; the tenant grants it when it creates the session", rule.feature)
	}
	if rule.check != nil {
		if err := rule.check(s, g, req); err != nil {
			return nil, err
		}
	}
	resp, err := handler(ctx, req)
	if err != nil {
		return nil, err
	}
	if list, ok := resp.(*hookwirev1.ListSubscriptionsResponse); ok {
		kept := list.GetSubscriptions()[:0:0]
		for _, sub := range list.GetSubscriptions() {
			if g.covers(sub) {
				kept = append(kept, sub)
			}
		}
		list.Subscriptions = kept
	}
	return resp, nil
}

// portalGateStream refuses every stream to portal tokens.
func portalGateStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if p := principalFrom(ss.Context()); p != nil && p.portal != nil {
		return portalRefused(info.FullMethod)
	}
	return handler(srv, ss)
}

// portalSub checks that subscription id is in the session's scope; one
// outside it is not found, like one that does not exist.
func (s *Services) portalSub(g *portalGrant, tenant, id string) error {
	_, err := s.portalSubRecord(g, tenant, id)
	return err
}

// portalSubRecord is portalSub that also returns the subscription's record.
func (s *Services) portalSubRecord(g *portalGrant, tenant, id string) (*storev1.SubscriptionRecord, error) {
	rec, err := s.cfg.Store.GetSubscription(tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && !g.covers(rec.GetSubscription())):
		return nil, status.Errorf(codes.NotFound, "subscription %s not found", quote(id))
	case err != nil:
		return nil, storeError(err, "subscription "+quote(id))
	}
	return rec, nil
}

// portalDelivery checks that delivery id belongs to a subscription in the
// session's scope.
func (s *Services) portalDelivery(g *portalGrant, tenant, id string) error {
	d, err := s.cfg.Store.GetDelivery(tenant, id)
	if err != nil {
		return storeError(err, "delivery "+quote(id))
	}
	if err := s.portalSub(g, tenant, d.GetSubscriptionId()); err != nil {
		return status.Errorf(codes.NotFound, "delivery %s not found", quote(id))
	}
	return nil
}

// portalCheckResend lets a session resend an event only to an endpoint in
// its scope that received it before: resending any event of the tenant
// would show the session other customers' events.
func portalCheckResend(s *Services, g *portalGrant, req any) error {
	r := req.(*hookwirev1.ResendEventRequest)
	if err := s.portalSub(g, r.GetTenant(), r.GetSubscriptionId()); err != nil {
		return err
	}
	notFound := status.Errorf(codes.NotFound, "event %s not found", quote(r.GetEventId()))
	eid, err := ids.Parse(ids.Event, r.GetEventId())
	if err != nil {
		return notFound
	}
	dels, err := s.cfg.Store.EventDeliveries(r.GetTenant(), eid)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound
		}
		return storeError(err, "event "+quote(r.GetEventId()))
	}
	for _, d := range dels {
		if d.GetSubscriptionId() == r.GetSubscriptionId() {
			return nil
		}
	}
	return notFound
}

// portalFields are the fields of a subscription a portal session may set:
// an http endpoint's URL, description and event types.
var portalFields = map[string]bool{"description": true, "event_types": true, "target": true, "metadata": true}

// portalCheckCreate lets a session create plain http endpoints only, and
// tags them with the session's labels so that they stay in its scope.
func portalCheckCreate(s *Services, g *portalGrant, req any) error {
	r := req.(*hookwirev1.CreateSubscriptionRequest)
	if len(g.ids) > 0 {
		return status.Error(codes.PermissionDenied, "this portal session covers a fixed list of subscriptions, so it cannot create endpoints; the tenant creates sessions scoped by labels for that")
	}
	sub := r.GetSubscription()
	if sub == nil {
		return nil // protovalidate answers
	}
	if err := portalCheckFields(sub); err != nil {
		return err
	}
	for k, v := range sub.GetMetadata() {
		if want, ok := g.session.GetLabels()[k]; !ok || want != v {
			return status.Errorf(codes.PermissionDenied, "subscription.metadata: a portal session sets the metadata of its endpoints itself; leave it empty (%q is not one of the session's labels)", k)
		}
	}
	if labels := g.session.GetLabels(); len(labels) > 0 {
		if sub.Metadata == nil {
			sub.Metadata = map[string]string{}
		}
		maps.Copy(sub.Metadata, labels)
		if !g.session.GetAllEvents() {
			sub.Filter = labelsFilter(labels)
		}
	}
	return nil
}

// labelsFilter is the CEL filter that passes only events whose metadata
// holds every label, e.g. "customer" in metadata && metadata["customer"]
// == "cus_42".
func labelsFilter(labels map[string]string) string {
	var terms []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		// Go's quoting escapes are CEL's too (\\, \", \n, \xNN, \uNNNN).
		// "in" first: an event without the key is no match, not an error.
		key := strconv.Quote(k)
		terms = append(terms, fmt.Sprintf("%s in metadata && metadata[%s] == %s", key, key, strconv.Quote(labels[k])))
	}
	return strings.Join(terms, " && ")
}

// portalCheckFields checks that sub sets only what a portal may set.
func portalCheckFields(sub *hookwirev1.Subscription) error {
	var bad error
	sub.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !portalFields[string(fd.Name())] {
			bad = status.Errorf(codes.PermissionDenied, "subscription.%s: a portal session sets only the description, event types and http URL of its endpoints", fd.Name())
			return false
		}
		return true
	})
	if bad != nil {
		return bad
	}
	if t := sub.GetTarget(); t != nil {
		return portalCheckTarget(t)
	}
	return nil
}

func portalCheckTarget(t *hookwirev1.Target) error {
	if t.GetTransport() != "" && t.GetTransport() != "http" {
		return status.Errorf(codes.PermissionDenied, "subscription.target.transport: a portal session manages http endpoints only, not %q", t.GetTransport())
	}
	if len(t.GetHeaders()) > 0 || t.GetTimeout() != nil {
		return status.Error(codes.PermissionDenied, "subscription.target: a portal session sets only the http URL (transport \"http\", config {\"url\": ...})")
	}
	for k := range t.GetConfig().GetFields() {
		if k != "url" {
			return status.Errorf(codes.PermissionDenied, "subscription.target.config.%s: a portal session sets only the url", k)
		}
	}
	return nil
}

// portalUpdatePaths are the update_mask paths a portal session may name.
var portalUpdatePaths = map[string]bool{
	"description": true, "event_types": true, "target.config.url": true, "id": true,
}

func portalCheckUpdate(s *Services, g *portalGrant, req any) error {
	r := req.(*hookwirev1.UpdateSubscriptionRequest)
	sub := r.GetSubscription()
	rec, err := s.portalSubRecord(g, r.GetTenant(), sub.GetId())
	if err != nil {
		return err
	}
	paths := r.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return status.Error(codes.InvalidArgument, "update_mask: a portal session names the fields it changes (description, event_types, target.config.url)")
	}
	for _, p := range paths {
		if !portalUpdatePaths[p] {
			return status.Errorf(codes.PermissionDenied, "update_mask: %q: a portal session changes only description, event_types and target.config.url", p)
		}
	}
	touchesTarget := slices.ContainsFunc(paths, func(p string) bool { return strings.HasPrefix(p, "target") })
	if touchesTarget {
		if rec.GetSubscription().GetTarget().GetTransport() != "http" {
			return status.Error(codes.PermissionDenied, "this endpoint is not an http endpoint; a portal session cannot change its target")
		}
		if err := portalCheckTarget(sub.GetTarget()); err != nil {
			return err
		}
	}
	// Fields outside the mask are ignored by the update; clear them so
	// nothing else in the request can matter.
	keep := &hookwirev1.Subscription{Id: sub.GetId(), Description: sub.GetDescription(), EventTypes: sub.GetEventTypes(), Target: sub.GetTarget()}
	proto.Reset(sub)
	proto.Merge(sub, keep)
	return nil
}
