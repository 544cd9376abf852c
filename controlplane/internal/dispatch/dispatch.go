// Package dispatch schedules pending deliveries onto connected agents.
//
// It owns the in-memory ready queues (one per transport), the leases handed
// to agents, and the agent streams. Durable state stays in the store: the
// store's due index is the queue of record, and memory holds only a bounded
// window of it (at most Config.ReadyCap deliveries), so a backlog of any
// size costs disk, not RAM.
//
// Flow: a publish commits, then Enqueue puts its deliveries straight into
// the ready queues (no polling on the fast path). When the ready window is
// full, or a retry comes due, or the control plane restarts, the pump reads
// the due index in time order and refills the window. Agents pull from the
// queues of the transports they host, never more than the credit they have
// granted. A result is written to the store (attempt record, new status,
// next due time) before it is acknowledged to the agent. A lease that
// expires without a result puts its delivery back in the queue.
//
// Leases live only in memory: after a crash, every unfinished delivery is
// still in the due index and is assigned again (at-least-once); a result
// for a lease the control plane no longer knows is rejected.
package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Config wires a Dispatcher.
type Config struct {
	Store   *store.Store
	Catalog *catalog.Catalog
	Logger  *slog.Logger
	// Now is the clock; tests inject one.
	Now func() time.Time
	// Policy decides retries.
	Policy Policy
	// ReadyCap bounds the deliveries held in memory. Default 20000.
	ReadyCap int
	// ReadyBytes bounds the payload bytes held in memory. Default 256 MiB.
	ReadyBytes int
	// LeaseGrace is added to an attempt's timeout to form its lease.
	// Default 10s.
	LeaseGrace time.Duration
	// HeartbeatInterval is what agents are told to keep. Default 5s.
	HeartbeatInterval time.Duration
	// HelloTimeout bounds the wait for an agent's Hello. Default 10s.
	HelloTimeout time.Duration
	// OnSubscriptionGone is called (asynchronously) when a target answers
	// 410 Gone, so the owner can disable the subscription.
	OnSubscriptionGone func(sub *catalog.Sub, reason string)
}

// item is one delivery waiting in memory or leased.
type item struct {
	id          ids.ID
	idText      string
	subID       ids.ID
	eventID     ids.ID
	eventType   string
	transport   string
	attempt     int32 // number of the attempt about to be made
	payload     []byte
	contentType string
	loaded      bool // payload and contentType are set
}

type lease struct {
	id       string
	token    string
	item     *item
	conn     *conn
	deadline time.Time
	start    time.Time
}

