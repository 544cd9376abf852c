package cluster

import (
	"errors"
	"fmt"
	"github.com/hookwire/hookwire/internal/hclogslog"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/hookwire/hookwire/internal/fsutil"
	"go.etcd.io/bbolt"
)

// logCacheSize is how many recent entries raft keeps in memory, so that
// replicating fresh entries to followers does not read them back from disk.
const logCacheSize = 1024

// logStore is raft's log and stable store in one (raft-wal and
// raft-boltdb both are).
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// stores is what raft keeps on disk under DataDir/raft.
type stores struct {
	logs   raft.LogStore
	stable raft.StableStore
	snaps  *raft.FileSnapshotStore
	close  []io.Closer
}

func (s *stores) Close() error {
	var errs []error
	for i := len(s.close) - 1; i >= 0; i-- {
		errs = append(errs, s.close[i].Close())
	}
	return errors.Join(errs...)
}

// HasState reports whether dataDir holds raft state from an earlier start
// (a log or snapshots under dataDir/raft), without opening it.
func HasState(dataDir string) bool {
	if info, err := os.Stat(filepath.Join(dataDir, "raft", logFileName)); err == nil && info.Size() > 0 {
		return true
	}
	entries, err := os.ReadDir(filepath.Join(dataDir, "raft", "snapshots"))
	return err == nil && len(entries) > 0
}

// openStores locks dir and opens the log store (raft-boltdb/v2 unless open
// is given), the stable store (the same object) and the file snapshot
// store.
//
// raft-wal appends faster (BenchmarkLogStore), but its last release,
// v0.4.0, lacks the fix for hashicorp/raft-wal#31: truncating the log's
// tail, which a follower does when a new leader overrules entries it did
// not commit, leaves a sealed segment without its index block, and the
// next start fails with "sealed segment has no index block". Leader kills
// in this project's cluster tests hit it. raft-boltdb/v2 commits each
// append with one fsync, and its file grows only as the log does.
func openStores(dir string, open func(string) (logStore, error), retain int, logger hclog.Logger) (_ *stores, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create raft directory %s: %w", dir, err)
	}
	s := &stores{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open raft directory lock: %w", err)
	}
	s.close = append(s.close, lock)
	ok, err := fsutil.TryLock(lock)
	if err != nil {
		return nil, fmt.Errorf("lock raft directory %s: %w", dir, err)
	}
	if !ok {
		return nil, fmt.Errorf("raft directory %s is in use by another process", dir)
	}
	if open == nil {
		open = openBoltLog
	}
	logs, err := open(dir)
	if err != nil {
		return nil, fmt.Errorf("open raft log in %s: %w", dir, err)
	}
	s.close = append(s.close, logs)
	cache, err := raft.NewLogCache(logCacheSize, logs)
	if err != nil {
		return nil, err
	}
	s.logs, s.stable = cache, logs
	s.snaps, err = raft.NewFileSnapshotStoreWithLogger(dir, retain, logger.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("open raft snapshots under %s: %w", dir, err)
	}
	return s, nil
}

// logFileName is raft-boltdb's file under the raft directory.
const logFileName = "raft.db"

func openBoltLog(dir string) (logStore, error) {
	return raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, logFileName),
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
}

// latestSnapshotIndex reads the header of the newest snapshot: the index of
// the last command its state holds. ok is false when there is no snapshot
// or its header cannot be read (raft then restores as usual).
func latestSnapshotIndex(snaps raft.SnapshotStore) (index uint64, ok bool, err error) {
	list, err := snaps.List()
	if err != nil {
		return 0, false, fmt.Errorf("list raft snapshots: %w", err)
	}
	if len(list) == 0 {
		return 0, false, nil
	}
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		return 0, false, nil
	}
	defer rc.Close()
	index, err = readHeader(rc)
	if err != nil {
		return 0, false, nil
	}
	return index, true, nil
}

// routineWarnings are raft warnings that are a normal part of running: a
// server starting (alone or not) always waits out one heartbeat timeout
// before its first election. They are logged at Info.
var routineWarnings = map[string]bool{"heartbeat timeout reached, starting election": true}

// newHCLog is the hclog.Logger raft, its transport and its stores log
// through, into the node's slog.Logger.
func newHCLog(l *slog.Logger, name string) hclog.Logger {
	return hclogslog.New(l, name, hclogslog.Options{Routine: routineWarnings})
}
