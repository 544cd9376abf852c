// Package dispatch schedules due deliveries onto connected agents.
//
// It owns the in-memory side of scheduling: one ready queue per
// subscription, served round-robin per transport so one busy subscription
// cannot starve the others; per-subscription flow control (rate limit, max
// in flight), circuit breakers and failure tracking; the leases handed to
// agents; and the agent streams. Durable state stays in the store: the
// store's due index (per subscription, in due order) is the queue of
// record, and memory holds only a bounded window of it, so a backlog of any
// size costs disk, not RAM.
//
// Flow: a publish commits, then Enqueue puts its deliveries straight into
// the ready queues (no polling on the fast path). Whatever does not fit, a
// retry that comes due, and everything after a restart is found by the
// pump, which keeps a heap of subscriptions ordered by their earliest due
// delivery and loads due deliveries subscription by subscription, skipping
// paused ones and open circuits in O(1). One timer (the alarm) stands on
// the earliest moment something becomes due: the top of that heap, a
// rate-limit refill, a circuit's half-open probe; every change that makes
// something due sooner moves it, so a retry goes out at its time on a
// quiet server as under load. Agents take from the queues of the
// transports they host, never more than the credit they granted, and
// each subscription at most its fair share of an agent while others are
// active on it (fairshare.go). A result is written to the store (attempt
// record, new status, next due time) before it is acknowledged. A lease
// that expires without a result puts its delivery back.
//
// Leases live only in memory: after a crash every unfinished delivery is
// still due and is assigned again (at-least-once, same webhook-id); a
// result for a lease the control plane no longer knows is rejected.
package dispatch

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/metrics"
	"github.com/hookwire/hookwire/controlplane/internal/retry"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	"github.com/hookwire/hookwire/controlplane/internal/tracing"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Hooks let the owner react to what the dispatcher learns. Each is called
// without dispatcher locks held, possibly concurrently.
type Hooks struct {
	// Disable disables a subscription (410 Gone, or failing for too long).
	Disable func(sub *catalog.Sub, reason string)
	// FailingSince records when a subscription's failure streak began
	// (zero time: it recovered).
	FailingSince func(sub *catalog.Sub, since time.Time)
	// Emit publishes an operational event into a tenant's stream.
	Emit func(tenant, eventType string, payload map[string]any)
}

// Config wires a Dispatcher.
type Config struct {
	Store   *store.Store
	Catalog *catalog.Catalog
	Logger  *slog.Logger
	Hooks   Hooks
	// Metrics receives attempt outcomes; nil: none.
	Metrics *metrics.ControlPlane
	// Clock gives the time and the timers; tests inject a FakeClock and
	// move it. Nil: the real clock, reading the time from Now if set.
	Clock Clock
	// Now is the time source when Clock is nil (a test's offset clock).
	Now func() time.Time
	// Retry holds the server-wide retry rules.
	Retry retry.Options
	// ReadyCap bounds the deliveries held in memory. Default 20000.
	ReadyCap int
	// SubCap bounds the deliveries of one subscription held in memory.
	// Default ReadyCap/4.
	SubCap int
	// ReadyBytes bounds the payload bytes held in memory. Default 256 MiB.
	ReadyBytes int
	// LeaseGrace is added to an attempt's timeout to form its lease.
	// Default 10s.
	LeaseGrace time.Duration
	// HeartbeatInterval is what agents are told to keep. Default 5s.
	HeartbeatInterval time.Duration
	// HelloTimeout bounds the wait for an agent's Hello. Default 10s.
	HelloTimeout time.Duration
	// DisableAfter disables a subscription whose attempts have all failed
	// for this long. Default 5 days; negative: never.
	DisableAfter time.Duration
	// RecoveredAfter is the failure streak (consecutive failed attempts)
	// after which a success emits subscription.recovered. Default 5.
	RecoveredAfter int
	// Tracer, if set, gives each attempt a "deliver" span and its trace
	// context to the agent; nil: tracing off (no tracing work at all).
	Tracer *tracing.Tracer
	// FairShareWindow is how long a subscription still counts as active
	// on an agent after its last assignment there, for the agent's fair
	// share (fairshare.go). Default DefaultFairShareWindow; negative: fair
	// share off (plain round-robin).
	FairShareWindow time.Duration
}

