//go:build !unix

package store

// diskSpace cannot tell on this system: no reserve is kept.
func diskSpace(string) (free, size uint64, ok bool) { return 0, 0, false }
