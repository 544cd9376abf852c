package main

// `hookwire stats`: a tenant's per-minute delivery statistics
// (StatsService.GetDeliveryStats) as a table, or the API's JSON.

import (
	"fmt"
	"io"
	"strconv"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func (c *cli) statsCmd() *cobra.Command {
	var (
		subscription string
		since, step  time.Duration
		end          string
	)
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show a tenant's delivery statistics per minute",
		Long: `Show what a tenant's deliveries did, bucket by bucket (one minute by default):
deliveries created, attempts that succeeded, failed with a retry scheduled
(RETRYING) or failed for good (DEAD), the latency percentiles p50 and p99, and
the queue as sampled at the end of the bucket (waiting for a retry, waiting for
an agent). Then the totals of each subscription over the window, with its
success rate, and the queue now.

The control plane keeps these counters per subscription and minute for its
--stats-retention (default 48h). A window holds at most 1440 steps: widen
--step for longer ones. -o json prints the API's DeliveryStats.`,
		Example: `  hookwire stats --tenant acme
  hookwire stats --tenant acme --subscription sub_01J... --since 6h --step 5m
  hookwire stats --tenant acme --since 24h --step 1h -o json`,
		Args: cobra.NoArgs,
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		if since <= 0 {
			return usageErrorf("--since %s: give a positive duration such as 1h", since)
		}
		if step <= 0 || step%time.Minute != 0 {
			return usageErrorf("--step %s: give a whole number of minutes such as 1m, 5m or 1h", step)
		}
		to := time.Now()
		if end != "" {
			if to, err = parseTimeFlag("end", end); err != nil {
				return err
			}
		}
		req := &hookwirev1.GetDeliveryStatsRequest{Tenant: tenant, SubscriptionId: subscription,
			StartTime: timestamppb.New(to.Add(-since)), EndTime: timestamppb.New(to), Step: durationpb.New(step)}
		ctx, cancel := c.call(cmd)
		defer cancel()
		st, err := hookwirev1.NewStatsServiceClient(c.conn).GetDeliveryStats(ctx, req)
		if err != nil {
			return hintFor(err, codes.PermissionDenied, "publish-only keys cannot read statistics; use a tenant-admin or read-only key")
		}
		return c.emit(cmd, st, func(w io.Writer) error { return writeStats(w, st) })
	})
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringVarP(&c.output, "output", "o", "table", "output format: table, json or yaml")
	f.StringVar(&subscription, "subscription", "", "only this subscription (sub_...)")
	f.DurationVar(&since, "since", time.Hour, "the window: this long before --end")
	f.DurationVar(&step, "step", time.Minute, "bucket width, a whole number of minutes")
	f.StringVar(&end, "end", "", "the window's end, RFC 3339 (default: now)")
	c.connectionFlags(cmd, f)
	_ = cmd.RegisterFlagCompletionFunc("output", fixedCompletion("table", "json", "yaml"))
	_ = cmd.RegisterFlagCompletionFunc("subscription", c.completeSubscriptions)
	c.flagErrorsAreUsage(cmd)
	silence(cmd)
	return cmd
}

// writeStats prints the buckets, the subscriptions' totals and the queue.
func writeStats(w io.Writer, st *hookwirev1.DeliveryStats) error {
	layout := "15:04"
	if n := len(st.GetBuckets()); n > 0 && st.GetBuckets()[n-1].GetStartTime().AsTime().Sub(st.GetStartTime().AsTime()) >= 24*time.Hour {
		layout = "01-02 15:04"
	}
	n := strconv.FormatInt
	t := newTable(w, "TIME", "CREATED", "OK", "RETRYING", "DEAD", "P50", "P99", "WAIT-RETRY", "WAIT-AGENT")
	for _, b := range st.GetBuckets() {
		t.row(b.GetStartTime().AsTime().Local().Format(layout), n(b.GetCreated(), 10), n(b.GetSucceeded(), 10), n(b.GetRetrying(), 10), n(b.GetDead(), 10),
			latency(b.GetLatency().GetP50()), latency(b.GetLatency().GetP99()), n(b.GetQueue().GetWaitingRetry(), 10), n(b.GetQueue().GetWaitingAgent(), 10))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(st.GetSubscriptions()) == 0 {
		fmt.Fprintln(w, "No subscription had deliveries in the window.")
	} else {
		t = newTable(w, "SUBSCRIPTION", "CREATED", "ATTEMPTS", "OK", "RETRYING", "DEAD", "SUCCESS", "P50", "P90", "P99")
		for _, s := range st.GetSubscriptions() {
			rate := "-"
			if s.GetAttempts() > 0 {
				rate = strconv.FormatFloat(100*s.GetSuccessRate(), 'f', 1, 64) + "%"
			}
			t.row(s.GetSubscriptionId(), n(s.GetCreated(), 10), n(s.GetAttempts(), 10), n(s.GetSucceeded(), 10), n(s.GetRetrying(), 10), n(s.GetDead(), 10),
				rate, latency(s.GetLatency().GetP50()), latency(s.GetLatency().GetP90()), latency(s.GetLatency().GetP99()))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "\nQueue now: %d waiting for a retry, %d waiting for an agent.\n", st.GetQueue().GetWaitingRetry(), st.GetQueue().GetWaitingAgent())
	return err
}
