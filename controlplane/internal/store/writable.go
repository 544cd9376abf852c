package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// What happens when a commit fails.
//
// A commit fails when bbolt cannot write or sync the file: the disk is full
// (ENOSPC while writing pages or growing the file), a quota is reached, or
// the device reports an I/O error on fdatasync. bbolt's Commit then rolls
// the transaction back in memory, but what the file and the process hold
// afterwards depends on where it failed:
//
//   - Writing or syncing the new pages, or growing the file, failed: the
//     meta pages were not touched, so the file still describes the last
//     good commit (bbolt writes pages copy-on-write, never over a page the
//     committed tree uses). bbolt rebuilds its free-page list by scanning
//     the tree again.
//   - Writing the meta page succeeded but its fdatasync failed: the new
//     meta page is in the page cache and, being valid, is what the shared
//     mapping shows. bbolt's rollback does not undo it, so the same
//     process now reads the "failed" transaction as committed, while its
//     callers were told it failed; its durability is unknown.
//   - Re-mapping the grown file failed: bbolt's own comment says the free
//     list cannot be reloaded then, and the handle is unusable.
//
// So the store does not go on with the same handle. The committer closes
// the file and opens it again, which makes the in-memory meta and free list
// exactly what the file holds, as after a restart. If the reopened file
// shows the failed transaction, its pages were synced (meta is written only
// after the data pages' fdatasync succeeded) and one more commit, which
// writes the other meta page and syncs, makes it durable: only then are its
// writes acknowledged. Otherwise they fail with ErrUnavailable, and are
// not applied. (Only if the file cannot be reopened at all is a write that
// failed possibly applied later, as with a client that timed out.)
//
// While the store cannot write, writes fail at once with ErrUnavailable and
// reads go on. The committer retries with a doubling wait (RetryMin to
// RetryMax): each attempt reopens the file if needed and makes a probe
// commit that writes (and then removes) 64 KiB of random bytes, so a
// disk with a few free blocks is not taken for a healthy one. When a probe
// succeeds the store is writable again. A store that fails again soon
// after recovering resumes at the wait it had reached, so a disk that
// takes small probes but not real batches is not hammered.
//
// Under Raft (issue 13) the state machine cannot refuse a committed log
// entry: its apply would wait on the same recovery and retry the entry
// itself instead of failing it; the reopen-and-check logic stays the same.

// ErrUnavailable means the store cannot accept writes now (a failed
// commit, e.g. a full disk); it retries by itself. Errors wrapping it say
// why.
var ErrUnavailable = errors.New("the store cannot accept writes")

// UnavailableError is ErrUnavailable with its cause; its message says
// what is wrong without the file's path ("the store cannot accept writes:
// write: no space left on device; retrying").
type UnavailableError struct{ Cause error }

func (e *UnavailableError) Error() string {
	return ErrUnavailable.Error() + ": " + describeCause(e.Cause) + "; retrying"
}

func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }
func (e *UnavailableError) Unwrap() error        { return e.Cause }

// unavailable wraps cause (the reason the store cannot write) in
// ErrUnavailable, once.
func unavailable(cause error) error {
	if errors.Is(cause, ErrUnavailable) || errors.Is(cause, ErrClosed) {
		return cause
	}
	return &UnavailableError{Cause: cause}
}

// describeCause is the reason without the file's path, which API callers
// need not see: "write: no space left on device".
func describeCause(err error) string {
	if err == nil {
		return "unknown"
	}
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg = strings.Replace(msg, pe.Error(), pe.Op+": "+pe.Err.Error(), 1)
	}
	return msg
}

// writeState is whether the store accepts writes, for Writable.
type writeState struct {
	ok      atomic.Bool
	mu      sync.Mutex
	reason  error
	changed chan struct{}
	// refusing is cancelled, with the reason, when the store stops
	// accepting writes (a fresh one replaces it when it accepts them
	// again): proposals waiting for the state machine stop waiting.
	refusing context.Context
	refuse   context.CancelCauseFunc
}

