package connpool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeConn struct {
	key    string
	dead   atomic.Bool
	closed atomic.Bool
}

// fakeDialer counts dials and can hold them until released.
type fakeDialer struct {
	dials   atomic.Int64
	gate    chan struct{} // nil: dial at once
	started chan string   // receives the key when a dial starts, if non-nil
	fail    atomic.Bool
}

func (d *fakeDialer) config() Config[*fakeConn] {
	return Config[*fakeConn]{
		Dial: func(ctx context.Context, key string) (*fakeConn, error) {
			d.dials.Add(1)
			if d.started != nil {
				d.started <- key
			}
			if d.gate != nil {
				select {
				case <-d.gate:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			if d.fail.Load() {
				return nil, errors.New("connection refused")
			}
			return &fakeConn{key: key}, nil
		},
		Alive: func(c *fakeConn) bool { return !c.dead.Load() },
		Close: func(c *fakeConn) { c.closed.Store(true) },
	}
}

func TestConcurrentGetsShareOneDial(t *testing.T) {
	d := &fakeDialer{gate: make(chan struct{})}
	p := New(d.config())
	defer p.Close()

	const n = 50
	got := make(chan *fakeConn, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Get(context.Background(), "nats://a")
			if err != nil {
				t.Error(err)
			}
			got <- c
		}()
	}
	close(d.gate)
	wg.Wait()
	close(got)
	var first *fakeConn
	for c := range got {
		if first == nil {
			first = c
		}
		if c != first {
			t.Fatal("concurrent Gets for one key returned different connections")
		}
	}
	if d.dials.Load() != 1 {
		t.Errorf("dials = %d, want 1", d.dials.Load())
	}
	if c, _ := p.Get(context.Background(), "nats://a"); c != first {
		t.Error("a later Get did not reuse the cached connection")
	}
	if _, _ = p.Get(context.Background(), "nats://b"); d.dials.Load() != 2 {
		t.Errorf("a second key should dial its own connection; dials = %d", d.dials.Load())
	}
}

func TestFailedDialIsNotCached(t *testing.T) {
	d := &fakeDialer{}
	d.fail.Store(true)
	p := New(d.config())
	defer p.Close()

	if _, err := p.Get(context.Background(), "k"); err == nil {
		t.Fatal("Get succeeded with a failing dialer")
	}
	d.fail.Store(false)
	c, err := p.Get(context.Background(), "k")
	if err != nil || c == nil {
		t.Fatalf("Get after the broker came back = %v, %v", c, err)
	}
	if d.dials.Load() != 2 {
		t.Errorf("dials = %d, want 2", d.dials.Load())
	}
}

func TestDeadConnectionIsReplacedAndClosed(t *testing.T) {
	d := &fakeDialer{}
	p := New(d.config())
	first, _ := p.Get(context.Background(), "k")
	first.dead.Store(true)
	second, err := p.Get(context.Background(), "k")
	if err != nil || second == first {
		t.Fatalf("Get after the connection died = %p, %v; want a new connection", second, err)
	}
	p.Close() // waits for the background close of the dead one
	if !first.closed.Load() || !second.closed.Load() {
		t.Errorf("closed: dead=%v current=%v, want both", first.closed.Load(), second.closed.Load())
	}
}

func TestEvictOnlyTheGivenConnection(t *testing.T) {
	d := &fakeDialer{}
	p := New(d.config())
	defer p.Close()
	first, _ := p.Get(context.Background(), "k")
	p.Evict("k", first)
	second, _ := p.Get(context.Background(), "k")
	if second == first {
		t.Fatal("Evict did not drop the connection")
	}
	p.Evict("k", first) // stale: must not drop the new one
	if third, _ := p.Get(context.Background(), "k"); third != second {
		t.Error("a stale Evict dropped the current connection")
	}
	p.Evict("other", second) // unknown key: no effect
}

func TestGetHonoursContextWhileDialing(t *testing.T) {
	d := &fakeDialer{gate: make(chan struct{}), started: make(chan string, 1)}
	p := New(d.config())
	defer p.Close()

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Get(ctx, "k")
		errc <- err
	}()
	<-d.started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get = %v, want context.Canceled", err)
	}
	// The dial goes on for later callers.
	close(d.gate)
	if c, err := p.Get(context.Background(), "k"); err != nil || c == nil || d.dials.Load() != 1 {
		t.Fatalf("Get after the abandoned wait = %v, %v (dials %d); want the same dial's result", c, err, d.dials.Load())
	}
}

func TestCloseCancelsDialsAndRefusesGets(t *testing.T) {
	d := &fakeDialer{gate: make(chan struct{}), started: make(chan string, 1)}
	p := New(d.config())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Get(context.Background(), "k")
		errc <- err
	}()
	<-d.started
	p.Close() // must not wait for the gate: the dial's context is canceled
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get blocked in a dial during Close = %v, want context.Canceled from the dial", err)
	}
	if _, err := p.Get(context.Background(), "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	p.Close() // idempotent
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	d := &fakeDialer{}
	cfg := d.config()
	cfg.IdleTimeout = time.Minute
	p := New(cfg)
	defer p.Close()
	now := time.Unix(1_700_000_000, 0)
	p.now = func() time.Time { return now }
	p.lastSweep = now

	old, _ := p.Get(context.Background(), "old")
	now = now.Add(45 * time.Second)
	fresh, _ := p.Get(context.Background(), "fresh")
	now = now.Add(30 * time.Second) // old idle 75s, fresh idle 30s
	_, _ = p.Get(context.Background(), "third")
	if p.Len() != 2 {
		t.Fatalf("Len = %d after the sweep, want 2 (old dropped)", p.Len())
	}
	if again, _ := p.Get(context.Background(), "fresh"); again != fresh {
		t.Error("a connection used recently was dropped")
	}
	if again, _ := p.Get(context.Background(), "old"); again == old {
		t.Error("an idle connection was kept")
	}
}
