package main

// `hookwire tail`: a live stream of what happens to a tenant's deliveries
// (TailDeliveries), one line per item: coloured and aligned on a terminal,
// JSON lines (protojson) when piped or with -o json.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

var tailStatuses = []string{"succeeded", "failed", "retrying", "dead"}

var tailOutcomes = []string{"success", "gone", "throttled", "timeout", "connection-error", "failed", "rejected"}

// Reconnect waits: a random time in a doubling window.
const (
	tailBackoffMin = 250 * time.Millisecond
	tailBackoffMax = 15 * time.Second
)

type tailOptions struct {
	output                          string
	subscription, eventType, status string
	outcomes                        []string
	attemptsOnly, noReconnect       bool
	heartbeats                      bool
	heartbeatInterval               time.Duration
}

func (c *cli) tailCmd() *cobra.Command {
	var o tailOptions
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Stream a tenant's deliveries and attempts live",
		Long: `Show what happens to a tenant's deliveries as it happens: deliveries created
by a publish or resend, each attempt's result (and whether the delivery
succeeded, will be retried or is dead), and deliveries cancelled or re-queued
by an operator. Nothing from before the start is shown: use
'hookwire deliveries list' for history.

On a terminal each item is one aligned line, coloured by result (green:
succeeded, yellow: retrying, red: dead or cancelled; NO_COLOR turns colour
off). When stdout is not a terminal, or with -o json, each item is one JSON
object per line (the API's TailDeliveriesResponse, proto field names), for jq
and scripts; -o table forces the lines for people.

If tail cannot keep up, the control plane drops items rather than slow
deliveries down, and tail shows how many were dropped. If the connection is
lost after it was established, tail reconnects with backoff (items in the gap
are not shown) unless --no-reconnect. Ctrl-C (or SIGTERM) ends it with exit
code 0.

On an idle stream the control plane sends a heartbeat every 15s
(--heartbeat-interval, 1s to 5m) so proxies and load balancers that cut idle
connections keep it open. Heartbeats are never shown as lines for people; in
JSON output they are left out unless --heartbeats, which prints them as
{"kind":"TAIL_EVENT_KIND_HEARTBEAT","time":...} (e.g. to check liveness).

A read-only key of the tenant is enough.

Exit codes: see 'hookwire help exit-codes'.`,
		Example: `  hookwire tail --tenant acme
  hookwire tail --tenant acme --status failed
  hookwire tail --tenant acme --event-type 'order.*' --attempts-only
  hookwire tail --tenant acme --subscription sub_01J... -o json | jq -c 'select(.status_code >= 500)'
  hookwire tail --tenant acme -o json --heartbeats --heartbeat-interval 10s`,
		Args:          c.argNames(),
		SilenceErrors: true, // printed by c.fail
		SilenceUsage:  true,
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := c.dial(cmd); err != nil {
			return c.fail(cmd, err)
		}
		defer func() {
			c.conn.Close()
			c.conn = nil
		}()
		if err := c.tail(cmd, o); err != nil {
			return c.fail(cmd, err)
		}
		return nil
	}
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	// Not c.output: the other commands' default ("table") must stay.
	f.StringVarP(&o.output, "output", "o", "", "output format: table (lines for people) or json (JSON lines); default: table on a terminal, json otherwise")
	f.StringVar(&o.subscription, "subscription", "", "only deliveries to this subscription (sub_...)")
	f.StringVar(&o.eventType, "event-type", "", "only this event type, exact or a pattern such as 'order.*'")
	f.StringVar(&o.status, "status", "", "only attempts with this result: "+strings.Join(tailStatuses, ", ")+" (failed = retrying or dead)")
	f.StringSliceVar(&o.outcomes, "outcome", nil, "only attempts with these outcomes (comma-separated): "+strings.Join(tailOutcomes, ", "))
	f.BoolVar(&o.attemptsOnly, "attempts-only", false, "only attempt results: leave out created, cancelled and re-queued deliveries")
	f.BoolVar(&o.noReconnect, "no-reconnect", false, "exit when the connection is lost instead of reconnecting")
	f.BoolVar(&o.heartbeats, "heartbeats", false, "print the control plane's heartbeats as JSON lines too (JSON output only)")
	f.DurationVar(&o.heartbeatInterval, "heartbeat-interval", 0, "how long the stream may stay idle before the control plane sends a heartbeat, 1s to 5m; 0s: the control plane's default, 15s")
	c.connectionFlags(cmd, f)
	_ = cmd.RegisterFlagCompletionFunc("output", fixedCompletion("table", "json"))
	_ = cmd.RegisterFlagCompletionFunc("status", fixedCompletion(tailStatuses...))
	_ = cmd.RegisterFlagCompletionFunc("outcome", fixedCompletion(tailOutcomes...))
	_ = cmd.RegisterFlagCompletionFunc("subscription", c.completeSubscriptions)
	c.flagErrorsAreUsage(cmd)
	return cmd
}