// item is one delivery waiting in memory or leased.
type item struct {
	id          ids.ID
	idText      string
	subID       ids.ID
	eventID     ids.ID
	eventType   string
	attempt     int32 // number of the attempt about to be made
	base        int32 // attempts before the last operator retry/recover
	payload     []byte
	contentType string
	loaded      bool // payload and contentType are set
	// trace is the event's stored publish trace context (tracing on only);
	// traceLoaded: trace has been looked up (it may be nil).
	trace       *storev1.TraceContext
	traceLoaded bool
	// due is when the attempt about to be made was due: the event's
	// arrival for a first attempt, the scheduled retry time after that.
	due time.Time
}

// dueTime is the attempt record's due_time.
func (it *item) dueTime() *timestamppb.Timestamp {
	if it.due.IsZero() {
		return nil
	}
	return timestamppb.New(it.due)
}

type lease struct {
	id       string
	token    string
	item     *item
	sub      *subState
	conn     *conn
	deadline time.Time
	start    time.Time
	span     trace.Span // the attempt's "deliver" span; nil when tracing is off
	// sent are the request headers of the attempt, redacted, as recorded
	// with its result (Attempt.request_headers). Set by prepare.
	sent map[string]string
	// counted is the stream whose slot accounting holds this lease (nil
	// once its result arrived or it expired: the agent's slot is free).
	counted *conn
}

// Dispatcher assigns deliveries to agents. Create with New, run with Run.
type Dispatcher struct {
	cfg   Config
	log   *slog.Logger
	clock Clock

	mu         sync.Mutex
	subs       map[ids.ID]*subState
	rings      map[string]*ring // by transport
	due        subHeap          // subscriptions with due deliveries not in memory
	readyCount int
	readyBytes int
	known      map[ids.ID]struct{} // queued or leased
	leases     map[string]*lease
	conns      map[*conn]struct{}
	lost       map[string]AgentInfo // agents closed for silence, by id
	overflow   bool                 // the global window was full: pump when it drains
	pumping    bool
	finished   map[ids.ID]struct{} // completed while the pump ran
	// wakeAt is the earliest wake-up asked for by takeLocked (rate limit,
	// circuit cool-down) or a breaker that opened; zero: none.
	wakeAt time.Time
	// alarm fires at alarmAt, the earliest moment something becomes due
	// (armLocked); zero alarmAt: none armed. alarmOff: Run has returned.
	alarm    Timer
	alarmAt  time.Time
	alarmOff bool

	pumpWake chan struct{}
	stop     chan struct{}
	stopOnce sync.Once

	watch watchHub // live watchers of deliveries (watch.go)
	// stats are the delivery statistics not yet flushed (stats.go).
	stats *statsRecorder
}

