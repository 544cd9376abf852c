package dispatch

// Watching deliveries live (TailDeliveries, `hookwire tail`).
//
// The dispatcher tells a fan-out hub what happens to deliveries once it is
// durable: created (after the publish commits), attempted (after the result
// commits), cancelled or re-queued (after the change commits). The hub
// filters per watcher and appends to the watcher's bounded buffer. It must
// never slow delivery down: with no watcher the notification is one atomic
// load, and a watcher whose buffer is full loses items (it is told how many
// with a DROPPED item, and hookwire_tail_dropped_total counts them) instead
// of making the dispatcher wait. A watcher that has had nothing for its
// heartbeat interval gets a HEARTBEAT item, so idle streams carry traffic
// through proxies that cut idle connections.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/metrics"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultWatchBuffer is how many items a watcher may have waiting before
// further ones are dropped.
const DefaultWatchBuffer = 1024

// maxWatchError caps the error text of a watched item, in bytes.
const maxWatchError = 512

// ErrWatchClosed is returned by Watcher.Next once the dispatcher stops
// serving watches (the control plane is shutting down).
var ErrWatchClosed = errors.New("the control plane is shutting down")

// WatchFilter selects the items a watcher receives. Zero fields match
// everything; set fields combine with AND.
type WatchFilter struct {
	// Tenant is required: a watcher sees one tenant.
	Tenant string
	// Subscription is a subscription id (sub_...).
	Subscription string
	// EventType, if set, is an exact type or pattern.
	EventType *catalog.Pattern
	// Result and Outcomes select attempts (and imply AttemptsOnly).
	Result   hookwirev1.TailResult
	Outcomes []transportv1.Outcome
	// AttemptsOnly leaves out created, cancelled and re-queued items.
	AttemptsOnly bool
}

func (f *WatchFilter) match(tenant string, it *hookwirev1.TailDeliveriesResponse) bool {
	if tenant != f.Tenant {
		return false
	}
	if f.Subscription != "" && it.GetSubscriptionId() != f.Subscription {
		return false
	}
	if f.EventType != nil && !f.EventType.Match(it.GetEventType()) {
		return false
	}
	if it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT {
		return !f.AttemptsOnly && f.Result == hookwirev1.TailResult_TAIL_RESULT_UNSPECIFIED && len(f.Outcomes) == 0
	}
	if len(f.Outcomes) > 0 && !slices.Contains(f.Outcomes, it.GetOutcome()) {
		return false
	}
	success := it.GetOutcome() == transportv1.Outcome_OUTCOME_SUCCESS
	switch f.Result {
	case hookwirev1.TailResult_TAIL_RESULT_SUCCEEDED:
		return success
	case hookwirev1.TailResult_TAIL_RESULT_FAILED:
		return !success
	case hookwirev1.TailResult_TAIL_RESULT_RETRYING:
		return !success && it.GetDeliveryStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING
	case hookwirev1.TailResult_TAIL_RESULT_DEAD:
		return it.GetDeliveryStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD
	}
	return true
}

// watchHub fans items out to watchers. Its zero value is ready to use.
type watchHub struct {
	// n is the number of watchers: the only cost when nobody watches.
	n        atomic.Int32
	mu       sync.RWMutex
	watchers map[*Watcher]struct{}
	closed   bool
}

func (h *watchHub) active() bool { return h.n.Load() > 0 }

// publish offers one item to every watcher whose filter matches. It never
// blocks on a watcher.
func (h *watchHub) publish(tenant string, it *hookwirev1.TailDeliveriesResponse) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for w := range h.watchers {
		if w.filter.match(tenant, it) {
			w.offer(it)
		}
	}
}

func (h *watchHub) add(w *Watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		w.closed = true
		return
	}
	if h.watchers == nil {
		h.watchers = map[*Watcher]struct{}{}
	}
	h.watchers[w] = struct{}{}
	h.n.Add(1)
	w.metrics.TailWatchers(1)
}

