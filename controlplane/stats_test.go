package controlplane_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/controlplane/internal/dispatch"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// statsTarget is an HTTP target on 127.0.0.1 that takes a known time to
// answer and fails the events whose payload asks for it.
type statsTarget struct {
	*httptest.Server
	requests atomic.Int64
}

const statsTargetDelay = 25 * time.Millisecond

func newStatsTarget(t *testing.T) *statsTarget {
	st := &statsTarget{}
	st.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		time.Sleep(statsTargetDelay) // the workload: a target that takes 25ms
		st.requests.Add(1)
		if bytes.Contains(body, []byte(`"fail"`)) {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(st.Close)
	return st
}

// statsHarness is a control plane on a frozen clock standing 5s into a
// minute, with a real agent delivering to a statsTarget.
type statsHarness struct {
	*harness
	clock *dispatch.FakeClock
}

func startStats(t *testing.T, dir string, at time.Time) *statsHarness {
	t.Helper()
	fake := dispatch.NewFakeClock(at)
	h := start(t, dir, controlplane.Config{Clock: fake,
		Retry: controlplane.RetryOptions{Jitter: 0, ThrottleMin: time.Minute, Rand: func() float64 { return 0.5 }}})
	return &statsHarness{harness: h, clock: fake}
}

func (h *statsHarness) stats(tenant string, req *hookwirev1.GetDeliveryStatsRequest) *hookwirev1.DeliveryStats {
	h.t.Helper()
	req.Tenant = tenant
	out, err := hookwirev1.NewStatsServiceClient(h.conn).GetDeliveryStats(h.ctx(), req)
	if err != nil {
		h.t.Fatalf("GetDeliveryStats: %v", err)
	}
	return out
}

// restStats is GetDeliveryStats through the REST gateway.
func (h *statsHarness) restStats(tenant string, query url.Values) (*hookwirev1.DeliveryStats, int, string) {
	h.t.Helper()
	body, code, _ := h.restFull(http.MethodGet, "/v1/tenants/"+tenant+"/stats?"+query.Encode(), "")
	if code != http.StatusOK {
		return nil, code, string(body)
	}
	var out hookwirev1.DeliveryStats
	if err := protojson.Unmarshal(body, &out); err != nil {
		h.t.Fatalf("decode %s: %v", body, err)
	}
	return &out, code, string(body)
}

// waitFor polls cond until it holds or 20s pass.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, got := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s", what, got)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

func bucketCounts(b *hookwirev1.StatsBucket) string {
	return fmt.Sprintf("created=%d ok=%d retrying=%d dead=%d", b.GetCreated(), b.GetSucceeded(), b.GetRetrying(), b.GetDead())
}

// TestDeliveryStats runs a real agent against a target that fails some
// events, and reads the statistics over gRPC and REST: the counts per
// minute add up to what the target received, the percentiles lie in the
// histogram buckets of the recorded latencies, the queue shows the
// scheduled retries, the counts survive a restart, bad windows get
// InvalidArgument (400), other tenants get NotFound, and deleting the
// subscription deletes its statistics.
func TestDeliveryStats(t *testing.T) {
	dir := t.TempDir()
	// Ahead of the real clock: the store counts its due index against
	// real time when it opens, and the clock only moves forward from there.
	m0 := time.Now().Truncate(time.Minute).Add(10 * time.Minute)
	h := startStats(t, dir, m0.Add(5*time.Second))
	target := newStatsTarget(t)
	startTracedAgent(t, h.srv.GRPCAddr(), nil)

	ctx := h.ctx()
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(ctx, &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := structpb.NewStruct(map[string]any{"url": target.URL + "/hook"})
	sub, err := hookwirev1.NewSubscriptionServiceClient(h.conn).CreateSubscription(ctx, &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: &hookwirev1.Subscription{
		EventTypes: []string{"order.*"}, Target: &hookwirev1.Target{Transport: "http", Config: cfg},
		// One retry a minute later, then dead.
		RetryPolicy: &hookwirev1.RetryPolicy{Policy: &hookwirev1.RetryPolicy_Schedule{Schedule: &hookwirev1.RetrySchedule{Delays: []*durationpb.Duration{durationpb.New(time.Minute)}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	const okEvents, failEvents = 5, 3
	events := hookwirev1.NewEventServiceClient(h.conn)
	for i := range okEvents + failEvents {
		payload := `{"n":1}`
		if i >= okEvents {
			payload = `{"fail":true}`
		}
		if _, err := events.PublishEvent(ctx, &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(payload)}}); err != nil {
			t.Fatal(err)
		}
	}
	window := &hookwirev1.GetDeliveryStatsRequest{StartTime: timestamppb.New(m0.Add(-time.Minute)), EndTime: timestamppb.New(m0.Add(3 * time.Minute))}
	query := url.Values{"start_time": {m0.Add(-time.Minute).UTC().Format(time.RFC3339)}, "end_time": {m0.Add(3 * time.Minute).UTC().Format(time.RFC3339)}, "step": {"60s"}}

	// Minute 0: every first attempt; the failed ones wait for their retry.
	waitFor(t, "first attempts counted", func() (bool, string) {
		b := h.stats("acme", proto.Clone(window).(*hookwirev1.GetDeliveryStatsRequest)).GetBuckets()[1]
		return b.GetSucceeded() == okEvents && b.GetRetrying() == failEvents, bucketCounts(b)
	})
	if got := target.requests.Load(); got != okEvents+failEvents {
		t.Fatalf("target received %d requests, want %d", got, okEvents+failEvents)
	}
	st := h.stats("acme", proto.Clone(window).(*hookwirev1.GetDeliveryStatsRequest))
	if q := st.GetQueue(); q.GetWaitingRetry() != failEvents || q.GetWaitingAgent() != 0 {
		t.Fatalf("live queue %v, want %d waiting for a retry", q, failEvents)
	}
	if err := h.srv.FlushStats(ctx); err != nil { // samples the queue into minute 0
		t.Fatal(err)
	}

	// Minute 1: the retries fail again and the deliveries are dead.
	h.clock.Advance(time.Minute)
	h.srv.Tick()
	waitFor(t, "retries counted", func() (bool, string) {
		b := h.stats("acme", proto.Clone(window).(*hookwirev1.GetDeliveryStatsRequest)).GetBuckets()[2]
		return b.GetDead() == failEvents, bucketCounts(b)
	})
	if err := h.srv.FlushStats(ctx); err != nil {
		t.Fatal(err)
	}

	grpcStats := h.stats("acme", proto.Clone(window).(*hookwirev1.GetDeliveryStatsRequest))
	restStats, code, body := h.restStats("acme", query)
	if code != http.StatusOK {
		t.Fatalf("REST stats: %d %s", code, body)
	}
	if !proto.Equal(grpcStats, restStats) {
		t.Fatalf("REST and gRPC differ:\n%v\n%v", restStats, grpcStats)
	}
	for _, must := range []string{`"start_time"`, `"buckets"`, `"attempts_by_outcome"`, `"waiting_retry"`, `"success_rate"`, `"subscription_id"`} {
		if !strings.Contains(body, must) {
			t.Errorf("REST answer lacks %s: %s", must, body)
		}
	}
	checkStats(t, grpcStats, m0, okEvents, failEvents, target.requests.Load())
	checkPercentiles(t, h, sub.GetId(), grpcStats)

	// Restart on the same data directory: the counts are the store's.
	h.stop()
	h = startStats(t, dir, m0.Add(65*time.Second))
	after := h.stats("acme", proto.Clone(window).(*hookwirev1.GetDeliveryStatsRequest))
	after.Queue = grpcStats.GetQueue() // live, not stored
	if !proto.Equal(after, grpcStats) {
		t.Fatalf("after a restart:\n%v\nbefore:\n%v", after, grpcStats)
	}
	one := h.stats("acme", &hookwirev1.GetDeliveryStatsRequest{SubscriptionId: sub.GetId(), StartTime: window.StartTime, EndTime: window.EndTime})
	if len(one.GetSubscriptions()) != 1 || one.GetSubscriptions()[0].GetAttempts() != okEvents+2*failEvents {
		t.Fatalf("one subscription's stats: %v", one.GetSubscriptions())
	}

	// Bad windows.
	for _, c := range []struct {
		req  *hookwirev1.GetDeliveryStatsRequest
		q    url.Values
		want string
	}{
		{&hookwirev1.GetDeliveryStatsRequest{Step: durationpb.New(90 * time.Second)}, url.Values{"step": {"90s"}}, "whole number of minutes"},
		{&hookwirev1.GetDeliveryStatsRequest{Step: durationpb.New(30 * time.Second)}, url.Values{"step": {"30s"}}, "step: must be greater than or equal to 60s"},
		{&hookwirev1.GetDeliveryStatsRequest{StartTime: timestamppb.New(m0.Add(-48 * time.Hour)), EndTime: timestamppb.New(m0)},
			url.Values{"start_time": {m0.Add(-48 * time.Hour).UTC().Format(time.RFC3339)}, "end_time": {m0.UTC().Format(time.RFC3339)}}, "use step 120s or more"},
		{&hookwirev1.GetDeliveryStatsRequest{StartTime: timestamppb.New(m0), EndTime: timestamppb.New(m0)},
			url.Values{"start_time": {m0.UTC().Format(time.RFC3339)}, "end_time": {m0.UTC().Format(time.RFC3339)}}, "is not before end_time"},
	} {
		c.req.Tenant = "acme"
		_, err := hookwirev1.NewStatsServiceClient(h.conn).GetDeliveryStats(h.ctx(), c.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want InvalidArgument saying %q", c.req, err, c.want)
		}
		if _, code, body := h.restStats("acme", c.q); code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("REST %v: got %d %s, want 400 saying %q", c.q, code, body, c.want)
		}
	}

	// Another tenant's key sees nothing of acme.
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "globex"}); err != nil {
		t.Fatal(err)
	}
	key, err := hookwirev1.NewApiKeyServiceClient(h.conn).CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: "globex", Scope: hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY})
	if err != nil {
		t.Fatal(err)
	}
	_, err = hookwirev1.NewStatsServiceClient(h.conn).GetDeliveryStats(authedCtx(t, key.GetKey()), &hookwirev1.GetDeliveryStatsRequest{Tenant: "acme"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("globex's key reading acme's stats: %v, want NotFound", err)
	}
	own, err := hookwirev1.NewStatsServiceClient(h.conn).GetDeliveryStats(authedCtx(t, key.GetKey()), &hookwirev1.GetDeliveryStatsRequest{Tenant: "globex"})
	if err != nil || len(own.GetBuckets()) != 61 || len(own.GetSubscriptions()) != 0 {
		t.Fatalf("globex's own stats (default window: the hour before now, from the start of its first minute): %d buckets, %v, %v", len(own.GetBuckets()), own.GetSubscriptions(), err)
	}

	// Deleting the subscription deletes its statistics.
	if _, err := hookwirev1.NewSubscriptionServiceClient(h.conn).DeleteSubscription(h.ctx(), &hookwirev1.DeleteSubscriptionRequest{Tenant: "acme", Id: sub.GetId()}); err != nil {
		t.Fatal(err)
	}
	gone := h.stats("acme", proto.Clone(window).(*hookwirev1.GetDeliveryStatsRequest))
	if len(gone.GetSubscriptions()) != 0 {
		t.Fatalf("after deleting the subscription: %v", gone.GetSubscriptions())
	}
	for _, b := range gone.GetBuckets() {
		if b.GetCreated()+b.GetSucceeded()+b.GetRetrying()+b.GetDead() != 0 || len(b.GetAttemptsByOutcome()) != 0 {
			t.Fatalf("after deleting the subscription a bucket still counts: %v", b)
		}
	}
	_, err = hookwirev1.NewStatsServiceClient(h.conn).GetDeliveryStats(h.ctx(), &hookwirev1.GetDeliveryStatsRequest{Tenant: "acme", SubscriptionId: sub.GetId()})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("stats of the deleted subscription: %v, want NotFound", err)
	}
}

