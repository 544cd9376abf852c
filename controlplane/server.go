// Package controlplane runs Hookwire's control plane: the gRPC API, the REST
// gateway, the bbolt store and the dispatcher that streams assignments to
// agents. It is what `hookwire server` and `hookwire dev` start.
package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/api"
	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/cluster"
	"github.com/hookwire/hookwire/controlplane/internal/dispatch"
	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/metrics"
	"github.com/hookwire/hookwire/controlplane/internal/portal"
	"github.com/hookwire/hookwire/controlplane/internal/retry"
	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	"github.com/hookwire/hookwire/controlplane/internal/tracing"
	"github.com/hookwire/hookwire/controlplane/internal/webui"
	"github.com/hookwire/hookwire/internal/buildinfo"
	// Registers the "vtproto" codec: agents open AgentService.Connect with
	// that content-subtype and gRPC then decodes and encodes the stream
	// with vtprotobuf's generated methods; other calls are unaffected.
	_ "github.com/hookwire/hookwire/plugins/sdk/vtcodec"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/types/known/structpb"
)

// Defaults for Config.
const (
	DefaultGRPCAddr        = "127.0.0.1:7070"
	DefaultHTTPAddr        = "127.0.0.1:8080"
	DefaultMaxPayloadBytes = 1 << 20
	DefaultStatsRetention  = 48 * time.Hour
)

// ErrDataDirInUse is returned by Start when another process holds the data
// directory.
var ErrDataDirInUse = store.ErrInUse

// TargetValidator checks a transport target configuration; see Config.
type TargetValidator func(ctx context.Context, transport string, config *structpb.Struct) (problems []string, known bool, err error)

