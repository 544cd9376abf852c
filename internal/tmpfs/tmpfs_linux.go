package tmpfs

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func mount(dir string, size int64) error {
	opts := fmt.Sprintf("size=%d,mode=0700", size)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount -t tmpfs -o %s tmpfs %s: %w", opts, dir, err)
	}
	return nil
}

func unmount(dir string) error {
	err := syscall.Unmount(dir, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// fill writes big chunks, then pages, until ENOSPC.
func fill(f *os.File) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for _, chunk := range []int{1 << 20, 4 << 10} {
		for {
			w, err := f.Write(buf[:chunk])
			n += int64(w)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}
