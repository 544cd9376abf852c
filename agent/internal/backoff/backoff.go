// Package backoff computes reconnect delays: a random wait inside a window
// that doubles with every consecutive failure, up to a cap ("full jitter").
//
// It owns no goroutines and no timers; callers decide how to wait.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff tracks consecutive failures. The zero value is not usable; build
// one with New. It is not safe for concurrent use.
type Backoff struct {
	base, max time.Duration
	attempt   int
	rand      func(n int64) int64
}

// New returns a Backoff whose first window is base and whose windows never
// exceed max. Non-positive values fall back to 100ms and 15s; max is raised
// to base when smaller.
func New(base, max time.Duration) *Backoff {
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if max <= 0 {
		max = 15 * time.Second
	}
	if max < base {
		max = base
	}
	return &Backoff{base: base, max: max, rand: rand.Int64N}
}

// Window is the upper bound of the next wait.
func (b *Backoff) Window() time.Duration {
	w := b.base
	for i := 0; i < b.attempt; i++ {
		if w >= b.max/2 {
			return b.max
		}
		w *= 2
	}
	return min(w, b.max)
}

// Next records a failure and returns how long to wait before the next try:
// a uniformly random duration in [0, window], where the window doubles with
// each consecutive failure.
func (b *Backoff) Next() time.Duration {
	w := b.Window()
	b.attempt++
	return time.Duration(b.rand(int64(w) + 1))
}

// NextHalf records a failure and returns a wait in the upper half of the
// window: uniformly random in [window/2, window]. Use it where a retry at
// once would only repeat the failure (the other side asked to wait), so
// the spread stays but the wait never collapses to zero.
func (b *Backoff) NextHalf() time.Duration {
	w := b.Window()
	b.attempt++
	half := w / 2
	return half + time.Duration(b.rand(int64(w-half)+1))
}

// Reset forgets past failures; the next window is base again.
func (b *Backoff) Reset() { b.attempt = 0 }