// Config configures a control plane.
type Config struct {
	// DataDir holds the bbolt file. Required.
	DataDir string
	// GRPCAddr and HTTPAddr are listen addresses; port 0 picks a free port.
	// HTTPAddr "off" disables the REST gateway.
	GRPCAddr, HTTPAddr string
	// MaxPayloadBytes bounds an event payload. Default 1 MiB.
	MaxPayloadBytes int
	// AdminKey, if set, is the admin API key (HOOKWIRE_ADMIN_KEY).
	AdminKey string
	// APIRateLimit is the requests per second each API key may make (token
	// bucket of APIRateBurst); 0: unlimited. Over it: ResourceExhausted /
	// HTTP 429 with Retry-After.
	APIRateLimit float64
	APIRateBurst int
	// PortalURL is the base of the tenant portal's links (scheme and host
	// as customers' browsers reach the REST listener, e.g.
	// "https://hooks.example.com"); empty: CreatePortalSession returns a
	// path ("/portal/<token>") to prefix with that address.
	PortalURL string
	// PortalSessionRate and PortalSessionBurst limit how many portal
	// sessions per second a tenant may create; 0: 5/s, burst 50.
	PortalSessionRate  float64
	PortalSessionBurst int
	// AdminAddr serves /metrics, /debug/pprof/ and /healthz without
	// authentication; "" or "off" disables it. Keep it private.
	AdminAddr string
	// ValidateTarget checks subscription targets; known=false accepts the
	// target unchecked (a transport only agents know).
	ValidateTarget TargetValidator
	// SecretConfigFields names the target configuration fields each
	// transport declares secret (its Describe: sdk.Info.SecretFields). Their
	// values are sealed at rest under the master key, shown only as
	// "<redacted>", and opened only for the agent's assignment. Nil, or nil
	// for a transport: none (its configuration is stored and shown as given).
	SecretConfigFields func(transport string) []string
	Logger             *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
	// Clock, if set, is the clock with timers (tests: a fake clock they
	// move, which fires the dispatcher's timers); it replaces Now.
	Clock Clock
	// FairShareWindow is how long a subscription still counts as active
	// on an agent after its last assignment there, for the agent's fair
	// share between subscriptions (docs/ARCHITECTURE.md, Dispatch).
	// Default DefaultFairShareWindow (10s); negative: fair share off
	// (plain round-robin).
	FairShareWindow time.Duration
	// Listeners bounds the gRPC and REST listeners: body and idle
	// timeouts, idle gRPC connections, a connection cap (listeners.go).
	// Zero fields: defaults.
	Listeners ListenerLimits
	// NoSync disables fsync (tests that measure nothing durable).
	NoSync bool
	// AllowNewStore starts a new, empty store when the data directory
	// held one whose database file is now missing or empty; without it
	// Start refuses (store.ErrMissingStore).
	AllowNewStore bool
	// LeaseGrace is added to an attempt's timeout to form its lease.
	LeaseGrace time.Duration
	// DisableAfter disables a subscription whose attempts have all failed
	// for this long. Default 5 days; negative: never.
	DisableAfter time.Duration
	// Retention is how long events, deliveries and attempts are kept.
	// Default 30 days.
	Retention time.Duration
	// StatsRetention is how long per-minute delivery statistics are kept
	// (StatsService). Default DefaultStatsRetention (48h).
	StatsRetention time.Duration
	// StatsFlushInterval is how often the leader writes the delivery
	// statistics counted in memory to the store; a crash loses at most
	// this much of them. Default 10s.
	StatsFlushInterval time.Duration
	// PurgeInterval is how often expired records are purged. Default 1h.
	PurgeInterval time.Duration
	// AuditRetention is how long audit events are kept. Default 365 days.
	AuditRetention time.Duration
	// Retry overrides the server-wide retry rules (jitter, minimum wait
	// after throttling); zero value: defaults.
	Retry RetryOptions
	// TLS, if set, serves the gRPC and REST listeners over TLS (and mTLS on
	// gRPC with a client CA). Nil: plaintext.
	TLS *TLSConfig
	// HeartbeatInterval is what agents are told to keep; an agent silent
	// for three intervals is marked lost and its stream closed. Default 5s.
	HeartbeatInterval time.Duration
	// MasterKey seals the subscription signing keys at rest. Required;
	// create one with `hookwire keygen --out FILE` (GenerateMasterKeyFile).
	MasterKey *MasterKey
	// PreviousMasterKeys keep keys sealed under earlier master keys
	// readable during a master-key rotation; at start every such key is
	// re-sealed under MasterKey in the background (MasterKeyRotationDone).
	PreviousMasterKeys []*MasterKey
	// Cluster configures the server's place in its Raft cluster; the zero
	// value is a one-server cluster (cluster.go).
	Cluster ClusterConfig
	// TracerProvider, if set (and not a no-op provider), traces publishes
	// and deliveries: a server span per publish RPC continuing an incoming
	// W3C traceparent, and a "deliver <event type>" span per attempt whose
	// context goes to the agent. Nil: tracing off, at no cost (the global
	// provider is not consulted).
	TracerProvider trace.TracerProvider
}

// RetryOptions are the server-wide retry rules.
type RetryOptions = retry.Options

// Clock gives the dispatcher the time and its timers (Config.Clock).
type Clock = dispatch.Clock

// Timer is a pending Clock.AfterFunc call.
type Timer = dispatch.Timer

// DefaultFairShareWindow is Config.FairShareWindow's default.
const DefaultFairShareWindow = dispatch.DefaultFairShareWindow

// DefaultRetryOptions: ±20% jitter, at least a minute after throttling.
func DefaultRetryOptions() RetryOptions { return retry.DefaultOptions() }

