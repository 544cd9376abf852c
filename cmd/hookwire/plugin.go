package main

import (
	"os"

	"github.com/hookwire/hookwire/agent/pluginhost"
	"github.com/hookwire/hookwire/plugins/builtin"
	httptransport "github.com/hookwire/hookwire/plugins/http"
	"github.com/hookwire/hookwire/plugins/sdk"
	"github.com/spf13/cobra"
)

// Flags of `hookwire plugin http` that carry the agent's egress policy into
// the plugin process (see httpPolicyArgs).
const (
	flagAllowCIDR         = "allow-cidr"
	flagAllowInsecureHTTP = "allow-insecure-http"
)

// newPluginCmd serves a built-in transport as a plugin process. Agents run
// it; people do not, so it is hidden.
//
// The http transport takes its egress policy as arguments
// (--allow-cidr CIDR, repeatable, and --allow-insecure-http), which the
// agent builds from its own flags; without them it delivers only to https
// targets outside the denied ranges.
func newPluginCmd() *cobra.Command {
	var allowCIDRs []string
	var allowInsecure bool
	cmd := &cobra.Command{
		Use:    "plugin NAME",
		Short:  "Serve a built-in transport plugin (started by agents)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != httptransport.Name {
				if cmd.Flags().Changed(flagAllowCIDR) || cmd.Flags().Changed(flagAllowInsecureHTTP) {
					return errorf("--%s and --%s apply only to the %s transport, not %q",
						flagAllowCIDR, flagAllowInsecureHTTP, httptransport.Name, args[0])
				}
				return builtin.Serve(args[0])
			}
			cidrs, err := httptransport.ParseCIDRs(allowCIDRs)
			if err != nil {
				return errorf("--%s: %w", flagAllowCIDR, err)
			}
			sdk.Serve(httptransport.New(httptransport.WithPolicy(httptransport.Policy{
				AllowInsecureHTTP: allowInsecure,
				AllowCIDRs:        cidrs,
			})))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&allowCIDRs, flagAllowCIDR, nil, "network the http transport may reach despite the deny list (repeatable)")
	cmd.Flags().BoolVar(&allowInsecure, flagAllowInsecureHTTP, false, "let the http transport deliver to plain http:// URLs")
	return cmd
}

// builtinSpecs returns plugin specs that run every built-in transport from
// this binary, passing egress to the http transport as arguments.
func builtinSpecs(egress httptransport.Policy) ([]pluginhost.Spec, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, errorf("find the hookwire binary to run built-in plugins: %w", err)
	}
	var specs []pluginhost.Spec
	for _, name := range builtin.Names() {
		command := []string{self, "plugin", name}
		if name == httptransport.Name {
			command = append(command, httpPolicyArgs(egress)...)
		}
		specs = append(specs, pluginhost.Spec{Name: name, Command: command})
	}
	return specs, nil
}

// httpPolicyArgs are the `hookwire plugin http` arguments for p.
func httpPolicyArgs(p httptransport.Policy) []string {
	var args []string
	for _, c := range p.AllowCIDRs {
		args = append(args, "--"+flagAllowCIDR+"="+c.String())
	}
	if p.AllowInsecureHTTP {
		args = append(args, "--"+flagAllowInsecureHTTP)
	}
	return args
}
