package main

// Shell completion of ids from the control plane. Each asks the server once
// with a short deadline; any failure just completes nothing.

import (
	"context"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/metadata"
)

const completionTimeout = 2 * time.Second

// completionCall dials for a completion and returns a context for one call.
func (c *cli) completionCall(cmd *cobra.Command) (context.Context, func(), bool) {
	if err := c.dial(cmd); err != nil {
		return nil, nil, false
	}
	ctx := context.Background()
	if key := c.settings.apiKey.value; key != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	return ctx, func() {
		cancel()
		c.conn.Close()
		c.conn = nil
	}, true
}

// completeTenants completes --tenant (needs the admin key).
func (c *cli) completeTenants(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	ctx, done, ok := c.completionCall(cmd)
	if !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer done()
	resp, err := hookwirev1.NewTenantServiceClient(c.conn).ListTenants(ctx, &hookwirev1.ListTenantsRequest{PageSize: maxPageSize})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(resp.GetTenants()))
	for _, t := range resp.GetTenants() {
		out = append(out, t.GetId()+"\t"+t.GetDisplayName())
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeTenantArg completes the ID argument of tenants get/delete.
func (c *cli) completeTenantArg(cmd *cobra.Command, args []string, s string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return c.completeTenants(cmd, args, s)
}

// completeSubscriptions completes a subscription id of the resolved tenant.
func (c *cli) completeSubscriptions(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if cmd.Flags().Lookup("subscription") == nil && len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, done, ok := c.completionCall(cmd)
	if !ok || c.settings.tenant.value == "" {
		if ok {
			done()
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer done()
	resp, err := hookwirev1.NewSubscriptionServiceClient(c.conn).ListSubscriptions(ctx, &hookwirev1.ListSubscriptionsRequest{Tenant: c.settings.tenant.value, PageSize: maxPageSize})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(resp.GetSubscriptions()))
	for _, s := range resp.GetSubscriptions() {
		desc := s.GetDescription()
		if desc == "" {
			desc = targetSummary(s.GetTarget())
		}
		out = append(out, s.GetId()+"\t"+desc)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
