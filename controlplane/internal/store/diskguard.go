package store

import (
	"fmt"
	"syscall"
	"time"

	"github.com/hookwire/hookwire/internal/fsutil"
)

// The disk reserve of a replicated store.
//
// A log entry, once committed, must be applied: a replicated store cannot
// refuse it when the disk turns out to be full (fsm.go), and a caller told
// that such a write failed would find it applied later. So a replicated
// store refuses new writes before proposing them, while the data
// directory's file system has less free space than a reserve (1/64 of its
// size, at most 64 MiB): what was accepted before still has room to be
// applied. While it refuses, it looks again every diskPoll and accepts
// writes once there is room.

const (
	maxDiskReserve = 64 << 20
	diskPoll       = 200 * time.Millisecond
)

// checkDisk refuses a write while free space is under the reserve, and
// then watches for space to come back.
func (s *Store) checkDisk() error {
	err := s.diskShort()
	if err == nil {
		return nil
	}
	s.state.set(false, err)
	if s.diskWatch.CompareAndSwap(false, true) {
		s.log.Error("store: the data directory's disk is almost full; refusing writes until space is freed", "path", s.path, "err", err)
		go s.watchDisk()
	}
	return unavailable(err)
}

// diskShort reports the shortage, or nil while there is room (or the file
// system cannot tell).
func (s *Store) diskShort() error {
	free, size, ok := fsutil.DiskSpace(s.dir)
	if !ok { // this system cannot tell: no reserve is kept
		return nil
	}
	reserve := min(uint64(maxDiskReserve), size/64)
	if free >= reserve {
		return nil
	}
	return fmt.Errorf("%w: %d KiB free on the data directory's disk, under the %d KiB kept for writes already accepted", syscall.ENOSPC, free>>10, reserve>>10)
}

func (s *Store) watchDisk() {
	t := time.NewTicker(diskPoll)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		if s.diskShort() == nil {
			s.diskWatch.Store(false)
			s.state.set(true, nil)
			s.log.Info("store: disk space is back; accepting writes again", "path", s.path)
			return
		}
	}
}
