package api

// SubscriptionService: subscriptions and their changes. Every change is
// read, decided and written again if the stored record changed meanwhile
// (updateSubscription), with its audit event in the same write; the
// catalog is refreshed after it. Secret rotation is in rotate.go, update
// masks in updatemask.go.

import (
	"context"
	"errors"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	"github.com/hookwire/hookwire/controlplane/internal/selector"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// subscriptionService implements SubscriptionService; the dispatcher's
// callbacks (DisableSubscription, SetFailingSince) change subscriptions
// through it too.
type subscriptionService struct {
	hookwirev1.UnimplementedSubscriptionServiceServer
	*Services
}

func (s *subscriptionService) CreateSubscription(ctx context.Context, req *hookwirev1.CreateSubscriptionRequest) (*hookwirev1.Subscription, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	in := req.GetSubscription()
	if err := checkSelector(in.GetAgentSelector()); err != nil {
		return nil, err
	}
	scheme := catalog.NormalScheme(in.GetSignatureScheme())
	key, err := newSigningKey(scheme)
	if err != nil {
		return nil, err
	}
	now := timestamppb.New(s.cfg.Now())
	sub := &hookwirev1.Subscription{
		Id:             ids.Format(ids.Subscription, ids.New(s.cfg.Now())),
		Tenant:         req.GetTenant(),
		Description:    in.GetDescription(),
		EventTypes:     in.GetEventTypes(),
		Target:         clone(in.GetTarget()), // its headers and secret config fields are replaced by their masked form below
		Status:         hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_ENABLED,
		Metadata:       in.GetMetadata(),
		CreateTime:     now,
		UpdateTime:     now,
		Filter:         in.GetFilter(),
		RetryPolicy:    in.GetRetryPolicy(),
		FlowControl:    in.GetFlowControl(),
		Ordered:        in.GetOrdered(),
		CircuitBreaker: in.GetCircuitBreaker(),
		AgentSelector:  in.GetAgentSelector(),
	}
	sub.SignatureScheme, sub.SigningPublicKey = scheme, key.PublicKey()
	keys, release := s.sealing()
	defer release()
	sealed, err := catalog.SealKey(keys, sub, 1, key)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "seal signing key: %v", err)
	}
	rec := &storev1.SubscriptionRecord{Subscription: sub, SigningKeys: []*storev1.SigningKey{sealed}}
	if err := setHeaders(rec, keys, in.GetTarget().GetHeaders()); err != nil {
		return nil, err
	}
	// Validates the target too, with its secret fields as given.
	if err := s.setConfig(ctx, rec, keys, in.GetTarget().GetConfig()); err != nil {
		return nil, err
	}
	prepared, err := catalog.Prepare(rec, keys)
	if err != nil {
		return nil, subscriptionError(err, "subscription")
	}
	if err := s.checkFilterCost(sub.GetFilter()); err != nil {
		return nil, subscriptionError(err, "subscription")
	}
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditSubscriptionCreate, resource: subscriptionResource(req.GetTenant(), sub.GetId()), after: sub})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.CreateSubscription(ctx, rec, audit); err != nil {
		return nil, storeError(err, "tenant "+quote(req.GetTenant()))
	}
	s.cfg.Catalog.Put(prepared)
	out := s.present(proto.Clone(sub).(*hookwirev1.Subscription))
	out.SigningSecret = shownSecret(key)
	return out, nil
}

func (s *subscriptionService) GetSubscription(ctx context.Context, req *hookwirev1.GetSubscriptionRequest) (*hookwirev1.Subscription, error) {
	if err := authorize(ctx, req.GetTenant(), accessRead); err != nil {
		return nil, err
	}
	rec, err := s.cfg.Store.GetSubscription(req.GetTenant(), req.GetId())
	if err != nil {
		return nil, storeError(err, "subscription "+quote(req.GetId()))
	}
	return s.present(rec.GetSubscription()), nil
}

