// Package tmpfs mounts small tmpfs file systems and fills them, so tests
// and the chaos bench can run the control plane on a disk that runs out of
// space. Mounting needs root (CAP_SYS_ADMIN) and Linux; the errors say so.
package tmpfs

import (
	"errors"
	"fmt"
	"os"
)

// ErrUnsupported is returned by Mount where tmpfs cannot be mounted.
var ErrUnsupported = errors.New("mounting a tmpfs needs Linux")

// Mount mounts a tmpfs of size bytes on dir, which must exist and should
// be empty. It needs root; the error says why it could not mount.
func Mount(dir string, size int64) error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("mounting a tmpfs needs root (running as uid %d)", uid)
	}
	return mount(dir, size)
}

// Unmount unmounts the tmpfs on dir, lazily if something still holds it
// open.
func Unmount(dir string) error { return unmount(dir) }

// Fill writes path until its file system has no space left, then gives
// back leave bytes (so the next writes of that size fill it), and returns
// the filler's size.
func Fill(path string, leave int64) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := fill(f)
	if err == nil && leave > 0 {
		n = max(n-leave, 0)
		err = f.Truncate(n)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("fill %s: %w", path, err)
	}
	return n, nil
}
