package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Proc is a hookwire process started by the bench (`server` or `agent`).
// It runs in its own process group, so its plugins can be killed with it,
// and gets SIGKILL if the bench itself dies (Pdeathsig).
type Proc struct {
	role    string
	cmd     *exec.Cmd
	done    chan struct{}
	killed  atomic.Bool
	logPath string
	logFile *os.File
	mon     *Monitor
}

func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited and been reaped.
func (p *Proc) Exited() <-chan struct{} { return p.done }

func startProc(exe, role, logPath string, env, args []string, mon *Monitor) (*Proc, io.ReadCloser, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = lf
	cmd.SysProcAttr = procAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		lf.Close()
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, nil, fmt.Errorf("start hookwire %s: %w", strings.Join(args, " "), err)
	}
	p := &Proc{role: role, cmd: cmd, done: make(chan struct{}), logPath: logPath, logFile: lf, mon: mon}
	if mon != nil {
		mon.add(p)
	}
	go func() {
		_ = cmd.Wait()
		if mon != nil {
			mon.exited(p, cmd.ProcessState, p.killed.Load())
		}
		lf.Close()
		close(p.done)
	}()
	return p, out, nil
}

// Kill sends SIGKILL to the process group (the process and its plugins)
// and waits for the process to be reaped.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.killed.Store(true)
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to stop (SIGTERM), waits up to grace, then kills
// the whole group. Leftover group members (plugins) are killed either way.
func (p *Proc) Stop(grace time.Duration) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-p.done:
			t.Stop()
		case <-t.C:
			p.Kill()
		}
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL) // stray plugins, if any
}

// logTail returns the end of the process's stderr, for error messages.
func (p *Proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

var addrLine = regexp.MustCompile(`^gRPC (\S+)  REST http://(\S+)$`)

// awaitAddrs reads the server's stdout until its address line and then
// discards the rest.
func awaitAddrs(ctx context.Context, p *Proc, out io.Reader, within time.Duration) (grpcAddr, httpAddr string, err error) {
	type res struct{ g, h string }
	found := make(chan res, 1)
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := addrLine.FindStringSubmatch(sc.Text()); m != nil {
				once.Do(func() { found <- res{m[1], m[2]} })
			}
		}
	}()
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case r := <-found:
		return r.g, r.h, nil
	case <-p.done:
		return "", "", fmt.Errorf("hookwire server exited before serving: %s", p.logTail())
	case <-t.C:
		return "", "", fmt.Errorf("hookwire server printed no address within %s: %s", within, p.logTail())
	case <-ctx.Done():
		return "", "", ctx.Err()
	}
}

var errRemote = errors.New("needs processes started by the bench; not available against --server")
