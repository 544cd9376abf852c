package agent

import (
	"context"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// Transport availability and hand-back.
//
// A transport whose plugin is down cannot deliver, and a delivery that never
// reached the transport is not an attempt: it must not cost the delivery
// one of its retries. So the agent follows the TransportSource's
// availability, tells the control plane (TransportStatus, sent before any
// result on the stream, and again on every new stream), and gives back
// what it is assigned for an unavailable transport as a Result with
// not_attempted_reason: the control plane puts the delivery back without
// counting an attempt.

// recheckAfter is how long after a transport refused a delivery the agent
// asks the source again whether it is available. The source normally
// reports the change itself; this only bounds how long a refusal the
// source never reported keeps the transport marked down.
const recheckAfter = time.Second

// watchTransports keeps a.down in step with the source until life ends.
func (a *Agent) watchTransports(life context.Context) {
	recheck := time.NewTimer(time.Hour)
	recheck.Stop()
	defer recheck.Stop()
	for {
		a.mu.Lock()
		down, changed := a.cfg.Transports.Unavailable()
		prev := a.setDownLocked(down)
		a.mu.Unlock()
		a.logAvailability(prev, down)
		signal(a.sendSignal)
		for waiting := true; waiting; {
			select {
			case <-changed: // nil for a source that never changes
				waiting = false
			case <-a.refused:
				recheck.Reset(recheckAfter)
			case <-recheck.C:
				waiting = false
			case <-life.Done():
				return
			}
		}
	}
}

// setDownLocked replaces the agent's view of unavailable transports and
// returns the previous one. Caller holds a.mu.
func (a *Agent) setDownLocked(down map[string]string) map[string]string {
	var prev map[string]string
	if p := a.down.Load(); p != nil {
		prev = *p
	}
	if maps.Equal(prev, down) {
		return prev
	}
	next := maps.Clone(down)
	a.down.Store(&next)
	return prev
}

// noteDownLocked records that a transport refused a delivery because it
// is not running, before the source has said so: the control plane must
// hear that the transport is unavailable before it sees the hand-back, or
// it would assign the delivery straight back. It reports whether the
// transport was not already marked down. Caller holds a.mu.
func (a *Agent) noteDownLocked(name, reason string) bool {
	var cur map[string]string
	if p := a.down.Load(); p != nil {
		cur = *p
	}
	if _, ok := cur[name]; ok {
		return false
	}
	next := maps.Clone(cur)
	if next == nil {
		next = map[string]string{}
	}
	next[name] = reason
	a.down.Store(&next)
	return true
}

// downReason says why a transport cannot deliver now ("" if it can).
func (a *Agent) downReason(name string) string {
	if p := a.down.Load(); p != nil {
		return (*p)[name]
	}
	return ""
}

func (a *Agent) logAvailability(prev, cur map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(cur)) {
		if _, was := prev[name]; !was {
			a.cfg.Logger.Warn("transport unavailable: not taking its deliveries until it is back (they go back to the control plane without an attempt)",
				"transport", name, "reason", cur[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(prev)) {
		if _, is := cur[name]; !is {
			a.cfg.Logger.Info("transport available again", "transport", name)
		}
	}
}

// statusChangesLocked returns the TransportStatus messages that bring the
// current stream up to date with a.down, and records them as sent. Caller
// holds a.mu.
func (a *Agent) statusChangesLocked() []*hookwirev1.TransportStatus {
	var down map[string]string
	if p := a.down.Load(); p != nil {
		down = *p
	}
	var out []*hookwirev1.TransportStatus
	for _, name := range slices.Sorted(maps.Keys(down)) {
		if r, ok := a.sentDown[name]; ok && r == down[name] {
			continue
		}
		out = append(out, &hookwirev1.TransportStatus{Name: name, Available: false, Reason: down[name]})
		if a.sentDown == nil {
			a.sentDown = map[string]string{}
		}
		a.sentDown[name] = down[name]
	}
	for _, name := range slices.Sorted(maps.Keys(a.sentDown)) {
		if _, ok := down[name]; ok {
			continue
		}
		out = append(out, &hookwirev1.TransportStatus{Name: name, Available: true})
		delete(a.sentDown, name)
	}
	return out
}

// handBack gives a delivery back to the control plane without attempting
// it: its result names the reason instead of an outcome.
func (a *Agent) handBack(l *lease, reason string) {
	if l.cancel != nil {
		l.cancel()
	}
	l.result.LeaseId = l.id
	l.result.LeaseToken = l.token
	l.result.StartTime = nil
	l.result.Result = nil
	l.result.NotAttemptedReason = reason
	l.size = proto.Size(&l.result)
	a.cfg.Logger.Debug("delivery handed back without an attempt",
		"delivery", l.deliveryID, "attempt", l.attempt, "lease", l.id, "transport", l.transportName, "reason", reason)
	a.handedBack.Add(1)
	a.mu.Lock()
	noted := a.noteDownLocked(l.transportName, reason)
	a.mu.Unlock()
	if noted {
		signal(a.refused)
	}
	a.toOutbox(l)
}

// retryResultsLocked keeps results the control plane could not record in
// the outbox and schedules their resend after a bounded, jittered backoff
// (see resultRetryBase). Caller holds a.mu.
func (a *Agent) retryResultsLocked(ls []*lease, now time.Time) {
	for _, l := range ls {
		if l.waiting {
			continue
		}
		l.waiting = true
		a.retryWait = append(a.retryWait, l)
	}
	if len(a.retryWait) > 0 && a.retryAt.IsZero() {
		a.retryAt = now.Add(a.resultBackoff.NextHalf())
		signal(a.retryKick)
	}
}

// releaseRetries queues the results waiting for a resend if their time has
// come; it reports whether any were queued.
func (a *Agent) releaseRetries(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.retryAt.IsZero() || now.Before(a.retryAt) {
		return false
	}
	a.retryAt = time.Time{}
	n := 0
	for _, l := range a.retryWait {
		l.waiting = false
		if _, ok := a.outbox[l.id]; ok && !l.acked {
			a.pending = append(a.pending, l)
			n++
		}
	}
	clear(a.retryWait)
	a.retryWait = a.retryWait[:0]
	sortBySeq(a.pending)
	return n > 0
}

// retryTime is when the results waiting for a resend go out (zero: none).
func (a *Agent) retryTime() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.retryAt
}
