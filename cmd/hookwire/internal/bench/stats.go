package bench

import (
	"math"
	"slices"
	"time"
)

// Percentiles summarises a set of durations.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// percentiles sorts samples (nanoseconds) in place and returns the nearest-
// rank percentiles in milliseconds. Sorting is exact and cheap at the sizes
// a run produces (at most a few million samples), so no histogram is used.
func percentiles(samples []int64) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(samples)))) - 1
		i = max(0, min(i, len(samples)-1))
		return ms(samples[i])
	}
	return Percentiles{N: len(samples), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(samples[len(samples)-1])}
}

func ms(ns int64) float64 { return float64(ns) / float64(time.Millisecond) }

// median returns the median of xs (0 for none); xs is sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// rate is events per second over d.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