// New returns a dispatcher; call Run to start it.
func New(cfg Config) *Dispatcher {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.Clock != nil:
	case cfg.Now != nil:
		cfg.Clock = clockFrom(cfg.Now)
	default:
		cfg.Clock = RealClock()
	}
	cfg.Now = cfg.Clock.Now
	if cfg.FairShareWindow == 0 {
		cfg.FairShareWindow = DefaultFairShareWindow
	}
	if cfg.Retry.Rand == nil {
		cfg.Retry = retry.DefaultOptions()
	}
	if cfg.ReadyCap <= 0 {
		cfg.ReadyCap = 20000
	}
	if cfg.SubCap <= 0 {
		cfg.SubCap = max(cfg.ReadyCap/4, 1)
	}
	if cfg.ReadyBytes <= 0 {
		cfg.ReadyBytes = 256 << 20
	}
	if cfg.LeaseGrace <= 0 {
		cfg.LeaseGrace = 10 * time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = 10 * time.Second
	}
	if cfg.DisableAfter == 0 {
		cfg.DisableAfter = 5 * 24 * time.Hour
	}
	if cfg.RecoveredAfter <= 0 {
		cfg.RecoveredAfter = 5
	}
	return &Dispatcher{
		cfg:      cfg,
		log:      cfg.Logger,
		clock:    cfg.Clock,
		subs:     map[ids.ID]*subState{},
		rings:    map[string]*ring{},
		known:    map[ids.ID]struct{}{},
		leases:   map[string]*lease{},
		conns:    map[*conn]struct{}{},
		lost:     map[string]AgentInfo{},
		pumpWake: make(chan struct{}, 1),
		stop:     make(chan struct{}),
		stats:    newStatsRecorder(),
	}
}

// Run loads the due index, then pumps it and expires leases until ctx
// ends. The pump runs when woken: by the alarm (something came due), by a
// change that made something due now, or when memory has room again.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.cfg.Store.DueSubscriptions(func(sub ids.ID, first time.Time) {
		d.mu.Lock()
		d.noteDueLocked(d.stateLocked(sub), first)
		d.mu.Unlock()
	}); err != nil {
		return err
	}
	d.wakePump()
	// Liveness follows the real clock (see conn.heard); lease expiry is
	// checked on the same tick against the dispatcher's clock.
	reap := time.NewTicker(min(time.Second, d.cfg.HeartbeatInterval))
	defer reap.Stop()
	defer d.stopAlarm()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.pumpWake:
		case <-reap.C:
			d.expireLeases()
			d.checkLiveness()
			continue
		}
		if err := d.pump(); err != nil {
			d.log.Error("load due deliveries", "err", err)
		}
	}
}

// Shutdown ends every agent stream (agents reconnect elsewhere or later).
func (d *Dispatcher) Shutdown() {
	d.StopWatches()
	d.stopOnce.Do(func() { close(d.stop) })
}

// Poke re-examines a subscription after it changed (resumed, updated,
// deleted, a delivery retried by an operator): its due deliveries are
// looked up again.
func (d *Dispatcher) Poke(sub ids.ID) {
	d.mu.Lock()
	s := d.stateLocked(sub)
	s.parked = false
	s.noAgent = false
	d.noteDueLocked(s, d.cfg.Now())
	d.mu.Unlock()
	d.wakePump()
	d.wakeAll()
}

// Tick runs time-driven work now (lease expiry, pump, throttle wake-ups).
// Due work follows the clock by itself (the alarm); lease expiry is
// checked once a second, so tests that move an injected clock past a
// lease's deadline call Tick to see it expire at once.
func (d *Dispatcher) Tick() {
	d.expireLeases()
	d.wakePump()
	d.wakeAll()
}

