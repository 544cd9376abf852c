package main

// audit command (AuditService).

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// auditActions are the actions the audit log records (for completion).
var auditActions = []string{
	"subscription.*", "subscription.create", "subscription.update", "subscription.delete",
	"subscription.pause", "subscription.resume", "subscription.disable", "subscription.rotate_secret",
	"api_key.*", "api_key.create", "api_key.revoke", "tenant.*", "tenant.create", "tenant.delete",
	"join_token.*", "join_token.create", "join_token.revoke", "agent.drain",
	"delivery.*", "delivery.retry", "delivery.cancel", "delivery.resend", "deliveries.recover",
}

func (c *cli) auditCmd() *cobra.Command {
	cmd := c.noun("audit", "Show who changed what, and when (the audit log)",
		`The audit log records every configuration change: subscriptions, API keys,
tenants, join tokens, agent drains and operator actions on deliveries. Each
record says who made it (API key id and scope; "admin" for the admin key,
"system" when Hookwire made it itself), what, when, on which resource, and the
resource before and after. Secret values are never recorded.

Tenant-admin and read-only keys read their own tenant's log. With the admin
key, --all-tenants (tenant "-") lists every record, including the global
ones: tenant create/delete, join tokens and agent drains. Records are kept
for the server's --audit-retention (default 365 days).`,
		nil, true, c.auditListCmd())
	silence(cmd)
	return cmd
}

func auditActor(a *hookwirev1.AuditActor) string {
	switch {
	case a.GetSystem():
		return "system"
	case a.GetScope() == hookwirev1.ApiKeyScope_API_KEY_SCOPE_ADMIN:
		return a.GetApiKeyId()
	}
	return a.GetApiKeyId() + " (" + enumLabel(a.GetScope().String(), "API_KEY_SCOPE_") + ")"
}

// auditChange names the top-level fields whose values differ between
// before and after, for the table.
func auditChange(ev *hookwirev1.AuditEvent) string {
	before, after := ev.GetBefore().GetFields(), ev.GetAfter().GetFields()
	switch {
	case ev.GetBefore() == nil && ev.GetAfter() == nil:
		return "-"
	case ev.GetBefore() == nil:
		return "created"
	case ev.GetAfter() == nil:
		return "deleted"
	}
	var changed []string
	seen := map[string]bool{}
	for _, fields := range []map[string]*structpb.Value{before, after} {
		for k := range fields {
			if seen[k] || k == "update_time" {
				continue
			}
			seen[k] = true
			if !proto.Equal(before[k], after[k]) {
				changed = append(changed, k)
			}
		}
	}
	if len(changed) == 0 {
		return "-"
	}
	slices.Sort(changed)
	return strings.Join(changed, ",")
}

func (c *cli) auditListCmd() *cobra.Command {
	var (
		p                paging
		action, resource string
		since            time.Duration
		start, end       string
		allTenants       bool
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List audit records, newest first",
		Example: `  hookwire audit list --tenant acme
  hookwire audit list --tenant acme --action subscription.update --since 24h
  hookwire audit list --tenant acme --action 'api_key.*' -o json
  hookwire audit list --tenant acme --resource tenants/acme/subscriptions/sub_01J... -o yaml
  hookwire audit list --all-tenants --action 'join_token.*'       # admin key`,
		Args: c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		if err := p.check(); err != nil {
			return err
		}
		tenant := "-"
		if !allTenants {
			var err error
			if tenant, err = c.tenant(); err != nil {
				return err
			}
		} else if tenantFlag(cmd) != "" {
			return usageErrorf("pass --tenant or --all-tenants, not both")
		}
		req := &hookwirev1.ListAuditEventsRequest{Tenant: tenant, Action: action, Resource: resource}
		var err error
		if req.StartTime, req.EndTime, err = timeRangeFlags(cmd, since, start, end); err != nil {
			return err
		}
		client := hookwirev1.NewAuditServiceClient(c.conn)
		list, next, err := collect(&p, func(size int32, token string) ([]*hookwirev1.AuditEvent, string, error) {
			ctx, cancel := c.call(cmd)
			defer cancel()
			req.PageSize, req.PageToken = size, token
			resp, err := client.ListAuditEvents(ctx, req)
			return resp.GetAuditEvents(), resp.GetNextPageToken(), err
		})
		if err != nil {
			return hintFor(err, codes.PermissionDenied, "publish-only keys cannot read the audit log, and --all-tenants needs the admin key")
		}
		return emitList(c, cmd, "audit_events", list, next, func(w io.Writer) error {
			if len(list) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No audit records match.")
				return nil
			}
			header := []string{"TIME", "ACTION", "RESOURCE", "ACTOR", "CHANGED"}
			if allTenants {
				header = append([]string{"TENANT"}, header...)
			}
			t := newTable(w, header...)
			for _, ev := range list {
				row := []string{ev.GetTime().AsTime().Local().Format(time.RFC3339), ev.GetAction(), ev.GetResource(), auditActor(ev.GetActor()), auditChange(ev)}
				if allTenants {
					row = append([]string{ev.GetTenant()}, row...)
				}
				t.row(row...)
			}
			if err := t.flush(); err != nil {
				return err
			}
			moreHint(cmd, next)
			return nil
		})
	})
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&action, "action", "", `only this action, e.g. subscription.update, or "subscription.*" for all on a kind`)
	f.StringVar(&resource, "resource", "", "only records on this resource or under it, e.g. tenants/acme/subscriptions/sub_01J...")
	f.DurationVar(&since, "since", 0, "only records from this long ago or later, e.g. 24h (not with --start)")
	f.StringVar(&start, "start", "", "only records at or after this time, RFC 3339")
	f.StringVar(&end, "end", "", "only records before this time, RFC 3339")
	f.BoolVar(&allTenants, "all-tenants", false, "every tenant's records and the global ones (admin key; not with --tenant)")
	p.register(f, "records")
	_ = cmd.RegisterFlagCompletionFunc("action", fixedCompletion(auditActions...))
	return cmd
}