// Server is a running control plane.
type Server struct {
	cfg   Config
	svc   *api.Services
	store *store.Store
	// disp is the dispatcher while this server leads (cluster.go lead).
	disp    atomic.Pointer[dispatch.Dispatcher]
	catalog *catalog.Catalog
	tracer  *tracing.Tracer
	node    *cluster.Node
	forward *forwarder
	// clusterGRPC serves the API to other servers' forwarded calls.
	clusterGRPC *grpc.Server
	// started is closed when Start is done with the store (lead waits
	// for it); leadingOnce when this server first leads with its
	// dispatcher running.
	started     chan struct{}
	leadingOnce chan struct{}
	leadOnce    sync.Once
	// restored is signalled after a snapshot restore on this server: the
	// leader's soft state is rebuilt from the replaced store.
	restored chan struct{}
	// catalogLoaded: Start loaded the catalog, the first term need not.
	catalogLoaded atomic.Bool
	grpc          *grpc.Server
	http          *http.Server
	grpcLis       net.Listener
	httpLis       net.Listener
	adminLis      net.Listener
	admin         *http.Server
	metrics       *metrics.ControlPlane
	inproc        *inproc // the REST gateway's channel; nil when it is off
	adminKey      string
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	errs          chan error
	closeOnce     sync.Once
	closing       atomic.Bool // Close has begun
	closeErr      error
	mk            masterKeys
	health        *health.Server
}

