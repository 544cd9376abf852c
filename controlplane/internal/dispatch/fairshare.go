package dispatch

import (
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// Agent slots and fair share.
//
// An agent stream has as many slots as the agent can run at once: the
// credit it has granted and not yet used, plus the leases it holds. A
// lease holds a slot from its assignment until its result arrives on the
// stream (not until the result is committed: the agent frees the slot
// when it sends the result, and grants the credit back right after it),
// or until it expires.
//
// Round-robin over the subscriptions' queues decides who gets a slot that
// is free, but not how long it is kept: a subscription whose endpoint is
// slow or hangs to the attempt timeout keeps every slot it gets for
// seconds, so it ends up holding the whole agent and every other
// subscription on that agent waits for one of those slots to free. The
// fair share bounds that. On each agent, the subscriptions active there
// are those with deliveries queued that the agent may take, with attempts
// in flight on it, or that were assigned work on it within the fair-share
// window (Config.FairShareWindow, --fair-share-window, default 10s). With
// N of them active on an agent of C slots, each one's share is ceil(C/N):
//
//   - A subscription holding less than its share may take a free slot.
//   - One holding its share or more may take a free slot only when no
//     other active subscription has deliveries waiting for this agent, and
//     only while enough slots stay free for the others to find one at
//     once: what the others hold below their shares, at most a quarter of
//     the agent.
//   - A subscription alone on an agent may use all of it.
//
// So a slow endpoint is held to its share (and spare capacity) while
// others are active, and gives the rest back one timed-out attempt at a
// time; a healthy subscription arriving on that agent finds free slots
// at once; and one busy subscription still uses the whole agent when it
// is the only one.

// DefaultFairShareWindow is how long a subscription still counts as
// active on an agent after its last assignment there.
const DefaultFairShareWindow = 10 * time.Second

// fairState is one agent stream's slot accounting and fair share state.
// Guarded by Dispatcher.mu.
type fairState struct {
	// held counts the leases holding a slot on this stream.
	held int
	// subs holds, per subscription that was assigned work on this
	// stream, its slots and when it last got one.
	subs map[*subState]*subSlots
	// draining: Drain was sent on this stream; nothing more is assigned.
	draining bool
}

type subSlots struct {
	held int
	last time.Time
}

func (f *fairState) of(s *subState) *subSlots {
	if f.subs == nil {
		f.subs = map[*subState]*subSlots{}
	}
	ss := f.subs[s]
	if ss == nil {
		ss = &subSlots{}
		f.subs[s] = ss
	}
	return ss
}

func (f *fairState) heldBy(s *subState) int {
	if ss := f.subs[s]; ss != nil {
		return ss.held
	}
	return 0
}

// slotTakenLocked counts a new lease in its stream's slots.
func (d *Dispatcher) slotTakenLocked(l *lease, now time.Time) {
	f := &l.conn.fair
	f.held++
	ss := f.of(l.sub)
	ss.held++
	ss.last = now
	l.counted = l.conn
}

// slotFreedLocked gives a lease's slot back (its result arrived, it
// expired, or it was put back). Idempotent.
func (d *Dispatcher) slotFreedLocked(l *lease) {
	c := l.counted
	if c == nil {
		return
	}
	l.counted = nil
	c.fair.held--
	if ss := c.fair.subs[l.sub]; ss != nil {
		ss.held--
	}
}

// moveLeaseLocked hands a lease (honoured on a reconnect) to stream c,
// with its slot if it still holds one.
func (d *Dispatcher) moveLeaseLocked(l *lease, c *conn) {
	holds := l.counted != nil
	d.slotFreedLocked(l)
	l.conn = c
	if holds {
		c.fair.held++
		c.fair.of(l.sub).held++
		l.counted = c
	}
}

// resultsArrived frees the slots of the leases whose results just arrived
// on c, before they are recorded: the agent freed them when it sent the
// results, and the credit it grants for them follows on the stream. Left
// counted until the commit, an agent whose results queue behind a slow
// commit would appear to hold more than its max in flight.
func (d *Dispatcher) resultsArrived(c *conn, results []*hookwirev1.Result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range results {
		if l := d.leases[r.GetLeaseId()]; l != nil && l.token == r.GetLeaseToken() {
			d.slotFreedLocked(l)
		}
	}
}

// fairPlan is the fair share of one agent stream for one take. It is
// worked out only when a subscription holds enough slots for the answer
// to matter (floor): a take that hands out slots to subscriptions holding
// few of them costs no more than without fair share.
type fairPlan struct {
	d   *Dispatcher
	c   *conn
	f   *fairState
	now time.Time
	// slots is the stream's capacity: its credit and held slots when the
	// take began (both move together while it runs).
	slots int
	// floor is the least share possible: slots over every subscription
	// that could be active. Below it a subscription needs no plan.
	floor int
	ready bool // the fields below are worked out
	off   bool // at most one subscription active: no limit
	share int
	// reserve is the most slots kept free for the others: a quarter of
	// the agent.
	reserve int
	// queued marks the active subscriptions with deliveries the stream
	// may take; nQueued counts them.
	queued  map[*subState]bool
	nQueued int
	// deficit: what the active subscriptions hold below their shares.
	deficit int
	// quietUntil is when the first subscription active only through the
	// window (nothing queued, nothing held) stops counting; kept is set
	// when a slot stayed free for such subscriptions, so the stream is
	// woken then to give it out.
	quietUntil time.Time
	kept       bool
}

// fairPlanLocked starts c's fair share for a take; nil when fair share is
// off.
func (d *Dispatcher) fairPlanLocked(c *conn, now time.Time) *fairPlan {
	if d.cfg.FairShareWindow < 0 {
		return nil
	}
	f := &c.fair
	p := &fairPlan{d: d, c: c, f: f, now: now, slots: c.credit + f.held}
	most := len(f.subs)
	for t, ok := range c.transports {
		if r := d.rings[t]; ok && r != nil {
			most += len(r.subs)
		}
	}
	p.floor = (p.slots + max(most, 1) - 1) / max(most, 1)
	return p
}

// work works out who is active on the stream and their shares.
func (p *fairPlan) work() {
	p.ready = true
	d, c, f := p.d, p.c, p.f
	active := map[*subState]bool{}
	for s, ss := range f.subs {
		if ss.held <= 0 && p.now.Sub(ss.last) >= d.cfg.FairShareWindow {
			delete(f.subs, s) // quiet here for the window: no longer active
			continue
		}
		active[s] = false
	}
	for t, ok := range c.transports {
		r := d.rings[t]
		if !ok || r == nil {
			continue
		}
		for _, s := range r.subs {
			if s.queue.len() == 0 || active[s] {
				continue
			}
			if sub := d.cfg.Catalog.Get(s.id); sub == nil || !sub.Active() || !sub.Selector.Matches(c.labels) {
				continue
			}
			active[s] = true
		}
	}
	if len(active) <= 1 {
		p.off = true
		return
	}
	p.share = (p.slots + len(active) - 1) / len(active)
	p.reserve = p.slots / 4
	p.queued = active
	for s, q := range active {
		h := f.heldBy(s)
		if h < p.share {
			p.deficit += p.share - h
		}
		if q {
			p.nQueued++
		} else if h == 0 {
			if until := f.subs[s].last.Add(d.cfg.FairShareWindow); p.quietUntil.IsZero() || until.Before(p.quietUntil) {
				p.quietUntil = until
			}
		}
	}
}

// allow reports whether s may take one more slot, free being the slots
// that stay free after it does.
func (p *fairPlan) allow(s *subState, free int) bool {
	if p == nil {
		return true
	}
	held := p.f.heldBy(s)
	if !p.ready {
		if held < p.floor {
			return true
		}
		p.work()
	}
	if p.off || held < p.share {
		return true
	}
	others := p.nQueued
	if p.queued[s] {
		others--
	}
	if others > 0 {
		return false // someone else is waiting for this agent
	}
	if free >= min(p.deficit, p.reserve) {
		return true
	}
	p.kept = true
	return false
}

// wakeAt is when c should look again for what fair share held back
// (zero: a result or new credit will wake it).
func (p *fairPlan) wakeAt() time.Time {
	if p == nil || !p.kept {
		return time.Time{}
	}
	return p.quietUntil
}

// took updates the plan after s took a slot (and held is now one more).
func (p *fairPlan) took(s *subState) {
	if p == nil || !p.ready || p.off {
		return
	}
	if p.f.heldBy(s) <= p.share {
		p.deficit--
	}
	if s.queue.len() == 0 && p.queued[s] {
		p.queued[s] = false
		p.nQueued--
	}
}

// drainingLocked reports whether Drain was sent on c.
func (c *conn) drainingLocked() bool { return c.fair.draining }
