//go:build !linux

package bench

import "syscall"

// procAttr puts a benchmark process in its own process group. Only Linux
// can have the kernel kill it when the bench process dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
