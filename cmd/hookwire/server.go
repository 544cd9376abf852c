package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/plugins/builtin"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/structpb"
)

type serverFlags struct {
	dataDir         string
	grpcAddr        string
	httpAddr        string
	maxPayloadBytes int
	adminAddr       string
	retention       time.Duration
	auditRetention  time.Duration
	statsRetention  time.Duration
	disableAfter    time.Duration
	throttleMin     time.Duration
	fairShareWindow time.Duration
	apiRateLimit    float64
	apiRateBurst    int
	portalURL       string
	allowNewStore   bool
	limits          controlplane.ListenerLimits
	cluster         controlplane.ClusterConfig
	raftSegmentMiB  int
}

func (f *serverFlags) register(fs *pflag.FlagSet, defaultDir string) {
	fs.StringVar(&f.dataDir, "data-dir", defaultDir, "directory for the bbolt store")
	fs.StringVar(&f.grpcAddr, "grpc-addr", controlplane.DefaultGRPCAddr, "gRPC API listen address (agents connect here)")
	fs.StringVar(&f.httpAddr, "http-addr", controlplane.DefaultHTTPAddr, `REST gateway listen address ("off" to disable)`)
	fs.IntVar(&f.maxPayloadBytes, "max-payload-bytes", controlplane.DefaultMaxPayloadBytes, "largest event payload accepted, in bytes")
	fs.StringVar(&f.adminAddr, "admin-addr", "", "serve /metrics, /debug/pprof/, /healthz (liveness) and /readyz (readiness) here, unauthenticated (e.g. 127.0.0.1:9464; empty: off)")
	fs.DurationVar(&f.retention, "retention", 30*24*time.Hour, "keep events, deliveries and attempts this long")
	fs.DurationVar(&f.auditRetention, "audit-retention", 365*24*time.Hour, "keep audit log records (configuration changes) this long")
	fs.DurationVar(&f.statsRetention, "stats-retention", controlplane.DefaultStatsRetention, "keep per-minute delivery statistics (GET /v1/tenants/{tenant}/stats, hookwire stats) this long; older minutes are dropped")
	fs.DurationVar(&f.disableAfter, "disable-after", 5*24*time.Hour, "disable a subscription whose attempts all failed for this long (negative: never)")
	fs.DurationVar(&f.throttleMin, "throttle-min", time.Minute, "least wait after a 429/502/503/504 or a timeout")
	fs.DurationVar(&f.fairShareWindow, "fair-share-window", 10*time.Second, "a subscription counts as active on an agent for this long after its last assignment there; active subscriptions share the agent's slots fairly (0: the default; negative: fair share off, plain round-robin)")
	fs.Float64Var(&f.apiRateLimit, "api-rate-limit", 0, "API requests per second allowed per API key, over which calls get ResourceExhausted / HTTP 429 with Retry-After (0: unlimited)")
	fs.IntVar(&f.apiRateBurst, "api-rate-burst", 0, "burst above --api-rate-limit (default: the rate, at least 1)")
	fs.StringVar(&f.portalURL, "portal-url", "", `base URL of the tenant portal's links, as customers' browsers reach the REST listener (e.g. "https://hooks.example.com"; empty: portal sessions return the path "/portal/<token>")`)
	fs.DurationVar(&f.limits.HTTPBodyTimeout, "http-body-timeout", 60*time.Second, "longest a REST client may take to send a request body")
	fs.DurationVar(&f.limits.HTTPIdleTimeout, "http-idle-timeout", 120*time.Second, "close a keep-alive REST connection idle this long")
	fs.DurationVar(&f.limits.GRPCMaxConnectionIdle, "grpc-max-connection-idle", 5*time.Minute, "close a gRPC connection with no call open for this long (clients reconnect by themselves)")
	fs.IntVar(&f.limits.MaxConnections, "max-connections", 0, "open connections allowed per listener (gRPC, REST); more are closed at once and logged (0: a third of the open-file limit, 64 to 16384)")
	fs.BoolVar(&f.allowNewStore, "allow-new-store", false, "start a new, empty store when --data-dir held one whose hookwire.db and raft log are both missing (without it the server refuses to start; the old store's data is gone). A missing hookwire.db alone is rebuilt from the raft log")
	fs.StringVar(&f.cluster.NodeID, "node-id", "", "this server's id in the cluster, for good (default: generated on first start and kept in the data directory)")
	fs.StringVar(&f.cluster.Addr, "cluster-addr", "", "cluster listen address (host:port) for raft, joins and calls forwarded to the leader; required with --join or --bootstrap-expect (default: a free loopback port, for a one-server cluster)")
	fs.StringVar(&f.cluster.Advertise, "cluster-advertise", "", "cluster address the other servers dial, if not --cluster-addr")
	fs.IntVar(&f.cluster.BootstrapExpect, "bootstrap-expect", 0, "number of servers that form a new cluster: fresh servers wait until they have found this many (via --join), then elect a leader (0 with --join: join an existing cluster; neither: a one-server cluster)")
	fs.StringSliceVar(&f.cluster.Join, "join", nil, "cluster address of another server to find or join (repeatable, or comma-separated)")
	fs.StringVar(&f.cluster.CertFile, "cluster-tls-cert", "", "PEM certificate for cluster traffic (mutual TLS; required off loopback): valid for the advertised host, with server and client auth usages")
	fs.StringVar(&f.cluster.KeyFile, "cluster-tls-key", "", "PEM private key of --cluster-tls-cert")
	fs.StringVar(&f.cluster.CAFile, "cluster-tls-ca", "", "PEM CA bundle that signs every server's cluster certificate")
	fs.Uint64Var(&f.cluster.SnapshotThreshold, "raft-snapshot-threshold", 32768, "take a raft snapshot (and truncate the log) after this many new log entries")
	fs.DurationVar(&f.cluster.SnapshotInterval, "raft-snapshot-interval", 60*time.Second, "how often to check --raft-snapshot-threshold (each check waits a random time between this and twice this)")
	fs.Uint64Var(&f.cluster.TrailingLogs, "raft-trailing-logs", 32768, "log entries kept after a snapshot: a server that falls further behind catches up from a snapshot instead")
	fs.IntVar(&f.raftSegmentMiB, "raft-log-segment-mib", 0, "size of the raft log's segment files in MiB, each preallocated; a truncated log is dropped a whole file at a time (0: 64, or 1/64 of a smaller disk)")
}