func (s *subscriptionService) ListSubscriptions(ctx context.Context, req *hookwirev1.ListSubscriptionsRequest) (*hookwirev1.ListSubscriptionsResponse, error) {
	if err := s.authorizeListing(ctx, req.GetTenant()); err != nil {
		return nil, err
	}
	limit := pageSize(req.GetPageSize())
	recs, err := s.cfg.Store.ListSubscriptions(req.GetTenant(), req.GetPageToken(), limit+1)
	if err != nil {
		return nil, storeError(err, "page_token")
	}
	resp := &hookwirev1.ListSubscriptionsResponse{}
	for i, r := range recs {
		if i == limit {
			resp.NextPageToken = recs[limit-1].GetSubscription().GetId()
			break
		}
		resp.Subscriptions = append(resp.Subscriptions, s.present(r.GetSubscription()))
	}
	return resp, nil
}

// UpdateSubscription changes the fields its mask names (updatemask.go).
// It checks the change against the stored subscription; a new target is
// checked by its transport (which may call a plugin) before the write,
// not during it. If the record changes before the write, the change is
// checked again against the new record, and the whole update starts over
// when that would change the target the transport checked.
func (s *subscriptionService) UpdateSubscription(ctx context.Context, req *hookwirev1.UpdateSubscriptionRequest) (*hookwirev1.Subscription, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	in := req.GetSubscription()
	if in == nil {
		return nil, status.Error(codes.InvalidArgument, "subscription is required: it names the subscription (id) and carries the new values of the fields in update_mask")
	}
	if in.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "subscription.id is required: it names the subscription to update")
	}
	mask, err := parseUpdateMask(req.GetUpdateMask(), in)
	if err != nil {
		return nil, err
	}
	if len(mask.paths) == 0 && len(mask.fixed) == 0 && len(req.GetUpdateMask().GetPaths()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "nothing to update: name the fields to change in update_mask (REST: ?update_mask=description,filter), or send them in the subscription; over gRPC an empty or default value (e.g. an empty description) needs the mask")
	}
	what := "subscription " + quote(in.GetId())
	if len(mask.paths) == 0 {
		// Only fields that cannot change, named with the values they
		// have: nothing to write.
		cur, err := s.cfg.Store.GetSubscription(req.GetTenant(), in.GetId())
		if err != nil {
			return nil, storeError(err, what)
		}
		if _, err := s.checkUpdate(mask, cur.GetSubscription(), in); err != nil {
			return nil, err
		}
		return s.present(clone(cur.GetSubscription())), nil
	}
	// changeRecord runs the change on the record as stored, again if it
	// changed meanwhile: the checks see what the write replaces.
	return s.changeRecord(ctx, req.GetTenant(), in.GetId(), auditSubscriptionUpdate, func(r *storev1.SubscriptionRecord, keys *secrets.Keyring) error {
		if _, err := s.checkUpdate(mask, r.GetSubscription(), in); err != nil {
			return err
		}
		mask.apply(r.GetSubscription(), in)
		if mask.headers {
			// The whole set is replaced; a value of "<redacted>" keeps
			// the stored value of that header.
			if err := setHeaders(r, keys, in.GetTarget().GetHeaders()); err != nil {
				return err
			}
		}
		if mask.target {
			// Seals the secret fields of the target's config, keeps those
			// sent back as "<redacted>", and has the transport check the
			// result with the stored secrets opened.
			return s.setConfig(ctx, r, keys, r.GetSubscription().GetTarget().GetConfig())
		}
		return nil
	})
}

