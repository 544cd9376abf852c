package dispatch

import (
	"testing"
	"time"
)

func TestLatencyBuckets(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {time.Millisecond, 0}, {time.Millisecond + 1, 1}, {1414 * time.Microsecond, 1}, {2 * time.Millisecond, 2},
		{25 * time.Millisecond, 10}, {32 * time.Millisecond, 10}, {33 * time.Millisecond, 11},
		{65536 * time.Millisecond, 32}, {time.Minute * 2, LatencyBounds},
	} {
		if got := LatencyBucket(c.d); got != c.want {
			t.Errorf("LatencyBucket(%v) = %d, want %d", c.d, got, c.want)
		}
	}
	if LatencyBound(0) != time.Millisecond || LatencyBound(20) != 1024*time.Millisecond || LatencyBound(LatencyBounds-1) != 65536*time.Millisecond {
		t.Errorf("bounds %v %v %v", LatencyBound(0), LatencyBound(20), LatencyBound(LatencyBounds-1))
	}
}

func TestLatencyQuantile(t *testing.T) {
	hist := func(ds ...time.Duration) []int64 {
		h := make([]int64, LatencyBuckets)
		for _, d := range ds {
			h[LatencyBucket(d)]++
		}
		return h
	}
	if _, ok := LatencyQuantile(nil, 0.5); ok {
		t.Fatal("empty histogram answered")
	}
	// 100 latencies: 90 of 10ms, 9 of 200ms, one of 5s.
	var ds []time.Duration
	for range 90 {
		ds = append(ds, 10*time.Millisecond)
	}
	for range 9 {
		ds = append(ds, 200*time.Millisecond)
	}
	ds = append(ds, 5*time.Second)
	h := hist(ds...)
	for _, c := range []struct {
		q     float64
		truth time.Duration
	}{{0.5, 10 * time.Millisecond}, {0.9, 10 * time.Millisecond}, {0.95, 200 * time.Millisecond}, {0.99, 200 * time.Millisecond}, {1, 5 * time.Second}} {
		got, ok := LatencyQuantile(h, c.q)
		i := LatencyBucket(c.truth)
		lo := time.Duration(0)
		if i > 0 {
			lo = LatencyBound(i - 1)
		}
		if !ok || got < lo || got > LatencyBound(i) {
			t.Errorf("q%v = %v, want within (%v, %v]", c.q, got, lo, LatencyBound(i))
		}
	}
	if got, _ := LatencyQuantile(hist(3*time.Minute), 0.5); got != LatencyBound(LatencyBounds-1) {
		t.Errorf("beyond the last bound: %v", got)
	}
}

func TestStatsPendingTrimDropsOldest(t *testing.T) {
	r := newStatsRecorder()
	var sub [16]byte
	for m := range int64(10) {
		r.minuteLocked("acme", sub, 100+m).Created = m
	}
	if n := r.trimLocked(4); n != 6 || len(r.pending) != 4 {
		t.Fatalf("trim dropped %d, left %d", n, len(r.pending))
	}
	for k := range r.pending {
		if k.minute < 106 {
			t.Fatalf("kept minute %d", k.minute)
		}
	}
}