// checkStats checks the buckets of the window [m0-1m, m0+3m).
func checkStats(t *testing.T, st *hookwirev1.DeliveryStats, m0 time.Time, okEvents, failEvents, requests int64) {
	t.Helper()
	if len(st.GetBuckets()) != 4 || !st.GetStartTime().AsTime().Equal(m0.Add(-time.Minute)) || st.GetStep().AsDuration() != time.Minute {
		t.Fatalf("window: start %v step %v, %d buckets", st.GetStartTime().AsTime(), st.GetStep().AsDuration(), len(st.GetBuckets()))
	}
	var attempts int64
	for i, b := range st.GetBuckets() {
		if !b.GetStartTime().AsTime().Equal(m0.Add(time.Duration(i-1) * time.Minute)) {
			t.Errorf("bucket %d starts %v", i, b.GetStartTime().AsTime())
		}
		var byOutcome int64
		for _, n := range b.GetAttemptsByOutcome() {
			byOutcome += n
		}
		n := b.GetSucceeded() + b.GetRetrying() + b.GetDead()
		if byOutcome != n || b.GetAttemptsByOutcome()["OUTCOME_SUCCESS"] != b.GetSucceeded() {
			t.Errorf("bucket %d: by outcome %v, %s", i, b.GetAttemptsByOutcome(), bucketCounts(b))
		}
		attempts += n
	}
	if attempts != requests {
		t.Errorf("the buckets count %d attempts, the target received %d requests", attempts, requests)
	}
	b := st.GetBuckets()
	want := []string{
		"created=0 ok=0 retrying=0 dead=0",
		fmt.Sprintf("created=%d ok=%d retrying=%d dead=0", okEvents+failEvents, okEvents, failEvents),
		fmt.Sprintf("created=0 ok=0 retrying=0 dead=%d", failEvents),
		"created=0 ok=0 retrying=0 dead=0",
	}
	for i := range b {
		if bucketCounts(b[i]) != want[i] {
			t.Errorf("bucket %d: %s, want %s", i, bucketCounts(b[i]), want[i])
		}
	}
	if q := b[1].GetQueue(); q.GetWaitingRetry() != failEvents {
		t.Errorf("minute 0's queue sample %v, want %d waiting for a retry", q, failEvents)
	}
	if q := b[2].GetQueue(); q.GetWaitingRetry() != 0 || q.GetWaitingAgent() != 0 {
		t.Errorf("minute 1's queue sample %v, want empty", q)
	}
	if b[0].GetLatency() != nil || b[1].GetLatency() == nil {
		t.Errorf("latency: empty bucket %v, busy bucket %v", b[0].GetLatency(), b[1].GetLatency())
	}
	if len(st.GetSubscriptions()) != 1 {
		t.Fatalf("subscriptions: %v", st.GetSubscriptions())
	}
	s := st.GetSubscriptions()[0]
	if s.GetAttempts() != requests || s.GetSucceeded() != okEvents || s.GetRetrying() != failEvents || s.GetDead() != failEvents || s.GetCreated() != okEvents+failEvents {
		t.Errorf("subscription totals: %v", s)
	}
	if want := float64(okEvents) / float64(requests); s.GetSuccessRate() != want {
		t.Errorf("success rate %v, want %v", s.GetSuccessRate(), want)
	}
}

