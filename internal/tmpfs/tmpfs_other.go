//go:build !linux

package tmpfs

import "os"

func mount(string, int64) error { return ErrUnsupported }

func unmount(string) error { return ErrUnsupported }

func fill(*os.File) (int64, error) { return 0, ErrUnsupported }
