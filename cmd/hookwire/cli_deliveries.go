package main

// deliveries and attempts commands.

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
)

var deliveryStatuses = []string{"pending", "succeeded", "dead", "cancelled"}

func parseDeliveryStatus(s string) (hookwirev1.DeliveryStatus, error) {
	name := "DELIVERY_STATUS_" + strings.TrimPrefix(strings.ToUpper(s), "DELIVERY_STATUS_")
	if name == "DELIVERY_STATUS_CANCELED" {
		name = "DELIVERY_STATUS_CANCELLED"
	}
	if v, ok := hookwirev1.DeliveryStatus_value[name]; ok && v != 0 {
		return hookwirev1.DeliveryStatus(v), nil
	}
	return 0, usageErrorf("--status %q: use %s", s, strings.Join(deliveryStatuses, ", "))
}

func deliveryStatus(d *hookwirev1.Delivery) string {
	return enumLabel(d.GetStatus().String(), "DELIVERY_STATUS_")
}

func outcome(name string) string { return enumLabel(name, "OUTCOME_") }

func deliveryListHint(tenant string) string {
	return fmt.Sprintf("check --tenant and the id; list deliveries with 'hookwire deliveries list --tenant %s'", tenant)
}

func (c *cli) deliveriesCmd() *cobra.Command {
	return c.noun("deliveries", "Show what happened to each event for each subscription",
		`A delivery is one event on its way to one subscription: pending until it
succeeds, is dead (attempts exhausted or target gone) or is cancelled. Its id
is the webhook-id header the receiver sees. Each try is an attempt: see
'hookwire attempts list'.`,
		[]string{"delivery"}, true, c.deliveriesListCmd(), c.deliveriesGetCmd())
}

