//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package fsutil

import "os"

// TryLock: without flock a lock file locks nothing; callers rely on their
// own second line (bbolt's lock on its database file, raft-wal's metadata
// database).
func TryLock(*os.File) (bool, error) { return true, nil }
