package main

import (
	"os"

	"github.com/hookwire/hookwire/agent/pluginhost"
	"github.com/hookwire/hookwire/plugins/builtin"
	"github.com/spf13/cobra"
)

// newPluginCmd serves a built-in transport as a plugin process. Agents run
// it; people do not, so it is hidden.
func newPluginCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "plugin NAME",
		Short:  "Serve a built-in transport plugin (started by agents)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return builtin.Serve(args[0])
		},
	}
}

// builtinSpecs returns plugin specs that run every built-in transport from
// this binary.
func builtinSpecs() ([]pluginhost.Spec, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, errorf("find the hookwire binary to run built-in plugins: %w", err)
	}
	var specs []pluginhost.Spec
	for _, name := range builtin.Names() {
		specs = append(specs, pluginhost.Spec{Name: name, Command: []string{self, "plugin", name}})
	}
	return specs, nil
}
