package main

// Operator actions on deliveries (retry, cancel, resend, recover) and the
// long-running operations a recover starts (operations get, watch). They are
// added to the deliveries, events and subscriptions nouns in cli.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// deliveryChangeView is the table view of a delivery an action returned.
func deliveryChangeView(verb string, d *hookwirev1.Delivery) func(io.Writer) error {
	return func(w io.Writer) error {
		fmt.Fprintf(w, "%s %s.\n", verb, d.GetId())
		f := newFields(w)
		f.add("Status", deliveryStatus(d))
		f.add("Event", d.GetEventId())
		f.add("Subscription", d.GetSubscriptionId())
		f.add("Attempts", strconv.Itoa(int(d.GetAttemptCount())))
		if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
			f.add("Next attempt", stamp(d.GetNextAttemptTime()))
		}
		f.add("Last error", d.GetLastError())
		return f.flush()
	}
}

func (c *cli) deliveriesRetryCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Make a pending, dead or cancelled delivery due now",
		Long: `Make a delivery due now. A dead or cancelled delivery becomes pending again
and its retry schedule starts over; a pending one just stops waiting. A
delivery that already succeeded is sent again only with --force (the
receiver sees the same webhook-id again).`,
		Example: "  hookwire deliveries retry --tenant acme dlv_01J...\n  hookwire deliveries retry --tenant acme --force dlv_01J... -o json",
		Args:    c.argNames("ID"),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error {
		d, err := hookwirev1.NewDeliveryServiceClient(c.conn).RetryDelivery(ctx, &hookwirev1.RetryDeliveryRequest{Tenant: tenant, Id: args[0], Force: force})
		if err != nil {
			err = hintFor(err, codes.FailedPrecondition, "pass --force to send a succeeded delivery again")
			return notFoundHint(err, "%s", deliveryListHint(tenant))
		}
		return c.emit(cmd, d, deliveryChangeView("Retrying", d))
	})
	cmd.Flags().BoolVar(&force, "force", false, "also send a delivery that already succeeded")
	c.addTenantFlag(cmd)
	return cmd
}

func (c *cli) deliveriesCancelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Stop a pending delivery (it is kept, as cancelled)",
		Long: `Stop a pending delivery. It is kept as cancelled and can be sent later with
'deliveries retry' or 'subscriptions recover'. In an ordered subscription this
skips a failing head so the deliveries behind it can go out.`,
		Example: "  hookwire deliveries cancel --tenant acme dlv_01J...",
		Args:    c.argNames("ID"),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error {
		d, err := hookwirev1.NewDeliveryServiceClient(c.conn).CancelDelivery(ctx, &hookwirev1.CancelDeliveryRequest{Tenant: tenant, Id: args[0]})
		if err != nil {
			return notFoundHint(err, "%s", deliveryListHint(tenant))
		}
		return c.emit(cmd, d, deliveryChangeView("Cancelled", d))
	})
	c.addTenantFlag(cmd)
	return cmd
}

func (c *cli) eventsResendCmd() *cobra.Command {
	var subscription string
	cmd := &cobra.Command{
		Use:   "resend EVENT_ID --subscription SUB",
		Short: "Send an event again to one subscription, as a new delivery",
		Long: `Create a new delivery of an existing event to one subscription, due now.
The subscription need not match the event's type. The new delivery has its
own id, so receivers see a new webhook-id.`,
		Example: "  hookwire events resend --tenant acme evt_01J... --subscription sub_01J...\n  hookwire events resend --tenant acme evt_01J... --subscription sub_01J... -o json | jq -r .id",
		Args:    c.argNames("EVENT_ID"),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		if subscription == "" {
			return usageErrorf("--subscription is required")
		}
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd)
		defer cancel()
		d, err := hookwirev1.NewDeliveryServiceClient(c.conn).ResendEvent(ctx, &hookwirev1.ResendEventRequest{Tenant: tenant, EventId: args[0], SubscriptionId: subscription})
		if err != nil {
			return notFoundHint(err, "check --tenant, the event id and --subscription; list subscriptions with 'hookwire subscriptions list --tenant %s'", tenant)
		}
		return c.emit(cmd, d, deliveryChangeView("Created delivery", d))
	})
	cmd.Flags().StringVar(&subscription, "subscription", "", "the subscription to send the event to (sub_...; required)")
	_ = cmd.RegisterFlagCompletionFunc("subscription", c.completeSubscriptions)
	c.addTenantFlag(cmd)
	return cmd
}