// serverGCPercent is the control plane's GOGC unless the environment sets
// one. Its live heap is small (tens of MiB) and every request allocates:
// collecting at three times the live heap instead of twice costs that
// much memory again and saves about half of the collector's CPU
// (docs/OPERATIONS.md, "Memory").
const serverGCPercent = 200

// tuneGC applies serverGCPercent when GOGC is not set.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
}

func (f *serverFlags) clusterConfig() controlplane.ClusterConfig {
	c := f.cluster
	c.LogSegmentSize = f.raftSegmentMiB << 20
	return c
}

func (f *serverFlags) config(log *slog.Logger, adminKey string) controlplane.Config {
	return controlplane.Config{
		DataDir:         f.dataDir,
		GRPCAddr:        f.grpcAddr,
		HTTPAddr:        f.httpAddr,
		MaxPayloadBytes: f.maxPayloadBytes,
		AdminAddr:       f.adminAddr,
		APIRateLimit:    f.apiRateLimit,
		APIRateBurst:    f.apiRateBurst,
		PortalURL:       f.portalURL,
		Retention:       f.retention,
		AuditRetention:  f.auditRetention,
		StatsRetention:  f.statsRetention,
		DisableAfter:    f.disableAfter,
		FairShareWindow: f.fairShareWindow,
		Retry:           f.retryOptions(),
		AdminKey:        adminKey,
		Logger:          log,
		ValidateTarget:  validateBuiltinTarget,
		// Built-ins only; the commands add --plugin-dir's plugins.
		SecretConfigFields: builtinSecretFields,
		AllowNewStore:      f.allowNewStore,
		Listeners:          f.limits,
		Cluster:            f.clusterConfig(),
	}
}

func (f *serverFlags) retryOptions() controlplane.RetryOptions {
	o := controlplane.DefaultRetryOptions()
	o.ThrottleMin = f.throttleMin
	return o
}

// builtinSecretFields names the secret target config fields of the
// built-in transports.
func builtinSecretFields(transport string) []string {
	fields, _ := builtin.SecretFields(transport)
	return fields
}

// validateBuiltinTarget checks targets of built-in transports in-process;
// other transports are checked by the agents that host them.
func validateBuiltinTarget(ctx context.Context, transport string, config *structpb.Struct) ([]string, bool, error) {
	t, ok := builtin.New(transport)
	if !ok {
		return nil, false, nil
	}
	problems, err := t.Validate(ctx, config)
	return problems, true, err
}

