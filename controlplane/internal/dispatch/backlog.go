package dispatch

import (
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// Reasons a due delivery of an active subscription waits for an agent
// (the reason label of hookwire_queue_waiting_agent).
const (
	WaitNoTransport = "no_transport" // no connected agent (not draining) hosts the transport
	WaitSelector    = "selector"     // hosts exist, none matches agent_selector
	WaitCircuitOpen = "circuit_open"
)

// WaitReasons lists every waiting reason, so each series exists even at
// zero.
var WaitReasons = []string{WaitNoTransport, WaitSelector, WaitCircuitOpen}

// Reasons a due delivery is held by its subscription's status (the reason
// label of hookwire_queue_held).
const (
	HeldPaused   = "paused"
	HeldDisabled = "disabled"
)

// HeldReasons lists every held reason.
var HeldReasons = []string{HeldPaused, HeldDisabled}

// Backlog is what waits for something other than a free agent slot.
type Backlog struct {
	// WaitingRetry: pending deliveries whose next attempt is later than
	// the end of the current second.
	WaitingRetry int
	// WaitingAgent: due deliveries of active subscriptions that no
	// connected agent may take now, by reason (every reason present), not
	// counting those leased.
	WaitingAgent map[string]int
	// Held: due deliveries of paused or disabled subscriptions, by reason
	// (every reason present). Nothing is wrong with the agents: they go
	// out when the subscription is resumed.
	Held map[string]int
}

// Backlog reports the deliveries waiting for a retry or for an agent. It
// reads the store's in-memory due counts (never the file) and judges each
// subscription with due deliveries against the connected agents, the way
// WaitingReason does.
func (d *Dispatcher) Backlog() Backlog {
	now := d.cfg.Now()
	due, later := d.cfg.Store.DueDepth(now)
	b := Backlog{WaitingRetry: later, WaitingAgent: make(map[string]int, len(WaitReasons)), Held: make(map[string]int, len(HeldReasons))}
	for _, r := range WaitReasons {
		b.WaitingAgent[r] = 0
	}
	for _, r := range HeldReasons {
		b.Held[r] = 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, n := range due {
		sub := d.cfg.Catalog.Get(id)
		if sub == nil {
			continue // deleted: its deliveries are being cancelled
		}
		switch sub.Status {
		case hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAUSED:
			b.Held[HeldPaused] += n
			continue
		case hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_DISABLED:
			b.Held[HeldDisabled] += n
			continue
		}
		s := d.subs[id]
		reason := d.blockedLocked(sub, s, now)
		if reason == "" {
			continue
		}
		if s != nil {
			n -= s.inFlight // those are with an agent
		}
		if n > 0 {
			b.WaitingAgent[reason] += n
		}
	}
	return b
}

// blockedLocked names why no connected agent may take an active
// subscription's due deliveries now ("" when one may).
func (d *Dispatcher) blockedLocked(sub *catalog.Sub, s *subState, now time.Time) string {
	if s != nil {
		if open, _ := s.circuitOpen(now); open {
			return WaitCircuitOpen
		}
	}
	hosted := false
	for c := range d.conns {
		if !c.transports[sub.Transport] || c.drainingLocked() {
			continue
		}
		if sub.Selector.Matches(c.labels) {
			return ""
		}
		hosted = true
	}
	if hosted {
		return WaitSelector
	}
	return WaitNoTransport
}
