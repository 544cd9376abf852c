package retry

import (
	"testing"
	"time"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

func result(o transportv1.Outcome, retryAfter time.Duration) *transportv1.DeliveryResult {
	r := &transportv1.DeliveryResult{Outcome: o}
	if retryAfter > 0 {
		r.RetryAfter = durationpb.New(retryAfter)
	}
	return r
}

func TestNext(t *testing.T) {
	fixed := func(v float64) Options {
		o := DefaultOptions()
		o.Rand = func() float64 { return v }
		return o
	}
	mid := fixed(0.5) // no jitter
	fail := result(transportv1.Outcome_OUTCOME_FAILED, 0)
	cases := []struct {
		name string
		s    Schedule
		o    Options
		n    int32
		res  *transportv1.DeliveryResult
		want Verdict
	}{
		{"success", nil, mid, 1, result(transportv1.Outcome_OUTCOME_SUCCESS, 0), Verdict{Done: true}},
		{"gone", nil, mid, 1, result(transportv1.Outcome_OUTCOME_GONE, 0), Verdict{Dead: true, Gone: true}},
		{"first failure waits 5s", nil, mid, 1, fail, Verdict{Wait: 5 * time.Second}},
		{"second failure waits 5m", nil, mid, 2, result(transportv1.Outcome_OUTCOME_CONNECTION_ERROR, 0), Verdict{Wait: 5 * time.Minute}},
		{"last retry waits 24h", nil, mid, 9, fail, Verdict{Wait: 24 * time.Hour}},
		{"exhausted after ten attempts", nil, mid, 10, fail, Verdict{Dead: true}},
		{"throttled waits the minimum", nil, mid, 1, result(transportv1.Outcome_OUTCOME_THROTTLED, 0), Verdict{Wait: time.Minute}},
		{"timeout waits the minimum", nil, mid, 1, result(transportv1.Outcome_OUTCOME_TIMEOUT, 0), Verdict{Wait: time.Minute}},
		{"retry-after within bounds", nil, mid, 1, result(transportv1.Outcome_OUTCOME_THROTTLED, 90*time.Second), Verdict{Wait: 90 * time.Second}},
		{"retry-after capped at twice", nil, mid, 1, result(transportv1.Outcome_OUTCOME_THROTTLED, time.Hour), Verdict{Wait: 2 * time.Minute}},
		{"retry-after below the delay ignored", nil, mid, 3, result(transportv1.Outcome_OUTCOME_THROTTLED, time.Second), Verdict{Wait: 30 * time.Minute}},
		{"jitter low bound", nil, fixed(0), 1, fail, Verdict{Wait: 4 * time.Second}},
		{"jitter high bound", nil, fixed(1), 1, fail, Verdict{Wait: 6 * time.Second}},
		{"custom delays", Delays{time.Second, 2 * time.Second}, mid, 2, fail, Verdict{Wait: 2 * time.Second}},
		{"custom delays exhausted", Delays{time.Second, 2 * time.Second}, mid, 3, fail, Verdict{Dead: true}},
		{"exponential", Exponential{Base: time.Second, Cap: time.Minute, MaxAttempts: 10}, mid, 4, fail, Verdict{Wait: 8 * time.Second}},
		{"exponential capped", Exponential{Base: time.Second, Cap: time.Minute, MaxAttempts: 10}, mid, 9, fail, Verdict{Wait: time.Minute}},
		{"exponential exhausted", Exponential{Base: time.Second, Cap: time.Minute, MaxAttempts: 3}, mid, 3, fail, Verdict{Dead: true}},
	}
	for _, tc := range cases {
		if got := Next(tc.s, tc.n, tc.res, tc.o); got != tc.want {
			t.Errorf("%s: Next = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// The jitter stays within ±20% over many draws of the real generator.
func TestJitterBounds(t *testing.T) {
	o := DefaultOptions()
	for range 10000 {
		w := Next(nil, 2, result(transportv1.Outcome_OUTCOME_FAILED, 0), o).Wait
		if w < 4*time.Minute || w > 6*time.Minute {
			t.Fatalf("wait %v outside 5m ±20%%", w)
		}
	}
}
