package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/hookwire/hookwire/internal/tmpfs/tmpfstest"
	"go.etcd.io/bbolt"
)

func openTestStores(t *testing.T, dir string) *stores {
	t.Helper()
	s, err := openStores(dir, nil, 0, 1, newHCLog(testLogger(t), "test"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reopen closes s and opens the stores in dir again, as a restart does.
func reopen(t *testing.T, s *stores, dir string) *stores {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openTestStores(t, dir)
}

// overrule replaces the log's entries from index from on with new ones of
// term up to index to, as a follower does for a new leader.
func overrule(t *testing.T, s *stores, from, to, term uint64) {
	t.Helper()
	last, err := s.logs.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.logs.DeleteRange(from, last); err != nil {
		t.Fatal(err)
	}
	if err := s.logs.StoreLogs(entries(from, to, term)); err != nil {
		t.Fatal(err)
	}
}

func entries(from, to, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry %d term %d", i, term)})
	}
	return out
}

func wantLog(t *testing.T, s *stores, index, term uint64) {
	t.Helper()
	var l raft.Log
	if err := s.logs.GetLog(index, &l); err != nil {
		t.Fatalf("entry %d: %v", index, err)
	}
	if want := fmt.Sprintf("entry %d term %d", index, term); l.Term != term || string(l.Data) != want {
		t.Fatalf("entry %d = term %d %q, want term %d %q", index, l.Term, l.Data, term, want)
	}
}

func wantRange(t *testing.T, s *stores, first, last uint64) {
	t.Helper()
	f, err1 := s.logs.FirstIndex()
	l, err2 := s.logs.LastIndex()
	if f != first || l != last || err1 != nil || err2 != nil {
		t.Fatalf("log holds %d..%d (%v, %v), want %d..%d", f, l, err1, err2, first, last)
	}
}

// A follower overruled by a new leader deletes the tail of its log and
// appends the leader's entries in their place. raft-wal v0.4.0 then could
// not open its log again ("sealed segment has no index block",
// hashicorp/raft-wal#31), which the cluster's leader kills hit; the
// log must open with the new tail, also across segment files.
func TestWALSurvivesATailTruncation(t *testing.T) {
	defer func(f func(string) int) { walSegmentSize = f }(walSegmentSize)
	walSegmentSize = func(string) int { return minSegmentSize }
	dir := t.TempDir()
	s := openTestStores(t, dir)
	big := make([]byte, 64<<10) // 16 entries fill a 1 MiB segment
	var logs []*raft.Log
	for i := uint64(1); i <= 60; i++ {
		l := entries(i, i, 1)[0]
		if i <= 40 {
			l.Data = append(l.Data[:len(l.Data):len(l.Data)], big...)
		}
		logs = append(logs, l)
	}
	for _, l := range logs {
		if err := s.logs.StoreLogs([]*raft.Log{l}); err != nil {
			t.Fatal(err)
		}
	}
	overrule(t, s, 51, 55, 2)
	s = reopen(t, s, dir)
	defer func() { s.Close() }()
	wantRange(t, s, 1, 55)
	wantLog(t, s, 50, 1)
	wantLog(t, s, 53, 2)
	// And a truncation reaching back into a sealed segment.
	overrule(t, s, 10, 12, 3)
	s = reopen(t, s, dir)
	wantRange(t, s, 1, 12)
	wantLog(t, s, 11, 3)
}

// A data directory of an earlier version has its log in raft-boltdb/v2
// (raft/raft.db). The first start moves the term, the vote and every entry
// into raft-wal and removes raft.db; later starts open raft-wal alone.
func TestBoltLogIsMovedIntoWAL(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, boltLogFileName), BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.StoreLogs(entries(1, 1200, 4)); err != nil {
		t.Fatal(err)
	}
	if err := old.DeleteRange(1, 99); err != nil { // a snapshot truncated the head
		t.Fatal(err)
	}
	if err := old.SetUint64([]byte("CurrentTerm"), 5); err != nil {
		t.Fatal(err)
	}
	if err := old.Set([]byte("LastVoteCand"), []byte("node-b")); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if !HasState(dataDir) {
		t.Fatal("HasState with a raft.db = false")
	}

	for start := range uint64(2) {
		s := openTestStores(t, dir)
		wantRange(t, s, 100, 1200+start)
		wantLog(t, s, 100, 4)
		wantLog(t, s, 1200, 4)
		if term, err := s.stable.GetUint64([]byte("CurrentTerm")); term != 5 || err != nil {
			t.Fatalf("start %d: current term %d, %v; want 5", start, term, err)
		}
		if cand, err := s.stable.Get([]byte("LastVoteCand")); string(cand) != "node-b" || err != nil {
			t.Fatalf("start %d: vote %q, %v; want node-b", start, cand, err)
		}
		if _, err := os.Stat(filepath.Join(dir, boltLogFileName)); !os.IsNotExist(err) {
			t.Fatalf("start %d: raft.db after the move: %v, want it removed", start, err)
		}
		if err := s.logs.StoreLogs(entries(1201+start, 1201+start, 5)); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if !HasState(dataDir) {
			t.Fatalf("start %d: HasState with a raft-wal log = false", start)
		}
	}
}

// The disk is full when an append fills a segment: raft-wal cannot
// preallocate the next segment file, and the full segment then refuses
// every append (types.ErrSealed) until the log is opened again. Once
// space is back the next append succeeds without a restart, and the log
// holds every entry acknowledged before and after.
func TestWALRecoversFromARotationOnAFullDisk(t *testing.T) {
	defer func(f func(string) int) { walSegmentSize = f }(walSegmentSize)
	walSegmentSize = func(string) int { return minSegmentSize }
	disk := tmpfstest.Mount(t, 8<<20)
	dir := filepath.Join(disk, "raft")
	s := openTestStores(t, dir)
	defer func() { s.Close() }()

	// Room for appends and the index block that seals the segment, not
	// for the next segment.
	filler := tmpfstest.Fill(t, disk, 256<<10)
	big := make([]byte, 64<<10)
	next, failed := uint64(1), 0
	for ; failed == 0 && next < 100; next++ {
		l := entries(next, next, 1)[0]
		l.Data = append(l.Data, big...)
		if err := s.logs.StoreLogs([]*raft.Log{l}); err != nil {
			t.Logf("append %d on the full disk: %v", next, err)
			failed++
			next--
		}
	}
	if failed == 0 {
		t.Fatal("99 appends of 64 KiB fitted a full disk with 1 MiB segments")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.logs.StoreLogs(entries(next, next+2, 1)); err != nil {
		t.Fatalf("append after space came back: %v", err)
	}
	wantRange(t, s, 1, next+2)
	s = reopen(t, s, dir)
	wantRange(t, s, 1, next+2)
	wantLog(t, s, next+1, 1)
}