func (d *Dispatcher) wakePump() {
	select {
	case d.pumpWake <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) wakeAll() {
	d.mu.Lock()
	for c := range d.conns {
		c.wake()
	}
	d.mu.Unlock()
}

// Ready is a delivery just committed by a publish.
type Ready struct {
	ID          ids.ID
	Sub         *catalog.Sub
	EventID     ids.ID
	EventType   string
	Payload     []byte
	ContentType string
	// Waiting: queued behind an earlier delivery of its ordered group.
	Waiting bool
	// Trace is the publish's trace context stored with the event (nil
	// when tracing is off).
	Trace *storev1.TraceContext
}

// Enqueue makes freshly committed deliveries assignable at once. What does
// not fit in memory is left to the pump.
func (d *Dispatcher) Enqueue(list []Ready) {
	d.noteReady(list)
	now := d.cfg.Now()
	created := make([]*catalog.Sub, len(list))
	for i, r := range list {
		created[i] = r.Sub
	}
	d.countCreated(now, created...)
	d.mu.Lock()
	defer d.mu.Unlock()
	// Eligibility scans the connected agents; a batch fans out to the same
	// subscriptions many times, so decide once per subscription.
	eligible := map[ids.ID]bool{}
	for _, r := range list {
		if r.Waiting || !r.Sub.Active() {
			continue // in the store; promoted or resumed later
		}
		if _, ok := d.known[r.ID]; ok {
			continue
		}
		s := d.stateLocked(r.Sub.ID)
		if s.noAgent {
			continue // in the store; a connecting agent re-notes it
		}
		ok, seen := eligible[r.Sub.ID]
		if !seen {
			ok = d.eligibleLocked(r.Sub)
			eligible[r.Sub.ID] = ok
		}
		if !ok {
			// Nobody may take it: leave it in the store rather than hold
			// memory the routable subscriptions need (the pump parks it).
			d.noteDueLocked(s, now)
			continue
		}
		if d.readyCount >= d.cfg.ReadyCap || d.readyBytes+len(r.Payload) > d.cfg.ReadyBytes || s.queue.len() >= d.cfg.SubCap {
			d.overflow = d.overflow || d.readyCount >= d.cfg.ReadyCap
			d.noteDueLocked(s, now)
			continue
		}
		d.pushLocked(s, &item{
			id: r.ID, idText: ids.Format(ids.Delivery, r.ID), subID: r.Sub.ID,
			eventID: r.EventID, eventType: r.EventType,
			attempt: 1, payload: r.Payload, contentType: r.ContentType, loaded: true,
			trace: r.Trace, traceLoaded: true,
			// A delivery id is a ULID made at the event's arrival (ms).
			due: ulid.Time(r.ID.Time()),
		}, r.Sub.Transport, false)
	}
	d.wakeTransportsLocked()
}

// eligibleLocked reports whether a connected agent, not draining, hosts
// the subscription's transport and matches its selector.
func (d *Dispatcher) eligibleLocked(sub *catalog.Sub) bool {
	for c := range d.conns {
		if c.transports[sub.Transport] && !c.drainingLocked() && sub.Selector.Matches(c.labels) {
			return true
		}
	}
	return false
}

// agentJoinedLocked re-notes the subscriptions left in the store for want
// of an agent that c may serve.
func (d *Dispatcher) agentJoinedLocked(c *conn) {
	now := d.cfg.Now()
	for _, s := range d.subs {
		if !s.noAgent {
			continue
		}
		sub := d.cfg.Catalog.Get(s.id)
		if sub == nil || (c.transports[sub.Transport] && sub.Selector.Matches(c.labels)) {
			s.noAgent = false
			d.noteDueLocked(s, now)
		}
	}
}

// stateLocked returns (creating) a subscription's scheduling state.
func (d *Dispatcher) stateLocked(id ids.ID) *subState {
	s := d.subs[id]
	if s == nil {
		s = &subState{id: id, heapIdx: -1}
		if sub := d.cfg.Catalog.Get(id); sub != nil {
			s.failingSince = sub.FailingSince
		}
		d.subs[id] = s
	}
	return s
}

// noteDueLocked records that s has due deliveries in the store from at,
// and makes sure the pump runs then.
func (d *Dispatcher) noteDueLocked(s *subState, at time.Time) {
	if s.parked {
		return
	}
	if s.scanning {
		// The pump pushes it back with this time when the scan ends and
		// then re-arms the alarm.
		if s.pendingNext.IsZero() || at.Before(s.pendingNext) {
			s.pendingNext = at
		}
		return
	}
	if s.heapIdx >= 0 {
		if !at.Before(s.next) {
			return
		}
		s.next = at
		heap.Fix(&d.due, s.heapIdx)
	} else {
		s.next = at
		heap.Push(&d.due, s)
	}
	d.armLocked(at)
}

// armLocked makes the pump run at t: at once if t has come, else by moving
// the alarm earlier if it stands later (or not at all). The alarm only
// ever moves earlier here; when it fires, the pump re-arms it on whatever
// is due next (the heap's top, wakeAt), so a time noted here is never
// lost: it is in the heap or in wakeAt.
func (d *Dispatcher) armLocked(t time.Time) {
	if d.alarmOff {
		return
	}
	now := d.cfg.Now()
	if !t.After(now) {
		d.wakePump()
		return
	}
	if !d.alarmAt.IsZero() && !t.Before(d.alarmAt) {
		return
	}
	if d.alarm != nil {
		d.alarm.Stop()
	}
	d.alarmAt = t
	d.alarm = d.clock.AfterFunc(t.Sub(now), func() { d.ring(t) })
}

// ring is the alarm set for t going off.
func (d *Dispatcher) ring(t time.Time) {
	d.mu.Lock()
	if d.alarmAt.Equal(t) {
		d.alarmAt, d.alarm = time.Time{}, nil
	}
	d.mu.Unlock()
	d.wakePump()
}

// rearmLocked sets the alarm on the earliest future moment something
// becomes due: the heap's top, or a wake-up takeLocked asked for. A
// wake-up whose time has come is cleared (the pump wakes the agents'
// senders when it ends).
func (d *Dispatcher) rearmLocked(now time.Time) {
	if !d.wakeAt.IsZero() {
		if d.wakeAt.After(now) {
			d.armLocked(d.wakeAt)
		} else {
			d.wakeAt = time.Time{}
		}
	}
	if d.due.Len() > 0 && d.due[0].next.After(now) {
		d.armLocked(d.due[0].next)
	}
}

// stopAlarm cancels the alarm for good (Run is returning).
func (d *Dispatcher) stopAlarm() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.alarmOff = true
	if d.alarm != nil {
		d.alarm.Stop()
	}
	d.alarm, d.alarmAt = nil, time.Time{}
}

