package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/internal/fsutil"
)

// The data directory's marker and lock.
//
// bbolt turns a missing or empty file into a brand-new database, so a
// store file lost to an operator's mistake or a bad restore would come
// back as an empty store with a new admin key and every tenant gone. The
// marker file, written when the store is created (and for older data
// directories on their first open), records the store's id; the same id is
// kept in the meta bucket. Open refuses a missing or empty database file
// in a directory with a marker, unless Options.AllowNewStore says to start
// a new store (the marker is then rewritten with the new id).
//
// The lock file is held (flock) from Open to Close. bbolt locks the
// database file itself too, but the store closes and reopens that file
// after a failed commit (writable.go); the directory lock keeps a second
// process from taking the file in between.

// MarkerFileName is the marker inside the data directory.
const MarkerFileName = "hookwire.store-id"

// lockFileName is the lock inside the data directory.
const lockFileName = "hookwire.lock"

// ErrMissingStore means the data directory held a store whose database
// file is now missing or empty.
var ErrMissingStore = errors.New("the store's database file is missing or empty")

// storeIDPrefix is the type prefix of store ids.
const storeIDPrefix = "sto"

func newStoreID() string { return ids.Format(storeIDPrefix, ids.New(time.Now())) }

// marker is the content of the marker file.
type marker struct {
	StoreID string    `json:"store_id"`
	Created time.Time `json:"created"`
	// Note tells a reader what the file is for.
	Note string `json:"note,omitempty"`
	// damaged is set when the file exists but could not be read.
	damaged error
}

const markerNote = "Written by hookwire: this data directory holds the store above. Keep this file with hookwire.db; hookwire refuses to start with a missing or empty hookwire.db while it is here (see hookwire server --allow-new-store)."

// readMarker reads dir's marker; nil when there is none.
func readMarker(dir string) (*marker, error) {
	path := filepath.Join(dir, MarkerFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the data directory's marker %s: %w", path, err)
	}
	m := &marker{}
	if err := json.Unmarshal(data, m); err != nil || m.StoreID == "" {
		if err == nil {
			err = errors.New("no store_id")
		}
		m.damaged = err
	}
	return m, nil
}

// checkPresence decides what to do with the database file: open it
// (fresh false), create a new store (fresh true), or refuse.
func (s *Store) checkPresence(m *marker) (fresh bool, err error) {
	info, err := os.Stat(s.path)
	var what string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		what = "is missing"
	case err != nil:
		return false, fmt.Errorf("open store %s: %w", s.path, err)
	case !info.Mode().IsRegular():
		return false, fmt.Errorf("open store %s: not a regular file (%s)", s.path, info.Mode().Type())
	case info.Size() == 0:
		what = "is empty (0 bytes)"
	default:
		return false, nil
	}
	if m == nil {
		return true, nil // a new data directory
	}
	held := "a store"
	if m.damaged == nil {
		held = fmt.Sprintf("store %s (created %s)", m.StoreID, m.Created.UTC().Format(time.RFC3339))
	}
	if s.opts.AllowNewStore {
		s.log.Warn("the data directory held a store whose database file "+what+"; creating a new, empty store as --allow-new-store asks", "data_dir", s.dir, "old_store", m.StoreID)
		return true, nil
	}
	return false, fmt.Errorf("%w: data directory %s held %s, but %s %s (marker file %s); restore it from a backup, or start with --allow-new-store to create a new, empty store in its place (the old store's tenants, subscriptions and pending deliveries are then gone)",
		ErrMissingStore, s.dir, held, s.path, what, filepath.Join(s.dir, MarkerFileName))
}

// syncMarker makes the marker name the open store.
func (s *Store) syncMarker(m *marker, fresh bool) error {
	switch {
	case m == nil:
	case m.damaged != nil:
		s.log.Warn("the data directory's marker file could not be read; rewriting it", "file", filepath.Join(s.dir, MarkerFileName), "err", m.damaged)
	case m.StoreID == s.storeID:
		return nil
	case !fresh:
		// The database file came from another store (a restore from
		// another directory): it is what will be served now.
		s.log.Warn("the database file belongs to another store than the data directory's marker names; rewriting the marker", "file", s.path, "store", s.storeID, "marker_store", m.StoreID)
	}
	return writeMarker(s.dir, &marker{StoreID: s.storeID, Created: time.Now().UTC(), Note: markerNote})
}

// writeMarker replaces dir's marker durably (temporary file, fsync,
// rename, fsync of the directory).
func writeMarker(dir string, m *marker) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the data directory's marker: %w", err)
	}
	path := filepath.Join(dir, MarkerFileName)
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, append(data, '\n')); err != nil {
		return fmt.Errorf("write the data directory's marker: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write the data directory's marker: %w", err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return fmt.Errorf("write the data directory's marker: %w", err)
	}
	return nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dirLock is the data directory's lock file, held open and locked.
type dirLock struct {
	f *os.File
}

// lockDir takes the data directory's lock, waiting up to timeout.
func lockDir(dir string, timeout time.Duration) (*dirLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the data directory's lock %s: %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		ok, err := fsutil.TryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock the data directory %s: %w", dir, err)
		}
		if ok {
			return &dirLock{f: f}, nil
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w: %s is locked by another hookwire process; stop it or choose another --data-dir", ErrInUse, dir)
		}
		time.Sleep(50 * time.Millisecond) // polling a lock held by another process
	}
}

// release unlocks and closes the lock file.
func (l *dirLock) release() {
	if l != nil && l.f != nil {
		_ = l.f.Close() // closing the descriptor drops the flock
		l.f = nil
	}
}
