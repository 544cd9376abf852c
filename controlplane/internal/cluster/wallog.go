package cluster

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	waltypes "github.com/hashicorp/raft-wal/types"
)

// walLog is the raft-wal log, opened again when a segment rotation failed.
//
// raft-wal rotates to a new segment file in the background once an append
// fills the current one. If it cannot create and preallocate the next file
// (the disk is full), the full segment stays the tail and refuses every
// append with types.ErrSealed: the log, and with it the server, would be
// stuck until a restart even after space is freed. Opening the log again
// recovers it as a restart would (the rotation is already in its metadata),
// so StoreLogs does that when an append meets ErrSealed; while it cannot
// (still no space), each later append tries again.
type walLog struct {
	open func() (*wal.WAL, error)

	mu sync.RWMutex // held shared around calls to w, exclusively to swap it
	w  *wal.WAL     // nil after a failed reopen
}

var (
	_ logStore               = (*walLog)(nil)
	_ raft.MonotonicLogStore = (*walLog)(nil)
)

// IsMonotonic tells raft, as raft-wal does, that the log cannot hold gaps:
// after installing a snapshot raft then empties the log instead of
// appending past a gap.
func (l *walLog) IsMonotonic() bool { return true }

func newWALLog(open func() (*wal.WAL, error)) (*walLog, error) {
	w, err := open()
	if err != nil {
		return nil, err
	}
	return &walLog{open: open, w: w}, nil
}

// errLogClosed is returned while the log could not be opened again.
var errLogClosed = errors.New("raft log: not open (reopening it after a failed segment rotation failed; retrying at the next append)")

// with calls f with the open log.
func (l *walLog) with(f func(w *wal.WAL) error) error {
	l.mu.RLock()
	w := l.w
	if w != nil {
		defer l.mu.RUnlock()
		return f(w)
	}
	l.mu.RUnlock()
	if err := l.reopen(nil); err != nil {
		return err
	}
	return l.with(f)
}

// reopen closes old (if it is still the open log) and opens the log again.
func (l *walLog) reopen(old *wal.WAL) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != old {
		return nil // opened again meanwhile
	}
	if old != nil {
		l.w = nil
		if err := old.Close(); err != nil {
			return fmt.Errorf("raft log: close after a failed segment rotation: %w", err)
		}
	}
	w, err := l.open()
	if err != nil {
		return fmt.Errorf("%w: %w", errLogClosed, err)
	}
	l.w = w
	return nil
}

func (l *walLog) StoreLogs(logs []*raft.Log) error {
	var sealed *wal.WAL
	err := l.with(func(w *wal.WAL) error {
		err := w.StoreLogs(logs)
		if errors.Is(err, waltypes.ErrSealed) {
			sealed = w
		}
		return err
	})
	if sealed == nil {
		return err
	}
	if rerr := l.reopen(sealed); rerr != nil {
		return errors.Join(err, rerr)
	}
	return l.with(func(w *wal.WAL) error { return w.StoreLogs(logs) })
}

func (l *walLog) StoreLog(log *raft.Log) error { return l.StoreLogs([]*raft.Log{log}) }

func (l *walLog) FirstIndex() (index uint64, err error) {
	err = l.with(func(w *wal.WAL) error { index, err = w.FirstIndex(); return err })
	return index, err
}

func (l *walLog) LastIndex() (index uint64, err error) {
	err = l.with(func(w *wal.WAL) error { index, err = w.LastIndex(); return err })
	return index, err
}

func (l *walLog) GetLog(index uint64, log *raft.Log) error {
	return l.with(func(w *wal.WAL) error { return w.GetLog(index, log) })
}

func (l *walLog) DeleteRange(min, max uint64) error {
	return l.with(func(w *wal.WAL) error { return w.DeleteRange(min, max) })
}

func (l *walLog) Set(key, val []byte) error {
	return l.with(func(w *wal.WAL) error { return w.Set(key, val) })
}

func (l *walLog) Get(key []byte) (val []byte, err error) {
	err = l.with(func(w *wal.WAL) error { val, err = w.Get(key); return err })
	return val, err
}

func (l *walLog) SetUint64(key []byte, val uint64) error {
	return l.with(func(w *wal.WAL) error { return w.SetUint64(key, val) })
}

func (l *walLog) GetUint64(key []byte) (val uint64, err error) {
	err = l.with(func(w *wal.WAL) error { val, err = w.GetUint64(key); return err })
	return val, err
}

// Close closes the log; it is not opened again.
func (l *walLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.w
	l.w = nil
	l.open = func() (*wal.WAL, error) { return nil, errors.New("raft log: closed") }
	if w == nil {
		return nil
	}
	return w.Close()
}