func (d *Dispatcher) pushLocked(s *subState, it *item, transport string, front bool) {
	if front {
		s.queue.pushFront(it)
	} else {
		s.queue.push(it)
	}
	d.known[it.id] = struct{}{}
	d.readyCount++
	d.readyBytes += len(it.payload)
	d.ringLocked(transport).add(s)
	s.transport = transport
}

func (d *Dispatcher) ringLocked(transport string) *ring {
	r := d.rings[transport]
	if r == nil {
		r = &ring{}
		d.rings[transport] = r
	}
	return r
}

func (d *Dispatcher) wakeTransportsLocked() {
	for c := range d.conns {
		if c.credit > 0 {
			c.wake()
		}
	}
}

// dropQueueLocked forgets a subscription's queued deliveries (they stay
// due in the store).
func (d *Dispatcher) dropQueueLocked(s *subState) {
	for s.queue.len() > 0 {
		it := s.queue.pop()
		delete(d.known, it.id)
		d.readyCount--
		d.readyBytes -= len(it.payload)
	}
}

// takeLocked leases up to n deliveries to c, one per subscription per turn
// of each transport's ring, each subscription within its fair share of c
// (fairshare.go); nothing once Drain went out on c. Caller holds d.mu.
func (d *Dispatcher) takeLocked(c *conn, n int) []*lease {
	if c.drainingLocked() {
		return nil
	}
	now := d.cfg.Now()
	var out []*lease
	var retryAt time.Time
	fair := d.fairPlanLocked(c, now)
	for t := range c.transports {
		r := d.rings[t]
		if r == nil {
			continue
		}
		idle := 0
		for len(out) < n && len(r.subs) > 0 && idle < len(r.subs) {
			s := r.current()
			sub := d.cfg.Catalog.Get(s.id)
			if s.queue.len() == 0 || sub == nil || !sub.Active() {
				if sub == nil || !sub.Active() {
					d.dropQueueLocked(s)
				}
				r.removeCurrent()
				continue
			}
			if !sub.Selector.Matches(c.labels) {
				r.advance() // another agent's work
				idle++
				continue
			}
			if !fair.allow(s, c.credit-len(out)-1) {
				r.advance() // its share of c is used; a freed slot wakes c
				idle++
				continue
			}
			ok, wait := s.admit(sub, now)
			if !ok {
				if wait > 0 && (retryAt.IsZero() || now.Add(wait).Before(retryAt)) {
					retryAt = now.Add(wait)
				}
				r.advance()
				idle++
				continue
			}
			it := s.queue.pop()
			d.readyCount--
			d.readyBytes -= len(it.payload)
			s.inFlight++
			l := &lease{
				id:       newToken(12),
				token:    newToken(16),
				item:     it,
				sub:      s,
				conn:     c,
				deadline: now.Add(sub.Timeout + d.cfg.LeaseGrace),
				start:    now,
			}
			d.leases[l.id] = l
			d.slotTakenLocked(l, now)
			fair.took(s)
			out = append(out, l)
			if s.capped && s.queue.len() < d.cfg.SubCap/2 {
				s.capped = false
				d.noteDueLocked(s, now)
			}
			r.advance()
			idle = 0
		}
	}
	if t := fair.wakeAt(); !t.IsZero() && (retryAt.IsZero() || t.Before(retryAt)) {
		retryAt = t
	}
	if !retryAt.IsZero() {
		d.wakeLaterLocked(retryAt)
	}
	if d.overflow && d.readyCount < d.cfg.ReadyCap/2 {
		d.overflow = false
		d.wakePump()
	}
	return out
}

