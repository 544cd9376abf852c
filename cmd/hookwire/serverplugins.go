package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookwire/hookwire/agent/pluginhost"
	"github.com/hookwire/hookwire/plugins/builtin"
)

// The control plane seals the target configuration fields a transport
// declares secret in its Describe answer (sdk.Info.ConfigFields). It knows
// the built-ins' answers in-process; a third-party transport's it learns
// by running that plugin's Describe once at start, from the same plugin
// directory the agents use (--plugin-dir). A transport it has no answer
// for gets no field sealed: its configuration is stored and shown as
// given, and the start-up log says so for each plugin it could not read.

// serverPluginFlags are `hookwire server`'s --plugin-dir and
// --plugin-sha256 (`hookwire dev` passes its agent's).
type serverPluginFlags struct {
	dir  string
	pins []string
}

func (f *serverPluginFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.dir, "plugin-dir", "", "directory of the third-party transport plugins the agents run (hookwire-transport-<name>): each is started once to read which target config fields it declares secret, which are then encrypted at rest and shown as <redacted>")
	fs.StringSliceVar(&f.pins, "plugin-sha256", nil, "name=HEX: refuse to run plugin <name> from --plugin-dir unless its SHA-256 is HEX (repeatable)")
}

// describeTimeout bounds starting and describing the plugins.
const describeTimeout = 30 * time.Second

// secretConfigFields returns the function that names each transport's
// secret target configuration fields: the built-ins', and those of the
// plugins in f.dir, each started once to answer Describe and then stopped.
func (f serverPluginFlags) secretConfigFields(ctx context.Context, log *slog.Logger) (func(transport string) []string, error) {
	thirdParty, err := f.describe(ctx, log)
	if err != nil {
		return nil, err
	}
	return func(transport string) []string {
		if fields, ok := builtin.SecretFields(transport); ok {
			return fields
		}
		return thirdParty[transport]
	}, nil
}

// describe reads the secret config fields of every plugin in f.dir.
func (f serverPluginFlags) describe(ctx context.Context, log *slog.Logger) (map[string][]string, error) {
	pins, err := parsePins(f.pins)
	if err != nil {
		return nil, err
	}
	if f.dir == "" {
		if len(pins) > 0 {
			return nil, errors.New("--plugin-sha256 pins plugins from --plugin-dir, but no --plugin-dir is set")
		}
		return nil, nil
	}
	found, err := pluginhost.ScanDir(f.dir, pins)
	if err != nil {
		return nil, fmt.Errorf("--plugin-dir: %w", err)
	}
	for _, s := range found.Skipped {
		if s.Name != "" {
			log.Warn("skipping transport plugin: its secret target config fields are not known, so none is sealed", "plugin", s.Name, "path", s.Path, "reason", s.Reason)
		}
	}
	var specs []pluginhost.Spec
	for _, s := range found.Specs {
		if slices.Contains(builtin.Names(), s.Name) {
			return nil, fmt.Errorf("--plugin-dir: %s would replace the built-in %q transport, and built-in transports cannot be replaced; remove or rename it", s.Command[0], s.Name)
		}
		specs = append(specs, s)
	}
	if len(specs) == 0 {
		return nil, nil
	}
	host := pluginhost.New(log)
	defer host.Close()
	ctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	if err := host.Start(ctx, specs); err != nil {
		return nil, fmt.Errorf("--plugin-dir: read the transport plugins' config schemas: %w", err)
	}
	out := make(map[string][]string, len(specs))
	for _, info := range host.Infos() {
		out[info.Name] = info.SecretFields()
		log.Info("transport plugin schema read", "plugin", info.Name, "version", info.Version, "secret_config_fields", fmt.Sprint(info.SecretFields()))
	}
	return out, nil
}