// Dispatcher assigns deliveries to agents. Create with New, run with Run.
type Dispatcher struct {
	cfg Config
	log *slog.Logger

	mu         sync.Mutex
	queues     map[string]*fifo // by transport
	readyCount int
	readyBytes int
	known      map[ids.ID]struct{} // queued or leased
	leases     map[string]*lease
	conns      map[*conn]struct{}
	overflow   bool // due deliveries exist that are not in memory
	scanning   bool
	finished   map[ids.ID]struct{} // completed while a scan ran
	nextDue    time.Time

	pumpWake chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

// New returns a dispatcher; call Run to start it.
func New(cfg Config) *Dispatcher {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Policy.Schedule == nil {
		cfg.Policy = DefaultPolicy()
	}
	if cfg.ReadyCap <= 0 {
		cfg.ReadyCap = 20000
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
	return &Dispatcher{
		cfg:      cfg,
		log:      cfg.Logger,
		queues:   map[string]*fifo{},
		known:    map[ids.ID]struct{}{},
		leases:   map[string]*lease{},
		conns:    map[*conn]struct{}{},
		overflow: true, // load what the store has on start
		pumpWake: make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
}

// Run pumps the due index and expires leases until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	reap := time.NewTicker(time.Second)
	defer reap.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.pumpWake:
		case <-timer.C:
		case <-reap.C:
			d.expireLeases()
			continue
		}
		next, err := d.pump()
		if err != nil {
			d.log.Error("load due deliveries", "err", err)
			next = d.cfg.Now().Add(time.Second)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !next.IsZero() {
			timer.Reset(max(next.Sub(d.cfg.Now()), time.Millisecond))
		}
	}
}

// Shutdown ends every agent stream (agents reconnect elsewhere or later).
func (d *Dispatcher) Shutdown() {
	d.stopOnce.Do(func() { close(d.stop) })
}

// Poke asks the pump to re-read the due index now (after a resume, a
// manual retry, or a clock change in tests).
func (d *Dispatcher) Poke() {
	d.mu.Lock()
	d.overflow = true
	d.mu.Unlock()
	d.wakePump()
}

func (d *Dispatcher) wakePump() {
	select {
	case d.pumpWake <- struct{}{}:
	default:
	}
}

// Ready is a delivery just committed by a publish.
type Ready struct {
	ID          ids.ID
	Sub         *catalog.Sub
	EventID     ids.ID
	EventType   string
	Payload     []byte
	ContentType string
}

// Enqueue makes freshly committed deliveries assignable at once. What does
// not fit in memory stays in the due index for the pump.
func (d *Dispatcher) Enqueue(list []Ready) {
	d.mu.Lock()
	woke := map[string]bool{}
	for _, r := range list {
		if _, ok := d.known[r.ID]; ok {
			continue
		}
		if !r.Sub.Active() {
			continue // waits in the due index until resumed
		}
		if d.readyCount >= d.cfg.ReadyCap || d.readyBytes+len(r.Payload) > d.cfg.ReadyBytes {
			d.overflow = true
			continue
		}
		it := &item{
			id: r.ID, idText: ids.Format(ids.Delivery, r.ID), subID: r.Sub.ID,
			eventID: r.EventID, eventType: r.EventType, transport: r.Sub.Transport,
			attempt: 1, payload: r.Payload, contentType: r.ContentType, loaded: true,
		}
		d.pushLocked(it)
		woke[it.transport] = true
	}
	d.wakeConnsLocked(woke)
	d.mu.Unlock()
}

func (d *Dispatcher) pushLocked(it *item) {
	q := d.queues[it.transport]
	if q == nil {
		q = &fifo{}
		d.queues[it.transport] = q
	}
	q.push(it)
	d.known[it.id] = struct{}{}
	d.readyCount++
	d.readyBytes += len(it.payload)
}

func (d *Dispatcher) wakeConnsLocked(transports map[string]bool) {
	for c := range d.conns {
		if c.credit <= 0 {
			continue
		}
		for t := range transports {
			if c.transports[t] {
				c.wake()
				break
			}
		}
	}
}

// take removes up to n deliveries for the conn's transports from the
// ready queues and leases them to it. Caller holds d.mu.
func (d *Dispatcher) takeLocked(c *conn, n int) []*lease {
	now := d.cfg.Now()
	var out []*lease
	for t := range c.transports {
		q := d.queues[t]
		for q != nil && q.len() > 0 && len(out) < n {
			it := q.pop()
			d.readyCount--
			d.readyBytes -= len(it.payload)
			sub := d.cfg.Catalog.Get(it.subID)
			if sub == nil || !sub.Active() {
				// Deleted or paused: leave it to the due index.
				delete(d.known, it.id)
				continue
			}
			l := &lease{
				id:       newToken(12),
				token:    newToken(16),
				item:     it,
				conn:     c,
				deadline: now.Add(sub.Timeout + d.cfg.LeaseGrace),
				start:    now,
			}
			d.leases[l.id] = l
			out = append(out, l)
		}
	}
	if d.overflow && d.readyCount < d.cfg.ReadyCap/2 {
		d.wakePump()
	}
	return out
}

// expireLeases puts deliveries whose lease ran out back in the queue.
func (d *Dispatcher) expireLeases() {
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	woke := map[string]bool{}
	for id, l := range d.leases {
		if now.Before(l.deadline) {
			continue
		}
		delete(d.leases, id)
		d.log.Info("lease expired; delivery goes back to the queue", "delivery", l.item.idText, "agent", l.conn.agentID)
		// The item is still in d.known; requeue it directly.
		q := d.queues[l.item.transport]
		if q == nil {
			q = &fifo{}
			d.queues[l.item.transport] = q
		}
		q.push(l.item)
		d.readyCount++
		d.readyBytes += len(l.item.payload)
		woke[l.item.transport] = true
	}
	d.wakeConnsLocked(woke)
}

// ExpireLeasesNow runs the lease reaper once (tests with an injected clock).
func (d *Dispatcher) ExpireLeasesNow() { d.expireLeases() }

// pump loads due deliveries that are not in memory. It returns when the
// next one not yet due will be due (zero if none is known).
func (d *Dispatcher) pump() (time.Time, error) {
	now := d.cfg.Now()
	d.mu.Lock()
	room := d.cfg.ReadyCap - d.readyCount
	if !d.overflow && (d.nextDue.IsZero() || now.Before(d.nextDue)) {
		next := d.nextDue
		d.mu.Unlock()
		return next, nil
	}
	d.scanning = true
	d.finished = map[ids.ID]struct{}{}
	d.mu.Unlock()

	defer func() {
		d.mu.Lock()
		d.scanning = false
		d.finished = nil
		d.mu.Unlock()
	}()

	var (
		due     []store.Due
		gone    []ids.ID
		next    time.Time
		full    bool
		scanned int
	)
	const maxScan = 200000
	err := d.cfg.Store.ScanDue(time.Time{}, func(e store.Due) bool {
		if e.At.After(now) {
			next = e.At
			return false
		}
		scanned++
		if scanned > maxScan {
			full = true
			return false
		}
		d.mu.Lock()
		_, busy := d.known[e.DeliveryID]
		d.mu.Unlock()
		if busy {
			return true
		}
		sub := d.cfg.Catalog.Get(e.SubID)
		if sub == nil {
			gone = append(gone, e.DeliveryID)
			return len(gone) < 1000
		}
		if !sub.Active() {
			return true
		}
		if len(due) >= room {
			full = true
			return false
		}
		due = append(due, e)
		return true
	})
	if err != nil {
		return time.Time{}, err
	}
	if len(gone) > 0 {
		d.cancelOrphans(gone)
		full = true // look again for more
	}
	items, err := d.loadItems(due)
	if err != nil {
		return time.Time{}, err
	}
	d.mu.Lock()
	woke := map[string]bool{}
	for _, it := range items {
		if _, ok := d.known[it.id]; ok {
			continue
		}
		if _, ok := d.finished[it.id]; ok {
			continue
		}
		d.pushLocked(it)
		woke[it.transport] = true
	}
	d.overflow = full
	d.nextDue = next
	d.wakeConnsLocked(woke)
	d.mu.Unlock()
	if full {
		d.wakePump()
	}
	return next, nil
}

// loadItems reads the deliveries (not their payloads) for due entries.
func (d *Dispatcher) loadItems(due []store.Due) ([]*item, error) {
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
		if del == nil || del.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
			continue
		}
		sub := d.cfg.Catalog.Get(due[i].SubID)
		if sub == nil {
			continue
		}
		eid, err := ids.Parse(ids.Event, del.GetEventId())
		if err != nil {
			continue
		}
		items = append(items, &item{
			id: due[i].DeliveryID, idText: del.GetId(), subID: sub.ID, eventID: eid,
			eventType: del.GetEventType(), transport: sub.Transport, attempt: del.GetAttemptCount() + 1,
		})
	}
	return items, nil
}