func (c *cli) subsRecoverCmd() *cobra.Command {
	var (
		since      time.Duration
		start, end string
		all        bool
		noWait     bool
	)
	cmd := &cobra.Command{
		Use:   "recover SUB",
		Short: "Send a subscription's dead and cancelled deliveries again",
		Long: `Re-queue the deliveries of a subscription created in a time range: dead and
cancelled ones, or with --all every one, including those that succeeded.
The range is --since (a duration back from now) or --start, up to --end
(default now); with neither, the last 30 days.

The server runs this as an operation. The command follows it until it is
done: on a terminal with a progress bar and ETA, otherwise with a line every
few seconds, both on stderr; then it prints the final operation (-o json for
scripts). With --no-wait it prints the operation at once; follow it later
with 'hookwire operations watch'. Operations are kept in the server's memory
only: after a restart, start the recover again (re-queuing twice is
harmless).`,
		Example: `  hookwire subscriptions recover --tenant acme sub_01J... --since 6h
  hookwire subscriptions recover --tenant acme sub_01J... --start 2026-11-01T00:00:00Z --end 2026-11-02T00:00:00Z
  hookwire subscriptions recover --tenant acme sub_01J... --since 24h --all -o json`,
		Args:              c.argNames("SUB"),
		ValidArgsFunction: c.completeSubscriptions,
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		req := &hookwirev1.RecoverDeliveriesRequest{SubscriptionId: args[0], Scope: hookwirev1.RecoverScope_RECOVER_SCOPE_FAILED}
		if all {
			req.Scope = hookwirev1.RecoverScope_RECOVER_SCOPE_ALL
		}
		var err error
		if req.StartTime, req.EndTime, err = timeRangeFlags(cmd, since, start, end); err != nil {
			return err
		}
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		req.Tenant = tenant
		ctx, cancel := c.call(cmd)
		defer cancel()
		op, err := hookwirev1.NewDeliveryServiceClient(c.conn).RecoverDeliveries(ctx, req)
		if err != nil {
			return notFoundHint(err, "%s", subscriptionListHint(tenant))
		}
		if noWait || op.GetDone() {
			return c.emitOperation(cmd, op)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "Started %s: %s\n", op.GetId(), op.GetDescription())
		return c.follow(cmd, tenant, op)
	})
	f := cmd.Flags()
	f.DurationVar(&since, "since", 0, "recover deliveries created this long ago or later, e.g. 6h (not with --start)")
	f.StringVar(&start, "start", "", "recover deliveries created at or after this time, RFC 3339 (default: 30 days ago)")
	f.StringVar(&end, "end", "", "recover deliveries created before this time, RFC 3339 (default: now)")
	f.BoolVar(&all, "all", false, "recover every delivery in the range, including succeeded ones (default: dead and cancelled only)")
	f.BoolVar(&noWait, "no-wait", false, "print the operation as started and return; follow it with 'hookwire operations watch'")
	c.addTenantFlag(cmd)
	return cmd
}

// timeRangeFlags turns --since or --start, and --end, into a time range;
// unset bounds are nil.
func timeRangeFlags(cmd *cobra.Command, since time.Duration, start, end string) (from, to *timestamppb.Timestamp, err error) {
	switch sinceSet := cmd.Flags().Changed("since"); {
	case sinceSet && start != "":
		return nil, nil, usageErrorf("pass --since or --start, not both")
	case sinceSet:
		if since <= 0 {
			return nil, nil, usageErrorf("--since %s: give a positive duration such as 6h", since)
		}
		from = timestamppb.New(time.Now().Add(-since))
	case start != "":
		t, err := parseTimeFlag("start", start)
		if err != nil {
			return nil, nil, err
		}
		from = timestamppb.New(t)
	}
	if end != "" {
		t, err := parseTimeFlag("end", end)
		if err != nil {
			return nil, nil, err
		}
		to = timestamppb.New(t)
	}
	return from, to, nil
}

