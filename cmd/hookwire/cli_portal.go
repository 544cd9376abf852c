package main

// Client commands of the tenant portal: event types (the catalog the portal
// offers), portal settings and portal sessions. See docs/PORTAL.md.

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

func (c *cli) eventTypesCmd() *cobra.Command {
	return c.noun("event-types", "Manage a tenant's event catalog (the types the portal offers)",
		`The event catalog describes the event types a tenant publishes: a name
(e.g. order.created), a description and an example payload. The tenant portal
offers these types to customers, and sends the example as a test event. The
catalog documents; it does not restrict what may be published.`,
		[]string{"event-type", "types"}, true,
		c.eventTypesCreateCmd(), c.eventTypesListCmd(), c.eventTypesUpdateCmd(), c.eventTypesDeleteCmd())
}

func eventTypeView(et *hookwirev1.EventType) func(io.Writer) error {
	return func(w io.Writer) error {
		f := newFields(w)
		f.add("Name", et.GetName())
		f.add("Tenant", et.GetTenant())
		f.add("Description", dash(et.GetDescription()))
		f.add("Deprecated", fmt.Sprint(et.GetDeprecated()))
		f.add("Example", dash(et.GetExamplePayload()))
		f.add("Updated", stamp(et.GetUpdateTime()))
		return f.flush()
	}
}

// examplePayload reads --example (JSON text, or @FILE).
func examplePayload(v string) (string, error) {
	if name, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(name)
		if err != nil {
			return "", usageErrorf("--example %s: %v", v, err)
		}
		return string(b), nil
	}
	return v, nil
}

func (c *cli) eventTypesCreateCmd() *cobra.Command {
	var desc, example string
	var deprecated bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Add an event type to the tenant's catalog",
		Example: `  hookwire event-types create --tenant acme order.created --description "An order was placed" --example '{"id":"ord_1"}'
  hookwire event-types create --tenant acme invoice.paid --example @invoice.json`,
		Args: c.argNames("NAME"),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		ex, err := examplePayload(example)
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd)
		defer cancel()
		et, err := hookwirev1.NewEventTypeServiceClient(c.conn).CreateEventType(ctx, &hookwirev1.CreateEventTypeRequest{Tenant: tenant,
			EventType: &hookwirev1.EventType{Name: args[0], Description: desc, ExamplePayload: ex, Deprecated: deprecated}})
		if err != nil {
			return err
		}
		return c.emit(cmd, et, eventTypeView(et))
	})
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&desc, "description", "", "what the event means, for people")
	f.StringVar(&example, "example", "", "an example payload (JSON), or @FILE to read it from a file")
	f.BoolVar(&deprecated, "deprecated", false, "mark the type deprecated")
	return cmd
}

func (c *cli) eventTypesUpdateCmd() *cobra.Command {
	var desc, example string
	var deprecated bool
	cmd := &cobra.Command{
		Use:     "update NAME",
		Short:   "Change an event type's description, example or deprecated flag (only the flags given)",
		Example: `  hookwire event-types update --tenant acme order.created --deprecated`,
		Args:    c.argNames("NAME"),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		in := &hookwirev1.EventType{Name: args[0], Description: desc, Deprecated: deprecated}
		var paths []string
		for flag, path := range map[string]string{"description": "description", "example": "example_payload", "deprecated": "deprecated"} {
			if cmd.Flags().Changed(flag) {
				paths = append(paths, path)
			}
		}
		if len(paths) == 0 {
			return usageErrorf("give at least one of --description, --example, --deprecated")
		}
		if in.ExamplePayload, err = examplePayload(example); err != nil {
			return err
		}
		ctx, cancel := c.call(cmd)
		defer cancel()
		et, err := hookwirev1.NewEventTypeServiceClient(c.conn).UpdateEventType(ctx, &hookwirev1.UpdateEventTypeRequest{Tenant: tenant, EventType: in,
			UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
		if err != nil {
			return notFoundHint(err, "list the catalog with 'hookwire event-types list --tenant %s'", tenant)
		}
		return c.emit(cmd, et, eventTypeView(et))
	})
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&desc, "description", "", "what the event means, for people")
	f.StringVar(&example, "example", "", "an example payload (JSON), or @FILE")
	f.BoolVar(&deprecated, "deprecated", false, "mark the type deprecated (--deprecated=false to undo)")
	return cmd
}

func (c *cli) eventTypesListCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List a tenant's event catalog",
		Example: "  hookwire event-types list --tenant acme --all",
		Args:    c.argNames(),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, _ []string) error {
		resp, err := hookwirev1.NewEventTypeServiceClient(c.conn).ListEventTypes(ctx, &hookwirev1.ListEventTypesRequest{Tenant: tenant, ShowDeprecated: all})
		if err != nil {
			return err
		}
		list := resp.GetEventTypes()
		return emitList(c, cmd, "event_types", list, "", func(w io.Writer) error {
			if len(list) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "No event types for tenant %q. Add one with: hookwire event-types create --tenant %s NAME\n", tenant, tenant)
				return nil
			}
			t := newTable(w, "NAME", "DEPRECATED", "DESCRIPTION")
			for _, et := range list {
				t.row(et.GetName(), fmt.Sprint(et.GetDeprecated()), dash(et.GetDescription()))
			}
			return t.flush()
		})
	})
	c.addTenantFlag(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "include deprecated types")
	return cmd
}