func (s *subscriptionService) DeleteSubscription(ctx context.Context, req *hookwirev1.DeleteSubscriptionRequest) (*emptypb.Empty, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	// The audit's before-image is the record the deletion removes: the
	// deletion is refused (and decided again) if it changed since read.
	var err error
	for range changeTries {
		var before *storev1.SubscriptionRecord
		if before, err = s.cfg.Store.GetSubscription(req.GetTenant(), req.GetId()); err != nil {
			break
		}
		audit, aerr := s.auditDeleted(ctx, req.GetTenant(), auditSubscriptionDelete, subscriptionResource(req.GetTenant(), req.GetId()), before.GetSubscription())
		if aerr != nil {
			return nil, aerr
		}
		if err = s.cfg.Store.DeleteSubscription(ctx, before, audit); !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	if errors.Is(err, store.ErrConflict) {
		return nil, status.Errorf(codes.Aborted, "subscription %s kept changing while it was being deleted; try again", quote(req.GetId()))
	}
	if err != nil {
		return nil, storeError(err, "subscription "+quote(req.GetId()))
	}
	if id, err := ids.Parse(ids.Subscription, req.GetId()); err == nil {
		s.cfg.Catalog.Remove(id)
		s.poke(id) // cancels its pending deliveries
	}
	return &emptypb.Empty{}, nil
}

func (s *subscriptionService) PauseSubscription(ctx context.Context, req *hookwirev1.PauseSubscriptionRequest) (*hookwirev1.Subscription, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	return s.changeSubscription(ctx, req.GetTenant(), req.GetId(), auditSubscriptionPause, func(sub *hookwirev1.Subscription) error {
		sub.Status = hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAUSED
		return nil
	})
}

func (s *subscriptionService) ResumeSubscription(ctx context.Context, req *hookwirev1.ResumeSubscriptionRequest) (*hookwirev1.Subscription, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	return s.changeSubscription(ctx, req.GetTenant(), req.GetId(), auditSubscriptionResume, func(sub *hookwirev1.Subscription) error {
		sub.Status = hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_ENABLED
		sub.DisabledReason = ""
		return nil
	})
}

// DisableSubscription disables a subscription (410 Gone, or failing for
// too long); Hookwire is the actor its audit event names.
func (s *Services) DisableSubscription(sub *catalog.Sub, reason string) {
	_, err := s.subscriptions.changeSubscription(context.Background(), sub.Tenant, sub.IDText, auditSubscriptionDisable, func(x *hookwirev1.Subscription) error {
		x.Status = hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_DISABLED
		x.DisabledReason = reason
		return nil
	})
	if err != nil {
		s.cfg.Logger.Error("disable subscription", "subscription", sub.IDText, "err", err)
		return
	}
	s.cfg.Logger.Warn("subscription disabled", "subscription", sub.IDText, "tenant", sub.Tenant, "reason", reason)
}

// SetFailingSince stores when a subscription's failure streak began. It is
// bookkeeping, not a configuration change: it is not audited.
func (s *Services) SetFailingSince(sub *catalog.Sub, since time.Time) {
	_, err := s.subscriptions.changeSubscription(context.Background(), sub.Tenant, sub.IDText, noAudit, func(x *hookwirev1.Subscription) error {
		if since.IsZero() {
			x.FailingSince = nil
		} else {
			x.FailingSince = timestamppb.New(since)
		}
		return nil
	})
	if err != nil {
		s.cfg.Logger.Warn("record failing_since", "subscription", sub.IDText, "err", err)
	}
}

// changeSubscription applies change durably and refreshes the catalog.
// The change is recorded in the audit log, in the same write, as action
// by the caller in ctx; with noAudit it is not recorded.
func (s *subscriptionService) changeSubscription(ctx context.Context, tenant, id, action string, change func(*hookwirev1.Subscription) error) (*hookwirev1.Subscription, error) {
	return s.changeRecord(ctx, tenant, id, action, func(r *storev1.SubscriptionRecord, _ *secrets.Keyring) error { return change(r.Subscription) })
}

// changeRecord is changeSubscription for changes that need the stored
// record (sealed header values) and the keyring to seal with, which is
// held until the write is durable (see keyringHolder).
func (s *subscriptionService) changeRecord(ctx context.Context, tenant, id, action string, change func(*storev1.SubscriptionRecord, *secrets.Keyring) error) (*hookwirev1.Subscription, error) {
	var audit func(before, after *hookwirev1.Subscription) (*hookwirev1.AuditEvent, error)
	if action != noAudit {
		audit = func(before, after *hookwirev1.Subscription) (*hookwirev1.AuditEvent, error) {
			return s.auditEvent(ctx, &auditEntry{tenant: tenant, action: action, resource: subscriptionResource(tenant, id), before: before, after: after})
		}
	}
	keys, release := s.sealing()
	defer release()
	rec, err := s.updateSubscription(ctx, tenant, id, func(r *storev1.SubscriptionRecord) error {
		if err := change(r, keys); err != nil {
			return err
		}
		now := s.cfg.Now()
		r.Subscription.UpdateTime = timestamppb.New(now)
		catalog.PruneKeys(r, now)
		_, err := catalog.Prepare(r, keys)
		return err
	}, audit)
	if err != nil {
		return nil, subscriptionError(err, "subscription "+quote(id))
	}
	prepared, err := catalog.Prepare(rec, keys)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	s.cfg.Catalog.Put(prepared)
	s.poke(prepared.ID)
	return s.present(rec.GetSubscription()), nil
}

// updateSubscription reads a subscription, lets change decide on a copy
// and stores the copy unless the stored record has changed since it was
// read (then it reads and decides again). audit, if set, builds the audit
// event of the change from the subscription before and after it; it is
// recorded in the same write.
func (s *subscriptionService) updateSubscription(ctx context.Context, tenant, id string, change func(*storev1.SubscriptionRecord) error, audit func(before, after *hookwirev1.Subscription) (*hookwirev1.AuditEvent, error)) (*storev1.SubscriptionRecord, error) {
	for range changeTries {
		cur, err := s.cfg.Store.GetSubscription(tenant, id)
		if err != nil {
			return nil, err
		}
		next := clone(cur)
		if err := change(next); err != nil {
			return nil, err
		}
		var ev *hookwirev1.AuditEvent
		if audit != nil {
			if ev, err = audit(cur.GetSubscription(), next.GetSubscription()); err != nil {
				return nil, err
			}
		}
		rec, err := s.cfg.Store.PutSubscription(ctx, next, ev)
		if errors.Is(err, store.ErrConflict) {
			continue // changed since read: decide again
		}
		return rec, err
	}
	return nil, status.Errorf(codes.Aborted, "subscription %s kept changing while it was being updated; try again", quote(id))
}

// checkUpdate returns the subscription an update would make of cur (with
// the request's header values, not sealed) after checking it: the fields
// that cannot change, then the rules of the proto and the semantic
// checks, reporting only problems in the fields the update changes or
// that cur does not have already; the selector, and a new filter's cost.
// It does no I/O: the target's check by its transport is the caller's.
func (s *subscriptionService) checkUpdate(mask *updateMask, cur, in *hookwirev1.Subscription) (*hookwirev1.Subscription, error) {
	if err := mask.checkFixed(cur, in); err != nil {
		return nil, err
	}
	before := clone(cur)
	catalog.MaskHeaders(before)
	after := clone(before)
	mask.apply(after, in)
	if err := s.valid.changed("subscription", before, after, mask.touches); err != nil {
		return nil, err
	}
	if mask.headers {
		if err := catalog.CheckHeaders("subscription.target.headers", in.GetTarget().GetHeaders()); err != nil {
			return nil, inputStatus(err)
		}
	}
	if mask.touches([]string{"metadata"}) {
		if err := catalog.CheckMetadata("subscription.metadata", in.GetMetadata()); err != nil {
			return nil, inputStatus(err)
		}
	}
	if mask.touches([]string{"agent_selector"}) {
		if err := checkSelector(after.GetAgentSelector()); err != nil {
			return nil, err
		}
	}
	// Only a new filter is refused: one saved before the cost check
	// keeps working (docs/FILTERS.md).
	if after.GetFilter() != cur.GetFilter() {
		if err := s.checkFilterCost(after.GetFilter()); err != nil {
			return nil, subscriptionError(err, "subscription")
		}
	}
	return after, nil
}

// setHeaders is catalog.SetHeaders with its errors as API errors: a mask
// value with no stored header to keep is InvalidArgument.
func setHeaders(rec *storev1.SubscriptionRecord, keys *secrets.Keyring, headers map[string]string) error {
	err := catalog.SetHeaders(rec, keys, headers)
	var ie *catalog.InputError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return inputStatus(err)
	}
	return status.Errorf(codes.Internal, "seal target headers: %v", err)
}