// wakeLaterLocked wakes the agents' senders at t (a rate-limit refill, a
// circuit's half-open probe): the alarm runs the pump then, and the pump
// wakes them. Only the earliest wake-up is kept: the take it triggers asks
// again for the later ones still needed.
func (d *Dispatcher) wakeLaterLocked(t time.Time) {
	if d.wakeAt.IsZero() || t.Before(d.wakeAt) {
		d.wakeAt = t
	}
	d.armLocked(t)
}

// expireLeases puts deliveries whose lease ran out back in their queue.
func (d *Dispatcher) expireLeases() {
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, l := range d.leases {
		if now.Before(l.deadline) {
			continue
		}
		delete(d.leases, id)
		d.log.Info("lease expired; delivery goes back to the queue", "delivery", l.item.idText, "agent", l.conn.agentID)
		d.requeueLocked(l, "lease expired before agent "+l.conn.agentID+" reported a result")
	}
	d.wakeTransportsLocked()
}

// requeueLocked puts an unfinished lease's delivery back at the front of
// its queue, ending its span with why.
func (d *Dispatcher) requeueLocked(l *lease, why string) {
	d.slotFreedLocked(l)
	l.sub.inFlight--
	l.sub.releaseProbe()
	if l.span != nil {
		tracing.EndAttemptUnfinished(l.span, why)
	}
	d.pushLocked(l.sub, l.item, l.sub.transport, true)
}