// Start opens the store, bootstraps the admin key and starts serving.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("control plane needs a data directory")
	}
	if err := checkPortalURL(cfg.PortalURL); err != nil {
		return nil, err
	}
	if cfg.MasterKey == nil {
		return nil, errors.New("control plane needs a master key to encrypt signing keys: create one with `hookwire keygen --out FILE` and pass it with --master-key-file FILE (or put its contents in " + MasterKeyEnv + ")")
	}
	keyring, err := secrets.NewKeyring(cfg.MasterKey, cfg.PreviousMasterKeys...)
	if err != nil {
		return nil, fmt.Errorf("master keys: %w", err)
	}
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = DefaultGRPCAddr
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	if cfg.MaxPayloadBytes <= 0 {
		cfg.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock != nil {
		cfg.Now = cfg.Clock.Now
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.AuditRetention <= 0 {
		cfg.AuditRetention = 365 * 24 * time.Hour
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = time.Hour
	}
	if cfg.StatsRetention <= 0 {
		cfg.StatsRetention = DefaultStatsRetention
	}
	if cfg.StatsFlushInterval <= 0 {
		cfg.StatsFlushInterval = 10 * time.Second
	}
	var tlsSet *tlsSetup
	if cfg.TLS != nil {
		if tlsSet, err = loadTLS(cfg.TLS); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, errs: make(chan error, 4), started: make(chan struct{}), leadingOnce: make(chan struct{}), restored: make(chan struct{}, 1)}
	s.metrics = s.newMetrics()
	s.initMasterKeys(keyring)
	// The store is the cluster's state machine: its writes are raft log
	// entries, durable once a quorum has them (cluster.go).
	allowNew := cfg.AllowNewStore
	if missingDatabase(cfg.DataDir) && cluster.HasState(cfg.DataDir) {
		// The raft log and snapshots are the durable record: the state
		// machine's file is rebuilt from them.
		cfg.Logger.Warn("the database file is missing; rebuilding it from the raft log and snapshots", "data_dir", cfg.DataDir)
		allowNew = true
	}
	st, err := store.Open(cfg.DataDir, store.Options{Replicated: true, AllowNewStore: allowNew, Logger: cfg.Logger, OnCommit: s.metrics.Commit, OnPropose: s.metrics.Proposed})
	if err != nil {
		return nil, err
	}
	s.store = st
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// The payload limit sets the filters' cost budget (docs/FILTERS.md).
	cat := catalog.New(filter.Limits{MaxPayloadBytes: cfg.MaxPayloadBytes})
	s.catalog = cat
	tracer := tracing.New(cfg.TracerProvider)
	s.tracer = tracer
	var validate api.TargetValidator
	if cfg.ValidateTarget != nil {
		validate = api.TargetValidator(cfg.ValidateTarget)
	}
	svc, err := api.New(api.Config{
		Store: st, Catalog: cat, Logger: cfg.Logger, Now: cfg.Now,
		MaxPayloadBytes: cfg.MaxPayloadBytes, ValidateTarget: validate, SecretFields: cfg.SecretConfigFields,
		Keyring: keyring, Metrics: s.metrics,
		RateLimit: cfg.APIRateLimit, RateBurst: cfg.APIRateBurst,
		PortalURL: cfg.PortalURL, PortalSessionRate: cfg.PortalSessionRate, PortalSessionBurst: cfg.PortalSessionBurst,
	})
	if err != nil {
		return nil, err
	}
	s.svc = svc
	if err := s.startNode(); err != nil {
		return nil, err
	}
	if cfg.Cluster.alone() {
		// A cluster of one elects itself at once; the admin key and a
		// migrated database are in place before anything is served.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := s.waitLeader(wctx); err != nil {
			return nil, err
		}
		if err := s.migrateLegacy(wctx); err != nil {
			return nil, fmt.Errorf("migrate the data directory to a cluster: %w", err)
		}
		if s.adminKey, err = api.EnsureAdminKey(wctx, st, cfg.AdminKey, cfg.Now()); err != nil {
			return nil, fmt.Errorf("bootstrap admin key: %w", err)
		}
		if err := svc.LoadCatalog(); err != nil {
			return nil, fmt.Errorf("load subscriptions: %w", err)
		}
		s.catalogLoaded.Store(true)
		close(s.started)
		if err := s.waitLeading(wctx); err != nil {
			return nil, err
		}
	} else {
		close(s.started)
	}

	msgLimit := max(4*cfg.MaxPayloadBytes, 16<<20)
	rpcm := newRPCMetrics(s.metrics.Registry)
	registerBuildInfo(s.metrics.Registry)
	limits := cfg.Listeners.withDefaults()
	lisMetrics := newListenerMetrics(s.metrics.Registry)
	opts := append(svc.ServerOptions(), grpc.MaxRecvMsgSize(msgLimit))
	opts = append(opts, limits.grpcOptions()...)
	// Outermost: every call is counted, authentication failures too.
	first := []grpc.ServerOption{grpc.ChainUnaryInterceptor(rpcm.unary("grpc")), grpc.ChainStreamInterceptor(rpcm.stream("grpc"))}
	if tracer != nil {
		// Then tracing, so publish spans also cover authentication failures.
		first = append(first, grpc.ChainUnaryInterceptor(tracer.UnaryInterceptor()))
	}
	first = append(first, grpc.ChainUnaryInterceptor(s.forward.unary), grpc.ChainStreamInterceptor(s.forward.stream))
	opts = append(first, opts...)
	// Other servers' forwarded calls: the same services and interceptors,
	// on the cluster port, whose own TLS covers them.
	s.clusterGRPC = grpc.NewServer(opts...)
	svc.Register(s.clusterGRPC)
	svc.RegisterAudit(s.clusterGRPC)
	svc.RegisterStats(s.clusterGRPC)
	svc.RegisterCluster(s.clusterGRPC, s.node, s.noteRestored)
	if tlsSet != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsSet.grpc)))
	}
	s.grpc = grpc.NewServer(opts...)
	svc.Register(s.grpc)
	svc.RegisterAudit(s.grpc)
	svc.RegisterStats(s.grpc)
	svc.RegisterCluster(s.grpc, s.node, s.noteRestored)
	hs := health.NewServer()
	s.health = hs
	healthpb.RegisterHealthServer(s.grpc, hs)
	reflection.Register(s.grpc)

	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen for gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	s.grpcLis = newCapListener(s.grpcLis, "grpc", limits.MaxConnections, cfg.Logger, lisMetrics)
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.goServe(func() error { return s.grpc.Serve(s.grpcLis) })
	clusterLis := s.node.APIListener()
	s.goServe(func() error {
		if err := s.clusterGRPC.Serve(clusterLis); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})

	if cfg.HTTPAddr != "off" {
		// REST calls run in process but through the gRPC server's
		// interceptors, in its order (tracing first).
		unary := svc.UnaryInterceptors()
		if tracer != nil {
			unary = append([]grpc.UnaryServerInterceptor{tracer.UnaryInterceptor()}, unary...)
		}
		unary = append([]grpc.UnaryServerInterceptor{rpcm.unary("rest"), s.forward.unary}, unary...)
		stream := append([]grpc.StreamServerInterceptor{rpcm.stream("rest"), s.forward.stream}, svc.StreamInterceptors()...)
		s.inproc = newInproc(unary, stream)
		svc.Register(s.inproc)
		svc.RegisterAudit(s.inproc)
		svc.RegisterStats(s.inproc)
		svc.RegisterCluster(s.inproc, s.node, s.noteRestored)
		gw, err := newGateway(runCtx, s.inproc.conn, int64(msgLimit))
		if err != nil {
			return nil, err
		}
		// The tenant portal's page (GET /portal/<token>) and its assets;
		// its JSON calls go through the gateway like any other.
		gw = portal.Handler(svc.LookupPortalSession, cfg.Logger, gw)
		if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
		}
		s.httpLis = newCapListener(s.httpLis, "http", limits.MaxConnections, cfg.Logger, lisMetrics)
		if tlsSet != nil {
			s.httpLis = tls.NewListener(s.httpLis, tlsSet.http)
		}
		console := webui.New(webui.Config{Conn: s.inproc.conn, Keyring: s.masterKeyring, Secure: tlsSet != nil})
		s.http = limits.httpServer(console.Wrap(gw))
		s.goServe(func() error {
			if err := s.http.Serve(s.httpLis); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	if err := s.startAdmin(); err != nil {
		return nil, err
	}
	s.goServe(func() error { s.watchHealth(runCtx, hs); return nil }) // SERVING while the store can write
	cfg.Logger.Info("control plane serving", append([]any{"grpc", s.GRPCAddr(), "http", s.HTTPAddr(), "data_dir", cfg.DataDir}, buildinfo.Get().LogAttrs()...)...)
	return s, nil
}

func (s *Server) goServe(fn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(); err != nil {
			s.errs <- err
		}
	}()
}