func newServerCmd() *cobra.Command {
	var sf serverFlags
	var lf logFlags
	var mf masterKeyFlags
	var tf serverTLSFlags
	var pf serverPluginFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (gRPC API, REST gateway, store, dispatcher)",
		Long: `Run the control plane. Agents connect to --grpc-addr; producers publish over
gRPC or REST. On first start an admin API key is created and printed once;
set HOOKWIRE_ADMIN_KEY to choose it instead.

Configuration: every flag may also come from the environment as
HOOKWIRE_SERVER_<FLAG> (upper case, '-' as '_'; lists comma-separated), e.g.
HOOKWIRE_SERVER_DATA_DIR=/var/lib/hookwire, or from a YAML or JSON file given
with --config (or HOOKWIRE_SERVER_CONFIG) whose keys are flag names:

  data-dir: /var/lib/hookwire
  grpc-addr: 0.0.0.0:7070
  master-key-file: /etc/hookwire/master.key
  retention: 720h

A flag on the command line beats the environment, which beats the file. An
unknown key in the file is an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := lf.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg := sf.config(log, os.Getenv("HOOKWIRE_ADMIN_KEY"))
			if cfg.TLS, err = tf.config(log, sf.grpcAddr, sf.httpAddr); err != nil {
				return err
			}
			if cfg.SecretConfigFields, err = pf.secretConfigFields(cmd.Context(), log); err != nil {
				return err
			}
			if cfg.MasterKey, cfg.PreviousMasterKeys, err = mf.load(); err != nil {
				return err
			}
			for _, p := range mf.missing {
				log.Info("previous master key file not found; skipped", "file", p)
			}
			tp, stopTracing, err := setupTracing(cmd.Context(), log, "hookwire-server", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer stopTracing() // after srv.Close: the last spans are flushed
			cfg.TracerProvider = tp
			tuneGC()
			srv, err := controlplane.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if key := srv.NewAdminKey(); key != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Admin API key (shown once, store it now): %s\n", key)
			}
			scheme := "http"
			if cfg.TLS != nil {
				scheme = "https"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gRPC %s  REST %s://%s\n", srv.GRPCAddr(), scheme, srv.HTTPAddr())
			// SIGHUP re-reads the master key files (online rotation).
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for {
				select {
				case <-cmd.Context().Done():
					return srv.Close()
				case err := <-srv.Err():
					srv.Close()
					return err
				case <-hup:
					reloadMasterKeys(log, &mf, srv)
				}
			}
		},
	}
	sf.register(cmd.Flags(), "hookwire-data")
	lf.register(cmd.Flags())
	mf.register(cmd.Flags())
	tf.register(cmd.Flags())
	pf.register(cmd.Flags())
	configurable(cmd, serverEnvPrefix, nil)
	return cmd
}

// reloadMasterKeys re-reads the master key files and hands them to the
// running server, which re-seals every signing key under the current one in
// the background. A configuration it cannot use (an unreadable file, or one
// dropping a key that stored signing keys still need) is logged and the
// keys in use stay as they were.
func reloadMasterKeys(log *slog.Logger, mf *masterKeyFlags, srv *controlplane.Server) {
	if mf.file == "" {
		log.Warn("SIGHUP: the current master key comes from " + controlplane.MasterKeyEnv + ", which a running process cannot re-read; only --previous-master-key-file files are re-read. Use --master-key-file to rotate without a restart")
	}
	current, previous, err := mf.load()
	for _, p := range mf.missing {
		log.Info("SIGHUP: previous master key file not found; skipped", "file", p)
	}
	if err == nil {
		err = srv.ReloadMasterKeys(current, previous...)
	}
	if err != nil {
		log.Error("SIGHUP: master keys not reloaded; the server keeps its current ones", "err", err)
		return
	}
	st := srv.MasterKeyStatus()
	log.Info("SIGHUP: master keys reloaded", "master_key", st.CurrentID, "previous_master_keys", strings.Join(st.PreviousIDs, ","), "resealing", st.Resealing)
}

// serverTLSFlags are `hookwire server`'s TLS flags.
type serverTLSFlags struct {
	cert, key, clientCA string
	allowPlaintext      bool
}

func (f *serverTLSFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", "", "PEM server certificate (chain) for the gRPC and REST listeners")
	fs.StringVar(&f.key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.clientCA, "tls-client-ca", "", "PEM CA bundle: the gRPC listener then requires client certificates signed by it (mTLS for agents)")
	fs.BoolVar(&f.allowPlaintext, "insecure-allow-plaintext", false, "serve without TLS on a non-loopback address (API keys and payloads travel in clear)")
}

// config returns the TLS configuration, or nil for plaintext, which is
// refused on a non-loopback address unless --insecure-allow-plaintext.
func (f *serverTLSFlags) config(log *slog.Logger, addrs ...string) (*controlplane.TLSConfig, error) {
	if f.cert == "" && f.key == "" {
		if f.clientCA != "" {
			return nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key: mTLS runs over TLS")
		}
		if f.allowPlaintext {
			warnPlaintext(log, addrs...)
			return nil, nil
		}
		return nil, checkPlaintext(addrs...)
	}
	if f.cert == "" || f.key == "" {
		return nil, errors.New("TLS needs both --tls-cert and --tls-key")
	}
	return &controlplane.TLSConfig{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.clientCA}, nil
}

// checkPlaintext refuses plaintext listeners reachable from other hosts.
func checkPlaintext(addrs ...string) error {
	if bad := nonLoopback(addrs); len(bad) > 0 {
		return fmt.Errorf("refusing to serve without TLS on non-loopback address %s: pass --tls-cert and --tls-key (and --tls-client-ca for mTLS), listen on 127.0.0.1, or accept the risk with --insecure-allow-plaintext", bad[0])
	}
	return nil
}

// warnPlaintext warns when a plaintext listener is reachable from other
// hosts.
func warnPlaintext(log *slog.Logger, addrs ...string) {
	for _, a := range nonLoopback(addrs) {
		log.Warn("listening without TLS on a non-loopback address; API keys and payloads travel in clear", "addr", a)
	}
}

// nonLoopback returns the listen addresses reachable from other hosts
// ("off" and unparsable ones aside; an empty host means all interfaces).
func nonLoopback(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			continue
		}
		out = append(out, a)
	}
	return out
}