// pump loads due deliveries that are not in memory, subscription by
// subscription in order of their earliest due time, then sets the alarm
// on what becomes due next.
func (d *Dispatcher) pump() error {
	now := d.cfg.Now()
	d.mu.Lock()
	var batch []*subState
	room := d.cfg.ReadyCap - d.readyCount
	for d.due.Len() > 0 && room > 0 && !d.due[0].next.After(now) {
		s := heap.Pop(&d.due).(*subState)
		s.scanning = true
		s.pendingNext = time.Time{}
		batch = append(batch, s)
	}
	if room <= 0 && d.due.Len() > 0 && !d.due[0].next.After(now) {
		d.overflow = true
	}
	d.pumping = true
	d.finished = map[ids.ID]struct{}{}
	d.mu.Unlock()

	var firstErr error
	for _, s := range batch {
		next, err := d.loadSub(s, now)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		d.mu.Lock()
		s.scanning = false
		if !s.pendingNext.IsZero() && (next.IsZero() || s.pendingNext.Before(next)) {
			next = s.pendingNext
		}
		if !next.IsZero() && !s.parked && !s.capped {
			s.next = next
			heap.Push(&d.due, s)
		}
		d.mu.Unlock()
	}

	d.mu.Lock()
	d.pumping = false
	d.finished = nil
	after := d.cfg.Now()
	d.rearmLocked(after)
	d.wakeTransportsLocked()
	// Due already: go again, unless memory is full (taking from the ready
	// queues wakes the pump once there is room).
	if d.due.Len() > 0 && !d.due[0].next.After(after) && !d.overflow {
		d.wakePump()
	}
	d.mu.Unlock()
	return firstErr
}

// loadSub loads one subscription's due deliveries and returns when its next
// one not loaded is due (zero: none).
func (d *Dispatcher) loadSub(s *subState, now time.Time) (time.Time, error) {
	sub := d.cfg.Catalog.Get(s.id)
	if sub == nil {
		return time.Time{}, d.cancelOrphans(s.id)
	}
	d.mu.Lock()
	if !sub.Active() {
		s.parked = true // Poke (resume) brings it back
		d.mu.Unlock()
		return time.Time{}, nil
	}
	if open, until := s.circuitOpen(now); open {
		d.mu.Unlock()
		return until, nil
	}
	if !d.eligibleLocked(sub) {
		s.noAgent = true // a connecting agent re-notes it
		d.mu.Unlock()
		return time.Time{}, nil
	}
	want := min(d.cfg.SubCap-s.queue.len(), d.cfg.ReadyCap-d.readyCount)
	d.mu.Unlock()
	if want <= 0 {
		d.mu.Lock()
		s.capped = s.queue.len() >= d.cfg.SubCap
		d.overflow = d.overflow || !s.capped
		d.mu.Unlock()
		return now, nil
	}
	var due []store.Due
	var next time.Time
	err := d.cfg.Store.ScanDue(s.id, func(e store.Due) bool {
		if e.At.After(now) {
			next = e.At
			return false
		}
		d.mu.Lock()
		_, busy := d.known[e.DeliveryID]
		d.mu.Unlock()
		if busy {
			return true
		}
		if len(due) == want {
			next = e.At
			return false
		}
		due = append(due, e)
		return true
	})
	if err != nil {
		return now.Add(time.Second), err
	}
	items, err := d.loadItems(due, now)
	if err != nil {
		return now.Add(time.Second), err
	}
	d.mu.Lock()
	for _, it := range items {
		if _, ok := d.known[it.id]; ok {
			continue
		}
		if _, ok := d.finished[it.id]; ok {
			continue
		}
		d.pushLocked(s, it, sub.Transport, false)
	}
	if len(due) == want && !next.IsZero() && !next.After(now) {
		s.capped = s.queue.len() >= d.cfg.SubCap
		if !s.capped {
			d.overflow = true
		}
	}
	d.mu.Unlock()
	return next, nil
}

// loadItems reads the deliveries (not their payloads) for due entries.
func (d *Dispatcher) loadItems(due []store.Due, now time.Time) ([]*item, error) {
	if len(due) == 0 {
		return nil, nil
	}
	idList := make([]ids.ID, len(due))
	for i, e := range due {
		idList[i] = e.DeliveryID
	}
	dels, err := d.cfg.Store.GetDeliveries(idList)
	if err != nil {
		return nil, err
	}
	items := make([]*item, 0, len(dels))
	for i, del := range dels {
		if del == nil || del.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING ||
			del.GetNextAttemptTime().AsTime().After(now) {
			continue // finished or rescheduled since the scan
		}
		eid, err := ids.Parse(ids.Event, del.GetEventId())
		if err != nil {
			continue
		}
		items = append(items, &item{
			id: due[i].DeliveryID, idText: del.GetId(), subID: due[i].SubID, eventID: eid,
			eventType: del.GetEventType(), attempt: del.GetAttemptCount() + 1, base: del.GetScheduleBase(),
			due: del.GetNextAttemptTime().AsTime(),
		})
	}
	return items, nil
}