func parseTimeFlag(name, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageErrorf("--%s %q: use RFC 3339, e.g. 2026-11-01T00:00:00Z", name, v)
	}
	return t, nil
}

func operationHint(tenant string) string {
	return fmt.Sprintf("check --tenant (%s) and the id; operations are kept in memory only and are gone after the server restarts", tenant)
}

func (c *cli) operationsCmd() *cobra.Command {
	return c.noun("operations", "Follow long-running operations such as a recover",
		`An operation is work the server does in the background, such as
'subscriptions recover'. It is kept in the server's memory until the server
restarts.`,
		[]string{"operation", "ops", "op"}, true, c.operationsGetCmd(), c.operationsWatchCmd())
}

func (c *cli) operationsGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "get ID",
		Short:   "Show an operation's progress",
		Example: "  hookwire operations get --tenant acme op_01J...\n  hookwire operations get --tenant acme op_01J... -o json | jq .requeued",
		Args:    c.argNames("ID"),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error {
		op, err := hookwirev1.NewDeliveryServiceClient(c.conn).GetOperation(ctx, &hookwirev1.GetOperationRequest{Tenant: tenant, Id: args[0]})
		if err != nil {
			return notFoundHint(err, "%s", operationHint(tenant))
		}
		return c.emit(cmd, op, operationView(op))
	})
	c.addTenantFlag(cmd)
	return cmd
}

func (c *cli) operationsWatchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow an operation until it is done",
		Long: `Follow an operation until it is done: on a terminal with a progress bar and
ETA, otherwise with a line every few seconds, both on stderr; then print the
final operation. Exits 1 if the operation failed. Ctrl-C stops watching, not
the operation.`,
		Example: "  hookwire operations watch --tenant acme op_01J...\n  hookwire operations watch --tenant acme op_01J... -o json",
		Args:    c.argNames("ID"),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		return c.follow(cmd, tenant, &hookwirev1.Operation{Id: args[0]})
	})
	c.addTenantFlag(cmd)
	return cmd
}

// follow streams an operation's progress to stderr until it is done, then
// prints it.
func (c *cli) follow(cmd *cobra.Command, tenant string, op *hookwirev1.Operation) error {
	// The stream lasts as long as the operation: no --request-timeout.
	saved := c.requestTimeout
	c.requestTimeout = 0
	ctx, cancel := c.call(cmd)
	c.requestTimeout = saved
	defer cancel()
	stream, err := hookwirev1.NewDeliveryServiceClient(c.conn).WatchOperation(ctx, &hookwirev1.WatchOperationRequest{Tenant: tenant, Id: op.GetId()})
	if err != nil {
		return notFoundHint(err, "%s", operationHint(tenant))
	}
	p := newProgress(cmd.ErrOrStderr(), isTerminal(cmd.ErrOrStderr()), time.Now)
	var last *hookwirev1.Operation
	for {
		next, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.finish()
			err = notFoundHint(err, "%s", operationHint(tenant))
			if last != nil && !last.GetDone() {
				err = withNote(err, "the operation goes on in the server; follow it with 'hookwire operations watch --tenant %s %s'", tenant, last.GetId())
			}
			return err
		}
		last = next
		p.update(next)
		if next.GetDone() {
			break
		}
	}
	p.finish()
	if last == nil {
		return fmt.Errorf("the server closed the watch of %s without an update", op.GetId())
	}
	if !last.GetDone() {
		return withNote(fmt.Errorf("the server closed the watch of %s before it was done", last.GetId()),
			"follow it again with 'hookwire operations watch --tenant %s %s'", tenant, last.GetId())
	}
	if err := c.emitOperation(cmd, last); err != nil {
		return err
	}
	if last.GetError() != "" {
		return fmt.Errorf("operation %s failed: %s", last.GetId(), last.GetError())
	}
	return nil
}

