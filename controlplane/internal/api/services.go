// Package api implements the control plane's gRPC services: request
// validation, authentication and tenant isolation, and the translation
// between API messages and the store, catalog and dispatcher. It maps
// errors to gRPC codes; nothing below it knows about gRPC.
package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/dispatch"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/metrics"
	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
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

// Services holds what the control plane's gRPC services share (the
// store, the catalog, the master keyring, the running dispatcher, request
// validation, rate limits, background work, logger and metrics) and the
// entry points the server calls: registration, interceptors, catalog
// loading, leadership changes (SetDispatcher) and the dispatcher's
// callbacks (DisableSubscription, SetFailingSince, Emit).
//
// Each gRPC service is a type of its own that embeds *Services:
//   - tenantService (tenants.go), apiKeyService (apikeys.go),
//     subscriptionService (subscriptions.go, rotate.go), eventService
//     (events.go), deliveryService (deliveries.go, operations.go,
//     tail.go) and agentService (agentstream.go), registered by Register;
//   - agentAdmin (agents.go), auditService (audit.go) and clusterService
//     (cluster.go), registered by RegisterAgentAdmin, RegisterAudit and
//     RegisterCluster, and statsService (stats.go) by RegisterStats.
type Services struct {
	cfg   Config
	auth  *authenticator
	valid *validator
	limit *keyLimiter
	// keyring is the master keyring (swapped by an online rotation).
	keyring keyringHolder
	// Background work (recovers) runs under bgCtx; Close cancels and waits.
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
	// tenantPurgeWake wakes RunTenantPurges after a tenant deletion.
	tenantPurgeWake chan struct{}
	// disp is the running dispatcher, nil while this server does not lead
	// (leader.go).
	disp atomic.Pointer[dispatch.Dispatcher]

	// The services, made once: a server registers them on several
	// listeners, which must share their state (operations, filter
	// failure reports).
	tenants       *tenantService
	apiKeys       *apiKeyService
	subscriptions *subscriptionService
	events        *eventService
	deliveries    *deliveryService
	agents        *agentService
	agentAdmin    *agentAdmin
	audit         *auditService
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
		bgCtx: bgCtx, bgCancel: cancel, keyring: keyringHolder{ring: cfg.Keyring},
		tenantPurgeWake: make(chan struct{}, 1)}
	s.tenants = &tenantService{Services: s}
	s.apiKeys = &apiKeyService{Services: s}
	s.subscriptions = &subscriptionService{Services: s}
	s.events = &eventService{Services: s}
	s.deliveries = &deliveryService{Services: s, ops: newOperations()}
	s.agents = &agentService{Services: s}
	s.agentAdmin = &agentAdmin{Services: s}
	s.audit = &auditService{Services: s}
	s.SetDispatcher(cfg.Dispatcher)
	return s, nil
}

// Register adds TenantService, ApiKeyService, SubscriptionService,
// EventService, DeliveryService, AgentService and AgentAdminService to g.
func (s *Services) Register(g grpc.ServiceRegistrar) {
	hookwirev1.RegisterTenantServiceServer(g, s.tenants)
	hookwirev1.RegisterApiKeyServiceServer(g, s.apiKeys)
	hookwirev1.RegisterSubscriptionServiceServer(g, s.subscriptions)
	hookwirev1.RegisterEventServiceServer(g, s.events)
	hookwirev1.RegisterDeliveryServiceServer(g, s.deliveries)
	hookwirev1.RegisterAgentServiceServer(g, s.agents)
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

// secretFields returns the names of transport's secret configuration
// fields.
func (s *Services) secretFields(transport string) []string {
	if s.cfg.SecretFields == nil {
		return nil
	}
	return s.cfg.SecretFields(transport)
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