// cancelOrphans cancels the due deliveries of a deleted subscription.
func (d *Dispatcher) cancelOrphans(sub ids.ID) error {
	for {
		var list []ids.ID
		if err := d.cfg.Store.ScanDue(sub, func(e store.Due) bool {
			list = append(list, e.DeliveryID)
			return len(list) < 1000
		}); err != nil || len(list) == 0 {
			return err
		}
		now := timestamppb.New(d.cfg.Now())
		changes := make([]*store.DeliveryChange, len(list))
		for i, id := range list {
			changes[i] = &store.DeliveryChange{DeliveryID: id, IfStatus: onlyPending,
				Fields: []string{"status", "last_error", "next_attempt_time", "update_time"},
				Set:    &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED, LastError: "subscription deleted", UpdateTime: now}}
		}
		if _, err := d.cfg.Store.ChangeDeliveries(context.Background(), changes); err != nil {
			return err
		}
		d.NoteChanged(changes)
	}
}

// prepare builds the assignments for leases, loading payloads that are not
// in memory and signing each attempt.
func (d *Dispatcher) prepare(leases []*lease) []*hookwirev1.Assignment {
	var missing []ids.ID
	for _, l := range leases {
		if !l.item.loaded {
			missing = append(missing, l.item.eventID)
		}
	}
	if len(missing) > 0 {
		evs, err := d.cfg.Store.GetEvents(missing)
		if err != nil {
			d.log.Error("load event payloads", "err", err)
		}
		i := 0
		for _, l := range leases {
			if l.item.loaded {
				continue
			}
			if i < len(evs) && evs[i] != nil {
				l.item.payload = evs[i].GetPayload()
				l.item.contentType = evs[i].GetContentType()
				l.item.loaded = true
			}
			i++
		}
	}
	out := make([]*hookwirev1.Assignment, 0, len(leases))
	for _, l := range leases {
		sub := d.cfg.Catalog.Get(l.item.subID)
		if sub == nil || !l.item.loaded {
			// Lost its subscription or event between take and now; the
			// lease will expire and the pump will sort it out.
			continue
		}
		headers := sub.RequestHeaders(l.item.idText, l.start, l.item.payload)
		l.sent = sub.RedactedHeaders(headers, l.item.contentType)
		out = append(out, &hookwirev1.Assignment{
			LeaseId:    l.id,
			LeaseToken: l.token,
			Deadline:   timestamppb.New(l.deadline),
			DeliveryId: l.item.idText,
			Attempt:    l.item.attempt,
			Transport:  sub.Transport,
			Request: &transportv1.DeliveryRequest{
				Config:      sub.Config,
				Body:        l.item.payload,
				ContentType: l.item.contentType,
				Headers:     headers,
				Timeout:     durationpb.New(sub.Timeout),
				DeliveryId:  l.item.idText,
				EventType:   l.item.eventType,
			},
		})
	}
	return out
}

// Stats is a snapshot for metrics and tests.
type Stats struct {
	Ready, Leased, Agents int
}

// Stats returns the current queue sizes.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Stats{Ready: d.readyCount, Leased: len(d.leases), Agents: len(d.conns)}
}

// CircuitState reports a subscription's circuit breaker state.
func (d *Dispatcher) CircuitState(sub ids.ID) hookwirev1.CircuitState {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.subs[sub]
	if s == nil {
		return hookwirev1.CircuitState_CIRCUIT_STATE_CLOSED
	}
	return s.brk.state()
}

func newToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