// GRPCAddr is the address the gRPC API listens on.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the address the REST gateway listens on ("" when off).
func (s *Server) HTTPAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// NewAdminKey is the admin key created by this start, or "" if one existed
// already or was fixed by Config.AdminKey. Print it once.
func (s *Server) NewAdminKey() string { return s.adminKey }

// Tick runs the dispatcher's time-driven work now (lease expiry, due
// retries, rate-limit wake-ups); tests with an injected clock call it after
// moving the clock.
func (s *Server) Tick() {
	if d := s.disp.Load(); d != nil {
		d.Tick()
	}
}

// Err reports the first serving error; Wait on it to notice failures.
func (s *Server) Err() <-chan error { return s.errs }

// Close stops serving, waits for in-flight calls, and closes the store.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		if s.health != nil {
			s.health.Shutdown() // NOT_SERVING from now on
		}
		if d := s.disp.Load(); d != nil {
			d.StopWatches() // REST tails end, so the HTTP shutdown need not wait for them
		}
		for _, hs := range []*http.Server{s.http, s.admin} {
			if hs != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = hs.Shutdown(ctx)
				cancel()
			}
		}
		if d := s.disp.Load(); d != nil {
			d.Shutdown()
			// The statistics counted since the last flush, while this
			// server can still write.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := d.FlushStats(ctx); err != nil {
				s.cfg.Logger.Warn("write the last delivery statistics", "err", err)
			}
			cancel()
		}
		if s.forward != nil {
			s.forward.stopRelays()
		}
		if s.grpc != nil {
			s.grpc.GracefulStop()
		}
		if s.clusterGRPC != nil {
			s.clusterGRPC.Stop() // forwarded streams end; their servers' clients retry
		}
		if s.inproc != nil {
			s.inproc.stop() // REST calls whose HTTP client left early
		}
		if s.cancel != nil {
			s.cancel()
		}
		if s.svc != nil {
			s.svc.Close()
		}
		if s.node != nil {
			s.store.AbortApplies()
			if err := s.node.Shutdown(); err != nil {
				s.cfg.Logger.Warn("cluster node shutdown", "err", err)
			}
		}
		if s.forward != nil {
			s.forward.close()
		}
		s.wg.Wait()
		if s.store != nil {
			s.closeErr = s.store.Close()
		}
	})
	return s.closeErr
}

