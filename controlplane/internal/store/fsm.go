package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/cluster"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	"github.com/hookwire/hookwire/internal/fsutil"
	bolt "go.etcd.io/bbolt"
)

// The replicated store (issue 13).
//
// A store opened with Options.Replicated is the state machine under a Raft
// node (package cluster): Apply does not commit itself but proposes its
// commands, as one storev1.Proposal, through the Proposer, and returns once
// the entry is committed on a quorum and applied here. The node calls the
// FSM (Store.FSM) with committed entries in log order on every server; it
// applies each batch of entries in one bbolt transaction committed without
// fsync, with the index of the last entry in the meta bucket
// ("raft_applied"), so a restart knows which entries the file holds. The
// raft log is the durable record: what a crash took from the file is
// applied again from it.
//
// An entry whose commands fail (a precondition, a record not found) changes
// nothing and its error goes back to its proposer, exactly as a failed
// write of the group committer: the batch is run again without it. That is
// deterministic, so every server reaches the same state.
//
// A committed entry cannot be refused. When the transaction itself cannot
// commit (a full disk), the batch is retried, with the same recovery as the
// group committer's (close and reopen the file, doubling waits from
// RetryMin to RetryMax); meanwhile Writable reports why and Apply refuses
// new writes at once, so nothing new is accepted that the server cannot
// store. AbortApplies, called before the node shuts down, ends such a wait:
// the entries not applied stay in the raft log and are applied at the next
// start, and nothing later is applied by this process.

// metaApplied is the meta key of the raft index of the last applied entry.
var metaApplied = []byte("raft_applied")

// Proposer replicates one proposal and returns the FSM's response for it:
// *cluster.Node.
type Proposer interface {
	Apply(ctx context.Context, data []byte) (any, error)
}

// SetProposer makes Apply propose through p. It must be called before the
// first write of a replicated store.
func (s *Store) SetProposer(p Proposer) { s.proposer = p }

// propose is Apply on a replicated store.
func (s *Store) propose(ctx context.Context, cmds []*storev1.Command) ([]Result, error) {
	s.sendMu.RLock()
	closed := s.closed
	s.sendMu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if !s.state.ok.Load() {
		if ok, reason, _ := s.Writable(); !ok {
			return nil, unavailable(reason)
		}
	}
	if err := s.checkDisk(); err != nil {
		return nil, err
	}
	if s.proposer == nil {
		return nil, errors.New("store: replicated store has no proposer")
	}
	// MarshalVT (vtprotobuf) rather than proto.Marshal: the same wire format at a
	// fraction of the reflection's cost, on every write. It does not check
	// strings for UTF-8; the state machine does, when encode stores them.
	data, err := (&storev1.Proposal{Commands: cmds}).MarshalVT()
	if err != nil {
		return nil, fmt.Errorf("encode proposal: %w", err)
	}
	// A committed entry waits for the state machine, which waits for the
	// file while it cannot write: do not keep the caller meanwhile.
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	refusing := s.state.refusal()
	stop := context.AfterFunc(refusing, func() {
		cancel(fmt.Errorf("%w (the write may still be applied once the store can write again)", unavailable(context.Cause(refusing))))
	})
	defer stop()
	started := time.Now()
	resp, err := s.proposer.Apply(pctx, data)
	if err == nil && s.opts.OnPropose != nil {
		s.opts.OnPropose(time.Since(started))
	}
	var rejected *rejectedError
	switch {
	case errors.As(err, &rejected):
		return nil, rejected.err // the commands failed: nothing changed
	case err == nil:
	case ctx.Err() == nil && errors.Is(context.Cause(pctx), ErrUnavailable):
		return nil, context.Cause(pctx)
	case ctx.Err() != nil:
		// The entry may still be committed and applied later.
		return nil, err
	default:
		// The cluster could not commit it now (no leader, leadership
		// lost, the log could not be written): the write may or may not
		// be applied; the caller retries as with a store that cannot
		// write.
		return nil, unavailable(err)
	}
	rs, ok := resp.([]Result)
	if !ok || len(rs) != len(cmds) {
		return nil, fmt.Errorf("store: the state machine answered %T for %d commands", resp, len(cmds))
	}
	return rs, nil
}

