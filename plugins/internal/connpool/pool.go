// Package connpool keeps one long-lived broker connection per distinct
// server configuration for the built-in broker transports (nats, amqp, mqtt,
// redis), so that a delivery never dials when a healthy connection exists.
//
// It owns only connection lifetime: dialing once per key however many
// deliveries ask at the same time (they all wait for the same dial, each
// bounded by its own context), replacing a connection that has died, closing
// connections left idle, and closing everything on Close. What a connection
// is and how it is used belongs to each transport.
package connpool

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("the transport is shutting down; its broker connections are closed")

// Config describes how a Pool makes, checks and closes connections.
type Config[C comparable] struct {
	// Dial opens a connection for key. ctx ends at DialTimeout or when the
	// pool closes; Dial must return by then.
	Dial func(ctx context.Context, key string) (C, error)
	// Alive reports whether a cached connection can still be used. A dead
	// one is closed and replaced by the next Get.
	Alive func(C) bool
	// Close closes a connection. It may block briefly (a protocol goodbye).
	Close func(C)
	// DialTimeout bounds one dial. Default 10s.
	DialTimeout time.Duration
	// IdleTimeout closes connections no Get has asked for in this long. It
	// must be longer than any delivery can take (deliveries are bounded by
	// their timeout). Default 10 minutes; negative disables.
	IdleTimeout time.Duration
}

// Pool is a concurrency-safe cache of connections keyed by server
// configuration (the transports use the URL, which carries credentials).
type Pool[C comparable] struct {
	cfg    Config[C]
	now    func() time.Time
	base   context.Context // ends on Close; parent of every dial
	cancel context.CancelFunc
	bg     sync.WaitGroup // dials and background closes

	mu        sync.Mutex
	entries   map[string]*entry[C]
	closed    bool
	lastSweep time.Time
}

type entry[C comparable] struct {
	ready    chan struct{} // closed when the dial finished
	conn     C             // valid once ready is closed and err is nil
	err      error
	lastUsed time.Time // guarded by Pool.mu
}

// New returns an empty pool.
func New[C comparable](cfg Config[C]) *Pool[C] {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool[C]{
		cfg:       cfg,
		now:       time.Now,
		base:      ctx,
		cancel:    cancel,
		entries:   make(map[string]*entry[C]),
		lastSweep: time.Now(),
	}
}

// Get returns the connection for key, dialing it if there is none or the
// cached one is dead. Concurrent callers for the same key share one dial.
// If ctx ends first, Get returns ctx's error while the dial goes on for
// later callers. A failed dial is not cached: the next Get dials again.
func (p *Pool[C]) Get(ctx context.Context, key string) (C, error) {
	var zero C
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return zero, ErrClosed
	}
	now := p.now()
	p.sweepLocked(now)
	e := p.entries[key]
	if e != nil && isReady(e) && (e.err != nil || !p.cfg.Alive(e.conn)) {
		delete(p.entries, key)
		if e.err == nil {
			p.closeInBackground(e.conn)
		}
		e = nil
	}
	if e == nil {
		e = &entry[C]{ready: make(chan struct{})}
		p.entries[key] = e
		p.bg.Add(1)
		go p.dial(key, e)
	}
	e.lastUsed = now
	p.mu.Unlock()

	select {
	case <-e.ready:
		if e.err != nil {
			return zero, e.err
		}
		return e.conn, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Evict drops conn from the pool if it is still the connection cached for
// key, and closes it, so the next Get dials afresh. Transports call it when
// a publish shows the connection is broken before the client library has
// noticed.
func (p *Pool[C]) Evict(key string, conn C) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[key]
	if e == nil || !isReady(e) || e.err != nil || e.conn != conn {
		return
	}
	delete(p.entries, key)
	if !p.closed {
		p.closeInBackground(conn)
	}
}

// Len returns how many keys have a connection or a dial in progress.
func (p *Pool[C]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// Close cancels dials in progress, waits for them, and closes every
// connection. Later Gets fail with ErrClosed. Close is idempotent.
func (p *Pool[C]) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.bg.Wait()
		return
	}
	p.closed = true
	entries := p.entries
	p.entries = nil
	p.mu.Unlock()

	p.cancel()
	p.bg.Wait() // every dial has finished, so every entry is final
	var wg sync.WaitGroup
	for _, e := range entries {
		if e.err == nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.cfg.Close(e.conn)
			}()
		}
	}
	wg.Wait()
}

func (p *Pool[C]) dial(key string, e *entry[C]) {
	defer p.bg.Done()
	ctx, cancel := context.WithTimeout(p.base, p.cfg.DialTimeout)
	defer cancel()
	e.conn, e.err = p.cfg.Dial(ctx, key)
	close(e.ready)
}

// sweepLocked closes connections idle longer than IdleTimeout, checking at
// most every half IdleTimeout.
func (p *Pool[C]) sweepLocked(now time.Time) {
	idle := p.cfg.IdleTimeout
	if idle < 0 || now.Sub(p.lastSweep) < idle/2 {
		return
	}
	p.lastSweep = now
	for key, e := range p.entries {
		if isReady(e) && now.Sub(e.lastUsed) > idle {
			delete(p.entries, key)
			if e.err == nil {
				p.closeInBackground(e.conn)
			}
		}
	}
}

// closeInBackground closes conn without holding up a delivery; Close waits
// for it. The caller holds p.mu and the pool is not closed.
func (p *Pool[C]) closeInBackground(conn C) {
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		p.cfg.Close(conn)
	}()
}

func isReady[C comparable](e *entry[C]) bool {
	select {
	case <-e.ready:
		return true
	default:
		return false
	}
}
