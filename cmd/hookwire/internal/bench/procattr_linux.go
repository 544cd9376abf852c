package bench

import "syscall"

// procAttr puts a benchmark process in its own process group and has the
// kernel kill it if the bench process dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
