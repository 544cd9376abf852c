package dispatch

import (
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"golang.org/x/time/rate"
)

// subState is one subscription's scheduling state. Guarded by
// Dispatcher.mu.
type subState struct {
	id        ids.ID
	transport string
	queue     deque
	inFlight  int
	inRing    bool

	limiter      *rate.Limiter
	limRate      float64
	limBurst     int
	brk          breaker
	failures     int // consecutive failed attempts
	failingSince time.Time

	// pump bookkeeping
	next        time.Time // earliest due delivery not in memory
	heapIdx     int       // index in Dispatcher.due, -1 when absent
	scanning    bool      // the pump is loading it
	pendingNext time.Time // due noted while scanning
	parked      bool      // paused or disabled: ignored until Poke
	// noAgent: no connected agent may take its deliveries (transport or
	// selector), so they are left in the store; a connecting agent or a
	// Poke re-notes it.
	noAgent bool
	capped  bool // its queue is full: re-noted when it drains
}

// admit reports whether one more attempt of the subscription may start
// now, and if not, how long until it may (0: when something finishes).
func (s *subState) admit(sub *catalog.Sub, now time.Time) (bool, time.Duration) {
	if sub.MaxInFlight > 0 && s.inFlight >= sub.MaxInFlight {
		return false, 0
	}
	if sub.Breaker != nil {
		if ok, wait := s.brk.canAttempt(now); !ok {
			return false, wait
		}
	}
	if sub.Rate > 0 {
		if s.limiter == nil || s.limRate != sub.Rate || s.limBurst != sub.Burst {
			s.limiter = rate.NewLimiter(rate.Limit(sub.Rate), sub.Burst)
			s.limRate, s.limBurst = sub.Rate, sub.Burst
		}
		r := s.limiter.ReserveN(now, 1)
		if !r.OK() {
			return false, time.Second
		}
		if wait := r.DelayFrom(now); wait > 0 {
			r.CancelAt(now)
			return false, wait
		}
	}
	if sub.Breaker != nil {
		s.brk.consume()
	}
	return true, 0
}

func (s *subState) releaseProbe() { s.brk.probing = false }

// circuitOpen reports an open circuit and when it may probe.
func (s *subState) circuitOpen(now time.Time) (bool, time.Time) {
	if s.brk.st != hookwirev1.CircuitState_CIRCUIT_STATE_OPEN || !now.Before(s.brk.reopen) {
		return false, time.Time{}
	}
	return true, s.brk.reopen
}

// breaker is a circuit breaker's state.
type breaker struct {
	st          hookwirev1.CircuitState // zero means closed
	consecutive int
	window      []outcomeAt
	reopen      time.Time // when an open circuit may probe
	probing     bool
}

type outcomeAt struct {
	at     time.Time
	failed bool
}

func (b *breaker) state() hookwirev1.CircuitState {
	if b.st == 0 {
		return hookwirev1.CircuitState_CIRCUIT_STATE_CLOSED
	}
	return b.st
}

func (b *breaker) canAttempt(now time.Time) (bool, time.Duration) {
	switch b.st {
	case hookwirev1.CircuitState_CIRCUIT_STATE_OPEN:
		if now.Before(b.reopen) {
			return false, b.reopen.Sub(now)
		}
		return true, 0
	case hookwirev1.CircuitState_CIRCUIT_STATE_HALF_OPEN:
		return !b.probing, 0
	}
	return true, 0
}

// consume takes the attempt canAttempt allowed: from open (cooled down) it
// becomes the half-open probe.
func (b *breaker) consume() {
	if b.st == hookwirev1.CircuitState_CIRCUIT_STATE_OPEN || b.st == hookwirev1.CircuitState_CIRCUIT_STATE_HALF_OPEN {
		b.st = hookwirev1.CircuitState_CIRCUIT_STATE_HALF_OPEN
		b.probing = true
	}
}

// record notes an attempt's outcome and reports a transition: "opened",
// "closed" or "".
func (b *breaker) record(cfg *catalog.Breaker, now time.Time, failed bool) string {
	switch b.st {
	case hookwirev1.CircuitState_CIRCUIT_STATE_HALF_OPEN:
		b.probing = false
		if failed {
			b.st = hookwirev1.CircuitState_CIRCUIT_STATE_OPEN
			b.reopen = now.Add(cfg.Cooldown)
			return ""
		}
		*b = breaker{st: hookwirev1.CircuitState_CIRCUIT_STATE_CLOSED}
		return "closed"
	case hookwirev1.CircuitState_CIRCUIT_STATE_OPEN:
		return "" // a late result of an attempt started before opening
	}
	if failed {
		b.consecutive++
	} else {
		b.consecutive = 0
	}
	b.window = append(b.window, outcomeAt{at: now, failed: failed})
	cut := 0
	for cut < len(b.window) && now.Sub(b.window[cut].at) > cfg.Window {
		cut++
	}
	b.window = b.window[cut:]
	fails := 0
	for _, o := range b.window {
		if o.failed {
			fails++
		}
	}
	trip := cfg.ConsecutiveFailures > 0 && b.consecutive >= cfg.ConsecutiveFailures
	if cfg.FailureRatio > 0 && len(b.window) >= cfg.MinAttempts && float64(fails)/float64(len(b.window)) >= cfg.FailureRatio {
		trip = true
	}
	if !trip {
		return ""
	}
	b.st = hookwirev1.CircuitState_CIRCUIT_STATE_OPEN
	b.reopen = now.Add(cfg.Cooldown)
	b.consecutive, b.window = 0, nil
	return "opened"
}

// ring serves the subscriptions of one transport round-robin.
type ring struct {
	subs []*subState
	pos  int
}

func (r *ring) add(s *subState) {
	if !s.inRing {
		s.inRing = true
		r.subs = append(r.subs, s)
	}
}

func (r *ring) current() *subState {
	if r.pos >= len(r.subs) {
		r.pos = 0
	}
	return r.subs[r.pos]
}

func (r *ring) advance() {
	r.pos++
	if r.pos >= len(r.subs) {
		r.pos = 0
	}
}

func (r *ring) removeCurrent() {
	r.subs[r.pos].inRing = false
	r.subs = append(r.subs[:r.pos], r.subs[r.pos+1:]...)
	if r.pos >= len(r.subs) {
		r.pos = 0
	}
}

// subHeap orders subscriptions by their earliest due delivery.
type subHeap []*subState

func (h subHeap) Len() int           { return len(h) }
func (h subHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h subHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *subHeap) Push(x any) {
	s := x.(*subState)
	s.heapIdx = len(*h)
	*h = append(*h, s)
}
func (h *subHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.heapIdx = -1
	return s
}

// deque is a slice-backed double-ended queue.
type deque struct {
	items []*item
	head  int
}

func (q *deque) len() int { return len(q.items) - q.head }

func (q *deque) push(it *item) { q.items = append(q.items, it) }

func (q *deque) pushFront(it *item) {
	if q.head > 0 {
		q.head--
		q.items[q.head] = it
		return
	}
	q.items = append([]*item{it}, q.items...)
}

func (q *deque) pop() *item {
	it := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	return it
}
