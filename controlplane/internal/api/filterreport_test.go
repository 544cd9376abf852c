package api

import (
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
)

func TestFilterReportsRateLimitPerSubscription(t *testing.T) {
	var r filterReports
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := ids.New(t0), ids.New(t0.Add(time.Millisecond))
	type call struct {
		sub            ids.ID
		at             time.Duration
		ok             bool
		wantSuppressed int
	}
	for i, c := range []call{
		{a, 0, true, 0},
		{a, time.Second, false, 0},
		{b, time.Second, true, 0}, // another subscription has its own limit
		{a, 30 * time.Second, false, 0},
		{a, FilterFailureInterval - 1, false, 0},
		{a, FilterFailureInterval, true, 3}, // the three in between
		{a, FilterFailureInterval + time.Second, false, 0},
		{a, 3 * FilterFailureInterval, true, 1},
		{b, 3 * FilterFailureInterval, true, 0},
	} {
		ok, suppressed := r.allow(c.sub, t0.Add(c.at))
		if ok != c.ok || suppressed != c.wantSuppressed {
			t.Errorf("call %d: allow = %v, %d; want %v, %d", i, ok, suppressed, c.ok, c.wantSuppressed)
		}
	}
}

func TestFilterReportsStateIsBounded(t *testing.T) {
	var r filterReports
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxFilterFailureStates {
		r.allow(ids.New(t0.Add(time.Duration(i))), t0)
	}
	recent := ids.New(t0.Add(time.Hour))
	r.allow(recent, t0.Add(FilterFailureInterval-time.Second))
	// Past the bound, a new subscription drops the states whose interval
	// is over; those still within it stay.
	later := t0.Add(FilterFailureInterval)
	if ok, _ := r.allow(ids.New(t0.Add(2*time.Hour)), later); !ok {
		t.Fatal("a new subscription was not allowed")
	}
	if n := len(r.states); n != 2 {
		t.Errorf("%d states after pruning, want 2 (the recent one and the new one)", n)
	}
	if ok, _ := r.allow(recent, later); ok {
		t.Error("the recent subscription's limit was forgotten")
	}
}
