package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	berrors "go.etcd.io/bbolt/errors"
)

// faults fails chosen fault points a number of times (like a disk that is
// full for a while) and lets a test stop the committer at a point.
type faults struct {
	mu    sync.Mutex
	fail  map[faultPoint]int
	calls map[faultPoint]int
	stops map[faultPoint]*faultStop
}

type faultStop struct {
	nth     int
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func newFaults(fail map[faultPoint]int) *faults {
	if fail == nil {
		fail = map[faultPoint]int{}
	}
	return &faults{fail: fail, calls: map[faultPoint]int{}, stops: map[faultPoint]*faultStop{}}
}

// setFail makes the next n calls at p fail.
func (f *faults) setFail(p faultPoint, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[p] = n
}

// stopAt makes the committer wait at the nth call (counted from now) at p
// until release is called; reached is closed when it gets there.
func (f *faults) stopAt(p faultPoint, nth int) (reached <-chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &faultStop{nth: f.calls[p] + nth, reached: make(chan struct{}), release: make(chan struct{})}
	f.stops[p] = st
	return st.reached, func() { st.once.Do(func() { close(st.release) }) }
}

func (f *faults) inject(p faultPoint) error {
	f.mu.Lock()
	f.calls[p]++
	st := f.stops[p]
	if st != nil && st.nth == f.calls[p] {
		delete(f.stops, p)
	} else {
		st = nil
	}
	n := f.fail[p]
	if n > 0 {
		f.fail[p] = n - 1
	}
	f.mu.Unlock()
	if st != nil {
		close(st.reached)
		<-st.release
	}
	if n > 0 {
		return &fs.PathError{Op: "write", Path: "hookwire.db", Err: syscall.ENOSPC}
	}
	return nil
}

// pollUntil waits (bounded) for cond.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling an observable condition
	}
}

func (s *Store) isClosing() bool {
	s.sendMu.RLock()
	defer s.sendMu.RUnlock()
	return s.closed
}

func auditEvent(name string) *hookwirev1.AuditEvent {
	return &hookwirev1.AuditEvent{Id: ids.Format(AuditIDPrefix, ids.New(time.Now())), Tenant: AuditGlobal, Action: "test." + name}
}

func openWith(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// awaitWritable waits (bounded) until the store's writability is want.
func awaitWritable(t *testing.T, s *Store, want bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ok, reason, changed := s.Writable()
		if ok == want {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("store writable=%v after 10s (reason %v), want %v", ok, reason, want)
		}
	}
}

