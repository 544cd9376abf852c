// Package bench is `hookwire bench`: reproducible load scenarios against a
// control plane and agents that it starts as real hookwire processes (or
// against an existing deployment), measured at a loopback sink, next to a
// baseline of what a plain Go HTTP client achieves against the same sink.
//
// Every scenario gets a fresh control plane (own data directory, own
// ports; the cluster scenario, one server and then a raft cluster of
// three on this machine) and its own agents, so scenarios do not disturb each other; all
// processes are killed when the scenario ends, when the run ends, on
// Ctrl-C, and (Pdeathsig) if the bench itself dies.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Scenarios in the order `all` runs them.
var Scenarios = []string{"e2e", "e2e-rest", "latency", "ingest", "fanout", "backlog", "agents", "fairness", "chaos", "cluster"}

// Config sizes a run. Zero durations take each scenario's default.
type Config struct {
	Scenarios []string
	Exe       string // hookwire binary to run as server and agent
	WorkDir   string // parent of the run directory ("" = system temp)
	Keep      bool   // keep data directories and logs
	Progress  io.Writer
	Version   string
	Command   string

	// Existing deployment (remote mode) instead of local processes.
	Server, APIKey, RESTURL string
	SinkListen, SinkURL     string

	// ServerAdminAddr, when set, is passed to every local control plane as
	// --admin-addr (/metrics, /debug/pprof/) so it can be profiled.
	ServerAdminAddr string

	Duration         time.Duration // measured duration of timed scenarios
	Warmup           time.Duration
	BaselineDuration time.Duration
	PayloadSize      int
	MaxInFlight      int

	Agents []int // e2e agent counts

	Rate int // latency: offered events/s

	RESTClients int   // e2e-rest: concurrent REST publishers (and baseline clients)
	RESTPad     int   // e2e-rest: pad bytes in each payload
	RESTRates   []int // e2e-rest: steady open-loop rates after saturation

	IngestClients int
	BatchSize     int

	FanoutSubs   int
	FanoutEvents int
	MatchSubs    int
	MatchWild    float64

	BacklogSize  int
	DrainTimeout time.Duration // 0: 90s + 0.5ms per delivery

	SimAgents int

	ClusterRate  int // cluster: offered events/s during the failovers
	ClusterKills int // cluster: leader kills

	ChaosRate      int
	ChaosAgents    int
	ChaosSubs      int
	ChaosKills     int
	ChaosFaults    []string
	ChaosFaultRate float64
	ChaosSettle    time.Duration
	Seed           int64
}

// Defaults returns the default suite's sizes (well under 10 minutes on 2
// cores).
func Defaults() Config {
	return Config{
		Scenarios:        []string{"all"},
		Warmup:           2 * time.Second,
		BaselineDuration: 5 * time.Second,
		PayloadSize:      256,
		MaxInFlight:      64,
		Agents:           []int{1, 4},
		Rate:             1000,
		RESTClients:      32,
		RESTPad:          100,
		RESTRates:        []int{50, 1000},
		IngestClients:    32,
		BatchSize:        100,
		FanoutSubs:       1000,
		FanoutEvents:     20,
		MatchSubs:        10000,
		MatchWild:        0.5,
		BacklogSize:      100000,
		SimAgents:        1000,
		ClusterRate:      200,
		ClusterKills:     3,
		ChaosRate:        200,
		ChaosAgents:      2,
		ChaosSubs:        2,
		ChaosKills:       3,
		ChaosFaults:      []string{"500", "reset", "429", "hang", "kill-server", "kill-agent", "kill-plugin", "quiet", "disk-full"},
		ChaosFaultRate:   0.1,
		ChaosSettle:      150 * time.Second,
		Seed:             1,
	}
}

// dur returns the configured duration or the scenario's default.
func (c *Config) dur(def time.Duration) time.Duration {
	if c.Duration > 0 {
		return c.Duration
	}
	return def
}

func (c *Config) remote() bool { return c.Server != "" }

// Bench is one run.
type Bench struct {
	cfg    Config
	dir    string
	runID  string
	sink   *Sink
	report *Report
	// achieved e2e rates by agent count, for the backlog drain target.
	e2eRates map[int]float64
	seq      int
}

