//go:build !linux

package store

// dropMapping does nothing where MADV_DONTNEED is not known to keep a
// shared file mapping's contents.
func dropMapping(addr uintptr, size int64) error { return nil }
