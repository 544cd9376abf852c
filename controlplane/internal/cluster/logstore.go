package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hookwire/hookwire/internal/fsutil"
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
// (log segments or snapshots under dataDir/raft), without opening it.
func HasState(dataDir string) bool {
	for _, sub := range []string{"wal", "snapshots"} {
		entries, err := os.ReadDir(filepath.Join(dataDir, "raft", sub))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if sub == "snapshots" || filepath.Ext(e.Name()) == ".wal" {
				return true
			}
		}
	}
	return false
}

// openStores locks dir and opens the log store (raft-wal, chosen over
// raft-boltdb/v2 by BenchmarkLogStore, unless open is given), the stable
// store (the same object) and the file snapshot store.
func openStores(dir string, open func(string) (logStore, error), segmentSize, retain int, logger hclog.Logger) (_ *stores, err error) {
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

	var logs logStore
	if open != nil {
		if logs, err = open(dir); err != nil {
			return nil, fmt.Errorf("open raft log in %s: %w", dir, err)
		}
	} else {
		walDir := filepath.Join(dir, "wal")
		if err := os.MkdirAll(walDir, 0o700); err != nil {
			return nil, fmt.Errorf("create raft log directory: %w", err)
		}
		// WAL.Close leaves its metadata database open (raft-wal v0.4.0),
		// which would keep the directory locked for a restart in the same
		// process: own it and close it after the WAL.
		meta := &metadb.BoltMetaDB{}
		s.close = append(s.close, meta)
		size := wal.DefaultSegmentSize
		if segmentSize > 0 {
			size = segmentSize
		}
		w, err := wal.Open(walDir, wal.WithLogger(logger.Named("wal")), wal.WithMetaStore(meta), wal.WithSegmentSize(size))
		if err != nil {
			return nil, fmt.Errorf("open raft log %s: %w", walDir, err)
		}
		logs = w
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
