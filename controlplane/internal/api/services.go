// Package api implements the control plane's gRPC services: request
// validation, authentication and tenant isolation, and the translation
// between API messages and the store, catalog and dispatcher. It maps
// errors to gRPC codes; nothing below it knows about gRPC.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/dispatch"
	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/metrics"
	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	"github.com/hookwire/hookwire/controlplane/internal/selector"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	"github.com/hookwire/hookwire/controlplane/internal/tracing"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TargetValidator checks a transport's target configuration; it returns the
// problems found. known is false when the transport is not one the control
// plane can check itself (custom plugins are checked by agents).
type TargetValidator func(ctx context.Context, transport string, config *structpb.Struct) (problems []string, known bool, err error)

// Config wires the services.
type Config struct {
	Store   *store.Store
	Catalog *catalog.Catalog
	// Dispatcher is the dispatcher to start with, if any (SetDispatcher).
	Dispatcher      *dispatch.Dispatcher
	Logger          *slog.Logger
	Now             func() time.Time
	MaxPayloadBytes int
	ValidateTarget  TargetValidator
	// SecretFields names each transport's secret target configuration
	// fields (its plugin's Describe: transport.v1.ConfigField.secret),
	// which are sealed at rest and never shown; nil: none known.
	SecretFields catalog.SecretFields
	// Metrics counts publishes; nil: none.
	Metrics *metrics.ControlPlane
	// RateLimit is the requests per second each API key may make (token
	// bucket with RateBurst); 0: unlimited.
	RateLimit float64
	RateBurst int
	// Keyring seals and opens subscription signing keys. Required.
	Keyring *secrets.Keyring
}

// Services implements every public gRPC service.
type Services struct {
	hookwirev1.UnimplementedTenantServiceServer
	hookwirev1.UnimplementedApiKeyServiceServer
	hookwirev1.UnimplementedSubscriptionServiceServer
	hookwirev1.UnimplementedEventServiceServer
	hookwirev1.UnimplementedDeliveryServiceServer
	hookwirev1.UnimplementedAgentServiceServer

	cfg   Config
	auth  *authenticator
	valid *validator
	limit *keyLimiter
	ops   *operations
	// keyring is the master keyring (swapped by an online rotation).
	keyring keyringHolder
	// Background work (recovers) runs under bgCtx; Close cancels and waits.
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
	// tenantPurgeWake wakes RunTenantPurges after a tenant deletion.
	tenantPurgeWake chan struct{}
	// filterReports rate-limits reports of filter failures
	// (filterreport.go).
	filterReports filterReports
	// disp is the running dispatcher, nil while this server does not lead
	// (leader.go).
	disp atomic.Pointer[dispatch.Dispatcher]
}

// Close stops background operations.
func (s *Services) Close() {
	s.bgCancel()
	s.bg.Wait()
}

// New builds the services.
func New(cfg Config) (*Services, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxPayloadBytes <= 0 {
		cfg.MaxPayloadBytes = 1 << 20
	}
	v, err := newValidator()
	if err != nil {
		return nil, err
	}
	bgCtx, cancel := context.WithCancel(context.Background())
	s := &Services{cfg: cfg, auth: &authenticator{store: cfg.Store, now: cfg.Now}, valid: v,
		limit: newKeyLimiter(cfg.RateLimit, cfg.RateBurst, cfg.Now),
		ops:   newOperations(), bgCtx: bgCtx, bgCancel: cancel, keyring: keyringHolder{ring: cfg.Keyring},
		tenantPurgeWake: make(chan struct{}, 1)}
	s.SetDispatcher(cfg.Dispatcher)
	return s, nil
}

