package api

// StatsService: per-minute delivery statistics (issue 14), read from the
// store and completed with what the dispatcher counted since its last
// flush and its live queue.

import (
	"context"
	"sort"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/dispatch"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MaxStatsBuckets bounds the buckets of one GetDeliveryStats answer.
const MaxStatsBuckets = 1440

// statsService implements StatsService.
type statsService struct {
	hookwirev1.UnimplementedStatsServiceServer
	*Services
}

// RegisterStats adds StatsService to g.
func (s *Services) RegisterStats(g grpc.ServiceRegistrar) {
	hookwirev1.RegisterStatsServiceServer(g, &statsService{Services: s})
}

// statsWindow is a request's window: [start, start + n*step).
type statsWindow struct {
	start time.Time
	step  time.Duration
	n     int
}

// window checks and completes a request's window.
func statsWindowOf(req *hookwirev1.GetDeliveryStatsRequest, now time.Time) (statsWindow, error) {
	step := time.Minute
	if req.GetStep() != nil {
		if err := req.GetStep().CheckValid(); err != nil {
			return statsWindow{}, status.Errorf(codes.InvalidArgument, "step: %v", err)
		}
		step = req.GetStep().AsDuration()
		if step <= 0 || step%time.Minute != 0 {
			return statsWindow{}, status.Errorf(codes.InvalidArgument, "step is %s; it must be a whole number of minutes (60s, 300s, 3600s, ...)", step)
		}
	}
	end := now
	if req.GetEndTime() != nil {
		if err := req.GetEndTime().CheckValid(); err != nil {
			return statsWindow{}, status.Errorf(codes.InvalidArgument, "end_time: %v", err)
		}
		end = req.GetEndTime().AsTime()
	}
	start := end.Add(-time.Hour)
	if req.GetStartTime() != nil {
		if err := req.GetStartTime().CheckValid(); err != nil {
			return statsWindow{}, status.Errorf(codes.InvalidArgument, "start_time: %v", err)
		}
		start = req.GetStartTime().AsTime()
	}
	if !start.Before(end) {
		return statsWindow{}, status.Errorf(codes.InvalidArgument, "start_time %s is not before end_time %s", start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	if start.Unix() < 0 {
		return statsWindow{}, status.Errorf(codes.InvalidArgument, "start_time %s is before 1970", start.UTC().Format(time.RFC3339))
	}
	span := end.Sub(start)
	if span > MaxStatsBuckets*step {
		least := (span + MaxStatsBuckets*time.Minute - 1) / (MaxStatsBuckets * time.Minute) * time.Minute
		return statsWindow{}, status.Errorf(codes.InvalidArgument, "the window from %s to %s is %s long, more than %d steps of %s: use step %ds or more, or a shorter window",
			start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), span, MaxStatsBuckets, step, int64(least.Seconds()))
	}
	// Buckets are aligned to step since the Unix epoch; when that adds a
	// bucket, the oldest one goes.
	start = time.Unix(start.Unix()-start.Unix()%int64(step.Seconds()), 0).UTC()
	n := int((end.Sub(start) + step - 1) / step)
	if n > MaxStatsBuckets {
		start = start.Add(time.Duration(n-MaxStatsBuckets) * step)
		n = MaxStatsBuckets
	}
	return statsWindow{start: start, step: step, n: n}, nil
}

func (s *statsService) GetDeliveryStats(ctx context.Context, req *hookwirev1.GetDeliveryStatsRequest) (*hookwirev1.DeliveryStats, error) {
	tenant := req.GetTenant()
	if err := s.authorizeListing(ctx, tenant); err != nil {
		return nil, err
	}
	var only *ids.ID
	if v := req.GetSubscriptionId(); v != "" {
		id, err := ids.Parse(ids.Subscription, v)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "subscription_id: %v", err)
		}
		if _, err := s.cfg.Store.GetSubscription(tenant, v); err != nil {
			return nil, storeError(err, "subscription "+quote(v))
		}
		only = &id
	}
	w, err := statsWindowOf(req, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	from := w.start.Unix() / 60
	to := from + int64(w.n)*int64(w.step/time.Minute)

	// Per subscription and minute: stored, plus not yet flushed.
	minutes := map[ids.ID]map[int64]*storev1.StatsMinute{}
	read := func() error {
		return s.cfg.Store.StatsMinutes(tenant, only, from, to, func(sub ids.ID, minute int64, m *storev1.StatsMinute) {
			if minutes[sub] == nil {
				minutes[sub] = map[int64]*storev1.StatsMinute{}
			}
			minutes[sub][minute] = m
		})
	}
	disp := s.disp.Load()
	if disp == nil {
		err = read()
	} else {
		var pending map[ids.ID]map[int64]*storev1.StatsMinute
		pending, err = disp.ReadStats(tenant, only, from, to, read)
		for sub, ms := range pending {
			if minutes[sub] == nil {
				minutes[sub] = map[int64]*storev1.StatsMinute{}
			}
			for minute, m := range ms {
				if cur := minutes[sub][minute]; cur != nil {
					store.MergeStatsMinute(cur, m)
				} else {
					minutes[sub][minute] = m
				}
			}
		}
	}
	if err != nil {
		return nil, storeError(err, "statistics")
	}

	out := &hookwirev1.DeliveryStats{StartTime: timestamppb.New(w.start), Step: durationpb.New(w.step), Buckets: make([]*hookwirev1.StatsBucket, w.n), Queue: &hookwirev1.QueueDepth{}}
	sums := make([]*storev1.StatsMinute, w.n)
	for i := range out.Buckets {
		out.Buckets[i] = &hookwirev1.StatsBucket{StartTime: timestamppb.New(w.start.Add(time.Duration(i) * w.step)), AttemptsByOutcome: map[string]int64{}, Queue: &hookwirev1.QueueDepth{}}
		sums[i] = &storev1.StatsMinute{}
	}
	perStep := int64(w.step / time.Minute)
	subIDs := make([]ids.ID, 0, len(minutes))
	for sub := range minutes {
		subIDs = append(subIDs, sub)
	}
	if only != nil && minutes[*only] == nil {
		subIDs = append(subIDs, *only)
	}
	sort.Slice(subIDs, func(i, j int) bool { return string(subIDs[i][:]) < string(subIDs[j][:]) })
	for _, sub := range subIDs {
		total := &storev1.StatsMinute{}
		lastSample := make([]int64, w.n) // per bucket: the minute of the sub's last queue sample
		for minute, m := range minutes[sub] {
			i := int((minute - from) / perStep)
			if i < 0 || i >= w.n {
				continue
			}
			sample := m.GetQueueSampled()
			counts := &storev1.StatsMinute{Created: m.GetCreated(), Succeeded: m.GetSucceeded(), Retrying: m.GetRetrying(), Dead: m.GetDead(), Outcomes: m.GetOutcomes(), Latency: m.GetLatency()}
			store.MergeStatsMinute(sums[i], counts)
			store.MergeStatsMinute(total, counts)
			if sample && minute+1 > lastSample[i] {
				// The sub's latest sample in the bucket stands for it.
				b := out.Buckets[i].Queue
				if lastSample[i] > 0 {
					prev := minutes[sub][lastSample[i]-1]
					b.WaitingRetry -= prev.GetWaitingRetry()
					b.WaitingAgent -= prev.GetWaitingAgent()
				}
				b.WaitingRetry += m.GetWaitingRetry()
				b.WaitingAgent += m.GetWaitingAgent()
				lastSample[i] = minute + 1
			}
		}
		attempts := total.GetSucceeded() + total.GetRetrying() + total.GetDead()
		if attempts == 0 && total.GetCreated() == 0 && (only == nil || *only != sub) {
			continue // only queue samples: no activity to total
		}
		st := &hookwirev1.SubscriptionStats{SubscriptionId: ids.Format(ids.Subscription, sub), Attempts: attempts,
			Succeeded: total.GetSucceeded(), Retrying: total.GetRetrying(), Dead: total.GetDead(), Created: total.GetCreated(),
			Latency: percentiles(total.GetLatency())}
		if attempts > 0 {
			st.SuccessRate = float64(total.GetSucceeded()) / float64(attempts)
		}
		out.Subscriptions = append(out.Subscriptions, st)
	}
	for i, b := range out.Buckets {
		m := sums[i]
		b.Created, b.Succeeded, b.Retrying, b.Dead = m.GetCreated(), m.GetSucceeded(), m.GetRetrying(), m.GetDead()
		for o, n := range m.GetOutcomes() {
			if n > 0 {
				b.AttemptsByOutcome[transportv1.Outcome(o).String()] = n
			}
		}
		b.Latency = percentiles(m.GetLatency())
	}
	if disp != nil {
		for sub, q := range disp.QueueDepths() {
			if q.Tenant != tenant || (only != nil && sub != *only) {
				continue
			}
			out.Queue.WaitingRetry += int64(q.WaitingRetry)
			out.Queue.WaitingAgent += int64(q.WaitingAgent)
		}
	}
	return out, nil
}

// percentiles estimates p50, p90 and p99 of a latency histogram (nil when
// it is empty).
func percentiles(hist []int64) *hookwirev1.LatencyPercentiles {
	p50, ok := dispatch.LatencyQuantile(hist, 0.50)
	if !ok {
		return nil
	}
	p90, _ := dispatch.LatencyQuantile(hist, 0.90)
	p99, _ := dispatch.LatencyQuantile(hist, 0.99)
	return &hookwirev1.LatencyPercentiles{P50: durationpb.New(p50), P90: durationpb.New(p90), P99: durationpb.New(p99)}
}
