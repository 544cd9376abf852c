package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchTransport is the transport the bench's subscriptions use; its
// plugin is the one the kill-plugin fault kills.
const benchTransport = "http"

// pluginMinAge is how long a plugin process must have run before the
// kill-plugin fault kills it: the fault is a crash in steady operation,
// not during the agent's start-up (the agent then refuses to start: it is
// restarted and counted as an agent exit).
const pluginMinAge = time.Second

// pluginPid returns the pid of the live process of transport plugin name
// whose parent is agentPid (the agent starts built-in transports as
// `hookwire plugin <name>`), found by walking parent ids in /proc.
func pluginPid(agentPid int, name string) (int, bool) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ps, ok := readStat(pid)
		if !ok || ps.ppid != agentPid {
			continue
		}
		// A killed plugin stays a zombie until the agent reaps it; a
		// zombie has an empty command line, so it is not matched.
		if args := readCmdline(pid); len(args) >= 3 && args[1] == "plugin" && args[2] == name {
			return pid, true
		}
	}
	return 0, false
}

// errAgentExited: the agent exited after its plugin was killed.
var errAgentExited = errors.New("the agent exited")

// killPlugin SIGKILLs the transport plugin name of the agent with pid
// agentPid, waiting at most within for the agent to have one running for
// pluginMinAge first (it may be starting or restarting it), then waits at
// most within again until the agent has started a new one. It returns how
// long that took, or a negative duration if no new plugin process
// appeared in time, or errAgentExited if agentExited was closed first.
func killPlugin(ctx context.Context, agentPid int, agentExited <-chan struct{}, name string, within time.Duration) (time.Duration, error) {
	pid, err := pollFor(ctx, within, func() (int, bool) {
		p, ok := pluginPid(agentPid, name)
		return p, ok && procAge(p) >= pluginMinAge
	})
	if err != nil {
		return 0, fmt.Errorf("no %s plugin process under agent pid %d within %s", name, agentPid, within)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("SIGKILL plugin %s (pid %d): %w", name, pid, err)
	}
	killed := time.Now()
	exited := func() bool {
		select {
		case <-agentExited:
			return true
		default:
			return false
		}
	}
	_, err = pollFor(ctx, within, func() (int, bool) {
		p, ok := pluginPid(agentPid, name)
		return p, (ok && p != pid) || exited()
	})
	if exited() {
		return 0, errAgentExited
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return -1, nil
	}
	return time.Since(killed), nil
}

// procAge is how long process pid has run (0 if unknown).
func procAge(pid int) time.Duration {
	ps, ok := readStat(pid)
	b, err := os.ReadFile("/proc/uptime")
	if !ok || err != nil {
		return 0
	}
	var up float64
	if _, err := fmt.Sscan(string(b), &up); err != nil {
		return 0
	}
	return time.Duration((up - float64(ps.start)/clockTicks) * float64(time.Second))
}

// reviveAgents restarts every agent that exited without the bench killing
// it, and returns why each one exited (its log's last line).
func (c *Cluster) reviveAgents() []string {
	var out []string
	for i, a := range c.agents {
		select {
		case <-a.Exited():
		default:
			continue
		}
		if a.killed.Load() {
			continue
		}
		out = append(out, fmt.Sprintf("agent %d exited: %s", i+1, exitReason(a.logTail())))
		if err := c.restartAgent(i, 0); err != nil {
			out = append(out, fmt.Sprintf("agent %d not restarted: %v", i+1, err))
		}
	}
	return out
}

// exitReason picks the line of a process's log tail that says why it
// exited: the last "Error: ..." line, else the last line.
func exitReason(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "Error: ") {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}

// pollFor checks cond every 10ms until it holds, within passes or ctx
// ends. /proc gives no notification of new processes, so polling is the
// way to observe one.
func pollFor[T any](ctx context.Context, within time.Duration, cond func() (T, bool)) (T, error) {
	deadline := time.Now().Add(within)
	for {
		if v, ok := cond(); ok {
			return v, nil
		}
		if time.Now().After(deadline) {
			var zero T
			return zero, context.DeadlineExceeded
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			var zero T
			return zero, err
		}
	}
}
