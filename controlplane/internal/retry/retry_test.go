package dispatch

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

func TestPolicyNext(t *testing.T) {
	fixed := func(v float64) Policy {
		p := DefaultPolicy()
		p.Rand = func() float64 { return v }
		return p
	}
	mid := fixed(0.5) // no jitter
	cases := []struct {
		name string
		p    Policy
		n    int32
		res  *transportv1.DeliveryResult
		want Verdict
	}{
		{"success", mid, 1, result(transportv1.Outcome_OUTCOME_SUCCESS, 0), Verdict{Done: true}},
		{"gone", mid, 1, result(transportv1.Outcome_OUTCOME_GONE, 0), Verdict{Dead: true, Gone: true}},
		{"first failure waits 5s", mid, 1, result(transportv1.Outcome_OUTCOME_FAILED, 0), Verdict{Wait: 5 * time.Second}},
		{"second failure waits 5m", mid, 2, result(transportv1.Outcome_OUTCOME_CONNECTION_ERROR, 0), Verdict{Wait: 5 * time.Minute}},
		{"last retry waits 24h", mid, 9, result(transportv1.Outcome_OUTCOME_FAILED, 0), Verdict{Wait: 24 * time.Hour}},
		{"exhausted after ten attempts", mid, 10, result(transportv1.Outcome_OUTCOME_FAILED, 0), Verdict{Dead: true}},
		{"throttled waits the minimum", mid, 1, result(transportv1.Outcome_OUTCOME_THROTTLED, 0), Verdict{Wait: time.Minute}},
		{"timeout waits the minimum", mid, 1, result(transportv1.Outcome_OUTCOME_TIMEOUT, 0), Verdict{Wait: time.Minute}},
		{"retry-after within bounds", mid, 1, result(transportv1.Outcome_OUTCOME_THROTTLED, 90*time.Second), Verdict{Wait: 90 * time.Second}},
		{"retry-after capped at twice", mid, 1, result(transportv1.Outcome_OUTCOME_THROTTLED, time.Hour), Verdict{Wait: 2 * time.Minute}},
		{"retry-after below delay ignored", mid, 3, result(transportv1.Outcome_OUTCOME_THROTTLED, time.Second), Verdict{Wait: 30 * time.Minute}},
		{"jitter low bound", fixed(0), 1, result(transportv1.Outcome_OUTCOME_FAILED, 0), Verdict{Wait: 4 * time.Second}},
		{"jitter high bound", fixed(1), 1, result(transportv1.Outcome_OUTCOME_FAILED, 0), Verdict{Wait: 6 * time.Second}},
	}
	for _, tc := range cases {
		if got := tc.p.Next(tc.n, tc.res); got != tc.want {
			t.Errorf("%s: Next = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
