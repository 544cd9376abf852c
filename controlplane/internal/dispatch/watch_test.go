package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/metrics"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func watchSub(tenant string) *catalog.Sub {
	id := ids.New(time.Now())
	return &catalog.Sub{ID: id, IDText: ids.Format(ids.Subscription, id), Tenant: tenant}
}

func ready(sub *catalog.Sub, eventType string) Ready {
	now := time.Now()
	return Ready{ID: ids.New(now), Sub: sub, EventID: ids.New(now), EventType: eventType}
}

// attemptResult is a committed result as complete() hands it to
// noteAttempts.
func attemptResult(sub *catalog.Sub, eventType string, n int32, o transportv1.Outcome, st hookwirev1.DeliveryStatus) *pendingResult {
	now := time.Now()
	del := &hookwirev1.Delivery{
		Id: ids.Format(ids.Delivery, ids.New(now)), Tenant: sub.Tenant, EventId: ids.Format(ids.Event, ids.New(now)),
		SubscriptionId: sub.IDText, EventType: eventType, Status: st, AttemptCount: n,
	}
	a := &hookwirev1.Attempt{DeliveryId: del.GetId(), Number: n, Outcome: o, StatusCode: 500, Latency: durationpb.New(12 * time.Millisecond), Error: strings.Repeat("é", 400)}
	return &pendingResult{change: &store.DeliveryChange{Attempt: a, Applied: true, Result: del}}
}

func next(t *testing.T, w *Watcher) []*hookwirev1.TailDeliveriesResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	items, err := w.Next(ctx, 0)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return items
}

// nothingWaiting checks that Next has nothing to return.
func nothingWaiting(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if items, err := w.Next(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next returned %d items (%v), want nothing waiting", len(items), err)
	}
}