// tailRequest turns the flags into a request.
func tailRequest(tenant string, o tailOptions) (*hookwirev1.TailDeliveriesRequest, error) {
	req := &hookwirev1.TailDeliveriesRequest{Tenant: tenant, SubscriptionId: o.subscription, EventType: o.eventType, AttemptsOnly: o.attemptsOnly}
	if o.heartbeatInterval != 0 {
		if o.heartbeatInterval < time.Second || o.heartbeatInterval > 5*time.Minute {
			return nil, usageErrorf("--heartbeat-interval %s: use 1s to 5m", o.heartbeatInterval)
		}
		req.HeartbeatInterval = durationpb.New(o.heartbeatInterval)
	}
	if o.status != "" {
		v, ok := hookwirev1.TailResult_value["TAIL_RESULT_"+strings.ToUpper(o.status)]
		if !ok || v == 0 {
			return nil, usageErrorf("--status %q: use %s", o.status, strings.Join(tailStatuses, ", "))
		}
		req.Result = hookwirev1.TailResult(v)
	}
	for _, s := range o.outcomes {
		name := "OUTCOME_" + strings.ReplaceAll(strings.ToUpper(strings.TrimSpace(s)), "-", "_")
		v, ok := transportv1.Outcome_value[name]
		if !ok || v == 0 {
			return nil, usageErrorf("--outcome %q: use %s", s, strings.Join(tailOutcomes, ", "))
		}
		req.Outcomes = append(req.Outcomes, transportv1.Outcome(v))
	}
	return req, nil
}