// Register adds every service to s.
func (s *Services) Register(g grpc.ServiceRegistrar) {
	hookwirev1.RegisterTenantServiceServer(g, s)
	hookwirev1.RegisterApiKeyServiceServer(g, s)
	hookwirev1.RegisterSubscriptionServiceServer(g, s)
	hookwirev1.RegisterEventServiceServer(g, s)
	hookwirev1.RegisterDeliveryServiceServer(g, s)
	hookwirev1.RegisterAgentServiceServer(g, s)
	s.RegisterAgentAdmin(g)
}

// ServerOptions returns the interceptors (authentication, then validation).
func (s *Services) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.UnaryInterceptors()...),
		grpc.ChainStreamInterceptor(s.StreamInterceptors()...),
	}
}

// StreamInterceptors are the stream interceptors of ServerOptions, in
// order (authentication, validation of server-streaming requests), for
// callers that run streams in process.
func (s *Services) StreamInterceptors() []grpc.StreamServerInterceptor {
	return []grpc.StreamServerInterceptor{s.auth.stream, s.valid.stream}
}

// UnaryInterceptors are the unary interceptors of ServerOptions, in order
// (authentication, rate limit, validation), for callers that run unary
// methods in process (the REST gateway).
func (s *Services) UnaryInterceptors() []grpc.UnaryServerInterceptor {
	unary := []grpc.UnaryServerInterceptor{s.auth.unary}
	if s.limit != nil {
		unary = append(unary, s.limit.unary)
	}
	return append(unary, s.valid.unary)
}

// LoadCatalog fills the catalog from the store (at start), first sealing
// any target header value still stored in clear.
func (s *Services) LoadCatalog() error {
	if err := s.sealClearHeaders(context.Background()); err != nil {
		return err
	}
	// A server that starts leading loads it again: what other servers
	// changed meanwhile replaces what it held.
	seen := map[ids.ID]bool{}
	err := s.cfg.Store.AllSubscriptions(func(rec *storev1.SubscriptionRecord) error {
		sub, err := catalog.Prepare(rec, s.keys())
		if err != nil {
			return fmt.Errorf("subscription %s of tenant %q: %w", rec.GetSubscription().GetId(), rec.GetSubscription().GetTenant(), err)
		}
		s.cfg.Catalog.Put(sub)
		seen[sub.ID] = true
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range s.cfg.Catalog.IDs() {
		if !seen[id] {
			s.cfg.Catalog.Remove(id)
		}
	}
	return nil
}

// --- tenants ---

func (s *Services) CreateTenant(ctx context.Context, req *hookwirev1.CreateTenantRequest) (*hookwirev1.Tenant, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	t := &hookwirev1.Tenant{Id: req.GetId(), DisplayName: req.GetDisplayName(), CreateTime: timestamppb.New(s.cfg.Now())}
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: store.AuditGlobal, action: auditTenantCreate, resource: tenantResource(t.GetId()), after: t})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.CreateTenant(ctx, t, audit); err != nil {
		if errors.Is(err, store.ErrTenantPurging) {
			return nil, status.Errorf(codes.FailedPrecondition, "tenant %s was deleted and its deletion is still in progress (its events, deliveries and audit records are being purged); retry the create later", quote(req.GetId()))
		}
		return nil, storeError(err, "tenant "+quote(req.GetId()))
	}
	return t, nil
}

func (s *Services) GetTenant(ctx context.Context, req *hookwirev1.GetTenantRequest) (*hookwirev1.Tenant, error) {
	if err := authorize(ctx, req.GetId(), accessRead); err != nil {
		return nil, err
	}
	t, err := s.cfg.Store.GetTenant(req.GetId())
	return t, storeError(err, "tenant "+quote(req.GetId()))
}

func (s *Services) ListTenants(ctx context.Context, req *hookwirev1.ListTenantsRequest) (*hookwirev1.ListTenantsResponse, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	limit := pageSize(req.GetPageSize())
	list, err := s.cfg.Store.ListTenants(req.GetPageToken(), limit+1)
	if err != nil {
		return nil, storeError(err, "tenants")
	}
	resp := &hookwirev1.ListTenantsResponse{Tenants: list}
	if len(list) > limit {
		resp.Tenants = list[:limit]
		resp.NextPageToken = list[limit-1].GetId()
	}
	return resp, nil
}