func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// TestFailedCommitRefusesWritesAndRecovers: a commit that fails before
// reaching the file is not acknowledged and not applied; while the store
// cannot write, writes fail at once with ErrUnavailable naming the cause,
// Writable says so and signals each change; failed retries back off; once
// a probe succeeds the store takes writes again without a restart.
func TestFailedCommitRefusesWritesAndRecovers(t *testing.T) {
	dir := t.TempDir()
	f := newFaults(map[faultPoint]int{
		{kind: faultBatch, stage: beforeCommit}: 1,
		{kind: faultProbe, stage: beforeCommit}: 3,
	})
	s := openWith(t, dir, Options{RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond, faults: f.inject})
	ctx := context.Background()
	ok, _, changed := s.Writable()
	if !ok {
		t.Fatal("a new store is not writable")
	}
	probeReached, releaseProbe := f.stopAt(faultPoint{kind: faultProbe, stage: beforeCommit}, 1)
	defer releaseProbe()

	err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "lost"}, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("write whose commit failed: %v, want ErrUnavailable naming the cause", err)
	}
	await(t, changed, "the writability change")
	await(t, probeReached, "the first retry")
	ok, reason, _ := s.Writable()
	if ok || !errors.Is(reason, ErrUnavailable) || !strings.Contains(reason.Error(), "no space left on device; retrying") {
		t.Fatalf("Writable() = %v, %v; want false with the cause", ok, reason)
	}
	started := time.Now()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "refused"}, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write while unwritable: %v, want ErrUnavailable", err)
	} else if took := time.Since(started); took > time.Second {
		t.Errorf("a write while unwritable took %v; it must fail at once", took)
	}
	if _, err := s.GetTenant("lost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the failed write is readable: %v", err)
	}

	releaseProbe()
	awaitWritable(t, s, true)
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	if got := s.Stats().Failures; got != 4 {
		t.Errorf("Stats().Failures = %d, want 4 (the commit and 3 retries)", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	defer s.Close()
	for id, want := range map[string]bool{"acme": true, "lost": false, "refused": false} {
		_, err := s.GetTenant(id)
		if got := err == nil; got != want {
			t.Errorf("after reopening, tenant %s present=%v (%v), want %v", id, got, err, want)
		}
	}
}

// TestCommitThatReachedTheFileIsAcknowledgedOnlyOnceSynced: a commit that
// reports an error after its meta page was written (a failed final sync)
// is found in the reopened file; it is acknowledged only after one more
// commit synced it, and its write runs once.
func TestCommitThatReachedTheFileIsAcknowledgedOnlyOnceSynced(t *testing.T) {
	dir := t.TempDir()
	f := newFaults(map[faultPoint]int{{kind: faultBatch, stage: afterCommit}: 1})
	s := openWith(t, dir, Options{RetryMin: time.Millisecond, faults: f.inject})
	syncReached, releaseSync := f.stopAt(faultPoint{kind: faultSync, stage: beforeCommit}, 1)
	defer releaseSync()

	result := make(chan error, 1)
	go func() { result <- s.CreateTenant(context.Background(), &hookwirev1.Tenant{Id: "acme"}, nil) }()
	await(t, syncReached, "the sync commit")
	select {
	case err := <-result:
		t.Fatalf("the write returned (%v) before the commit that makes it durable", err)
	default:
	}
	releaseSync()
	// nil, not ErrAlreadyExists: the write was not run a second time.
	if err := await(t, result, "the write"); err != nil {
		t.Fatalf("write whose commit reached the file: %v, want success once synced", err)
	}
	awaitWritable(t, s, true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if _, err := s.GetTenant("acme"); err != nil {
		t.Fatalf("acknowledged write not in the file: %v", err)
	}
}

// TestCommitThatReachedTheFileButCannotBeSyncedIsNotAcknowledged: when
// the commit that would sync it fails too, the write's outcome is unknown,
// so it is reported as failed, saying it may have been applied.
func TestCommitThatReachedTheFileButCannotBeSyncedIsNotAcknowledged(t *testing.T) {
	f := newFaults(map[faultPoint]int{
		{kind: faultBatch, stage: afterCommit}: 1,
		{kind: faultSync, stage: beforeCommit}: 1,
	})
	s := openWith(t, t.TempDir(), Options{RetryMin: time.Millisecond, faults: f.inject})
	defer s.Close()
	err := s.CreateTenant(context.Background(), &hookwirev1.Tenant{Id: "acme"}, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "may have been applied") {
		t.Fatalf("write whose commit could not be synced: %v, want ErrUnavailable saying it may have been applied", err)
	}
	awaitWritable(t, s, true)
	if err := s.CreateTenant(context.Background(), &hookwirev1.Tenant{Id: "beta"}, nil); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
}

// TestReadsFailWhileTheFileCannotBeReopened: after a failed commit the
// store reopens the file; while that fails, reads fail with
// ErrUnavailable instead of using a stale handle, and recover with it.
func TestReadsFailWhileTheFileCannotBeReopened(t *testing.T) {
	f := newFaults(nil)
	s := openWith(t, t.TempDir(), Options{RetryMin: time.Millisecond, faults: f.inject})
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	// The reopen that settles the failed batch fails (the file stays
	// closed); the retry's reopen waits until released.
	f.setFail(faultPoint{kind: faultBatch, stage: beforeCommit}, 1)
	f.setFail(faultPoint{kind: faultReopen}, 1)
	reached, release := f.stopAt(faultPoint{kind: faultReopen}, 2)
	defer release()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "beta"}, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write whose commit failed: %v", err)
	}
	await(t, reached, "the retry's reopen")
	if _, err := s.GetTenant("acme"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("read while the file is closed: %v, want ErrUnavailable", err)
	}
	release()
	awaitWritable(t, s, true)
	if _, err := s.GetTenant("acme"); err != nil {
		t.Fatalf("read after recovery: %v", err)
	}
}

