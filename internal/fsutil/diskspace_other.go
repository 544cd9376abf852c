//go:build !unix

package fsutil

// DiskSpace cannot tell on this system.
func DiskSpace(string) (free, size uint64, ok bool) { return 0, 0, false }