// FSM is the store as the cluster's state machine.
func (s *Store) FSM() cluster.FSM { return (*fsm)(s) }

// AbortApplies makes a state-machine apply that waits for the file to
// become writable give up, and every later one do nothing; see the top of
// this file. The server calls it just before shutting its node down.
func (s *Store) AbortApplies() {
	s.abortOnce.Do(func() { close(s.aborted) })
}

func (s *Store) isAborted() bool {
	select {
	case <-s.aborted:
		return true
	default:
		return false
	}
}

type fsm Store

// rejectedError is the answer to a proposal whose commands failed when
// applied (a precondition, a missing record): propose returns err itself,
// which is what the same write returns on an unreplicated store.
type rejectedError struct{ err error }

func (e *rejectedError) Error() string { return e.err.Error() }
func (e *rejectedError) Unwrap() error { return e.err }

// fsmEntry is one proposal of a batch being applied.
type fsmEntry struct {
	pos  int // in the batch
	cmds []*storev1.Command
	pre  []*encoded
}

func (f *fsm) ApplyBatch(cmds []cluster.Command) []any {
	s := (*Store)(f)
	out := make([]any, len(cmds))
	entries := make([]fsmEntry, 0, len(cmds))
	for i, c := range cmds {
		var p storev1.Proposal
		if err := p.UnmarshalVT(c.Data); err != nil {
			out[i] = &rejectedError{fmt.Errorf("store: log entry %d is not a proposal: %w", c.Index, err)}
			continue
		}
		e := fsmEntry{pos: i, cmds: p.GetCommands(), pre: make([]*encoded, len(p.GetCommands()))}
		var err error
		for j, cmd := range e.cmds {
			if e.pre[j], err = encodeCommand(cmd); err != nil {
				break
			}
		}
		if err != nil {
			out[i] = &rejectedError{err}
			continue
		}
		entries = append(entries, e)
	}
	s.applyEntries(entries, cmds[len(cmds)-1].Index, out)
	return out
}

// applyEntries applies entries in one transaction that also records last
// as the applied index, retrying until it commits (or AbortApplies).
func (s *Store) applyEntries(entries []fsmEntry, last uint64, out []any) {
	delay := s.opts.RetryMin
	for attempt := 1; ; attempt++ {
		if s.isAborted() {
			for _, e := range entries {
				out[e.pos] = ErrClosed
			}
			return
		}
		started := time.Now()
		var (
			results [][]Result
			txid    int
			err     error
		)
		// An entry that fails is answered and the rest run again without
		// it; a failure of the commit itself leaves entries as they are.
		for {
			failed := -1
			var failErr error
			err = s.runUpdate(faultBatch, func(tx *bolt.Tx) error {
				txid = tx.ID()
				setFillPercent(tx)
				results = make([][]Result, len(entries))
				for k, e := range entries {
					rs := make([]Result, len(e.cmds))
					for j, cmd := range e.cmds {
						r, err := s.applyEncoded(tx, cmd, e.pre[j])
						if err != nil {
							failed, failErr = k, err
							return err
						}
						rs[j] = r
					}
					results[k] = rs
				}
				return tx.Bucket(bucketMeta).Put(metaApplied, binary.BigEndian.AppendUint64(nil, last))
			})
			if failed >= 0 && errors.Is(err, failErr) {
				out[entries[failed].pos] = &rejectedError{failErr}
				entries = append(entries[:failed:failed], entries[failed+1:]...)
				continue
			}
			break
		}
		if err == nil || s.reachedFile(txid, err) {
			for k, e := range entries {
				out[e.pos] = results[k]
			}
			s.stats.record(len(entries))
			if s.onCommit != nil {
				s.onCommit(len(entries), time.Since(started))
			}
			if !s.state.ok.Load() {
				s.state.set(true, nil)
				s.log.Info("store accepts writes again", "path", s.path, "attempts", attempt)
			}
			return
		}
		s.stats.failures.Add(1)
		s.state.set(false, err)
		s.log.Error("store: applying committed log entries failed; refusing new writes and retrying", "path", s.path, "attempt", attempt, "retry_in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.aborted:
			t.Stop()
		}
		delay = min(2*delay, s.opts.RetryMax)
	}
}

