package backoff

import (
	"testing"
	"time"
)

func TestWindowsDoubleUpToCap(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	var got []time.Duration
	b.rand = func(n int64) int64 { got = append(got, time.Duration(n-1)); return n - 1 }
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		if d := b.Next(); d != w {
			t.Fatalf("attempt %d: wait %v, want the full window %v", i, d, w)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("rand called %d times, want %d", len(got), len(want))
	}
	b.Reset()
	if w := b.Window(); w != 100*time.Millisecond {
		t.Fatalf("after Reset window = %v, want 100ms", w)
	}
}

func TestWaitIsJitteredInsideWindow(t *testing.T) {
	b := New(10*time.Millisecond, 80*time.Millisecond)
	for i := 0; i < 200; i++ {
		w := b.Window()
		d := b.Next()
		if d < 0 || d > w {
			t.Fatalf("attempt %d: wait %v outside [0, %v]", i, d, w)
		}
	}
	// With a real random source, 200 draws inside an 80ms window cannot all
	// be equal unless jitter is broken.
	b.Reset()
	seen := map[time.Duration]bool{}
	for i := 0; i < 50; i++ {
		seen[b.Next()] = true
	}
	if len(seen) < 2 {
		t.Fatalf("waits are not jittered: %v", seen)
	}
}

func TestDefaultsAndHugeAttempts(t *testing.T) {
	b := New(0, 0)
	if b.base != 100*time.Millisecond || b.max != 15*time.Second {
		t.Fatalf("defaults = %v/%v, want 100ms/15s", b.base, b.max)
	}
	b.attempt = 1 << 20 // must not overflow while doubling
	if w := b.Window(); w != 15*time.Second {
		t.Fatalf("window after many failures = %v, want the 15s cap", w)
	}
	if b := New(time.Second, time.Millisecond); b.max != time.Second {
		t.Fatalf("max below base not raised: %v", b.max)
	}
}

func TestNextHalfStaysInUpperHalf(t *testing.T) {
	b := New(100*time.Millisecond, 400*time.Millisecond)
	var draws []int64
	b.rand = func(n int64) int64 { draws = append(draws, n); return n - 1 }
	want := []time.Duration{100, 200, 400, 400}
	for i, w := range want {
		w *= time.Millisecond
		if d := b.NextHalf(); d != w {
			t.Fatalf("attempt %d: wait %v, want the top of the window %v", i, d, w)
		}
	}
	b.Reset()
	b.rand = func(int64) int64 { return 0 }
	if d := b.NextHalf(); d != 50*time.Millisecond {
		t.Fatalf("lowest wait = %v, want half the first window (50ms)", d)
	}
	if draws[0] != int64(50*time.Millisecond)+1 {
		t.Fatalf("random range %d, want half the window plus one", draws[0])
	}
}