func (c *cli) eventTypesDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Remove an event type from the catalog",
		Example: "  hookwire event-types delete --tenant acme order.created",
		Args:    c.argNames("NAME"),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error {
		if _, err := hookwirev1.NewEventTypeServiceClient(c.conn).DeleteEventType(ctx, &hookwirev1.DeleteEventTypeRequest{Tenant: tenant, Name: args[0]}); err != nil {
			return notFoundHint(err, "list the catalog with 'hookwire event-types list --tenant %s'", tenant)
		}
		return c.done(cmd, args[0], "deleted", "Deleted event type %s.", args[0])
	})
	c.addTenantFlag(cmd)
	return cmd
}

func (c *cli) portalCmd() *cobra.Command {
	return c.noun("portal", "Tenant portal: sessions for customers, and the portal's settings",
		`The tenant portal is a page a tenant embeds (in an iframe) in its own application
so that its customers manage their own webhook endpoints. The tenant's server
creates a short-lived session per customer visit and puts its URL in the iframe.
See docs/PORTAL.md.`,
		nil, true,
		c.portalCreateCmd(), c.portalListCmd(), c.portalRevokeCmd(), c.portalSettingsCmd(), c.portalSetCmd())
}

func portalSessionView(ps *hookwirev1.PortalSession) func(io.Writer) error {
	return func(w io.Writer) error {
		f := newFields(w)
		f.add("ID", ps.GetId())
		f.add("Tenant", ps.GetTenant())
		f.add("Customer", dash(ps.GetCustomer()))
		switch {
		case len(ps.GetSubscriptionIds()) > 0:
			f.add("Scope", "subscriptions "+strings.Join(ps.GetSubscriptionIds(), ", "))
		case len(ps.GetLabels()) > 0:
			f.add("Scope", "labels "+joinMap(ps.GetLabels()))
		default:
			f.add("Scope", "the whole tenant")
		}
		features := strings.Join(ps.GetFeatures(), ", ")
		if features == "" {
			features = "read only"
		}
		f.add("Features", features)
		f.add("Expires", stamp(ps.GetExpireTime()))
		if ps.GetRevoked() {
			f.add("State", "revoked")
		}
		f.add("URL", ps.GetUrl())
		f.add("Token", ps.GetToken())
		return f.flush()
	}
}

func (c *cli) portalCreateCmd() *cobra.Command {
	var labels, subs, features []string
	var ttl time.Duration
	var customer string
	var allEvents bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a portal session for one customer (its URL and token are shown once)",
		Long: `Create a portal session: a link to the portal page that lets one customer manage
the endpoints of the session's scope. Scope with --label (the customer's
subscriptions carry these metadata pairs; endpoints they create get them) or
--subscription (a fixed list). Endpoints created through a --label session
receive only events whose metadata carries the labels (unless --all-events).
Without --feature the session is read only.`,
		Example: `  hookwire portal create --tenant acme --label customer=cus_42 --feature endpoints.write --feature events.test
  URL=$(hookwire portal create --tenant acme --label customer=cus_42 --ttl 15m -o json | jq -r .url)`,
		Args: c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		lm, err := parseLabels(labels)
		if err != nil {
			return usageErrorf("%v", err)
		}
		req := &hookwirev1.CreatePortalSessionRequest{Tenant: tenant, Labels: lm, SubscriptionIds: subs, Features: features, Customer: customer, AllEvents: allEvents}
		if ttl != 0 {
			req.Ttl = durationpb.New(ttl)
		}
		ctx, cancel := c.call(cmd)
		defer cancel()
		ps, err := hookwirev1.NewPortalServiceClient(c.conn).CreatePortalSession(ctx, req)
		if err != nil {
			return err
		}
		warnSecret(cmd, "portal token and URL")
		return c.emit(cmd, ps, portalSessionView(ps))
	})
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&labels, "label", nil, "key=value: the session covers subscriptions whose metadata has it (repeat)")
	f.StringArrayVar(&subs, "subscription", nil, "a subscription id the session covers (repeat)")
	f.StringArrayVar(&features, "feature", nil, "endpoints.write, secrets.rotate, deliveries.resend or events.test (repeat; none: read only)")
	f.DurationVar(&ttl, "ttl", 0, "how long the link works (default 1h, at most 24h)")
	f.StringVar(&customer, "customer", "", "who the session is for, e.g. the customer's name")
	f.BoolVar(&allEvents, "all-events", false, "endpoints created through the session receive every event of their types, not only events whose metadata carries the --label pairs")
	_ = cmd.RegisterFlagCompletionFunc("feature", fixedCompletion("endpoints.write", "secrets.rotate", "deliveries.resend", "events.test"))
	return cmd
}

