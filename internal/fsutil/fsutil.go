// Package fsutil holds the file-system steps the control plane's durable
// state relies on: making a directory entry durable and taking a
// directory's lock file without waiting.
package fsutil

import (
	"os"
	"runtime"
)

// SyncDir makes dir's entries (a file just created or renamed in it)
// durable. Platforms that cannot sync a directory (Windows) make the entry
// durable with the file itself: there it does nothing.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
