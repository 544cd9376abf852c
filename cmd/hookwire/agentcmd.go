package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/hookwire/hookwire/agent"
	"github.com/hookwire/hookwire/agent/pluginhost"
	"github.com/hookwire/hookwire/plugins/builtin"
	httptransport "github.com/hookwire/hookwire/plugins/http"
	"github.com/hookwire/hookwire/plugins/sdk"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

type agentFlags struct {
	server      string
	apiKey      string
	id          string
	labels      []string
	maxInFlight int
	// tls is set by `hookwire agent`'s --tls-* flags (zero: plaintext).
	tls agent.TLSFiles

	pluginDir         string
	pluginPins        []string
	allowCIDRs        []string
	allowInsecureHTTP bool
	metricsAddr       string
	pprof             bool

	// dev is set by `hookwire dev`: every transport may then also connect
	// to loopback addresses (127.0.0.0/8, ::1), and the http transport
	// deliver over plain http, so a receiver or broker on localhost works.
	// It is not a flag.
	dev bool

	// wrapTransports, when set (by `hookwire listen`), wraps the hosted
	// transports the agent delivers through. It is not a flag.
	wrapTransports func(agent.TransportSource) agent.TransportSource

	// tracerProvider, when set (OTEL_* environment, see setupTracing),
	// traces the agent's attempts. It is not a flag.
	tracerProvider trace.TracerProvider
}

func (f *agentFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.id, "id", "", "agent id, stable across restarts (default: hostname plus a random suffix)")
	fs.StringSliceVar(&f.labels, "label", nil, "label key=value for agent selectors (repeatable)")
	fs.IntVar(&f.maxInFlight, "max-in-flight", agent.DefaultMaxInFlight, "deliveries this agent runs at once")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve the agent's Prometheus /metrics here, unauthenticated (e.g. 127.0.0.1:9465; empty: off)")
	fs.BoolVar(&f.pprof, "pprof", false, "also serve Go's /debug/pprof/ profiles of the agent process on --metrics-addr (unauthenticated: keep that address private)")
	fs.StringVar(&f.pluginDir, "plugin-dir", "", "directory of third-party transport plugins: each executable named hookwire-transport-<name> serves transport <name>")
	fs.StringSliceVar(&f.pluginPins, "plugin-sha256", nil, "name=HEX: refuse to run plugin <name> from --plugin-dir unless its SHA-256 is HEX (repeatable)")
	fs.StringSliceVar(&f.allowCIDRs, "allow-cidr", nil, "network every transport (built-in or plugin) may connect to although it is loopback, private, link-local... e.g. 10.20.0.0/16 (repeatable)")
	fs.BoolVar(&f.allowInsecureHTTP, "allow-insecure-http", false, "let the http transport deliver to plain http:// URLs (default: https only)")
}

