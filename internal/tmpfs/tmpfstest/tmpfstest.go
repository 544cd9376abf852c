// Package tmpfstest gives tests a small disk that can be filled: a tmpfs
// mounted for the test's lifetime.
package tmpfstest

import (
	"path/filepath"
	"testing"

	"github.com/hookwire/hookwire/internal/tmpfs"
)

// Mount mounts a tmpfs of size bytes on a fresh directory and unmounts it
// when the test ends (cleanups run last-registered first, so after the
// processes a test starts later on it are stopped). It skips the test,
// saying why, where it cannot mount (not root, not Linux).
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := tmpfs.Mount(dir, size); err != nil {
		t.Skipf("a full disk is simulated with a small tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := tmpfs.Unmount(dir); err != nil {
			t.Errorf("%v", err)
		}
	})
	return dir
}

// Fill fills dir's file system with a file named filler, leaving leave
// bytes free, and returns the filler's path (remove it to free the space).
func Fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	if _, err := tmpfs.Fill(path, leave); err != nil {
		t.Fatal(err)
	}
	return path
}