// cancelOrphans cancels pending deliveries whose subscription is gone.
func (d *Dispatcher) cancelOrphans(list []ids.ID) {
	now := timestamppb.New(d.cfg.Now())
	changes := make([]*store.DeliveryChange, len(list))
	for i, id := range list {
		changes[i] = &store.DeliveryChange{DeliveryID: id, Apply: func(del *hookwirev1.Delivery) bool {
			if del.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
				return false
			}
			del.Status = hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED
			del.LastError = "subscription deleted"
			del.NextAttemptTime = nil
			del.UpdateTime = now
			return true
		}}
	}
	if err := d.cfg.Store.ChangeDeliveries(context.Background(), changes); err != nil {
		d.log.Error("cancel deliveries of deleted subscriptions", "err", err)
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
				Headers:     sub.Signer.Headers(l.item.idText, l.start, l.item.payload),
				Timeout:     durationpb.New(sub.Timeout),
				DeliveryId:  l.item.idText,
				EventType:   l.item.eventType,
			},
		})
	}
	return out
}

// complete records results for leases and reports, per lease id, whether
// the result was accepted.
func (d *Dispatcher) complete(ctx context.Context, c *conn, results []*hookwirev1.Result) ([]*hookwirev1.ResultAck, error) {
	acks := make([]*hookwirev1.ResultAck, len(results))
	type pending struct {
		ack    *hookwirev1.ResultAck
		lease  *lease
		res    *hookwirev1.Result
		change *store.DeliveryChange
		v      Verdict
	}
	var work []*pending
	d.mu.Lock()
	for i, r := range results {
		acks[i] = &hookwirev1.ResultAck{LeaseId: r.GetLeaseId()}
		l := d.leases[r.GetLeaseId()]
		if l == nil || l.token != r.GetLeaseToken() {
			continue // stale or unknown: rejected
		}
		delete(d.leases, l.id)
		work = append(work, &pending{ack: acks[i], lease: l, res: r})
	}
	d.mu.Unlock()
	if len(work) == 0 {
		return acks, nil
	}
	now := d.cfg.Now()
	changes := make([]*store.DeliveryChange, len(work))
	for i, w := range work {
		res := w.res.GetResult()
		n := w.lease.item.attempt
		w.v = d.cfg.Policy.Next(n, res)
		start := w.res.GetStartTime()
		if start == nil {
			start = timestamppb.New(w.lease.start)
		}
		attempt := &hookwirev1.Attempt{
			DeliveryId:      w.lease.item.idText,
			Number:          n,
			AgentId:         c.agentID,
			StartTime:       start,
			Latency:         res.GetLatency(),
			Outcome:         res.GetOutcome(),
			StatusCode:      res.GetStatusCode(),
			ResponseHeaders: res.GetResponseHeaders(),
			ResponseBody:    res.GetResponseBody(),
			Error:           res.GetError(),
		}
		v := w.v
		nowPB := timestamppb.New(now)
		w.change = &store.DeliveryChange{DeliveryID: w.lease.item.id, Attempt: attempt, Apply: func(del *hookwirev1.Delivery) bool {
			if del.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING || del.GetAttemptCount() >= n {
				return false // cancelled meanwhile, or this attempt is already recorded
			}
			del.AttemptCount = n
			del.LastOutcome = res.GetOutcome()
			del.LastError = res.GetError()
			del.UpdateTime = nowPB
			switch {
			case v.Done:
				del.Status = hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
				del.NextAttemptTime = nil
			case v.Dead:
				del.Status = hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD
				del.NextAttemptTime = nil
			default:
				del.NextAttemptTime = timestamppb.New(now.Add(v.Wait))
			}
			return true
		}}
		changes[i] = w.change
	}
	if err := d.cfg.Store.ChangeDeliveries(ctx, changes); err != nil {
		// Not durable: give the leases back so the deliveries are retried.
		d.mu.Lock()
		for _, w := range work {
			d.releaseLocked(w.lease.item)
		}
		d.mu.Unlock()
		return nil, err
	}
	var next time.Time
	d.mu.Lock()
	for _, w := range work {
		w.ack.Accepted = w.change.Applied
		d.releaseLocked(w.lease.item)
		if w.change.Applied && !w.v.Done && !w.v.Dead {
			if due := now.Add(w.v.Wait); next.IsZero() || due.Before(next) {
				next = due
			}
		}
	}
	if !next.IsZero() && (d.nextDue.IsZero() || next.Before(d.nextDue)) {
		d.nextDue = next
		d.wakePump()
	}
	d.mu.Unlock()
	for _, w := range work {
		if w.v.Gone && w.change.Applied && d.cfg.OnSubscriptionGone != nil {
			if sub := d.cfg.Catalog.Get(w.lease.item.subID); sub != nil {
				go d.cfg.OnSubscriptionGone(sub, "target answered 410 Gone")
			}
		}
	}
	return acks, nil
}

// releaseLocked forgets an item that is no longer queued or leased.
func (d *Dispatcher) releaseLocked(it *item) {
	delete(d.known, it.id)
	if d.scanning {
		d.finished[it.id] = struct{}{}
	}
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

func newToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errHelloFirst = errors.New("the first message on the agent stream must be Hello")

// fifo is a slice-backed queue.
type fifo struct {
	items []*item
	head  int
}

func (q *fifo) len() int { return len(q.items) - q.head }

func (q *fifo) push(it *item) { q.items = append(q.items, it) }

func (q *fifo) pop() *item {
	it := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head > 1024 && q.head*2 > len(q.items) {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	return it
}