func parseLabels(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: expected key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// egressPolicy is the egress policy from the flags, widened by the dev
// policy under `hookwire dev`: its networks apply to every transport, and
// AllowInsecureHTTP to the http transport.
func (f *agentFlags) egressPolicy() (httptransport.Policy, error) {
	cidrs, err := sdk.ParseCIDRs(f.allowCIDRs)
	if err != nil {
		return httptransport.Policy{}, fmt.Errorf("--allow-cidr: %w", err)
	}
	p := httptransport.Policy{AllowInsecureHTTP: f.allowInsecureHTTP, AllowCIDRs: cidrs}
	if f.dev {
		dev := httptransport.DevPolicy()
		p.AllowInsecureHTTP = true
		p.AllowCIDRs = append(p.AllowCIDRs, dev.AllowCIDRs...)
	}
	return p, nil
}

// parsePins reads --plugin-sha256 name=HEX values.
func parsePins(list []string) (map[string]string, error) {
	pins := make(map[string]string, len(list))
	for _, kv := range list {
		name, sum, ok := strings.Cut(kv, "=")
		if !ok || name == "" || sum == "" {
			return nil, fmt.Errorf("--plugin-sha256 %q: expected name=HEX, e.g. file=$(sha256sum hookwire-transport-file | cut -d' ' -f1)", kv)
		}
		if _, dup := pins[name]; dup {
			return nil, fmt.Errorf("--plugin-sha256: plugin %q is pinned twice", name)
		}
		pins[name] = sum
	}
	return pins, nil
}

// pluginSpecs returns the specs of the built-in transports plus those
// discovered in --plugin-dir, and checks the pins. A discovered plugin may
// not take a built-in's name.
func pluginSpecs(log *slog.Logger, f agentFlags, egress httptransport.Policy) ([]pluginhost.Spec, error) {
	specs, err := builtinSpecs(egress)
	if err != nil {
		return nil, err
	}
	pins, err := parsePins(f.pluginPins)
	if err != nil {
		return nil, err
	}
	for name := range pins {
		if slices.Contains(builtin.Names(), name) {
			return nil, fmt.Errorf("--plugin-sha256 %s=...: %q is built into hookwire, not a plugin from --plugin-dir; verify the hookwire binary itself instead", name, name)
		}
	}
	if f.pluginDir == "" {
		if len(pins) > 0 {
			return nil, errors.New("--plugin-sha256 pins plugins from --plugin-dir, but no --plugin-dir is set")
		}
		return specs, nil
	}

	found, err := pluginhost.ScanDir(f.pluginDir, pins)
	if err != nil {
		return nil, fmt.Errorf("--plugin-dir: %w", err)
	}
	for _, s := range found.Skipped {
		if s.Name != "" {
			log.Warn("skipping transport plugin", "plugin", s.Name, "path", s.Path, "reason", s.Reason)
		} else {
			log.Debug("skipping file in plugin directory", "path", s.Path, "reason", s.Reason)
		}
	}
	for _, s := range found.Specs {
		if slices.Contains(builtin.Names(), s.Name) {
			return nil, fmt.Errorf("--plugin-dir: %s would replace the built-in %q transport, and built-in transports cannot be replaced; remove or rename it (e.g. %s%s-custom, used by subscriptions as %q)",
				s.Command[0], s.Name, pluginhost.PluginPrefix, s.Name, s.Name+"-custom")
		}
		log.Info("transport plugin discovered", "plugin", s.Name, "path", s.Command[0], "pinned", s.SHA256 != "")
	}
	return append(specs, withEgressEnv(found.Specs, egress)...), nil
}

// runAgent starts the built-in plugins and those in --plugin-dir, and runs
// an agent until ctx ends. `hookwire dev` calls it with f.dev set.
func runAgent(ctx context.Context, log *slog.Logger, f agentFlags) error {
	if f.pprof && f.metricsAddr == "" {
		return errors.New("--pprof serves the profiles on --metrics-addr, which is not set; add e.g. --metrics-addr 127.0.0.1:9465")
	}
	labels, err := parseLabels(f.labels)
	if err != nil {
		return err
	}
	egress, err := f.egressPolicy()
	if err != nil {
		return err
	}
	specs, err := pluginSpecs(log, f, egress)
	if err != nil {
		return err
	}
	log.Info("egress policy", "allow_cidrs", fmt.Sprint(egress.AllowCIDRs), "http_https_only", !egress.AllowInsecureHTTP)
	host := pluginhost.New(log)
	defer host.Close()
	// Plugins outlive ctx: on SIGTERM the agent drains through them first,
	// and the deferred Close stops them after Run returns.
	if err := host.Start(context.WithoutCancel(ctx), specs); err != nil {
		return fmt.Errorf("start transport plugins: %w", err)
	}
	var transports agent.TransportSource = host
	if f.wrapTransports != nil {
		transports = f.wrapTransports(host)
	}
	var dial []grpc.DialOption
	if f.tls != (agent.TLSFiles{}) {
		opt, err := f.tls.DialOption()
		if err != nil {
			return err
		}
		dial = append(dial, opt)
	}
	a, err := agent.New(agent.Config{
		DialOptions: dial,
		ServerAddr:  f.server,
		APIKey:      f.apiKey,
		AgentID:     f.id,
		Labels:      labels,
		MaxInFlight: f.maxInFlight,
		Transports:  transports,
		Logger:      log,
		Version:     version,

		TracerProvider: f.tracerProvider,
	})
	if err != nil {
		return err
	}
	if f.metricsAddr != "" {
		stop, err := serveMetrics(f.metricsAddr, agent.NewMetrics(a, host.Restarts), f.pprof)
		if err != nil {
			return err
		}
		defer stop()
	}
	return a.Run(ctx)
}

// serveMetrics serves reg's /metrics on addr, and with withPprof the
// process's /debug/pprof/ profiles, until stop is called.
func serveMetrics(addr string, reg *prometheus.Registry, withPprof bool) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}