func (h *watchHub) remove(w *Watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.watchers[w]; ok {
		delete(h.watchers, w)
		h.n.Add(-1)
		w.metrics.TailWatchers(-1)
	}
}

// close ends every watch; later ones end at once.
func (h *watchHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for w := range h.watchers {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		w.wake()
	}
}

// Watcher receives the items its filter selects. Create with
// Dispatcher.Watch; Close it when done.
type Watcher struct {
	hub    *watchHub
	filter WatchFilter
	limit  int
	now    func() time.Time
	notify chan struct{}
	// metrics counts open watchers and dropped items; nil: none.
	metrics *metrics.ControlPlane

	mu      sync.Mutex
	buf     []*hookwirev1.TailDeliveriesResponse
	dropped int64
	closed  bool
}

func (w *Watcher) offer(it *hookwirev1.TailDeliveriesResponse) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	if len(w.buf) >= w.limit {
		w.dropped++
		w.metrics.TailDropped(1)
	} else {
		w.buf = append(w.buf, it)
	}
	w.mu.Unlock()
	w.wake()
}

func (w *Watcher) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// Next waits for items and returns every one waiting, oldest first. If
// items were dropped since the last call because the buffer was full, the
// batch ends with one item of kind DROPPED counting them (they all came
// after the others in the batch). If heartbeat > 0 and nothing comes for
// that long, Next returns one item of kind HEARTBEAT (only its time set).
// Next returns ctx's error when ctx ends and ErrWatchClosed when the
// dispatcher stops serving watches. The items are shared with other
// watchers: do not modify them.
func (w *Watcher) Next(ctx context.Context, heartbeat time.Duration) ([]*hookwirev1.TailDeliveriesResponse, error) {
	// idle fires once heartbeat has passed since the call; nil (never
	// ready) without heartbeats. Made only when Next has to wait.
	var idle <-chan time.Time
	for {
		w.mu.Lock()
		if len(w.buf) > 0 || w.dropped > 0 {
			out := w.buf
			w.buf = make([]*hookwirev1.TailDeliveriesResponse, 0, min(len(out), w.limit))
			if w.dropped > 0 {
				out = append(out, &hookwirev1.TailDeliveriesResponse{
					Kind: hookwirev1.TailEventKind_TAIL_EVENT_KIND_DROPPED, Time: timestamppb.New(w.now()), Dropped: w.dropped,
				})
				w.dropped = 0
			}
			w.mu.Unlock()
			return out, nil
		}
		closed := w.closed
		w.mu.Unlock()
		if closed {
			return nil, ErrWatchClosed
		}
		if heartbeat > 0 && idle == nil {
			t := time.NewTimer(heartbeat)
			defer t.Stop()
			idle = t.C
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.notify:
		case <-idle:
			w.mu.Lock()
			pending := len(w.buf) > 0 || w.dropped > 0
			w.mu.Unlock()
			if pending {
				continue // items came just now: they go out instead
			}
			return []*hookwirev1.TailDeliveriesResponse{{
				Kind: hookwirev1.TailEventKind_TAIL_EVENT_KIND_HEARTBEAT, Time: timestamppb.New(w.now()),
			}}, nil
		}
	}
}

// Close stops the watch.
func (w *Watcher) Close() { w.hub.remove(w) }

// Watch starts receiving what happens to deliveries from now on. buffer
// bounds the items waiting for Next (<= 0: DefaultWatchBuffer).
func (d *Dispatcher) Watch(f WatchFilter, buffer int) *Watcher {
	if buffer <= 0 {
		buffer = DefaultWatchBuffer
	}
	w := &Watcher{hub: &d.watch, filter: f, limit: buffer, now: d.cfg.Now, notify: make(chan struct{}, 1), metrics: d.cfg.Metrics}
	d.watch.add(w)
	return w
}

// StopWatches ends every watch (Next returns ErrWatchClosed), before the
// servers wait for their streams to finish.
func (d *Dispatcher) StopWatches() { d.watch.close() }

