package sdk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
)

// Serve serves t as a Hookwire transport plugin over go-plugin gRPC. Call it
// from the plugin binary's main; it returns only when the host shuts the
// plugin down. A user who runs the binary directly gets a short explanation
// and exit status 1.
//
// If the agent that started the plugin dies without shutting it down (for
// example killed with SIGKILL), the plugin notices within a second and
// exits, so no orphaned plugin processes are left behind.
//
// The agent passes its egress policy in EgressEnv; Serve refuses to start
// (exit status 1) when that does not parse. Transports that connect where a
// subscription says should do so through a Dialer built from AgentEgress.
//
// With the environment variable HOOKWIRE_PLUGIN_CPUPROFILE set to a
// directory (CPUProfileEnv), the plugin records a Go CPU profile of its
// whole life and writes it there as <transport>-<pid>.cpu.pprof when the
// host shuts it down (or it finds itself orphaned); a process killed with
// SIGKILL writes nothing.
func Serve(t Transport) {
	stderr := os.Stderr // go-plugin redirects os.Stderr once serving
	if _, err := AgentEgress(); err != nil {
		// Running with a policy nobody can read would guard the wrong
		// networks: refuse to start, and the agent logs why.
		fmt.Fprintf(stderr, "hookwire transport plugin: the agent's egress policy: %v\n", err)
		os.Exit(1)
	}
	setDefaultGC(os.LookupEnv)
	stopProfile := startCPUProfile(t, stderr)
	go watchParent(os.Getppid(), os.Getppid, time.Second, func() {
		fmt.Fprintln(stderr, "hookwire transport plugin: the agent that started it has exited; stopping")
		stopProfile()
		os.Exit(3)
	})
	plugin.Serve(ServeConfig(t))
	stopProfile()
}

// gcPercent is the garbage collector's target (GOGC) in a plugin process
// whose environment does not set GOGC. A plugin's live heap is small (a few
// MiB: the requests in flight and the connection pool), so the default of
// 100 collects very often under load; at 400 a busy http plugin used about
// 19% less CPU per delivery for about 12 MiB more memory, and an idle one
// no more memory (docs/BENCHMARKS.md). GOGC in the environment (the agent passes its own
// to its plugins) overrides it, GOGC=100 restoring Go's default.
const gcPercent = 400

// setDefaultGC applies gcPercent unless the environment sets GOGC.
func setDefaultGC(lookupEnv func(string) (string, bool)) {
	if _, set := lookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}

// CPUProfileEnv names the environment variable that makes Serve write a CPU
// profile of the plugin process into the directory it names.
const CPUProfileEnv = "HOOKWIRE_PLUGIN_CPUPROFILE"

// startCPUProfile starts the CPU profile CPUProfileEnv asks for and returns
// the function that stops and writes it (a no-op when none was asked for or
// it could not start; problems are reported on stderr, never fatal).
func startCPUProfile(t Transport, stderr *os.File) (stop func()) {
	dir := os.Getenv(CPUProfileEnv)
	if dir == "" {
		return func() {}
	}
	name := "plugin"
	if info, err := t.Describe(context.Background()); err == nil && info.Name != "" {
		name = info.Name
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.cpu.pprof", filepath.Base(name), os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "hookwire transport plugin: %s: cannot create the CPU profile: %v\n", CPUProfileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "hookwire transport plugin: %s: cannot start the CPU profile: %v\n", CPUProfileEnv, err)
		_ = f.Close()
		return func() {}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintf(stderr, "hookwire transport plugin: write the CPU profile %s: %v\n", path, err)
			}
		})
	}
}

// watchParent calls orphaned once the process's parent is no longer parent
// (the OS re-parents orphans), checking every interval. It does nothing for
// a process started by init, whose parent cannot change.
func watchParent(parent int, getppid func() int, every time.Duration, orphaned func()) {
	if parent <= 1 {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for range tick.C {
		if getppid() != parent {
			orphaned()
			return
		}
	}
}

// ServeConfig returns the go-plugin configuration Serve uses. Tests and
// special hosts can adjust it before calling plugin.Serve, for example by
// setting Test to serve in-process and obtain a reattach configuration.
func ServeConfig(t Transport) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: VersionedPlugins(t),
		GRPCServer:       plugin.DefaultGRPCServer,
	}
}
