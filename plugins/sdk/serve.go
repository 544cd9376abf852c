package sdk

import (
	"fmt"
	"os"
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
func Serve(t Transport) {
	stderr := os.Stderr // go-plugin redirects os.Stderr once serving
	go watchParent(os.Getppid(), os.Getppid, time.Second, func() {
		fmt.Fprintln(stderr, "hookwire transport plugin: the agent that started it has exited; stopping")
		os.Exit(3)
	})
	plugin.Serve(ServeConfig(t))
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
