// Package retry decides what follows a delivery attempt: success, another
// attempt after a wait, or giving up. It owns the retry schedules (the
// Standard Webhooks default, explicit lists, exponential) and the outcome
// rules (throttling minimum, Retry-After bounds, 410 Gone); it keeps no
// state.
package retry

import (
	"math/rand/v2"
	"time"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

// Schedule gives the wait after attempt n (1-based); ok is false when no
// attempt follows n.
type Schedule interface {
	Delay(n int32) (wait time.Duration, ok bool)
}

// Delays is an explicit schedule: the wait after attempt n is Delays[n-1].
type Delays []time.Duration

// Delay implements Schedule.
func (d Delays) Delay(n int32) (time.Duration, bool) {
	if n < 1 || int(n) > len(d) {
		return 0, false
	}
	return d[n-1], true
}

// Default is the Standard Webhooks recommendation: the first attempt is
// immediate, then 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h and 24h. After the tenth
// attempt the delivery is dead.
var Default = Delays{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// Exponential waits Base·2^(n-1), at most Cap, for MaxAttempts attempts in
// all.
type Exponential struct {
	Base, Cap   time.Duration
	MaxAttempts int32
}

// Delay implements Schedule.
func (e Exponential) Delay(n int32) (time.Duration, bool) {
	if n < 1 || n >= e.MaxAttempts {
		return 0, false
	}
	w := e.Base
	for i := int32(1); i < n; i++ {
		w *= 2
		if e.Cap > 0 && w >= e.Cap {
			return e.Cap, true
		}
	}
	if e.Cap > 0 && w > e.Cap {
		w = e.Cap
	}
	return w, true
}

// Options are the server-wide rules applied on top of a schedule.
type Options struct {
	// Jitter is the ± fraction applied to each wait (0.2 = ±20%).
	Jitter float64
	// ThrottleMin is the least wait after THROTTLED or TIMEOUT outcomes.
	ThrottleMin time.Duration
	// Rand returns a float in [0,1); tests pin it.
	Rand func() float64
}

// DefaultOptions: ±20% jitter, a one-minute minimum after throttling.
func DefaultOptions() Options {
	return Options{Jitter: 0.2, ThrottleMin: time.Minute, Rand: rand.Float64}
}

// Verdict is what happens to a delivery after an attempt.
type Verdict struct {
	// Done: the delivery succeeded.
	Done bool
	// Dead: no more attempts.
	Dead bool
	// Gone: the target refused for good; disable the subscription.
	Gone bool
	// Wait before the next attempt (when neither Done nor Dead).
	Wait time.Duration
}

// Next returns the verdict after attempt number n (1-based) ended with res.
func Next(s Schedule, n int32, res *transportv1.DeliveryResult, o Options) Verdict {
	switch res.GetOutcome() {
	case transportv1.Outcome_OUTCOME_SUCCESS:
		return Verdict{Done: true}
	case transportv1.Outcome_OUTCOME_GONE:
		return Verdict{Dead: true, Gone: true}
	}
	if s == nil {
		s = Default
	}
	base, ok := s.Delay(n)
	if !ok {
		return Verdict{Dead: true}
	}
	wait := jitter(base, o)
	switch res.GetOutcome() {
	case transportv1.Outcome_OUTCOME_THROTTLED, transportv1.Outcome_OUTCOME_TIMEOUT:
		wait = max(wait, o.ThrottleMin)
		if ra := res.GetRetryAfter().AsDuration(); ra > 0 {
			wait = min(max(ra, wait), 2*wait)
		}
	}
	return Verdict{Wait: wait}
}

func jitter(d time.Duration, o Options) time.Duration {
	if o.Jitter <= 0 || o.Rand == nil {
		return d
	}
	return time.Duration(float64(d) * (1 + o.Jitter*(2*o.Rand()-1)))
}
