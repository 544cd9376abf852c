// Package builtin is the registry of transports compiled into the hookwire
// binary. The agent runs each of them as a plugin process by re-executing
// its own binary (`hookwire plugin <name>`, which calls Serve), so built-in
// and third-party transports go through the same plugin host.
//
// It owns only the name → constructor table; the transports live in their
// own packages under plugins/.
package builtin

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	amqptransport "github.com/hookwire/hookwire/plugins/amqp"
	httptransport "github.com/hookwire/hookwire/plugins/http"
	mqtttransport "github.com/hookwire/hookwire/plugins/mqtt"
	natstransport "github.com/hookwire/hookwire/plugins/nats"
	redistransport "github.com/hookwire/hookwire/plugins/redis"
	"github.com/hookwire/hookwire/plugins/sdk"
)

// registry builds each built-in with the egress policy its connections
// are checked against (the http transport's https-only rule is separate:
// see httptransport.Policy).
var registry = map[string]func(sdk.Egress) sdk.Transport{
	httptransport.Name: func(e sdk.Egress) sdk.Transport {
		return httptransport.New(httptransport.WithPolicy(httptransport.Policy{AllowCIDRs: e.AllowCIDRs}))
	},
	natstransport.Name:  func(e sdk.Egress) sdk.Transport { return natstransport.New(natstransport.WithEgress(e)) },
	amqptransport.Name:  func(e sdk.Egress) sdk.Transport { return amqptransport.New(amqptransport.WithEgress(e)) },
	mqtttransport.Name:  func(e sdk.Egress) sdk.Transport { return mqtttransport.New(mqtttransport.WithEgress(e)) },
	redistransport.Name: func(e sdk.Egress) sdk.Transport { return redistransport.New(redistransport.WithEgress(e)) },
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

// secretFields maps each built-in to the config fields its Describe marks
// secret; computed once.
var secretFields = sync.OnceValue(func() map[string][]string {
	out := make(map[string][]string, len(registry))
	for name, newFn := range registry {
		t := newFn(sdk.Egress{})
		info, err := t.Describe(context.Background())
		if err != nil {
			panic(fmt.Sprintf("built-in transport %s: describe: %v", name, err)) // in-process, static: a bug
		}
		out[name] = info.SecretFields()
		if c, ok := t.(io.Closer); ok {
			_ = c.Close() // nothing was opened
		}
	}
	return out
})

// SecretFields returns the names of the target configuration fields the
// named built-in transport declares secret (sdk.Info.SecretFields), which
// the control plane seals, and false if there is no such built-in.
func SecretFields(name string) ([]string, bool) {
	f, ok := secretFields()[name]
	return slices.Clone(f), ok
}

// New returns a new instance of the named built-in transport under the
// agent's egress policy (sdk.AgentEgress; none when unset), and false if
// there is no such built-in.
func New(name string) (sdk.Transport, bool) {
	e, _ := sdk.AgentEgress() // malformed: nothing allowed; Serve refuses it
	return NewWithEgress(name, e)
}

// NewWithEgress returns a new instance of the named built-in transport whose
// connections are checked against e, and false if there is no such
// built-in.
func NewWithEgress(name string, e sdk.Egress) (sdk.Transport, bool) {
	newFn, ok := registry[name]
	if !ok {
		return nil, false
	}
	return newFn(e), true
}

// Serve serves the named built-in transport as a plugin on this process's
// stdio, as the plugin host expects, under the egress policy the agent
// passed in sdk.EgressEnv. It returns an error at once for an unknown name;
// otherwise it returns when the host shuts the plugin down,
// after closing the transport's broker connections if it holds any (the
// transport implements io.Closer). Run by hand (without the host's
// handshake cookie), it explains that the command is meant for the agent
// and exits with status 1.
func Serve(name string) error {
	e, _ := sdk.AgentEgress() // sdk.Serve refuses a malformed one
	return ServeWithEgress(name, e)
}

// ServeWithEgress is Serve with the egress policy e (`hookwire plugin NAME
// --allow-cidr ...`).
func ServeWithEgress(name string, e sdk.Egress) error {
	t, ok := NewWithEgress(name, e)
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
