package main

import (
	"os"
	"slices"

	"github.com/hookwire/hookwire/agent/pluginhost"
	"github.com/hookwire/hookwire/plugins/builtin"
	httptransport "github.com/hookwire/hookwire/plugins/http"
	"github.com/hookwire/hookwire/plugins/sdk"
	"github.com/spf13/cobra"
)

// Flags of `hookwire plugin NAME` that carry the agent's egress policy into
// the plugin process (see policyArgs).
const (
	flagAllowCIDR         = "allow-cidr"
	flagAllowInsecureHTTP = "allow-insecure-http"
)

// newPluginCmd serves a built-in transport as a plugin process. Agents run
// it; people do not, so it is hidden.
//
// Every built-in takes the agent's egress policy as arguments: --allow-cidr
// CIDR (repeatable) for the networks its connections may reach despite the
// deny list, and for the http transport also --allow-insecure-http. Without
// --allow-cidr the networks come from the environment (sdk.EgressEnv, which
// the agent also sets for every plugin); without either, none.
func newPluginCmd() *cobra.Command {
	var allowCIDRs []string
	var allowInsecure bool
	cmd := &cobra.Command{
		Use:    "plugin NAME",
		Short:  "Serve a built-in transport plugin (started by agents)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if name != httptransport.Name && cmd.Flags().Changed(flagAllowInsecureHTTP) {
				return errorf("--%s applies only to the %s transport, not %q", flagAllowInsecureHTTP, httptransport.Name, name)
			}
			egress, err := sdk.AgentEgress()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed(flagAllowCIDR) {
				cidrs, err := sdk.ParseCIDRs(allowCIDRs)
				if err != nil {
					return errorf("--%s: %w", flagAllowCIDR, err)
				}
				egress = sdk.Egress{AllowCIDRs: cidrs}
			}
			if name != httptransport.Name {
				return builtin.ServeWithEgress(name, egress)
			}
			sdk.Serve(httptransport.New(httptransport.WithPolicy(httptransport.Policy{
				AllowInsecureHTTP: allowInsecure,
				AllowCIDRs:        egress.AllowCIDRs,
			})))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&allowCIDRs, flagAllowCIDR, nil, "network the transport may connect to despite the deny list (repeatable)")
	cmd.Flags().BoolVar(&allowInsecure, flagAllowInsecureHTTP, false, "let the http transport deliver to plain http:// URLs")
	return cmd
}

// builtinSpecs returns plugin specs that run every built-in transport from
// this binary, passing egress to each as arguments (see policyArgs) and,
// like to every plugin, in the environment (sdk.EgressEnv).
func builtinSpecs(egress httptransport.Policy) ([]pluginhost.Spec, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, errorf("find the hookwire binary to run built-in plugins: %w", err)
	}
	var specs []pluginhost.Spec
	for _, name := range builtin.Names() {
		command := append([]string{self, "plugin", name}, policyArgs(name, egress)...)
		specs = append(specs, pluginhost.Spec{Name: name, Command: command, Env: egressEnv(egress)})
	}
	return specs, nil
}

// policyArgs are the `hookwire plugin NAME` arguments for p: the allowed
// networks for every transport, and plain http for the http transport.
func policyArgs(name string, p httptransport.Policy) []string {
	var args []string
	for _, c := range p.AllowCIDRs {
		args = append(args, "--"+flagAllowCIDR+"="+c.String())
	}
	if p.AllowInsecureHTTP && name == httptransport.Name {
		args = append(args, "--"+flagAllowInsecureHTTP)
	}
	return args
}

// egressEnv is the environment that gives a plugin process the agent's
// egress policy (sdk.EgressEnv). It is set even when nothing is allowed, so
// a value in the agent's own environment cannot widen the policy.
func egressEnv(p httptransport.Policy) []string {
	return []string{p.Egress().Environ()}
}

// withEgressEnv returns the specs with the egress environment added to
// each one's own.
func withEgressEnv(specs []pluginhost.Spec, p httptransport.Policy) []pluginhost.Spec {
	out := make([]pluginhost.Spec, len(specs))
	for i, s := range specs {
		s.Env = append(slices.Clip(s.Env), egressEnv(p)...)
		out[i] = s
	}
	return out
}