func (b *Bench) logf(format string, args ...any) {
	if b.cfg.Progress != nil {
		fmt.Fprintf(b.cfg.Progress, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// Run runs the scenarios and returns the report. Scenario failures are
// recorded in the report; the error is for a run that could not start.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	list, err := expand(cfg.Scenarios)
	if err != nil {
		return nil, err
	}
	if cfg.remote() && cfg.APIKey == "" {
		return nil, errors.New("--server needs --api-key")
	}
	if cfg.Exe == "" && !cfg.remote() {
		if cfg.Exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	idb := make([]byte, 4)
	_, _ = rand.Read(idb)
	b := &Bench{cfg: cfg, runID: hex.EncodeToString(idb), e2eRates: map[int]float64{}}
	if b.dir, err = os.MkdirTemp(cfg.WorkDir, "hookwire-bench-"); err != nil {
		return nil, err
	}
	defer func() {
		if cfg.Keep {
			b.logf("kept data and logs in %s", b.dir)
		} else {
			os.RemoveAll(b.dir)
		}
	}()
	listen := cfg.SinkListen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if b.sink, err = startSink(listen, cfg.SinkURL); err != nil {
		return nil, fmt.Errorf("start sink: %w", err)
	}
	defer b.sink.Close()

	mode := "local"
	if cfg.remote() {
		mode = "remote " + cfg.Server
	}
	start := time.Now()
	b.report = &Report{Command: cfg.Command, Started: start, Mode: mode, Machine: machine(cfg.Version)}

	// The baseline comes first; e2e measures its own again right before it
	// runs, so its ratio compares figures taken under the same conditions.
	if _, err := b.baseline(ctx, "run", cfg.MaxInFlight); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}

	for _, name := range list {
		if ctx.Err() != nil {
			break
		}
		switch name {
		case "e2e":
			agents := cfg.Agents
			if cfg.remote() {
				agents = []int{0}
			}
			for _, n := range agents {
				variant := fmt.Sprintf("agents=%d", n)
				if cfg.remote() {
					variant = "the deployment's agents"
				}
				b.runScenario(ctx, "e2e", variant, func(ctx context.Context, s *Scenario) error { return b.e2e(ctx, s, n) })
			}
		case "e2e-rest":
			b.runScenario(ctx, name, "", b.e2eREST)
		case "latency":
			b.runScenario(ctx, name, "", b.latency)
		case "ingest":
			b.runScenario(ctx, name, "", b.ingest)
		case "fanout":
			b.runScenario(ctx, name, "", b.fanout)
		case "backlog":
			b.runScenario(ctx, name, "", b.backlog)
		case "agents":
			b.runScenario(ctx, name, "", b.agents)
		case "fairness":
			b.runScenario(ctx, name, "", b.fairness)
		case "chaos":
			b.runScenario(ctx, name, "", b.chaos)
		case "cluster":
			b.runScenario(ctx, name, "", b.cluster)
		}
	}
	b.report.Seconds = time.Since(start).Seconds()
	b.report.Machine.LoadEnd = loadAvg()
	return b.report, ctx.Err()
}

func expand(names []string) ([]string, error) {
	if len(names) == 0 {
		return Scenarios, nil
	}
	var out []string
	for _, n := range names {
		switch {
		case n == "all":
			out = append(out, Scenarios...)
		case slices.Contains(Scenarios, n):
			out = append(out, n)
		default:
			return nil, fmt.Errorf("unknown scenario %q; choose from all, %s", n, strings.Join(Scenarios, ", "))
		}
	}
	var uniq []string
	for _, n := range out {
		if !slices.Contains(uniq, n) {
			uniq = append(uniq, n)
		}
	}
	return uniq, nil
}

func (b *Bench) runScenario(ctx context.Context, name, variant string, fn func(context.Context, *Scenario) error) {
	s := &Scenario{Name: name, Variant: variant, Params: map[string]any{}}
	b.report.Scenarios = append(b.report.Scenarios, s)
	title := name
	if variant != "" {
		title += " (" + variant + ")"
	}
	b.logf("scenario %s", title)
	start := time.Now()
	err := fn(ctx, s)
	s.Seconds = round(time.Since(start).Seconds())
	if err != nil {
		s.Failed = err.Error()
		b.logf("scenario %s failed: %v", title, err)
	}
}

// tag returns a fresh sink path tag for a scenario and resets the sink.
func (b *Bench) newTag(name string) string {
	b.seq++
	tag := fmt.Sprintf("%s-%s-%d", name, b.runID, b.seq)
	b.sink.reset(tag)
	return tag
}

func machine(version string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), Hookwire: version}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.LoadStart = loadAvg()
	return m
}

func loadAvg() float64 {
	var l float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &l)
	}
	return l
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