// checkPercentiles checks that each percentile of the window lies in the
// histogram bucket holding the true percentile of the recorded latencies.
func checkPercentiles(t *testing.T, h *statsHarness, subID string, st *hookwirev1.DeliveryStats) {
	t.Helper()
	list, err := hookwirev1.NewDeliveryServiceClient(h.conn).ListDeliveries(h.ctx(), &hookwirev1.ListDeliveriesRequest{Tenant: "acme", SubscriptionId: subID})
	if err != nil {
		t.Fatal(err)
	}
	var lat []time.Duration
	for _, d := range list.GetDeliveries() {
		as, err := hookwirev1.NewDeliveryServiceClient(h.conn).ListAttempts(h.ctx(), &hookwirev1.ListAttemptsRequest{Tenant: "acme", DeliveryId: d.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as.GetAttempts() {
			lat = append(lat, a.GetLatency().AsDuration())
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 || lat[0] < statsTargetDelay {
		t.Fatalf("recorded latencies %v: the target takes %v", lat, statsTargetDelay)
	}
	got := st.GetSubscriptions()[0].GetLatency()
	for _, c := range []struct {
		q   float64
		got time.Duration
	}{{0.5, got.GetP50().AsDuration()}, {0.9, got.GetP90().AsDuration()}, {0.99, got.GetP99().AsDuration()}} {
		rank := int(float64(len(lat))*c.q+0.999999) - 1
		truth := lat[rank]
		i := dispatch.LatencyBucket(truth)
		var lo, hi time.Duration
		if i > 0 {
			lo = dispatch.LatencyBound(i - 1)
		}
		hi = dispatch.LatencyBound(i)
		if c.got < lo || c.got > hi {
			t.Errorf("p%v = %v, want within (%v, %v], the bucket of the true %v", c.q*100, c.got, lo, hi, truth)
		}
	}
}

// TestDeliveryStatsAcrossLeaderChange counts attempts on the leader of a
// three-server cluster, reads them through a follower (forwarded, and
// from its own copy), then stops the leader: the counts, including those
// counted after the last periodic flush, are what the new leader answers.
func TestDeliveryStatsAcrossLeaderChange(t *testing.T) {
	hs := startCluster(t, nil)
	leaderOf := func(among []*harness) (leader *harness, others []*harness) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; {
			leader, others = nil, nil
			for _, h := range among {
				st, err := hookwirev1.NewClusterServiceClient(h.conn).GetClusterStatus(h.ctx(), &hookwirev1.GetClusterStatusRequest{})
				if err == nil && st.GetState() == "Leader" {
					leader = h
				} else {
					others = append(others, h)
				}
			}
			if leader != nil {
				if _, err := hookwirev1.NewTenantServiceClient(leader.conn).ListTenants(leader.ctx(), &hookwirev1.ListTenantsRequest{}); err == nil {
					return leader, others // elected and serving
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("no serving leader within 20s")
			}
			time.Sleep(20 * time.Millisecond) // polling an election
		}
	}
	leader, followers := leaderOf(hs)
	sub := leader.setup("acme")
	agent, _ := leader.connectAgent("agent-1", 10)
	events := hookwirev1.NewEventServiceClient(leader.conn)
	for range 3 {
		if _, err := events.PublishEvent(leader.ctx(), &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	as := agent.assignments(t, 3)
	withLatency := func(r *hookwirev1.Result, d time.Duration) *hookwirev1.Result {
		r.Result.Latency = durationpb.New(d)
		return r
	}
	agent.report(t, withLatency(ok(as[0]), 30*time.Millisecond), withLatency(outcome(as[1], transportv1.Outcome_OUTCOME_FAILED, 0), 3*time.Second))
	if err := leader.srv.FlushStats(leader.ctx()); err != nil {
		t.Fatal(err)
	}
	agent.report(t, withLatency(ok(as[2]), 30*time.Millisecond)) // counted after the flush: Close writes it

	totals := func(h *harness, staleOK bool) string {
		ctx := h.ctx()
		if staleOK {
			ctx = metadata.AppendToOutgoingContext(ctx, "hookwire-stale-ok", "true")
		}
		st, err := hookwirev1.NewStatsServiceClient(h.conn).GetDeliveryStats(ctx, &hookwirev1.GetDeliveryStatsRequest{Tenant: "acme", SubscriptionId: sub.GetId()})
		if err != nil {
			return err.Error()
		}
		s := st.GetSubscriptions()[0]
		return fmt.Sprintf("created=%d attempts=%d ok=%d retrying=%d dead=%d p99=%v", s.GetCreated(), s.GetAttempts(), s.GetSucceeded(), s.GetRetrying(), s.GetDead(), s.GetLatency().GetP99().AsDuration())
	}
	want := totals(leader, false)
	if !strings.HasPrefix(want, "created=3 attempts=3 ok=2 retrying=1 dead=0 p99=") {
		t.Fatalf("on the leader: %s", want)
	}
	if got := totals(followers[0], false); got != want {
		t.Fatalf("through a follower: %s, want %s", got, want)
	}
	// The follower's own copy has the flushed counts (the replicated
	// RecordStats), not the one counted since.
	waitFor(t, "the follower's copy", func() (bool, string) {
		got := totals(followers[1], true)
		return strings.HasPrefix(got, "created=3 attempts=2 ok=1 retrying=1 dead=0"), got
	})

	leader.stop()
	next, _ := leaderOf(followers)
	waitFor(t, "the new leader's counts", func() (bool, string) {
		got := totals(next, false)
		return got == want, got + ", want " + want
	})
}

// TestDeliveryStatsRetention: the hourly purge drops the minutes older
// than --stats-retention and keeps the others.
func TestDeliveryStatsRetention(t *testing.T) {
	m0 := time.Now().Truncate(time.Minute).Add(10 * time.Minute)
	h := startStats(t, t.TempDir(), m0.Add(5*time.Second))
	sub := h.setup("acme")
	agent, _ := h.connectAgent("agent-1", 10)
	if _, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	agent.report(t, ok(agent.assignments(t, 1)[0]))
	if err := h.srv.FlushStats(h.ctx()); err != nil {
		t.Fatal(err)
	}
	attempts := func() int64 {
		st := h.stats("acme", &hookwirev1.GetDeliveryStatsRequest{SubscriptionId: sub.GetId(), StartTime: timestamppb.New(m0), EndTime: timestamppb.New(m0.Add(time.Minute))})
		return st.GetSubscriptions()[0].GetAttempts()
	}
	if got := attempts(); got != 1 {
		t.Fatalf("before any purge: %d attempts", got)
	}
	h.clock.Advance(controlplane.DefaultStatsRetention - time.Minute)
	if _, _, _, err := h.srv.Purge(h.ctx()); err != nil {
		t.Fatal(err)
	}
	if got := attempts(); got != 1 {
		t.Fatalf("a minute short of the retention: %d attempts, want the minute kept", got)
	}
	h.clock.Advance(2 * time.Minute)
	if _, _, _, err := h.srv.Purge(h.ctx()); err != nil {
		t.Fatal(err)
	}
	if got := attempts(); got != 0 {
		t.Fatalf("past the retention: %d attempts, want the minute purged", got)
	}
}