func (s *Services) DeleteTenant(ctx context.Context, req *hookwirev1.DeleteTenantRequest) (*emptypb.Empty, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	// A tenant record never changes once created: the one read is the one
	// the deletion removes.
	before, err := s.cfg.Store.GetTenant(req.GetId())
	if err != nil {
		return nil, storeError(err, "tenant "+quote(req.GetId()))
	}
	audit, err := s.auditDeleted(ctx, store.AuditGlobal, auditTenantDelete, tenantResource(req.GetId()), before)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.DeleteTenant(ctx, req.GetId(), s.cfg.Now(), audit); err != nil {
		return nil, storeError(err, "tenant "+quote(req.GetId()))
	}
	// Its events, deliveries, attempts and audit events go in the
	// background (RunTenantPurges); the id is free again once they are gone.
	s.wakeTenantPurges()
	return &emptypb.Empty{}, nil
}

// --- API keys ---

func (s *Services) CreateApiKey(ctx context.Context, req *hookwirev1.CreateApiKeyRequest) (*hookwirev1.ApiKey, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	if _, err := s.cfg.Store.GetTenant(req.GetTenant()); err != nil {
		return nil, storeError(err, "tenant "+quote(req.GetTenant()))
	}
	if exp := req.GetExpireTime(); exp != nil && !exp.AsTime().After(s.cfg.Now()) {
		return nil, status.Error(codes.InvalidArgument, "expire_time is in the past; leave it unset for a key that never expires")
	}
	scope := req.GetScope()
	if scope == hookwirev1.ApiKeyScope_API_KEY_SCOPE_UNSPECIFIED {
		scope = hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN
	}
	id, key, err := newKey()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "generate key: %v", err)
	}
	k := &hookwirev1.ApiKey{Id: id, Tenant: req.GetTenant(), Name: req.GetName(), Scope: scope, CreateTime: timestamppb.New(s.cfg.Now()), ExpireTime: req.GetExpireTime()}
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditAPIKeyCreate, resource: apiKeyResource(req.GetTenant(), id), after: k})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.PutAPIKey(ctx, &storev1.ApiKeyRecord{ApiKey: k, Hash: hashKey(key)}, audit); err != nil {
		return nil, storeError(err, "API key")
	}
	out := proto.Clone(k).(*hookwirev1.ApiKey)
	out.Key = key
	return out, nil
}

func (s *Services) ListApiKeys(ctx context.Context, req *hookwirev1.ListApiKeysRequest) (*hookwirev1.ListApiKeysResponse, error) {
	if err := s.authorizeListing(ctx, req.GetTenant()); err != nil {
		return nil, err
	}
	recs, err := s.cfg.Store.ListAPIKeys(func(r *storev1.ApiKeyRecord) bool { return r.GetApiKey().GetTenant() == req.GetTenant() })
	if err != nil {
		return nil, storeError(err, "API keys")
	}
	resp := &hookwirev1.ListApiKeysResponse{}
	for _, r := range recs {
		resp.ApiKeys = append(resp.ApiKeys, r.GetApiKey())
	}
	return resp, nil
}

func (s *Services) RevokeApiKey(ctx context.Context, req *hookwirev1.RevokeApiKeyRequest) (*emptypb.Empty, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	// A revoke changes only revoked: the snapshot read before the write is
	// the key it revokes.
	rec, err := s.cfg.Store.GetAPIKey(req.GetId())
	if err == nil && rec.GetApiKey().GetTenant() != req.GetTenant() {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, storeError(err, "API key "+quote(req.GetId()))
	}
	before := rec.GetApiKey()
	after := clone(before)
	after.Revoked = true
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditAPIKeyRevoke, resource: apiKeyResource(req.GetTenant(), req.GetId()), before: before, after: after})
	if err != nil {
		return nil, err
	}
	err = s.cfg.Store.RevokeAPIKey(ctx, req.GetTenant(), req.GetId(), audit)
	return &emptypb.Empty{}, storeError(err, "API key "+quote(req.GetId()))
}

