package dispatch

import (
	"math/rand/v2"
	"time"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

// DefaultSchedule is the wait before each retry (Standard Webhooks
// recommendation): the first attempt is immediate, then 5s, 5m, 30m, 2h, 5h,
// 10h, 14h, 20h and 24h. After the last, the delivery is dead.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// Policy decides what follows an attempt.
type Policy struct {
	// Schedule is the wait before retry n+1 after attempt n (1-based).
	Schedule []time.Duration
	// Jitter is the ± fraction applied to each wait (0.2 = ±20%).
	Jitter float64
	// ThrottleMin is the least wait after THROTTLED or TIMEOUT outcomes.
	ThrottleMin time.Duration
	// Rand returns a float in [0,1); tests pin it.
	Rand func() float64
}

// DefaultPolicy returns the default retry policy.
func DefaultPolicy() Policy {
	return Policy{Schedule: DefaultSchedule, Jitter: 0.2, ThrottleMin: time.Minute, Rand: rand.Float64}
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
func (p Policy) Next(n int32, res *transportv1.DeliveryResult) Verdict {
	switch res.GetOutcome() {
	case transportv1.Outcome_OUTCOME_SUCCESS:
		return Verdict{Done: true}
	case transportv1.Outcome_OUTCOME_GONE:
		return Verdict{Dead: true, Gone: true}
	}
	if int(n) > len(p.Schedule) {
		return Verdict{Dead: true}
	}
	wait := p.jitter(p.Schedule[n-1])
	switch res.GetOutcome() {
	case transportv1.Outcome_OUTCOME_THROTTLED, transportv1.Outcome_OUTCOME_TIMEOUT:
		wait = max(wait, p.ThrottleMin)
		if ra := res.GetRetryAfter().AsDuration(); ra > 0 {
			wait = min(max(ra, wait), 2*wait)
		}
	}
	return Verdict{Wait: wait}
}

func (p Policy) jitter(d time.Duration) time.Duration {
	if p.Jitter <= 0 || p.Rand == nil {
		return d
	}
	f := 1 + p.Jitter*(2*p.Rand()-1)
	return time.Duration(float64(d) * f)
}