func newAgentCmd() *cobra.Command {
	var af agentFlags
	var lf logFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a delivery agent that dials out to the control plane",
		Long: `Run a delivery agent. It connects out to the control plane (no inbound port
needed), hosts the transport plugins, and delivers what it is assigned.
The API key may also come from HOOKWIRE_API_KEY.

Transports: the built-ins, plus every executable named hookwire-transport-<name>
in --plugin-dir (pin each with --plugin-sha256 <name>=<hex>).

Egress: no transport connects to loopback, private, link-local (cloud
metadata), CGNAT, multicast or other internal addresses, checked at connect
time after DNS: not http, nats, amqp, mqtt or redis, and not a plugin that
dials through the SDK (the agent gives every plugin its policy in
HOOKWIRE_EGRESS_ALLOW_CIDRS). A refused target's attempts are REJECTED with a
message naming the --allow-cidr that would allow it. --allow-cidr opens a
network (e.g. --allow-cidr 10.20.0.0/16 for targets inside this network, or
--allow-cidr 127.0.0.1/32 for a broker on this host). The http transport also
delivers only to https:// URLs unless --allow-insecure-http.

Configuration: every flag may also come from the environment as
HOOKWIRE_AGENT_<FLAG> (upper case, '-' as '_'; lists comma-separated), e.g.
HOOKWIRE_AGENT_SERVER=cp:7070 HOOKWIRE_AGENT_LABEL=region=eu,tier=edge, or from
a YAML or JSON file given with --config (or HOOKWIRE_AGENT_CONFIG) whose keys
are flag names:

  server: cp:7070
  label: [region=eu, tier=edge]
  max-in-flight: 128
  allow-cidr: [10.20.0.0/16]
  log-level: debug

A flag on the command line beats the environment, which beats the file. An
unknown key in the file is an error. The API key is read from --api-key, then
HOOKWIRE_AGENT_API_KEY, then HOOKWIRE_API_KEY, then the file's api-key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, set := os.LookupEnv("GOGC"); !set {
				// The agent's live heap is small and its allocation rate
				// high: GOGC=400 cut its CPU per delivery by about 14% for
				// about 18 MiB more memory (docs/BENCHMARKS.md). GOGC in
				// the environment overrides it (and reaches the plugins,
				// which default to 400 too: sdk.Serve).
				debug.SetGCPercent(400)
			}
			log, err := lf.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if af.apiKey == "" {
				return fmt.Errorf("no API key: pass --api-key, set HOOKWIRE_API_KEY or put api-key in the --config file (the admin key printed by the server, or a join token from CreateJoinToken)")
			}
			tp, stopTracing, err := setupTracing(cmd.Context(), log, "hookwire-agent", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer stopTracing()
			af.tracerProvider = tp
			return runAgent(cmd.Context(), log, af)
		},
	}
	cmd.Flags().StringVar(&af.server, "server", "127.0.0.1:7070", "control plane gRPC address, or several servers of one cluster comma-separated (tried in order; the agent moves to the next when one fails)")
	cmd.Flags().StringVar(&af.apiKey, "api-key", "", "admin API key or join token hwj_... (default $HOOKWIRE_API_KEY)")
	cmd.Flags().StringVar(&af.tls.CAFile, "tls-ca", "", "connect over TLS, verifying the control plane against this PEM CA bundle")
	cmd.Flags().StringVar(&af.tls.CertFile, "tls-cert", "", "PEM client certificate for mTLS (with --tls-key)")
	cmd.Flags().StringVar(&af.tls.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	cmd.Flags().StringVar(&af.tls.ServerName, "tls-server-name", "", "name expected in the control plane's certificate (default: the host of --server)")
	af.register(cmd.Flags())
	lf.register(cmd.Flags())
	configurable(cmd, agentEnvPrefix, map[string]string{"api-key": "HOOKWIRE_API_KEY"})
	return cmd
}
