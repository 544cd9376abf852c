package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/hookwire/hookwire/cmd/hookwire/internal/bench"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	cfg := bench.Defaults()
	var output, jsonFile string
	cmd := &cobra.Command{
		Use:   "bench [scenario...]",
		Short: "Run reproducible load scenarios and report throughput, latency, CPU and memory",
		Long: `Run benchmark scenarios and print a table per scenario (or JSON with -o json).

Scenarios: all (default), ` + strings.Join(bench.Scenarios, ", ") + `.

By default everything runs locally: the control plane and agents are started
as hookwire processes (this binary), the agents run the http plugin, and a
loopback sink inside the bench receives the webhooks. Each scenario gets a
fresh control plane. Every run first measures a baseline: a plain Go HTTP
client posting the same payloads to the same sink with the same concurrency.

Against an existing deployment: --server ADDR --api-key KEY [--rest-url URL]
--sink-listen ADDR --sink-url URL (reachable from its agents). Process
restarts, CPU and memory are then not measured.

Progress goes to stderr; the report to stdout.`,
		Example: `  hookwire bench                         # the default suite
  hookwire bench e2e latency -o json
  hookwire bench e2e-rest                # single-event REST publishes, 32 clients
  hookwire bench backlog --backlog-size 1000000
  hookwire bench chaos --duration 10m
  hookwire bench cluster                 # 3 servers on this machine vs 1, leader failover`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				cfg.Scenarios = args
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: use table or json", output)
			}
			for _, f := range cfg.ChaosFaults {
				ok := false
				for _, n := range bench.ChaosFaultNames {
					ok = ok || f == n
				}
				if !ok {
					return fmt.Errorf("--chaos-faults %q: choose from %s", f, strings.Join(bench.ChaosFaultNames, ","))
				}
			}
			cfg.Progress = cmd.ErrOrStderr()
			cfg.Version = version
			cfg.Command = strings.Join(os.Args, " ")
			rep, err := bench.Run(cmd.Context(), cfg)
			if rep != nil && jsonFile != "" {
				f, ferr := os.Create(jsonFile)
				if ferr != nil {
					return ferr
				}
				werr := rep.WriteJSON(f)
				if cerr := f.Close(); werr == nil {
					werr = cerr
				}
				if werr != nil {
					return werr
				}
			}
			if rep != nil {
				if output == "json" {
					if werr := rep.WriteJSON(cmd.OutOrStdout()); werr != nil {
						return werr
					}
				} else {
					rep.WriteTable(cmd.OutOrStdout())
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "table", "output format: table or json")
	f.StringVar(&jsonFile, "json-file", "", "also write the JSON report to this file")
	f.StringVar(&cfg.Server, "server", "", "target an existing control plane at this gRPC address (or several servers of one cluster, comma-separated) instead of starting one")
	f.StringVar(&cfg.APIKey, "api-key", "", "admin API key of --server")
	f.StringVar(&cfg.RESTURL, "rest-url", "", "REST base URL of --server (for the REST ingest mode and e2e-rest)")
	f.StringVar(&cfg.SinkListen, "sink-listen", "127.0.0.1:0", "listen address of the bench's sink")
	f.StringVar(&cfg.SinkURL, "sink-url", "", "base URL of the sink as the agents reach it (default http://<sink-listen>)")
	f.StringVar(&cfg.WorkDir, "work-dir", "", "directory for data directories and logs (default: system temp)")
	f.StringVar(&cfg.ServerAdminAddr, "server-admin-addr", "", "pass --admin-addr to the local control planes, to profile them at http://ADDR/debug/pprof/ (e.g. 127.0.0.1:9464; one scenario at a time)")
	f.BoolVar(&cfg.Keep, "keep", false, "keep data directories and process logs")
	f.DurationVar(&cfg.Duration, "duration", 0, "measured duration of each timed scenario (default per scenario: e2e 15s, e2e-rest 15s saturated and 10s per steady rate, cluster 15s saturated per cluster size, latency 20s, ingest 10s per mode, agents 20s idle window, chaos 60s soak)")
	f.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "load before measuring (e2e, e2e-rest, latency; ingest and e2e-rest's steady rates use at most 1s and 2s)")
	f.DurationVar(&cfg.BaselineDuration, "baseline-duration", cfg.BaselineDuration, "duration of the closed-loop baseline")
	f.IntVar(&cfg.PayloadSize, "payload-size", cfg.PayloadSize, "event payload size in bytes")
	f.IntVar(&cfg.MaxInFlight, "max-in-flight", cfg.MaxInFlight, "deliveries per agent at once (also the baseline's concurrency per agent)")
	f.IntSliceVar(&cfg.Agents, "agents", cfg.Agents, "e2e: agent counts to run with")
	f.IntVar(&cfg.Rate, "rate", cfg.Rate, "latency: offered events per second (open loop)")
	f.IntVar(&cfg.RESTClients, "rest-clients", cfg.RESTClients, "e2e-rest: concurrent clients publishing one event per REST request (also the baseline's plain clients)")
	f.IntVar(&cfg.RESTPad, "rest-pad", cfg.RESTPad, "e2e-rest: bytes of padding in each event's JSON payload")
	f.IntSliceVar(&cfg.RESTRates, "rest-rates", cfg.RESTRates, "e2e-rest: steady open-loop rates (events/s) measured after the saturation phase, for CPU per event and publish latency (0 for none)")
	f.IntVar(&cfg.IngestClients, "ingest-clients", cfg.IngestClients, "ingest: concurrent clients for single-event publishes (batches use a quarter)")
	f.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "ingest: events per PublishEvents call")
	f.IntVar(&cfg.FanoutSubs, "fanout-subs", cfg.FanoutSubs, "fanout: subscriptions matching one event")
	f.IntVar(&cfg.FanoutEvents, "fanout-events", cfg.FanoutEvents, "fanout: events published")
	f.IntVar(&cfg.MatchSubs, "match-subs", cfg.MatchSubs, "fanout: subscriptions in the tenant for the matching cost")
	f.Float64Var(&cfg.MatchWild, "match-wildcard-share", cfg.MatchWild, "fanout: share of those subscriptions that use a \"*\" pattern")
	f.IntVar(&cfg.BacklogSize, "backlog-size", cfg.BacklogSize, "backlog: pending deliveries (the target is stated for 1000000)")
	f.DurationVar(&cfg.DrainTimeout, "backlog-drain-timeout", 0, "backlog: longest wait for the drain (default 90s + 0.5ms per delivery); the rate is reported either way")
	f.IntVar(&cfg.SimAgents, "sim-agents", cfg.SimAgents, "agents: simulated agent streams")
	f.IntVar(&cfg.ClusterRate, "cluster-rate", cfg.ClusterRate, "cluster: offered events per second (open loop, each retried until acknowledged) while the leader is killed")
	f.IntVar(&cfg.ClusterKills, "cluster-kills", cfg.ClusterKills, "cluster: SIGKILLs of the leader, each followed by a restart of the killed server (0: no failover phase)")
	f.IntVar(&cfg.ChaosRate, "chaos-rate", cfg.ChaosRate, "chaos: offered events per second")
	f.IntVar(&cfg.ChaosAgents, "chaos-agents", cfg.ChaosAgents, "chaos: agent processes")
	f.IntVar(&cfg.ChaosSubs, "chaos-subs", cfg.ChaosSubs, "chaos: subscriptions (each gets every event)")
	f.IntVar(&cfg.ChaosKills, "chaos-kills", cfg.ChaosKills, "chaos: SIGKILLs of the control plane, of agents, and of agents' transport plugins, each")
	f.StringSliceVar(&cfg.ChaosFaults, "chaos-faults", cfg.ChaosFaults, "chaos: faults to inject ("+strings.Join(bench.ChaosFaultNames, ",")+"); disk-full needs root to mount a tmpfs, else it is skipped")
	f.Float64Var(&cfg.ChaosFaultRate, "chaos-fault-rate", cfg.ChaosFaultRate, "chaos: share of webhooks the sink fails (once each)")
	f.DurationVar(&cfg.ChaosSettle, "chaos-settle", cfg.ChaosSettle, "chaos: longest wait for quiescence after the load")
	f.Int64Var(&cfg.Seed, "seed", cfg.Seed, "chaos: random seed for kill times and faults")
	return cmd
}
