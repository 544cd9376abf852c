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
	"io"
	"os"
	"slices"
	"strings"

	amqptransport "github.com/hookwire/hookwire/plugins/amqp"
	httptransport "github.com/hookwire/hookwire/plugins/http"
	mqtttransport "github.com/hookwire/hookwire/plugins/mqtt"
	natstransport "github.com/hookwire/hookwire/plugins/nats"
	redistransport "github.com/hookwire/hookwire/plugins/redis"
	"github.com/hookwire/hookwire/plugins/sdk"
)

var registry = map[string]func() sdk.Transport{
	httptransport.Name:  func() sdk.Transport { return httptransport.New() },
	natstransport.Name:  func() sdk.Transport { return natstransport.New() },
	amqptransport.Name:  func() sdk.Transport { return amqptransport.New() },
	mqtttransport.Name:  func() sdk.Transport { return mqtttransport.New() },
	redistransport.Name: func() sdk.Transport { return redistransport.New() },
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
// unknown name; otherwise it returns when the host shuts the plugin down,
// after closing the transport's broker connections if it holds any (the
// transport implements io.Closer). Run by hand (without the host's
// handshake cookie), it explains that the command is meant for the agent
// and exits with status 1.
func Serve(name string) error {
	t, ok := New(name)
	if !ok {
		return fmt.Errorf("no built-in transport named %q (built-ins: %s)", name, strings.Join(Names(), ", "))
	}
	sdk.Serve(t)
	if c, ok := t.(io.Closer); ok {
		if err := c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "hookwire transport plugin %s: close: %v\n", name, err)
		}
	}
	return nil
}