func TestWatchFilters(t *testing.T) {
	d := New(Config{})
	acme, other := watchSub("acme"), watchSub("other")
	acme2 := watchSub("acme")
	orders := catalog.CompilePattern("order.*")
	cases := []struct {
		name   string
		filter WatchFilter
		want   []string // kind/event type/subscription of the items seen
	}{
		{"tenant only", WatchFilter{Tenant: "acme"}, []string{
			"CREATED order.created 1", "CREATED user.created 2", "CREATED hookwire.circuit.opened 1",
			"ATTEMPT order.created 1", "ATTEMPT order.paid 1", "ATTEMPT order.shipped 2", "ATTEMPT user.created 2",
		}},
		{"subscription", WatchFilter{Tenant: "acme", Subscription: acme2.IDText}, []string{
			"CREATED user.created 2", "ATTEMPT order.shipped 2", "ATTEMPT user.created 2",
		}},
		{"event type pattern leaves operational events out", WatchFilter{Tenant: "acme", EventType: &orders}, []string{
			"CREATED order.created 1", "ATTEMPT order.created 1", "ATTEMPT order.paid 1", "ATTEMPT order.shipped 2",
		}},
		{"attempts only", WatchFilter{Tenant: "acme", AttemptsOnly: true}, []string{
			"ATTEMPT order.created 1", "ATTEMPT order.paid 1", "ATTEMPT order.shipped 2", "ATTEMPT user.created 2",
		}},
		{"succeeded", WatchFilter{Tenant: "acme", Result: hookwirev1.TailResult_TAIL_RESULT_SUCCEEDED}, []string{"ATTEMPT order.created 1"}},
		{"failed", WatchFilter{Tenant: "acme", Result: hookwirev1.TailResult_TAIL_RESULT_FAILED}, []string{
			"ATTEMPT order.paid 1", "ATTEMPT order.shipped 2", "ATTEMPT user.created 2",
		}},
		{"retrying", WatchFilter{Tenant: "acme", Result: hookwirev1.TailResult_TAIL_RESULT_RETRYING}, []string{
			"ATTEMPT order.paid 1", "ATTEMPT user.created 2",
		}},
		{"dead", WatchFilter{Tenant: "acme", Result: hookwirev1.TailResult_TAIL_RESULT_DEAD}, []string{"ATTEMPT order.shipped 2"}},
		{"outcomes", WatchFilter{Tenant: "acme", Outcomes: []transportv1.Outcome{transportv1.Outcome_OUTCOME_TIMEOUT, transportv1.Outcome_OUTCOME_GONE}}, []string{
			"ATTEMPT order.shipped 2", "ATTEMPT user.created 2",
		}},
		{"exact type", WatchFilter{Tenant: "acme", EventType: ptr(catalog.CompilePattern("order.paid"))}, []string{"ATTEMPT order.paid 1"}},
		{"other tenant sees only its own", WatchFilter{Tenant: "other"}, []string{"CREATED order.created 3"}},
	}
	watchers := make([]*Watcher, len(cases))
	for i, c := range cases {
		watchers[i] = d.Watch(c.filter, 0)
		defer watchers[i].Close()
	}
	d.noteReady([]Ready{ready(acme, "order.created"), ready(acme2, "user.created"), ready(other, "order.created"), ready(acme, "hookwire.circuit.opened")})
	d.noteAttempts("agent-1", []*pendingResult{
		attemptResult(acme, "order.created", 1, transportv1.Outcome_OUTCOME_SUCCESS, hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED),
		attemptResult(acme, "order.paid", 1, transportv1.Outcome_OUTCOME_FAILED, hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING),
		attemptResult(acme2, "order.shipped", 10, transportv1.Outcome_OUTCOME_GONE, hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD),
		attemptResult(acme2, "user.created", 2, transportv1.Outcome_OUTCOME_TIMEOUT, hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING),
	}, time.Now())
	label := map[string]string{acme.IDText: "1", acme2.IDText: "2", other.IDText: "3"}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, it := range next(t, watchers[i]) {
				got = append(got, fmt.Sprintf("%s %s %s", strings.TrimPrefix(it.GetKind().String(), "TAIL_EVENT_KIND_"), it.GetEventType(), label[it.GetSubscriptionId()]))
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			nothingWaiting(t, watchers[i])
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestWatchAttemptFieldsAndCappedError(t *testing.T) {
	d := New(Config{})
	sub := watchSub("acme")
	w := d.Watch(WatchFilter{Tenant: "acme"}, 0)
	defer w.Close()
	r := attemptResult(sub, "order.paid", 3, transportv1.Outcome_OUTCOME_FAILED, hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING)
	d.noteAttempts("agent-7", []*pendingResult{r}, time.Now())
	items := next(t, w)
	if len(items) != 1 {
		t.Fatalf("%d items", len(items))
	}
	it := items[0]
	if it.GetDeliveryId() != r.change.Result.GetId() || it.GetEventId() != r.change.Result.GetEventId() || it.GetAttempt() != 3 ||
		it.GetStatusCode() != 500 || it.GetAgentId() != "agent-7" || it.GetLatency().AsDuration() != 12*time.Millisecond ||
		it.GetDeliveryStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING || it.GetTime() == nil {
		t.Fatalf("item %v", it)
	}
	if len(it.GetError()) > maxWatchError || !strings.HasSuffix(it.GetError(), "…") || !strings.HasPrefix(it.GetError(), "éé") {
		t.Fatalf("error is %d bytes: %q", len(it.GetError()), it.GetError())
	}
	// An attempt the store did not apply (cancelled meanwhile) is not shown.
	r.change.Applied = false
	d.noteAttempts("agent-7", []*pendingResult{r}, time.Now())
	nothingWaiting(t, w)
}

func TestWatchOperatorChanges(t *testing.T) {
	d := New(Config{})
	w := d.Watch(WatchFilter{Tenant: "acme"}, 0)
	defer w.Close()
	del := func(st hookwirev1.DeliveryStatus) *hookwirev1.Delivery {
		return &hookwirev1.Delivery{Id: "dlv_1", Tenant: "acme", Status: st, LastError: "cancelled by an operator", EventType: "a.b"}
	}
	d.NoteChanged([]*store.DeliveryChange{
		{Applied: true, Result: del(hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED)},
		{Applied: false, Result: nil},
		{Applied: true, Result: del(hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING)},
	})
	d.NoteCreated(del(hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING))
	items := next(t, w)
	var kinds []string
	for _, it := range items {
		kinds = append(kinds, it.GetKind().String())
	}
	want := "TAIL_EVENT_KIND_CANCELLED TAIL_EVENT_KIND_REQUEUED TAIL_EVENT_KIND_CREATED"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("kinds %v, want %s", kinds, want)
	}
	if items[0].GetError() != "cancelled by an operator" {
		t.Fatalf("cancel reason %q", items[0].GetError())
	}
}

func TestWatchSlowWatcherDropsInsteadOfBlocking(t *testing.T) {
	d := New(Config{})
	sub := watchSub("acme")
	slow := d.Watch(WatchFilter{Tenant: "acme"}, 4)
	defer slow.Close()
	fast := d.Watch(WatchFilter{Tenant: "acme"}, 100)
	defer fast.Close()
	// Nobody reads while ten are published: publishing must not wait.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 10; i++ {
			d.noteReady([]Ready{ready(sub, fmt.Sprintf("e.n%d", i))})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publishing blocked on a watcher that does not read")
	}
	items := next(t, slow)
	if len(items) != 5 {
		t.Fatalf("slow watcher got %d items, want 4 and a DROPPED one", len(items))
	}
	for i, it := range items[:4] {
		if it.GetEventType() != fmt.Sprintf("e.n%d", i) {
			t.Fatalf("item %d is %s", i, it.GetEventType())
		}
	}
	if last := items[4]; last.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_DROPPED || last.GetDropped() != 6 || last.GetDeliveryId() != "" {
		t.Fatalf("last item %v, want DROPPED 6", last)
	}
	// After draining, the slow watcher receives again, without a drop.
	d.noteReady([]Ready{ready(sub, "e.after")})
	if items = next(t, slow); len(items) != 1 || items[0].GetEventType() != "e.after" {
		t.Fatalf("after draining: %v", items)
	}
	// The fast watcher lost nothing.
	if items = next(t, fast); len(items) != 11 {
		t.Fatalf("fast watcher got %d items, want 11", len(items))
	}
}