func (c *cli) tail(cmd *cobra.Command, o tailOptions) error {
	tenant, err := c.tenant()
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	var human bool
	switch o.output {
	case "":
		human = isTerminal(out)
	case "table":
		human = true
	case "json":
	default:
		return usageErrorf("--output %q: use table or json", o.output)
	}
	if o.heartbeats && human {
		return usageErrorf("--heartbeats prints heartbeats as JSON lines: add -o json (lines for people never show them)")
	}
	req, err := tailRequest(tenant, o)
	if err != nil {
		return err
	}
	p := &tailPrinter{w: out, human: human, heartbeats: o.heartbeats, color: human && isTerminal(out) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	stderr := cmd.ErrOrStderr()
	connected := false
	backoff := tailBackoffMin
	for {
		established, err := c.tailOnce(cmd, req, p, func() {
			if connected {
				fmt.Fprintf(stderr, "Reconnected; items from while tail was disconnected are not shown (see 'hookwire deliveries list --tenant %s').\n", tenant)
			} else {
				fmt.Fprintf(stderr, "Tailing deliveries of tenant %s (Ctrl-C to stop).\n", tenant)
			}
			connected = true
		})
		if ctx.Err() != nil {
			return nil // Ctrl-C or SIGTERM: the normal way to stop
		}
		if established {
			backoff = tailBackoffMin
		}
		if !connected || o.noReconnect || !transient(err) {
			if established && err == nil {
				err = errors.New("the control plane ended the stream")
			}
			return notFoundHint(err, "check --tenant and --subscription; list subscriptions with 'hookwire subscriptions list --tenant %s'", tenant)
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, tailBackoffMax)
		why := "the control plane ended the stream"
		if err != nil {
			why = status.Convert(err).Message()
		}
		fmt.Fprintf(stderr, "Connection lost (%s); reconnecting in %s.\n", why, wait.Round(time.Millisecond))
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

// transient reports whether a lost stream is worth reopening.
func transient(err error) bool {
	if err == nil {
		return true // the server ended the stream without an error
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.Internal:
		return true
	}
	return false
}

// tailOnce runs one stream until it fails. established reports whether the
// watch was in place (the server's headers arrived), ready is called then.
func (c *cli) tailOnce(cmd *cobra.Command, req *hookwirev1.TailDeliveriesRequest, p *tailPrinter, ready func()) (established bool, err error) {
	// The stream lasts until Ctrl-C: no --request-timeout.
	saved := c.requestTimeout
	c.requestTimeout = 0
	ctx, cancel := c.call(cmd)
	c.requestTimeout = saved
	defer cancel()
	stream, err := hookwirev1.NewDeliveryServiceClient(c.conn).TailDeliveries(ctx, req)
	if err != nil {
		return false, err
	}
	if md, err := stream.Header(); err != nil || md == nil {
		// Refused before the watch started: the reason comes with Recv.
		_, err = stream.Recv()
		return false, err
	}
	ready()
	for {
		it, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return true, err
		}
		if err := p.print(it); err != nil {
			return true, err
		}
	}
}

// tailPrinter writes items as JSON lines or as lines for people.
// Heartbeats are written only as JSON lines, and only with heartbeats set.
type tailPrinter struct {
	w                        io.Writer
	human, color, heartbeats bool
}

const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiDim    = "\x1b[2m"
)

func (p *tailPrinter) print(it *hookwirev1.TailDeliveriesResponse) error {
	if it.GetKind() == hookwirev1.TailEventKind_TAIL_EVENT_KIND_HEARTBEAT && (p.human || !p.heartbeats) {
		return nil
	}
	if !p.human {
		data, err := protoJSON.Marshal(it)
		if err != nil {
			return err
		}
		_, err = p.w.Write(append(data, '\n'))
		return err
	}
	_, err := io.WriteString(p.w, p.line(it, time.Local)+"\n")
	return err
}

// line is one aligned line for people:
//
//	15:04:05.000  retrying   order.created   dlv_…  sub_…  #1  500  failed  31ms  agent-1  next in 5s  error
func (p *tailPrinter) line(it *hookwirev1.TailDeliveriesResponse, loc *time.Location) string {
	at := it.GetTime().AsTime().In(loc).Format("15:04:05.000")
	label, color := tailLabel(it)
	if it.GetKind() == hookwirev1.TailEventKind_TAIL_EVENT_KIND_DROPPED {
		return at + "  " + p.paint(fmt.Sprintf("%-10s", label), color) + "  " +
			fmt.Sprintf("%d items not shown: this client read too slowly (see 'hookwire deliveries list')", it.GetDropped())
	}
	cols := []string{at, p.paint(fmt.Sprintf("%-10s", label), color), fmt.Sprintf("%-24s", it.GetEventType()), it.GetDeliveryId(), it.GetSubscriptionId()}
	var rest []string
	if it.GetKind() == hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT {
		code := "-"
		if it.GetStatusCode() != 0 {
			code = strconv.Itoa(int(it.GetStatusCode()))
		}
		rest = append(rest, fmt.Sprintf("#%-2d", it.GetAttempt()), fmt.Sprintf("%3s", code),
			fmt.Sprintf("%-16s", outcome(it.GetOutcome().String())), fmt.Sprintf("%7s", latency(it.GetLatency())), dash(it.GetAgentId()))
	}
	if t := it.GetNextAttemptTime(); t != nil && it.GetKind() == hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT {
		rest = append(rest, "next "+relative(t.AsTime(), it.GetTime().AsTime()))
	}
	if e := it.GetError(); e != "" {
		rest = append(rest, p.paint(truncate(strings.Join(strings.Fields(e), " "), 200), ansiDim))
	}
	return strings.Join(append(cols, rest...), "  ")
}

func (p *tailPrinter) paint(s, color string) string {
	if !p.color || color == "" {
		return s
	}
	return color + s + ansiReset
}

// tailLabel names what happened and picks its colour.
func tailLabel(it *hookwirev1.TailDeliveriesResponse) (string, string) {
	switch it.GetKind() {
	case hookwirev1.TailEventKind_TAIL_EVENT_KIND_CREATED:
		return "created", ansiCyan
	case hookwirev1.TailEventKind_TAIL_EVENT_KIND_REQUEUED:
		return "requeued", ansiCyan
	case hookwirev1.TailEventKind_TAIL_EVENT_KIND_CANCELLED:
		return "cancelled", ansiRed
	case hookwirev1.TailEventKind_TAIL_EVENT_KIND_DROPPED:
		return "dropped", ansiYellow
	case hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT:
		switch it.GetDeliveryStatus() {
		case hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED:
			return "succeeded", ansiGreen
		case hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD:
			return "dead", ansiRed
		case hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED:
			return "cancelled", ansiRed
		}
		return "retrying", ansiYellow
	}
	return enumLabel(it.GetKind().String(), "TAIL_EVENT_KIND_"), ""
}
