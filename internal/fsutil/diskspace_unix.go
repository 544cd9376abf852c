//go:build unix

package fsutil

import "golang.org/x/sys/unix"

// DiskSpace reports the bytes available to this process and the size of
// the file system holding dir; ok is false when it cannot tell.
func DiskSpace(dir string) (free, size uint64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), uint64(st.Blocks) * uint64(st.Bsize), true
}