func (c *cli) portalListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List a tenant's live portal sessions (never their tokens)",
		Example: "  hookwire portal list --tenant acme",
		Args:    c.argNames(),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, _ []string) error {
		resp, err := hookwirev1.NewPortalServiceClient(c.conn).ListPortalSessions(ctx, &hookwirev1.ListPortalSessionsRequest{Tenant: tenant})
		if err != nil {
			return err
		}
		list := resp.GetPortalSessions()
		return emitList(c, cmd, "portal_sessions", list, "", func(w io.Writer) error {
			if len(list) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "No live portal sessions for tenant %q.\n", tenant)
				return nil
			}
			t := newTable(w, "ID", "CUSTOMER", "FEATURES", "STATE", "EXPIRES")
			for _, ps := range list {
				state := "active"
				if ps.GetRevoked() {
					state = "revoked"
				}
				t.row(ps.GetId(), dash(ps.GetCustomer()), dash(strings.Join(ps.GetFeatures(), ",")), state, stamp(ps.GetExpireTime()))
			}
			return t.flush()
		})
	})
	c.addTenantFlag(cmd)
	return cmd
}

func (c *cli) portalRevokeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "revoke SESSION_ID",
		Short:   "End a portal session at once",
		Example: "  hookwire portal revoke --tenant acme hwp_0123456789abcdef",
		Args:    c.argNames("SESSION_ID"),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error {
		if _, err := hookwirev1.NewPortalServiceClient(c.conn).RevokePortalSession(ctx, &hookwirev1.RevokePortalSessionRequest{Tenant: tenant, Id: args[0]}); err != nil {
			return notFoundHint(err, "list the tenant's sessions with 'hookwire portal list --tenant %s'", tenant)
		}
		return c.done(cmd, args[0], "revoked", "Revoked portal session %s.", args[0])
	})
	c.addTenantFlag(cmd)
	return cmd
}

func portalSettingsView(ps *hookwirev1.PortalSettings) func(io.Writer) error {
	return func(w io.Writer) error {
		f := newFields(w)
		f.add("Tenant", ps.GetTenant())
		fa := strings.Join(ps.GetFrameAncestors(), " ")
		if fa == "" {
			fa = "none (the portal cannot be framed)"
		}
		f.add("Frame ancestors", fa)
		f.add("Title", dash(ps.GetTitle()))
		f.add("Primary colour", dash(ps.GetPrimaryColor()))
		f.add("Logo", dash(ps.GetLogoUrl()))
		f.add("Theme", enumLabel(ps.GetTheme().String(), "PORTAL_THEME_"))
		return f.flush()
	}
}

func (c *cli) portalSettingsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "settings",
		Short:   "Show the tenant's portal settings",
		Example: "  hookwire portal settings --tenant acme",
		Args:    c.argNames(),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, _ []string) error {
		ps, err := hookwirev1.NewPortalServiceClient(c.conn).GetPortalSettings(ctx, &hookwirev1.GetPortalSettingsRequest{Tenant: tenant})
		if err != nil {
			return err
		}
		return c.emit(cmd, ps, portalSettingsView(ps))
	})
	c.addTenantFlag(cmd)
	return cmd
}

var portalThemes = map[string]hookwirev1.PortalTheme{
	"auto": hookwirev1.PortalTheme_PORTAL_THEME_UNSPECIFIED, "light": hookwirev1.PortalTheme_PORTAL_THEME_LIGHT, "dark": hookwirev1.PortalTheme_PORTAL_THEME_DARK,
}

func (c *cli) portalSetCmd() *cobra.Command {
	var origins []string
	var title, color, logo, theme string
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Replace the tenant's portal settings",
		Long: `Replace the tenant's portal settings (flags not given are cleared): the origins
allowed to frame the portal (Content-Security-Policy frame-ancestors; none: it
cannot be framed), and its look.`,
		Example: `  hookwire portal set --tenant acme --frame-ancestor https://app.acme.example --primary-color '#0b6e4f' --theme dark`,
		Args:    c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		th, ok := portalThemes[theme]
		if !ok {
			return usageErrorf("--theme %q: use auto, light or dark", theme)
		}
		ctx, cancel := c.call(cmd)
		defer cancel()
		ps, err := hookwirev1.NewPortalServiceClient(c.conn).UpdatePortalSettings(ctx, &hookwirev1.UpdatePortalSettingsRequest{Tenant: tenant,
			Settings: &hookwirev1.PortalSettings{FrameAncestors: origins, Title: title, PrimaryColor: color, LogoUrl: logo, Theme: th}})
		if err != nil {
			return err
		}
		return c.emit(cmd, ps, portalSettingsView(ps))
	})
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&origins, "frame-ancestor", nil, "an origin allowed to frame the portal, e.g. https://app.example.com (repeat)")
	f.StringVar(&title, "title", "", "the page's title (default: Webhooks)")
	f.StringVar(&color, "primary-color", "", "accent colour, #rrggbb")
	f.StringVar(&logo, "logo-url", "", "https URL of a logo")
	f.StringVar(&theme, "theme", "auto", "auto, light or dark")
	_ = cmd.RegisterFlagCompletionFunc("theme", fixedCompletion("auto", "light", "dark"))
	return cmd
}
