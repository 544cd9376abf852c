// Package builtin is the registry of transports compiled into the hookwire
// binary. The agent runs each of them as a plugin process by re-executing
// its own binary (`hookwire plugin <name>`, which calls Serve), so built-in
// and third-party transports go through the same plugin host.
//
// It owns only the name → constructor table; the transports live in their
// own packages under plugins/.
package builtin

import (
	"fmt"
	"slices"
	"strings"

	httptransport "github.com/hookwire/hookwire/plugins/http"
	"github.com/hookwire/hookwire/plugins/sdk"
)

var registry = map[string]func() sdk.Transport{
	httptransport.Name: func() sdk.Transport { return httptransport.New() },
}

// Names returns the built-in transport names, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// New returns a new instance of the named built-in transport, and false if
// there is no such built-in.
func New(name string) (sdk.Transport, bool) {
	newFn, ok := registry[name]
	if !ok {
		return nil, false
	}
	return newFn(), true
}

// Serve serves the named built-in transport as a plugin on this process's
// stdio, as the plugin host expects. It returns an error at once for an
// unknown name; otherwise it returns when the host shuts the plugin down.
// Run by hand (without the host's handshake cookie), it explains that the
// command is meant for the agent and exits with status 1.
func Serve(name string) error {
	t, ok := New(name)
	if !ok {
		return fmt.Errorf("no built-in transport named %q (built-ins: %s)", name, strings.Join(Names(), ", "))
	}
	sdk.Serve(t)
	return nil
}
