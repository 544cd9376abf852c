package api

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// keyLimiter is a token bucket per key: per API key for every unary call
// (agent streams are not limited: they carry their own credit), per
// tenant for portal session creation.
type keyLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*rate.Limiter
}

// maxLimitedKeys bounds the buckets a keyLimiter keeps; past it they all
// start afresh (full), which at worst lets a burst through once.
const maxLimitedKeys = 100000

func newKeyLimiter(perSecond float64, burst int, now func() time.Time) *keyLimiter {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &keyLimiter{limit: rate.Limit(perSecond), burst: burst, now: now, keys: map[string]*rate.Limiter{}}
}

// wait reports how long the key must wait before its next call (0: go).
func (l *keyLimiter) wait(keyID string) time.Duration {
	now := l.now()
	l.mu.Lock()
	lim := l.keys[keyID]
	if lim == nil {
		if len(l.keys) >= maxLimitedKeys { // bounded memory: start afresh
			clear(l.keys)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.keys[keyID] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// unary refuses calls over the key's rate with ResourceExhausted and a
// retry-after header (whole seconds, rounded up), which the REST gateway
// turns into 429 with Retry-After.
func (l *keyLimiter) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if p := principalFrom(ctx); l != nil && p != nil {
		if d := l.wait(p.keyID); d > 0 {
			secs := int(math.Ceil(d.Seconds()))
			_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", strconv.Itoa(secs)))
			return nil, status.Errorf(codes.ResourceExhausted,
				"API key %s is over its rate limit of %g requests/s (burst %d); retry in %ds or ask for a higher --api-rate-limit",
				p.keyID, float64(l.limit), l.burst, secs)
		}
	}
	return handler(ctx, req)
}