// TestWritesRacingCloseNeverHang: a write sent while the store closes
// returns (committed, or ErrClosed); none is left queued behind a stopped
// committer. Before the fix 27 of 50 rounds had a writer blocked forever.
func TestWritesRacingCloseNeverHang(t *testing.T) {
	for round := range 50 {
		s := openWith(t, t.TempDir(), Options{NoSync: true})
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					err := s.AppendAudit(context.Background(), auditEvent(fmt.Sprintf("w%d-%d", w, i)))
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							t.Errorf("write racing Close: %v, want ErrClosed", err)
						}
						return
					}
				}
			}()
		}
		pollUntil(t, "a few commits", func() bool { return s.Stats().Commits >= 3 })
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a write sent around Close never returned", round)
		}
	}
}

// TestClosedStoreReportsErrDatabaseNotOpen: calls after Close fail with
// ErrClosed, which wraps bbolt's ErrDatabaseNotOpen, reads included.
func TestClosedStoreReportsErrDatabaseNotOpen(t *testing.T) {
	s := open(t, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.CreateTenant(context.Background(), &hookwirev1.Tenant{Id: "acme"}, nil); !errors.Is(err, ErrClosed) || !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Errorf("write after Close: %v", err)
	}
	if _, err := s.GetTenant("acme"); !errors.Is(err, ErrClosed) {
		t.Errorf("read after Close: %v", err)
	}
	if _, err := s.CountDue(); !errors.Is(err, ErrClosed) {
		t.Errorf("CountDue after Close: %v; a failed read must not count as 0", err)
	}
	if _, err := s.CountSubDeliveries(ids.New(time.Now()), time.Unix(0, 0), time.Now()); !errors.Is(err, ErrClosed) {
		t.Errorf("CountSubDeliveries after Close: %v; a failed read must not count as 0", err)
	}
	if ok, reason, _ := s.Writable(); ok || !errors.Is(reason, ErrClosed) {
		t.Errorf("Writable() after Close = %v, %v", ok, reason)
	}
}

// TestCloseReportsTheLastCommitsError: writes still queued when Close runs
// are committed by it; if that fails, Close says so (and so do the writes).
func TestCloseReportsTheLastCommitsError(t *testing.T) {
	f := newFaults(nil)
	s := openWith(t, t.TempDir(), Options{RetryMin: time.Hour, faults: f.inject})
	// Hold the committer in a commit while more writes queue behind it.
	reached, release := f.stopAt(faultPoint{kind: faultBatch, stage: beforeCommit}, 1)
	first := make(chan error, 1)
	go func() { first <- s.AppendAudit(context.Background(), auditEvent("first")) }()
	await(t, reached, "the first commit")
	queued := make(chan error, 4)
	for i := range 4 {
		go func() { queued <- s.AppendAudit(context.Background(), auditEvent(fmt.Sprintf("queued%d", i))) }()
	}
	pollUntil(t, "4 queued writes", func() bool { return len(s.writes) == 4 })
	f.setFail(faultPoint{kind: faultBatch, stage: beforeCommit}, 100)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	pollUntil(t, "Close to start", s.isClosing)
	release()
	if err := await(t, first, "the first write"); err != nil {
		t.Fatalf("first write: %v", err)
	}
	err := await(t, closed, "Close")
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("Close = %v, want the last commit's error", err)
	}
	for range 4 {
		if err := await(t, queued, "a queued write"); err == nil {
			t.Error("a write queued at Close succeeded although its commit failed")
		}
	}
}
