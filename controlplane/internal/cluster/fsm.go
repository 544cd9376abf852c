package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

// FSM is the replicated state machine: the store implements it on bbolt.
// Raft calls ApplyBatch, Snapshot and Restore from one goroutine, never
// concurrently with each other; Snapshot.WriteTo runs concurrently with
// later ApplyBatch calls.
type FSM interface {
	// ApplyBatch applies committed commands, in log order, and returns one
	// response per command (nil is fine). It must be deterministic: every
	// node applies the same commands to the same state and must reach the
	// same bytes. A response that is an error is returned by Node.Apply as
	// its error. The FSM must record, with the effects and in the same
	// transaction, the Index of the last command it applied: AppliedIndex
	// reports it after a restart. The FSM may commit without fsync; the raft
	// log is the durable record and replays what a crash lost.
	ApplyBatch(cmds []Command) []any

	// Snapshot captures the current state cheaply (bbolt: begin a read
	// transaction) and returns it; the expensive copy happens in WriteTo on
	// another goroutine while ApplyBatch continues.
	Snapshot() (Snapshot, error)

	// Restore replaces the whole state with a stream written by
	// Snapshot.WriteTo (possibly on another node). It must discard all
	// previous state and should make the result durable (fsync) before it
	// returns. Afterwards AppliedIndex reports the index recorded in the
	// restored state.
	Restore(r io.Reader) error

	// AppliedIndex reports the Index of the last command whose effects the
	// FSM holds in its own storage, 0 for an empty FSM. The node calls it
	// once, before raft starts, to replay only the commands after it and to
	// skip restoring a snapshot the FSM already contains.
	AppliedIndex() (uint64, error)
}

// Command is one committed log entry for the FSM.
type Command struct {
	Index uint64 // raft log index, strictly increasing
	Term  uint64
	// Data is the bytes given to Node.Apply. The FSM must not keep it after
	// ApplyBatch returns (copy what it stores; bbolt copies on Put).
	Data []byte
	// AppendedAt is when the leader appended the entry (its clock, so the
	// same on every node). The FSM must still take times it stores from the
	// command itself: this field is informational.
	AppendedAt time.Time
}

// Snapshot is a point-in-time copy of the FSM being written out.
type Snapshot interface {
	// WriteTo writes the whole state (bbolt: Tx.WriteTo).
	WriteTo(w io.Writer) (int64, error)
	// Release frees the snapshot (bbolt: roll the read transaction back).
	// It is always called, also when WriteTo never was.
	Release()
}

// Every snapshot this package stores or exports starts with a header: an
// 8-byte magic and the index of the last command the state contains,
// big-endian. On start the node compares that index with
// FSM.AppliedIndex to decide whether raft must restore the snapshot.
// unknownIndex marks state whose log indexes belong to another history (a
// user-supplied restore): it is always restored on start.
const (
	snapshotMagic = "HWRAFT01"
	headerLen     = len(snapshotMagic) + 8
	unknownIndex  = math.MaxUint64
)

func encodeHeader(index uint64) []byte {
	b := make([]byte, headerLen)
	copy(b, snapshotMagic)
	binary.BigEndian.PutUint64(b[len(snapshotMagic):], index)
	return b
}

// readHeader reads and checks the header at the start of r.
func readHeader(r io.Reader) (uint64, error) {
	b := make([]byte, headerLen)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, fmt.Errorf("read snapshot header: %w", err)
	}
	if string(b[:len(snapshotMagic)]) != snapshotMagic {
		return 0, errors.New("not a Hookwire control plane snapshot (bad header)")
	}
	return binary.BigEndian.Uint64(b[len(snapshotMagic):]), nil
}

// fsmAdapter is the raft.BatchingFSM raft sees. It turns raft log entries
// into Commands, skips commands the FSM already holds after a restart, and
// frames snapshots with the header. Raft calls every method but
// snapshot.Persist from its FSM goroutine, so the fields need no lock.
type fsmAdapter struct {
	fsm FSM
	// skipThrough: commands with Index <= skipThrough are already in the
	// FSM (its AppliedIndex at start); raft replays them because it only
	// knows the last snapshot's index. Reset to 0 by a restore.
	skipThrough uint64
	// lastCommand is the index of the last command the FSM's state
	// contains: it goes into the header of the next snapshot.
	lastCommand uint64
}

var _ raft.BatchingFSM = (*fsmAdapter)(nil)

func (a *fsmAdapter) ApplyBatch(logs []*raft.Log) []any {
	resp := make([]any, len(logs))
	cmds := make([]Command, 0, len(logs))
	pos := make([]int, 0, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand || l.Index <= a.skipThrough {
			continue
		}
		cmds = append(cmds, Command{Index: l.Index, Term: l.Term, Data: l.Data, AppendedAt: l.AppendedAt})
		pos = append(pos, i)
	}
	if len(cmds) == 0 {
		return resp
	}
	out := a.fsm.ApplyBatch(cmds)
	if len(out) != len(cmds) {
		panic(fmt.Sprintf("cluster: FSM.ApplyBatch returned %d responses for %d commands", len(out), len(cmds)))
	}
	for j, i := range pos {
		resp[i] = out[j]
	}
	a.lastCommand = cmds[len(cmds)-1].Index
	return resp
}

func (a *fsmAdapter) Apply(l *raft.Log) any {
	return a.ApplyBatch([]*raft.Log{l})[0]
}

func (a *fsmAdapter) Snapshot() (raft.FSMSnapshot, error) {
	s, err := a.fsm.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("FSM snapshot: %w", err)
	}
	return &fsmSnapshot{snap: s, index: a.lastCommand}, nil
}

func (a *fsmAdapter) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	index, err := readHeader(rc)
	if err != nil {
		return err
	}
	if err := a.fsm.Restore(rc); err != nil {
		return fmt.Errorf("FSM restore: %w", err)
	}
	a.lastCommand = index
	a.skipThrough = 0
	return nil
}

type fsmSnapshot struct {
	snap  Snapshot
	index uint64
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(encodeHeader(s.index)); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot header: %w", err)
	}
	if _, err := s.snap.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write FSM snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.snap.Release() }