func (w *writeState) init() {
	w.ok.Store(true)
	w.changed = make(chan struct{})
	w.refusing, w.refuse = context.WithCancelCause(context.Background())
}

// refusal returns the context cancelled when the store next stops
// accepting writes (already cancelled while it refuses them).
func (w *writeState) refusal() context.Context {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refusing
}

// set records the state; a change (or a new reason) wakes the watchers.
func (w *writeState) set(ok bool, reason error) {
	if ok {
		reason = nil
	} else if reason != nil {
		reason = unavailable(reason)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ok.Load() == ok && errorText(w.reason) == errorText(reason) {
		return
	}
	w.ok.Store(ok)
	w.reason = reason
	close(w.changed)
	w.changed = make(chan struct{})
	switch {
	case !ok:
		w.refuse(reason)
	case w.refusing.Err() != nil:
		w.refusing, w.refuse = context.WithCancelCause(context.Background())
	}
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Writable reports whether the store accepts writes now; if not, reason
// says why (it wraps ErrUnavailable, or is ErrClosed after Close). changed
// is closed at the next change of either, so a watcher loops:
//
//	for {
//		ok, reason, changed := st.Writable()
//		...
//		<-changed
//	}
func (s *Store) Writable() (ok bool, reason error, changed <-chan struct{}) {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	return s.state.ok.Load(), s.state.reason, s.state.changed
}

// recoveryState belongs to the committer.
type recoveryState struct {
	// needReopen: the last commit failed and the file has not been
	// reopened since.
	needReopen bool
	// delay is the wait reached by the last recovery and recoveredAt its
	// end, so a store failing again soon resumes at that wait.
	delay       time.Duration
	recoveredAt time.Time
}

// flapWindow: a store failing again within this time of recovering
// resumes its retries at the wait it had reached.
const flapWindow = 30 * time.Second

// probeSize is how much a probe commit writes.
const probeSize = 64 << 10

// recoverFrom handles a failed commit: it settles the batch, refuses
// writes, and retries until the store can write again (true) or Close is
// called (false).
func (s *Store) recoverFrom(f *commitFailure) bool {
	s.stats.failures.Add(1)
	s.state.set(false, f.cause)
	s.log.Error("store commit failed; refusing writes until a retry succeeds", "path", s.path, "err", f.cause)
	s.settle(f)
	delay := s.opts.RetryMin
	if r := s.recovery; !r.recoveredAt.IsZero() && time.Since(r.recoveredAt) < flapWindow {
		delay = min(2*r.delay, s.opts.RetryMax)
	}
	for attempt := 1; ; attempt++ {
		if !s.failQueuedFor(delay) {
			return false
		}
		err := s.probe()
		if err == nil {
			s.state.set(true, nil)
			s.recovery.delay, s.recovery.recoveredAt = delay, time.Now()
			s.log.Info("store accepts writes again", "path", s.path, "attempts", attempt)
			return true
		}
		s.stats.failures.Add(1)
		s.state.set(false, err)
		s.log.Warn("store still cannot write; retrying", "path", s.path, "attempt", attempt, "retry_in", min(2*delay, s.opts.RetryMax), "err", err)
		delay = min(2*delay, s.opts.RetryMax)
	}
}

// failQueuedFor waits d, failing at once the writes that reach the queue
// meanwhile (they raced the state change). It returns false on Close.
func (s *Store) failQueuedFor(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case w := <-s.writes:
			_, reason, _ := s.Writable()
			w.done <- unavailable(reason)
		case <-t.C:
			return true
		case <-s.quit:
			return false
		}
	}
}