// reachedFile handles a failed commit of applied entries: it reopens the
// file and reports whether the transaction is in it after all (its meta
// page reached the file although the commit reported an error).
func (s *Store) reachedFile(txid int, cause error) bool {
	s.recovery.needReopen = true
	if err := s.reopen(); err != nil {
		s.log.Error("store: reopening the file after a failed commit failed", "path", s.path, "err", err, "commit_err", cause)
		return false
	}
	cur, err := s.currentTxID()
	return err == nil && cur >= txid
}

func (f *fsm) AppliedIndex() (uint64, error) {
	s := (*Store)(f)
	var index uint64
	err := s.view(func(tx *bolt.Tx) error {
		index = appliedIndex(tx)
		return nil
	})
	return index, err
}

func appliedIndex(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(metaApplied); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// fsmSnapshot is an open read transaction being written out.
type fsmSnapshot struct{ tx *bolt.Tx }

func (f *fsm) Snapshot() (cluster.Snapshot, error) {
	s := (*Store)(f)
	if s.isAborted() {
		return nil, errors.New("store: applies were aborted; no snapshot of a state that may lag the log")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, s.unusable()
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("store snapshot: %w", err)
	}
	return &fsmSnapshot{tx: tx}, nil
}

func (sn *fsmSnapshot) WriteTo(w io.Writer) (int64, error) { return sn.tx.WriteTo(w) }
func (sn *fsmSnapshot) Release()                           { _ = sn.tx.Rollback() }

// Restore replaces the database file with a snapshot's: written next to
// it, synced, checked, then renamed over it and opened in its place.
func (f *fsm) Restore(r io.Reader) error {
	s := (*Store)(f)
	tmp := s.path + ".restore"
	if err := writeRestoreFile(tmp, r); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := verifyFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store restore: the snapshot is not a sound database: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The old file is closed once its last read transaction has ended, not
	// here: a snapshot of it may be being written out, and raft finishes
	// that snapshot only after this restore returns (bbolt's Close would
	// wait for it forever). The rename leaves the open file readable.
	if old := s.db; old != nil {
		s.db = nil
		go func() {
			if err := old.Close(); err != nil {
				s.log.Warn("store restore: closing the old file", "path", s.path, "err", err)
			}
		}()
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("store restore: %w", err)
	}
	if err := fsutil.SyncDir(s.dir); err != nil {
		return fmt.Errorf("store restore: %w", err)
	}
	db, err := s.openBolt()
	if err != nil {
		return err
	}
	if err := s.prepare(db, false); err != nil {
		_ = db.Close()
		return fmt.Errorf("store restore: %w", err)
	}
	if err := safeView(db, func(tx *bolt.Tx) error { return s.depth.reload(tx) }); err != nil {
		_ = db.Close()
		return fmt.Errorf("store restore: count due deliveries: %w", err)
	}
	s.db = db
	s.keys.invalidate()
	m, err := readMarker(s.dir)
	if err != nil {
		m = nil
	}
	if err := s.syncMarker(m, false); err != nil {
		return err
	}
	s.log.Info("store restored from a snapshot", "path", s.path, "store", s.storeID)
	return nil
}

func writeRestoreFile(path string, r io.Reader) error {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("store restore: %w", err)
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("store restore: write %s: %w", path, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("store restore: sync %s: %w", path, err)
	}
	return out.Close()
}