func (c *cli) deliveriesListCmd() *cobra.Command {
	var (
		p                       paging
		event, subscription, st string
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List a tenant's deliveries, newest first",
		Example: `  hookwire deliveries list --tenant acme
  hookwire deliveries list --tenant acme --status dead --subscription sub_01J...
  hookwire deliveries list --tenant acme --event evt_01J... -o json
  hookwire deliveries list --tenant acme --status pending --all -o json | jq '.deliveries | length'`,
		Args: c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		if err := p.check(); err != nil {
			return err
		}
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		req := &hookwirev1.ListDeliveriesRequest{Tenant: tenant, EventId: event, SubscriptionId: subscription}
		if st != "" {
			if req.Status, err = parseDeliveryStatus(st); err != nil {
				return err
			}
		}
		client := hookwirev1.NewDeliveryServiceClient(c.conn)
		list, next, err := collect(&p, func(size int32, token string) ([]*hookwirev1.Delivery, string, error) {
			ctx, cancel := c.call(cmd)
			defer cancel()
			req.PageSize, req.PageToken = size, token
			resp, err := client.ListDeliveries(ctx, req)
			return resp.GetDeliveries(), resp.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		return emitList(c, cmd, "deliveries", list, next, func(w io.Writer) error {
			if len(list) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No deliveries match.")
				return nil
			}
			t := newTable(w, "ID", "STATUS", "EVENT TYPE", "SUBSCRIPTION", "ATTEMPTS", "LAST OUTCOME", "NEXT ATTEMPT", "CREATED")
			for _, d := range list {
				next := "-"
				if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
					next = ago(d.GetNextAttemptTime())
				}
				t.row(d.GetId(), deliveryStatus(d), d.GetEventType(), d.GetSubscriptionId(), strconv.Itoa(int(d.GetAttemptCount())),
					outcome(d.GetLastOutcome().String()), next, ago(d.GetCreateTime()))
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
	f.StringVar(&event, "event", "", "only deliveries of this event (evt_...)")
	f.StringVar(&subscription, "subscription", "", "only deliveries to this subscription (sub_...)")
	f.StringVar(&st, "status", "", "only deliveries in this state: "+strings.Join(deliveryStatuses, ", "))
	p.register(f, "deliveries")
	_ = cmd.RegisterFlagCompletionFunc("status", fixedCompletion(deliveryStatuses...))
	_ = cmd.RegisterFlagCompletionFunc("subscription", c.completeSubscriptions)
	return cmd
}

func (c *cli) deliveriesGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "get ID",
		Short:   "Show a delivery",
		Example: "  hookwire deliveries get --tenant acme dlv_01J...\n  hookwire deliveries get --tenant acme dlv_01J... -o json | jq -r .status",
		Args:    c.argNames("ID"),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error {
		d, err := hookwirev1.NewDeliveryServiceClient(c.conn).GetDelivery(ctx, &hookwirev1.GetDeliveryRequest{Tenant: tenant, Id: args[0]})
		if err != nil {
			return notFoundHint(err, "%s", deliveryListHint(tenant))
		}
		return c.emit(cmd, d, func(w io.Writer) error {
			f := newFields(w)
			f.add("ID", d.GetId())
			f.add("Tenant", d.GetTenant())
			f.add("Status", deliveryStatus(d))
			f.add("Event", d.GetEventId())
			f.add("Event type", d.GetEventType())
			f.add("Subscription", d.GetSubscriptionId())
			f.add("Attempts", strconv.Itoa(int(d.GetAttemptCount())))
			if d.GetAttemptCount() > 0 {
				f.add("Last outcome", outcome(d.GetLastOutcome().String()))
			}
			f.add("Last error", d.GetLastError())
			if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
				f.add("Next attempt", stamp(d.GetNextAttemptTime()))
			}
			f.add("Created", stamp(d.GetCreateTime()))
			f.add("Updated", stamp(d.GetUpdateTime()))
			if err := f.flush(); err != nil {
				return err
			}
			if d.GetAttemptCount() > 0 {
				_, err := fmt.Fprintf(w, "\nAttempts: hookwire attempts list --tenant %s %s\n", tenant, d.GetId())
				return err
			}
			return nil
		})
	})
	c.addTenantFlag(cmd)
	return cmd
}

func (c *cli) attemptsCmd() *cobra.Command {
	return c.noun("attempts", "Show the attempts made for a delivery",
		`An attempt is one try at a delivery by an agent: its outcome, the target's
status code, latency, and the first bytes of the response.`,
		[]string{"attempt"}, true, c.attemptsListCmd())
}

func (c *cli) attemptsListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list DELIVERY_ID",
		Aliases: []string{"ls"},
		Short:   "List a delivery's attempts, oldest first",
		Example: "  hookwire attempts list --tenant acme dlv_01J...\n  hookwire attempts list --tenant acme dlv_01J... -o json",
		Args:    c.argNames("DELIVERY_ID"),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error {
		resp, err := hookwirev1.NewDeliveryServiceClient(c.conn).ListAttempts(ctx, &hookwirev1.ListAttemptsRequest{Tenant: tenant, DeliveryId: args[0]})
		if err != nil {
			return notFoundHint(err, "%s", deliveryListHint(tenant))
		}
		list := resp.GetAttempts()
		return emitList(c, cmd, "attempts", list, "", func(w io.Writer) error {
			if len(list) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "No attempts yet for %s.\n", args[0])
				return nil
			}
			t := newTable(w, "#", "STARTED", "OUTCOME", "STATUS", "LATENCY", "AGENT", "ERROR / RESPONSE")
			for _, a := range list {
				code := "-"
				if a.GetStatusCode() != 0 {
					code = strconv.Itoa(int(a.GetStatusCode()))
				}
				detail := a.GetError()
				if detail == "" {
					detail = printable(a.GetResponseBody())
				}
				t.row(strconv.Itoa(int(a.GetNumber())), ago(a.GetStartTime()), outcome(a.GetOutcome().String()), code,
					latency(a.GetLatency()), dash(a.GetAgentId()), dash(truncate(detail, 60)))
			}
			return t.flush()
		})
	})
	c.addTenantFlag(cmd)
	return cmd
}

// printable shows a response body in a table cell when it is text.
func printable(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if !utf8.Valid(b) {
		return fmt.Sprintf("(%d bytes, binary)", len(b))
	}
	return strings.Join(strings.Fields(string(b)), " ")
}