// settle decides the outcome of a failed batch (see the top of this file)
// and tells its writes.
func (s *Store) settle(f *commitFailure) {
	s.recovery.needReopen = true
	fail := func(cause error) {
		for _, w := range f.pending {
			w.done <- unavailable(cause)
		}
	}
	unknown := fmt.Errorf("%w (the write may have been applied: the file could not be reopened to tell)", f.cause)
	if err := s.reopen(); err != nil {
		s.log.Error("store: reopening the file after a failed commit failed", "path", s.path, "err", err)
		fail(unknown)
		return
	}
	cur, err := s.currentTxID()
	if err != nil {
		fail(unknown)
		return
	}
	if cur < f.txid {
		fail(f.cause) // not in the file: not applied
		return
	}
	// The failed commit's meta page reached the file. Its data pages were
	// synced before it; one more commit syncs a meta page that covers it.
	started := time.Now()
	if err := s.runUpdate(faultSync, func(*bolt.Tx) error { return nil }); err != nil {
		s.stats.failures.Add(1)
		s.log.Error("store: a failed commit reached the file but could not be synced; its outcome is unknown", "path", s.path, "err", err)
		fail(fmt.Errorf("%w (the write may have been applied)", err))
		return
	}
	s.recovery.needReopen = false
	s.log.Warn("store: a commit that reported a failure had reached the file; synced and acknowledged", "path", s.path, "writes", len(f.pending))
	s.acknowledge(f.pending, time.Since(started))
}

// currentTxID is the id of the last transaction the open file shows.
func (s *Store) currentTxID() (int, error) {
	var id int
	err := s.view(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return id, err
}

// reopen closes the file and opens it again, checking its meta pages and
// size, and recounts the due index from it. Reads made meanwhile fail
// with ErrUnavailable rather than wait for the open (which scans the
// file).
func (s *Store) reopen() error {
	s.mu.Lock()
	old := s.db
	s.db = nil
	s.mu.Unlock()
	if old != nil {
		if err := old.Close(); err != nil {
			s.log.Warn("store: closing the file after a failed commit", "path", s.path, "err", err)
		}
	}
	if err := s.fault(faultPoint{kind: faultReopen}); err != nil {
		return err
	}
	db, err := s.openBolt()
	if err != nil {
		return err
	}
	if err := safeView(db, func(tx *bolt.Tx) error { return s.depth.reload(tx) }); err != nil {
		_ = db.Close()
		return fmt.Errorf("count due deliveries in %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.db = db
	s.keys.invalidate()
	s.mu.Unlock()
	s.recovery.needReopen = false
	return nil
}

// probe tests whether the store can write: it reopens the file if the
// last commit failed, then commits a probe record and removes it again.
func (s *Store) probe() error {
	if s.recovery.needReopen {
		if err := s.reopen(); err != nil {
			return err
		}
	}
	junk := make([]byte, probeSize)
	_, _ = rand.Read(junk) // random, so a compressing file system allocates it
	err := s.runUpdate(faultProbe, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaWriteProbe, junk)
	})
	if err == nil {
		err = s.runUpdate(faultProbe, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Delete(metaWriteProbe)
		})
	}
	if err != nil {
		s.recovery.needReopen = true
	}
	return err
}

// Fault injection, for tests: Options.faults is called at each point and
// an error it returns makes that step fail.
type faultKind int

const (
	faultBatch  faultKind = iota // a group commit of callers' writes
	faultSync                    // the commit that syncs a failed commit found in the file
	faultProbe                   // a probe commit
	faultReopen                  // reopening the file
)

type faultStage int

const (
	// beforeCommit fails the transaction before bbolt commits it: nothing
	// reaches the file (like ENOSPC while writing pages).
	beforeCommit faultStage = iota
	// afterCommit reports an error for a transaction bbolt committed: it
	// is in the file (like a failed fdatasync of the meta page).
	afterCommit
)

type faultPoint struct {
	kind  faultKind
	stage faultStage
}

func (s *Store) fault(p faultPoint) error {
	if s.opts.faults == nil {
		return nil
	}
	return s.opts.faults(p)
}
