package cluster

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hookwire/hookwire/internal/fsutil"
	"github.com/hookwire/hookwire/internal/hclogslog"
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
	dir := filepath.Join(dataDir, "raft")
	if info, err := os.Stat(filepath.Join(dir, boltLogFileName)); err == nil && info.Size() > 0 {
		return true
	}
	for _, sub := range []string{walDirName, "snapshots"} {
		if entries, err := os.ReadDir(filepath.Join(dir, sub)); err == nil && len(entries) > 0 {
			return true
		}
	}
	return false
}

// openStores locks dir and opens the log store (raft-wal unless open is
// given), the stable store (the same object) and the file snapshot store.
//
// raft-wal appends each batch with one write and one fsync into a
// preallocated segment file; raft-boltdb/v2, the log of earlier versions,
// rewrites B+tree pages and syncs twice per append (BenchmarkLogStore:
// one writer commits in 0.14 ms instead of 0.37 ms). raft-wal before
// v0.4.1 corrupted its log on a tail truncation (hashicorp/raft-wal#31,
// fixed by #33); TestWALSurvivesATailTruncation guards it.
func openStores(dir string, open func(string) (logStore, error), segment, retain int, logger hclog.Logger) (_ *stores, err error) {
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
		open = func(dir string) (logStore, error) { return openWALLog(dir, segment, logger) }
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

const (
	// walDirName is raft-wal's directory under the raft directory.
	walDirName = "wal"
	// boltLogFileName is the raft-boltdb/v2 log of earlier versions, which
	// openWALLog moves into a new raft-wal log.
	boltLogFileName = "raft.db"
	// maxSegmentSize is the size of raft-wal's segment files (its
	// default). Each is preallocated, so on a small disk they are smaller:
	// 1/64 of the file system, as the store's disk reserve, at least 1 MiB.
	maxSegmentSize = 64 << 20
	minSegmentSize = 1 << 20
	// maxConfigSegmentSize bounds Config.LogSegmentSize (raft-wal's limit
	// is 2 GiB).
	maxConfigSegmentSize = 1 << 30
)

// openWALLog opens the raft-wal log under dir, creating it (and moving a
// raft-boltdb/v2 log into it) on the first start, with segment files of
// segment bytes (zero: walSegmentSize).
func openWALLog(dir string, segment int, logger hclog.Logger) (logStore, error) {
	wdir := filepath.Join(dir, walDirName)
	if _, err := os.Stat(wdir); errors.Is(err, fs.ErrNotExist) {
		if err := createWAL(dir, segment, logger); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	w, err := newWALLog(func() (*wal.WAL, error) { return openWAL(wdir, segment, logger) })
	if err != nil {
		return nil, err
	}
	// The moved log's old file, if a crash came between the rename and
	// its removal.
	if err := os.Remove(filepath.Join(dir, boltLogFileName)); err == nil {
		_ = fsutil.SyncDir(dir)
	}
	return w, nil
}

func openWAL(dir string, segment int, logger hclog.Logger) (*wal.WAL, error) {
	if segment <= 0 {
		segment = walSegmentSize(dir)
	}
	return wal.Open(dir, wal.WithSegmentSize(segment), wal.WithLogger(logger.Named("wal")))
}

// walSegmentSize is segmentSize; tests make it small to cross segments.
var walSegmentSize = segmentSize

// segmentSize is the segment size for a log in dir's file system.
func segmentSize(dir string) int {
	_, size, ok := fsutil.DiskSpace(dir)
	if !ok {
		return maxSegmentSize
	}
	return int(min(maxSegmentSize, max(minSegmentSize, size/64&^(minSegmentSize-1))))
}

// createWAL makes dir/wal: a new, empty raft-wal log, holding the term,
// the vote and the entries of dir's raft-boltdb/v2 log if there is one. It
// is built next to its place and renamed into it, so a crash leaves
// either no wal directory (the next start does it again) or a whole one.
func createWAL(dir string, segment int, logger hclog.Logger) error {
	tmp := filepath.Join(dir, walDirName+".new")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	w, err := openWAL(tmp, segment, logger)
	if err != nil {
		return fmt.Errorf("create raft-wal log: %w", err)
	}
	moved, err := moveBoltLog(filepath.Join(dir, boltLogFileName), w)
	if cerr := w.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("move the raft log of %s into raft-wal: %w", boltLogFileName, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, walDirName)); err != nil {
		return err
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return err
	}
	if moved > 0 {
		logger.Info("moved the raft log from raft-boltdb to raft-wal", "entries", moved)
	}
	return nil
}

// raft's stable store keys (raft/raft.go): what moveBoltLog carries over.
var (
	stableUint64Keys = [][]byte{[]byte("CurrentTerm"), []byte("LastVoteTerm")}
	stableBytesKeys  = [][]byte{[]byte("LastVoteCand")}
)

// moveBoltLog copies the raft-boltdb/v2 log at path, if there is one, into
// w and returns how many entries it copied.
func moveBoltLog(path string, w *wal.WAL) (int, error) {
	if info, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) || (err == nil && info.Size() == 0) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	old, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: time.Second, ReadOnly: true}})
	if err != nil {
		return 0, err
	}
	defer old.Close()
	for _, k := range stableUint64Keys {
		if v, err := old.GetUint64(k); err == nil && v != 0 {
			if err := w.SetUint64(k, v); err != nil {
				return 0, err
			}
		}
	}
	for _, k := range stableBytesKeys {
		if v, err := old.Get(k); err == nil && len(v) > 0 {
			if err := w.Set(k, v); err != nil {
				return 0, err
			}
		}
	}
	first, err := old.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := old.LastIndex()
	if err != nil || last == 0 {
		return 0, err
	}
	const batch = 512
	moved := 0
	logs := make([]*raft.Log, 0, batch)
	for i := first; i <= last; i++ {
		l := new(raft.Log)
		if err := old.GetLog(i, l); err != nil {
			return moved, fmt.Errorf("read entry %d: %w", i, err)
		}
		logs = append(logs, l)
		if len(logs) == batch || i == last {
			if err := w.StoreLogs(logs); err != nil {
				return moved, err
			}
			moved += len(logs)
			logs = logs[:0]
		}
	}
	return moved, nil
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