func TestWatchStopsAndCosts(t *testing.T) {
	d := New(Config{})
	if d.watch.active() {
		t.Fatal("hub active with no watcher")
	}
	w := d.Watch(WatchFilter{Tenant: "acme"}, 0)
	if !d.watch.active() {
		t.Fatal("hub inactive with a watcher")
	}
	got := make(chan error, 1)
	go func() {
		_, err := w.Next(context.Background(), 0)
		got <- err
	}()
	d.Shutdown()
	select {
	case err := <-got:
		if !errors.Is(err, ErrWatchClosed) {
			t.Fatalf("Next after Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return after Shutdown")
	}
	w.Close()
	if d.watch.active() {
		t.Fatal("hub active after the watcher closed")
	}
	// A watch started after shutdown ends at once.
	late := d.Watch(WatchFilter{Tenant: "acme"}, 0)
	defer late.Close()
	if _, err := late.Next(context.Background(), 0); !errors.Is(err, ErrWatchClosed) {
		t.Fatalf("late watch: %v", err)
	}
	if d.watch.active() {
		t.Fatal("a watch refused at shutdown counts as a watcher")
	}
}

func TestWatchHeartbeatWhenIdle(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	d := New(Config{Now: func() time.Time { return at }})
	sub := watchSub("acme")
	w := d.Watch(WatchFilter{Tenant: "acme"}, 0)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Nothing happens: after the interval Next returns one HEARTBEAT.
	items, err := w.Next(ctx, 20*time.Millisecond)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if len(items) != 1 || items[0].GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_HEARTBEAT ||
		!items[0].GetTime().AsTime().Equal(at) || items[0].GetDeliveryId() != "" || items[0].GetDropped() != 0 {
		t.Fatalf("idle watch got %v, want one HEARTBEAT at %s", items, at)
	}

	// Items waiting go out at once, without a heartbeat.
	d.noteReady([]Ready{ready(sub, "order.created")})
	if items, err = w.Next(ctx, time.Hour); err != nil || len(items) != 1 || items[0].GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_CREATED {
		t.Fatalf("after a publish: %v %v", items, err)
	}
	// An item that arrives while Next waits ends the wait before the
	// heartbeat is due.
	got := make(chan []*hookwirev1.TailDeliveriesResponse, 1)
	go func() {
		items, _ := w.Next(ctx, time.Hour)
		got <- items
	}()
	d.noteReady([]Ready{ready(sub, "order.paid")})
	select {
	case items := <-got:
		if len(items) != 1 || items[0].GetEventType() != "order.paid" {
			t.Fatalf("waiting Next got %v", items)
		}
	case <-ctx.Done():
		t.Fatal("Next did not return the item published while it waited")
	}
	// Without an interval there is no heartbeat.
	nothingWaiting(t, w)
}

// gathered reads one unlabelled series from the registry.
func gathered(t *testing.T, m *metrics.ControlPlane, name string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if s.GetGauge() != nil {
				return s.GetGauge().GetValue()
			}
			return s.GetCounter().GetValue()
		}
	}
	t.Fatalf("%s not gathered", name)
	return 0
}

func TestWatchMetrics(t *testing.T) {
	m := metrics.NewControlPlane(nil, nil)
	d := New(Config{Metrics: m})
	sub := watchSub("acme")
	slow := d.Watch(WatchFilter{Tenant: "acme"}, 2)
	fast := d.Watch(WatchFilter{Tenant: "acme"}, 100)
	other := d.Watch(WatchFilter{Tenant: "other"}, 1)
	if n := gathered(t, m, "hookwire_tail_watchers"); n != 3 {
		t.Fatalf("hookwire_tail_watchers = %v with three watches", n)
	}
	for i := range 5 {
		d.noteReady([]Ready{ready(sub, fmt.Sprintf("e.n%d", i))})
	}
	// Only the slow watcher lost items: 5 offered, 2 kept.
	if n := gathered(t, m, "hookwire_tail_dropped_total"); n != 3 {
		t.Fatalf("hookwire_tail_dropped_total = %v, want 3", n)
	}
	if items := next(t, slow); items[len(items)-1].GetDropped() != 3 {
		t.Fatalf("slow watcher was told %v", items[len(items)-1])
	}
	slow.Close()
	slow.Close() // a second Close changes nothing
	if n := gathered(t, m, "hookwire_tail_watchers"); n != 2 {
		t.Fatalf("hookwire_tail_watchers = %v after one closed", n)
	}
	d.Shutdown()
	fast.Close()
	other.Close()
	late := d.Watch(WatchFilter{Tenant: "acme"}, 0) // refused: shutting down
	late.Close()
	if n := gathered(t, m, "hookwire_tail_watchers"); n != 0 {
		t.Fatalf("hookwire_tail_watchers = %v after all closed", n)
	}
}

// BenchmarkNoteReadyUnwatched is the cost the publish path pays for tail
// when nobody tails.
func BenchmarkNoteReadyUnwatched(b *testing.B) {
	d := New(Config{})
	list := []Ready{ready(watchSub("acme"), "order.created")}
	b.ReportAllocs()
	for b.Loop() {
		d.noteReady(list)
	}
}