// purgeLoop removes records older than the retention period.
func (s *Server) purgeLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.PurgeInterval)
	defer t.Stop()
	for {
		s.Purge(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Purge removes events older than the retention period now, with their
// finished deliveries and attempts, and logs what it did and the store's
// size.
func (s *Server) Purge(ctx context.Context) (events, deliveries, attempts int, err error) {
	cutoff := s.cfg.Now().Add(-s.cfg.Retention)
	st, err := s.store.Purge(ctx, cutoff, 200)
	if err != nil && ctx.Err() == nil {
		s.cfg.Logger.Error("purge expired records", "err", err)
	}
	if st.Events > 0 || err != nil {
		s.cfg.Logger.Info("purged expired records", "before", cutoff, "events", st.Events, "deliveries", st.Deliveries, "attempts", st.Attempts, "store_bytes", s.store.Size())
	}
	statsCutoff := s.cfg.Now().Add(-s.cfg.StatsRetention)
	if n, serr := s.store.PurgeStats(ctx, statsCutoff.Unix()/60, 1000); serr != nil && ctx.Err() == nil {
		s.cfg.Logger.Error("purge expired delivery statistics", "err", serr)
	} else if n > 0 {
		s.cfg.Logger.Info("purged expired delivery statistics", "before", statsCutoff, "subscription_minutes", n)
	}
	auditCutoff := s.cfg.Now().Add(-s.cfg.AuditRetention)
	if n, aerr := s.store.PurgeAudit(ctx, auditCutoff, 500); aerr != nil && ctx.Err() == nil {
		s.cfg.Logger.Error("purge expired audit events", "err", aerr)
	} else if n > 0 {
		s.cfg.Logger.Info("purged expired audit events", "before", auditCutoff, "audit_events", n)
	}
	// Expired portal sessions are kept an hour (their page still says
	// "expired" rather than "unknown"), then removed.
	if n, perr := s.store.PurgePortalSessions(ctx, s.cfg.Now().Add(-time.Hour), 500); perr != nil && ctx.Err() == nil {
		s.cfg.Logger.Error("purge expired portal sessions", "err", perr)
	} else if n > 0 {
		s.cfg.Logger.Info("purged expired portal sessions", "portal_sessions", n)
	}
	return st.Events, st.Deliveries, st.Attempts, err
}

// FlushStats writes the delivery statistics counted since the last flush
// to the store now (the leader does every StatsFlushInterval), with a
// sample of the queue; nothing when this server does not lead.
func (s *Server) FlushStats(ctx context.Context) error {
	if d := s.disp.Load(); d != nil {
		return d.FlushStats(ctx)
	}
	return nil
}

// statsLoop flushes the delivery statistics every StatsFlushInterval
// until ctx ends (the term); Close writes the last counts.
func (s *Server) statsLoop(ctx context.Context, d *dispatch.Dispatcher) {
	t := time.NewTicker(s.cfg.StatsFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fctx, cancel := context.WithTimeout(ctx, s.cfg.StatsFlushInterval)
		if err := d.FlushStats(fctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("write delivery statistics (kept for the next flush)", "err", err)
		}
		cancel()
	}
}

// StoreSize reports the store file's size in bytes.
func (s *Server) StoreSize() int64 { return s.store.Size() }

// checkPortalURL checks --portal-url: empty, or an http(s) URL of a host,
// optionally with a path prefix, without credentials, query or fragment.
func checkPortalURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--portal-url %q: give the base URL customers' browsers reach the REST listener at, e.g. https://hooks.example.com", raw)
	}
	return nil
}

// masterKeyring is the current master keyring (it changes on reload); the
// console seals its session cookies with it.
func (s *Server) masterKeyring() *secrets.Keyring {
	s.mk.mu.Lock()
	defer s.mk.mu.Unlock()
	return s.mk.ring
}