// setConfig makes config (as a request gives it) the target configuration
// of rec, whose target names its transport: the transport's secret fields
// are sealed (catalog.SetConfig; "<redacted>" keeps a stored value), and
// the target is validated with those values opened.
func (s *subscriptionService) setConfig(ctx context.Context, rec *storev1.SubscriptionRecord, keys *secrets.Keyring, config *structpb.Struct) error {
	t := rec.GetSubscription().GetTarget()
	opened, err := catalog.OpenConfig(rec, keys, config)
	if err != nil {
		return status.Errorf(codes.Internal, "open target config: %v", err)
	}
	var ie *catalog.InputError
	switch err := catalog.SetConfig(rec, keys, config, s.secretFields(t.GetTransport())); {
	case errors.As(err, &ie):
		return inputStatus(err)
	case err != nil:
		return status.Errorf(codes.Internal, "seal target config: %v", err)
	}
	return s.checkTarget(ctx, &hookwirev1.Target{Transport: t.GetTransport(), Config: opened})
}

func (s *subscriptionService) checkTarget(ctx context.Context, t *hookwirev1.Target) error {
	if s.cfg.ValidateTarget == nil {
		return nil
	}
	problems, known, err := s.cfg.ValidateTarget(ctx, t.GetTransport(), t.GetConfig())
	if err != nil {
		return status.Errorf(codes.Unavailable, "validate target for transport %q: %v", t.GetTransport(), err)
	}
	if known && len(problems) > 0 {
		return status.Errorf(codes.InvalidArgument, "invalid target for transport %q: %s", t.GetTransport(), joinProblems(problems))
	}
	return nil
}