// noteReady reports deliveries just committed by a publish.
func (d *Dispatcher) noteReady(list []Ready) {
	if !d.watch.active() {
		return
	}
	at := timestamppb.New(d.cfg.Now())
	for _, r := range list {
		d.watch.publish(r.Sub.Tenant, &hookwirev1.TailDeliveriesResponse{
			Kind: hookwirev1.TailEventKind_TAIL_EVENT_KIND_CREATED, Time: at,
			DeliveryId: ids.Format(ids.Delivery, r.ID), EventId: ids.Format(ids.Event, r.EventID),
			EventType: r.EventType, SubscriptionId: r.Sub.IDText,
			DeliveryStatus: hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING,
		})
	}
}

// NoteCreated reports deliveries created outside a publish (a resend),
// after they are durable.
func (d *Dispatcher) NoteCreated(dels ...*hookwirev1.Delivery) {
	now := d.cfg.Now()
	for _, del := range dels {
		if id, err := ids.Parse(ids.Subscription, del.GetSubscriptionId()); err == nil {
			d.countCreated(now, d.cfg.Catalog.Get(id))
		}
	}
	if !d.watch.active() {
		return
	}
	at := timestamppb.New(d.cfg.Now())
	for _, del := range dels {
		it := itemOf(del, hookwirev1.TailEventKind_TAIL_EVENT_KIND_CREATED, at)
		d.watch.publish(del.GetTenant(), it)
	}
}

// NoteChanged reports deliveries an operator or the dispatcher cancelled
// or made due again, after the change is durable. Changes that were not
// applied are skipped.
func (d *Dispatcher) NoteChanged(changes []*store.DeliveryChange) {
	if !d.watch.active() {
		return
	}
	at := timestamppb.New(d.cfg.Now())
	for _, ch := range changes {
		del := ch.Result
		if !ch.Applied || del == nil {
			continue
		}
		var kind hookwirev1.TailEventKind
		switch del.GetStatus() {
		case hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED:
			kind = hookwirev1.TailEventKind_TAIL_EVENT_KIND_CANCELLED
		case hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING:
			kind = hookwirev1.TailEventKind_TAIL_EVENT_KIND_REQUEUED
		default:
			continue
		}
		it := itemOf(del, kind, at)
		if kind == hookwirev1.TailEventKind_TAIL_EVENT_KIND_CANCELLED {
			it.Error = capError(del.GetLastError())
		}
		d.watch.publish(del.GetTenant(), it)
	}
}

// noteAttempts reports committed attempt results.
func (d *Dispatcher) noteAttempts(agentID string, work []*pendingResult, now time.Time) {
	if !d.watch.active() {
		return
	}
	at := timestamppb.New(now)
	for _, w := range work {
		del, a := w.change.Result, w.change.Attempt
		if !w.change.Applied || del == nil || a == nil {
			continue
		}
		it := itemOf(del, hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT, at)
		it.Attempt = a.GetNumber()
		it.Outcome = a.GetOutcome()
		it.StatusCode = a.GetStatusCode()
		if l := a.GetLatency(); l != nil {
			it.Latency = durationpb.New(l.AsDuration())
		}
		it.AgentId = agentID
		it.Error = capError(a.GetError())
		d.watch.publish(del.GetTenant(), it)
	}
}

// itemOf describes a delivery as stored.
func itemOf(del *hookwirev1.Delivery, kind hookwirev1.TailEventKind, at *timestamppb.Timestamp) *hookwirev1.TailDeliveriesResponse {
	it := &hookwirev1.TailDeliveriesResponse{
		Kind: kind, Time: at, DeliveryId: del.GetId(), EventId: del.GetEventId(), EventType: del.GetEventType(),
		SubscriptionId: del.GetSubscriptionId(), DeliveryStatus: del.GetStatus(),
	}
	if t := del.GetNextAttemptTime(); t != nil && del.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
		it.NextAttemptTime = timestamppb.New(t.AsTime())
	}
	return it
}

// capError cuts s to maxWatchError bytes on a character boundary.
func capError(s string) string {
	if len(s) <= maxWatchError {
		return s
	}
	cut := maxWatchError - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