func (c *cli) emitOperation(cmd *cobra.Command, op *hookwirev1.Operation) error {
	return c.emit(cmd, op, operationView(op))
}

func operationState(op *hookwirev1.Operation) string {
	switch {
	case op.GetError() != "":
		return "failed"
	case op.GetDone():
		return "done"
	}
	return "running"
}

func operationView(op *hookwirev1.Operation) func(io.Writer) error {
	return func(w io.Writer) error {
		f := newFields(w)
		f.add("ID", op.GetId())
		f.add("Tenant", op.GetTenant())
		f.add("Description", op.GetDescription())
		f.add("State", operationState(op))
		f.add("Processed", fmt.Sprintf("%d of %d", op.GetProcessed(), op.GetTotal()))
		f.add("Requeued", strconv.FormatInt(op.GetRequeued(), 10))
		f.add("Error", op.GetError())
		f.add("Created", stamp(op.GetCreateTime()))
		f.add("Updated", stamp(op.GetUpdateTime()))
		return f.flush()
	}
}

// isTerminal says whether w is a terminal (character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// --- progress ---

// progressInterval is how often plain (non-terminal) progress lines are
// printed at most.
const progressInterval = 2 * time.Second

const barWidth = 30

// progress shows an operation's progress: a bar redrawn in place on a
// terminal, or a line at most every progressInterval otherwise. The rate is
// measured from the first update this client saw.
type progress struct {
	w        io.Writer
	tty      bool
	now      func() time.Time
	start    time.Time
	base     int64
	started  bool
	lastLine time.Time
	drawn    bool
	last     *hookwirev1.Operation
	printed  bool
}

func newProgress(w io.Writer, tty bool, now func() time.Time) *progress {
	return &progress{w: w, tty: tty, now: now}
}

func (p *progress) update(op *hookwirev1.Operation) {
	now := p.now()
	if !p.started {
		p.started, p.start, p.base = true, now, op.GetProcessed()
	}
	p.last = op
	line := progressLine(op, p.rate(now), p.tty)
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		p.drawn = true
		return
	}
	if op.GetDone() || !p.printed || now.Sub(p.lastLine) >= progressInterval {
		fmt.Fprintln(p.w, line)
		p.printed, p.lastLine = true, now
	}
}

// rate is deliveries examined per second since the first update, or 0 when
// not yet measurable.
func (p *progress) rate(now time.Time) float64 {
	el := now.Sub(p.start).Seconds()
	if p.last == nil || el < 0.2 {
		return 0
	}
	return float64(p.last.GetProcessed()-p.base) / el
}

func (p *progress) finish() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// progressLine renders "[=====>    ] 420/1000  42%  requeued 17  310/s  ETA 2s".
func progressLine(op *hookwirev1.Operation, rate float64, bar bool) string {
	done, total := op.GetProcessed(), op.GetTotal()
	var b strings.Builder
	if bar {
		b.WriteString("[")
		filled := 0
		if total > 0 {
			filled = int(min(done, total) * barWidth / total)
		}
		if op.GetDone() {
			filled = barWidth
		}
		for i := range barWidth {
			switch {
			case i < filled:
				b.WriteByte('=')
			case i == filled:
				b.WriteByte('>')
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteString("] ")
	}
	fmt.Fprintf(&b, "%d/%d", done, total)
	if total > 0 {
		fmt.Fprintf(&b, "  %3d%%", min(done, total)*100/total)
	}
	fmt.Fprintf(&b, "  requeued %d", op.GetRequeued())
	if rate > 0 {
		fmt.Fprintf(&b, "  %.0f/s", rate)
	}
	switch {
	case op.GetError() != "":
		b.WriteString("  failed")
	case op.GetDone():
		b.WriteString("  done")
	case rate > 0 && total > done:
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		fmt.Fprintf(&b, "  ETA %s", eta.Round(time.Second))
	default:
		b.WriteString("  ETA -")
	}
	return b.String()
}