func joinProblems(p []string) string {
	out := ""
	for i, x := range p {
		if i > 0 {
			out += "; "
		}
		out += x
	}
	return out
}

// checkSelector rejects an agent selector that does not parse.
func checkSelector(text string) error {
	if _, err := selector.Parse(text); err != nil {
		return status.Errorf(codes.InvalidArgument, "invalid %v", err)
	}
	return nil
}

// checkFilterCost refuses a filter whose estimated cost is over the
// server's budget (filter.Filter.CheckCost); its error is a
// *filter.CompileError.
func (s *subscriptionService) checkFilterCost(expr string) error {
	if expr == "" {
		return nil
	}
	f, err := filter.Compile(expr)
	if err != nil {
		return err
	}
	return f.CheckCost(s.cfg.Catalog.FilterLimits())
}

// subscriptionError is storeError, except that a filter that does not
// compile, or costs too much, is InvalidArgument with the reason.
func subscriptionError(err error, what string) error {
	var ce *filter.CompileError
	if errors.As(err, &ce) {
		return status.Errorf(codes.InvalidArgument, "invalid %v", ce) // "invalid filter: line L, column C: ..."
	}
	return storeError(err, what)
}

// present fills a subscription's output-only runtime fields and masks its
// header values and secret config fields (stored masked already; this also
// covers records written before they were sealed).
func (s *subscriptionService) present(sub *hookwirev1.Subscription) *hookwirev1.Subscription {
	catalog.MaskHeaders(sub)
	catalog.MaskConfig(sub, s.secretFields(sub.GetTarget().GetTransport()))
	if sub.GetCircuitBreaker() != nil {
		if id, err := ids.Parse(ids.Subscription, sub.GetId()); err == nil {
			if d := s.disp.Load(); d != nil {
				sub.CircuitState = d.CircuitState(id)
			}
		}
	}
	return sub
}