// --- subscriptions ---

// secretFields returns the names of transport's secret configuration
// fields.
func (s *Services) secretFields(transport string) []string {
	if s.cfg.SecretFields == nil {
		return nil
	}
	return s.cfg.SecretFields(transport)
}

// setConfig makes config (as a request gives it) the target configuration
// of rec, whose target names its transport: the transport's secret fields
// are sealed (catalog.SetConfig; "<redacted>" keeps a stored value), and
// the target is validated with those values opened.
func (s *Services) setConfig(ctx context.Context, rec *storev1.SubscriptionRecord, keys *secrets.Keyring, config *structpb.Struct) error {
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

func (s *Services) checkTarget(ctx context.Context, t *hookwirev1.Target) error {
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

func (s *Services) CreateSubscription(ctx context.Context, req *hookwirev1.CreateSubscriptionRequest) (*hookwirev1.Subscription, error) {
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

func (s *Services) GetSubscription(ctx context.Context, req *hookwirev1.GetSubscriptionRequest) (*hookwirev1.Subscription, error) {
	if err := authorize(ctx, req.GetTenant(), accessRead); err != nil {
		return nil, err
	}
	rec, err := s.cfg.Store.GetSubscription(req.GetTenant(), req.GetId())
	if err != nil {
		return nil, storeError(err, "subscription "+quote(req.GetId()))
	}
	return s.present(rec.GetSubscription()), nil
}

func (s *Services) ListSubscriptions(ctx context.Context, req *hookwirev1.ListSubscriptionsRequest) (*hookwirev1.ListSubscriptionsResponse, error) {
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
func (s *Services) UpdateSubscription(ctx context.Context, req *hookwirev1.UpdateSubscriptionRequest) (*hookwirev1.Subscription, error) {
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
	return s.changeRecord(withAuditAction(ctx, auditSubscriptionUpdate), req.GetTenant(), in.GetId(), func(r *storev1.SubscriptionRecord, keys *secrets.Keyring) error {
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

// checkUpdate returns the subscription an update would make of cur (with
// the request's header values, not sealed) after checking it: the fields
// that cannot change, then the rules of the proto and the semantic
// checks, reporting only problems in the fields the update changes or
// that cur does not have already; the selector, and a new filter's cost.
// It does no I/O: the target's check by its transport is the caller's.
func (s *Services) checkUpdate(mask *updateMask, cur, in *hookwirev1.Subscription) (*hookwirev1.Subscription, error) {
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

// updateSubscription reads a subscription, lets change decide on a copy
// and stores the copy unless the stored record has changed since it was
// read (then it reads and decides again). audit, if set, builds the audit
// event of the change from the subscription before and after it; it is
// recorded in the same write.
func (s *Services) updateSubscription(ctx context.Context, tenant, id string, change func(*storev1.SubscriptionRecord) error, audit func(before, after *hookwirev1.Subscription) (*hookwirev1.AuditEvent, error)) (*storev1.SubscriptionRecord, error) {
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

// changeSubscription applies change durably and refreshes the catalog.
// A change made with withAuditAction is recorded in the audit log.
func (s *Services) changeSubscription(ctx context.Context, tenant, id string, change func(*hookwirev1.Subscription) error) (*hookwirev1.Subscription, error) {
	return s.changeRecord(ctx, tenant, id, func(r *storev1.SubscriptionRecord, _ *secrets.Keyring) error { return change(r.Subscription) })
}

// changeRecord is changeSubscription for changes that need the stored
// record (sealed header values) and the keyring to seal with, which is
// held until the write is durable (see keyringHolder).
func (s *Services) changeRecord(ctx context.Context, tenant, id string, change func(*storev1.SubscriptionRecord, *secrets.Keyring) error) (*hookwirev1.Subscription, error) {
	var audit func(before, after *hookwirev1.Subscription) (*hookwirev1.AuditEvent, error)
	if action := auditActionFrom(ctx); action != "" {
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

func (s *Services) DeleteSubscription(ctx context.Context, req *hookwirev1.DeleteSubscriptionRequest) (*emptypb.Empty, error) {
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

func (s *Services) PauseSubscription(ctx context.Context, req *hookwirev1.PauseSubscriptionRequest) (*hookwirev1.Subscription, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	return s.changeSubscription(withAuditAction(ctx, auditSubscriptionPause), req.GetTenant(), req.GetId(), func(sub *hookwirev1.Subscription) error {
		sub.Status = hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAUSED
		return nil
	})
}

func (s *Services) ResumeSubscription(ctx context.Context, req *hookwirev1.ResumeSubscriptionRequest) (*hookwirev1.Subscription, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	return s.changeSubscription(withAuditAction(ctx, auditSubscriptionResume), req.GetTenant(), req.GetId(), func(sub *hookwirev1.Subscription) error {
		sub.Status = hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_ENABLED
		sub.DisabledReason = ""
		return nil
	})
}

// present fills a subscription's output-only runtime fields and masks its
// header values and secret config fields (stored masked already; this also
// covers records written before they were sealed).
func (s *Services) present(sub *hookwirev1.Subscription) *hookwirev1.Subscription {
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

// checkFilterCost refuses a filter whose estimated cost is over the
// server's budget (filter.Filter.CheckCost); its error is a
// *filter.CompileError.
func (s *Services) checkFilterCost(expr string) error {
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

// DisableSubscription disables a subscription (410 Gone, or failing for
// too long).
func (s *Services) DisableSubscription(sub *catalog.Sub, reason string) {
	_, err := s.changeSubscription(withAuditAction(context.Background(), auditSubscriptionDisable), sub.Tenant, sub.IDText, func(x *hookwirev1.Subscription) error {
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

// --- events ---

const defaultContentType = "application/json"

func (s *Services) PublishEvent(ctx context.Context, req *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error) {
	if err := authorize(ctx, req.GetTenant(), accessPublish); err != nil {
		return nil, err
	}
	resp, err := s.publish(ctx, req.GetTenant(), []*hookwirev1.Event{req.GetEvent()})
	if err != nil {
		return nil, err
	}
	return resp[0], nil
}

func (s *Services) PublishEvents(ctx context.Context, req *hookwirev1.PublishEventsRequest) (*hookwirev1.PublishEventsResponse, error) {
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

func (s *Services) PublishRawEvent(ctx context.Context, req *hookwirev1.PublishRawEventRequest) (*hookwirev1.PublishEventResponse, error) {
	if err := authorize(ctx, req.GetTenant(), accessPublish); err != nil {
		return nil, err
	}
	ct := req.GetBody().GetContentType()
	if ct == "" {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get(MetadataContentType); len(v) > 0 {
				ct = v[0]
			}
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

func (s *Services) publish(ctx context.Context, tenant string, events []*hookwirev1.Event) ([]*hookwirev1.PublishEventResponse, error) {
	for i, in := range events {
		if strings.HasPrefix(in.GetType(), catalog.OperationalPrefix) {
			return nil, status.Errorf(codes.InvalidArgument, "event %d: type %q: the %q prefix is reserved for events Hookwire publishes itself", i, in.GetType(), catalog.OperationalPrefix)
		}
	}
	if len(events) == 1 && events[0].GetIdempotencyKey() == "" {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get(MetadataIdempotencyKey); len(v) > 0 && v[0] != "" {
				// The header skipped protovalidate: apply the field's limit.
				if len(v[0]) > maxIdempotencyKeyLen {
					return nil, status.Errorf(codes.InvalidArgument, "Idempotency-Key header is %d bytes; the limit is %d", len(v[0]), maxIdempotencyKeyLen)
				}
				events[0].IdempotencyKey = v[0]
			}
		}
	}
	return s.publishInternal(ctx, tenant, events)
}

// publishInternal stores events and their fan-out and hands the deliveries
// to the dispatcher. Operational events come straight here.
func (s *Services) publishInternal(ctx context.Context, tenant string, events []*hookwirev1.Event) ([]*hookwirev1.PublishEventResponse, error) {
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
		match, failed := s.cfg.Catalog.MatchEvent(tenant, filter.NewEvent(ev.GetType(), ct, ev.GetPayload(), ev.GetMetadata()))
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
	if _, err := s.publishInternal(context.Background(), tenant, []*hookwirev1.Event{{Type: eventType, Payload: data}}); err != nil {
		s.cfg.Logger.Error("publish operational event", "tenant", tenant, "type", eventType, "err", err)
	}
}

// SetFailingSince stores when a subscription's failure streak began.
func (s *Services) SetFailingSince(sub *catalog.Sub, since time.Time) {
	_, err := s.changeSubscription(context.Background(), sub.Tenant, sub.IDText, func(x *hookwirev1.Subscription) error {
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

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (len(mt) > 5 && mt[len(mt)-5:] == "+json")
}

// --- deliveries ---

func (s *Services) ListDeliveries(ctx context.Context, req *hookwirev1.ListDeliveriesRequest) (*hookwirev1.ListDeliveriesResponse, error) {
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

func (s *Services) GetDelivery(ctx context.Context, req *hookwirev1.GetDeliveryRequest) (*hookwirev1.Delivery, error) {
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

func (s *Services) ListAttempts(ctx context.Context, req *hookwirev1.ListAttemptsRequest) (*hookwirev1.ListAttemptsResponse, error) {
	if err := authorize(ctx, req.GetTenant(), accessRead); err != nil {
		return nil, err
	}
	list, err := s.cfg.Store.ListAttempts(req.GetTenant(), req.GetDeliveryId())
	if err != nil {
		return nil, storeError(err, "delivery "+quote(req.GetDeliveryId()))
	}
	return &hookwirev1.ListAttemptsResponse{Attempts: list}, nil
}

// --- agents ---

func (s *Services) Connect(stream hookwirev1.AgentService_ConnectServer) error {
	ctx, err := connectAdmission(stream.Context())
	if err != nil {
		return err
	}
	// A join token that expires ends the sessions it admitted at that
	// moment, as revoking it does; the agent's reconnect is then refused.
	var expired error
	if p := principalFrom(ctx); p != nil && p.joinToken.GetExpireTime() != nil {
		t := p.joinToken
		expired = errJoinTokenExpired(t)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, t.GetExpireTime().AsTime().Sub(s.cfg.Now()), expired)
		defer cancel()
	}
	d, err := s.leading()
	if err != nil {
		return err
	}
	err = d.Serve(&admittedStream{AgentService_ConnectServer: stream, ctx: ctx})
	if expired != nil && errors.Is(context.Cause(ctx), expired) {
		return expired
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// --- helpers ---

func pageSize(n int32) int {
	if n <= 0 {
		return 100
	}
	return int(n)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
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

// authorizeListing is authorize for reading a tenant's lists, which must
// also answer NotFound for a tenant that does not exist (an admin could
// otherwise list "nothing" in a tenant id with a typo), with the message a
// caller from another tenant gets.
func (s *Services) authorizeListing(ctx context.Context, tenant string) error {
	if err := authorize(ctx, tenant, accessRead); err != nil {
		return err
	}
	if _, err := s.cfg.Store.GetTenant(tenant); err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", tenant))
	}
	return nil
}
