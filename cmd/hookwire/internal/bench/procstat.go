package bench

import (
	"bytes"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat. Linux
// fixes it at 100 for user space on every architecture Go supports.
const clockTicks = 100

// procStat is what one read of /proc/PID/stat and /proc/PID/status gives.
type procStat struct {
	pid, ppid int
	start     uint64  // start time in ticks since boot: with pid, names a process
	self      float64 // utime+stime, seconds
	reaped    float64 // cutime+cstime: children this process has waited for
	rss, hwm  int64   // VmRSS, VmHWM in bytes
	anon      int64   // RssAnon in bytes: RSS less file-backed pages (bbolt's mmap)
}

// readStat parses /proc/PID/stat. The command name may hold spaces and
// parentheses, so fields are counted from the last ')'.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	return parseStat(pid, b)
}

func parseStat(pid int, b []byte) (procStat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 {
		return procStat{}, false
	}
	num := func(n int) uint64 { v, _ := strconv.ParseUint(f[n-3], 10, 64); return v }
	ppid, _ := strconv.Atoi(f[4-3])
	return procStat{
		pid:    pid,
		ppid:   ppid,
		start:  num(22),
		self:   float64(num(14)+num(15)) / clockTicks,
		reaped: float64(num(16)+num(17)) / clockTicks,
	}, true
}

// readMem fills VmRSS and VmHWM from /proc/PID/status.
func readMem(ps *procStat) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(ps.pid) + "/status")
	if err != nil {
		return
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM" && k != "RssAnon") {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			ps.rss = kb << 10
		case "VmHWM":
			ps.hwm = kb << 10
		default:
			ps.anon = kb << 10
		}
	}
}

func readCmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// pidKey names one process: pids are reused, start times are not.
type pidKey struct {
	pid   int
	start uint64
}

// tracked is the accounting of one process ever seen under a root.
type tracked struct {
	role     string
	pid      int
	cpu      float64 // self+reaped at the last look, seconds
	rss, hwm int64
	anon     int64
	peakAnon int64
	gone     bool
}

// Monitor accounts CPU time and memory of the processes it is given and of
// all their descendants (transport plugins), found by walking parent ids in
// /proc (this kernel has no /proc/PID/task/TID/children). It samples every
// interval so that processes that die keep their last figures.
//
// CPU of a live process is utime+stime plus cutime+cstime (children it has
// waited for), so a plugin reaped by its agent moves from its own entry to
// its parent's without being lost or counted twice. A root that exits is
// accounted from its wait4 rusage; its descendants keep their last sample
// if the root was killed (nobody reaps them into it) and are folded into
// the root's rusage if it exited normally (it reaped them).
type Monitor struct {
	mu    sync.Mutex
	procs map[pidKey]*tracked
	roots map[*Proc]pidKey
	stop  chan struct{}
	done  chan struct{}
}

func newMonitor(every time.Duration) *Monitor {
	m := &Monitor{procs: map[pidKey]*tracked{}, roots: map[*Proc]pidKey{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.Sample()
			}
		}
	}()
	return m
}

func (m *Monitor) close() {
	close(m.stop)
	<-m.done
}

// add starts accounting p (just started).
func (m *Monitor) add(p *Proc) {
	ps, ok := readStat(p.Pid())
	if !ok {
		return
	}
	k := pidKey{ps.pid, ps.start}
	m.mu.Lock()
	m.roots[p] = k
	m.procs[k] = &tracked{role: p.role, pid: ps.pid}
	m.mu.Unlock()
	m.Sample()
}

// exited records the end of root p with its rusage.
func (m *Monitor) exited(p *Proc, st *os.ProcessState, killed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.roots[p]
	if !ok {
		return
	}
	delete(m.roots, p)
	t := m.procs[k]
	t.gone = true
	// ru_maxrss is not used: after fork+exec it can hold the parent's
	// (the bench's) high-water mark. Peak RSS comes from VmHWM samples.
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok && ru != nil {
		t.cpu = tv(ru.Utime) + tv(ru.Stime)
	}
	for _, d := range m.procs {
		if d != t && !d.gone && strings.HasPrefix(d.role, p.role+"/") {
			d.gone = true
			if !killed {
				d.cpu = 0 // reaped by the root: inside its rusage now
			}
		}
	}
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// Sample reads every live root and its descendants now.
func (m *Monitor) Sample() {
	m.mu.Lock()
	if len(m.roots) == 0 {
		m.mu.Unlock()
		return
	}
	roots := make(map[int]*Proc, len(m.roots))
	for p, k := range m.roots {
		roots[k.pid] = p
	}
	m.mu.Unlock()

	all := map[int]procStat{}
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ps, ok := readStat(pid)
		if !ok {
			continue
		}
		all[pid] = ps
		children[ps.ppid] = append(children[ps.ppid], pid)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for rootPid, p := range roots {
		rk, ok := m.roots[p]
		if !ok {
			continue // exited meanwhile
		}
		var walk func(pid int, role string)
		walk = func(pid int, role string) {
			ps, ok := all[pid]
			if !ok {
				return
			}
			k := pidKey{pid, ps.start}
			if pid == rootPid && k != rk {
				return // pid reused
			}
			t := m.procs[k]
			if t == nil {
				t = &tracked{role: role, pid: pid}
				m.procs[k] = t
			}
			if t.gone {
				return
			}
			readMem(&ps)
			t.cpu = ps.self + ps.reaped
			t.rss = ps.rss
			t.hwm = max(t.hwm, ps.hwm)
			t.anon = ps.anon
			t.peakAnon = max(t.peakAnon, ps.anon)
			for _, c := range children[pid] {
				walk(c, p.role+"/"+childRole(c))
			}
		}
		walk(rootPid, p.role)
	}
}

func childRole(pid int) string {
	args := readCmdline(pid)
	if len(args) >= 3 && args[1] == "plugin" {
		return "plugin-" + args[2]
	}
	if len(args) > 0 {
		return "child-" + args[0]
	}
	return "child"
}

// CPUSnapshot is the CPU seconds of every process seen so far.
type CPUSnapshot map[pidKey]float64

// Snapshot samples now and returns every process's CPU seconds.
func (m *Monitor) Snapshot() CPUSnapshot {
	m.Sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := CPUSnapshot{}
	for k, t := range m.procs {
		s[k] = t.cpu
	}
	return s
}

// ProcessReport is one process's figures over a window.
type ProcessReport struct {
	Role       string  `json:"role"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSS    int64   `json:"peak_rss_bytes"`
	RSS        int64   `json:"rss_bytes,omitempty"`
	PeakAnon   int64   `json:"peak_anon_rss_bytes,omitempty"` // sampled every 250ms
	Exited     bool    `json:"exited,omitempty"`
}

// Report returns per-process CPU used between two snapshots and the peak
// RSS (VmHWM) of each, ordered by role.
func (m *Monitor) Report(from, to CPUSnapshot) []ProcessReport {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ProcessReport
	for k, t := range m.procs {
		c, ok := to[k]
		if !ok {
			continue
		}
		out = append(out, ProcessReport{Role: t.role, PID: t.pid, CPUSeconds: c - from[k], PeakRSS: t.hwm, RSS: t.rss, PeakAnon: t.peakAnon, Exited: t.gone})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Role != out[j].Role {
			return out[i].Role < out[j].Role
		}
		return out[i].PID < out[j].PID
	})
	return out
}

// cpuDelta sums CPU between two snapshots over processes whose role starts
// with prefix ("" for all).
func (m *Monitor) cpuDelta(from, to CPUSnapshot, prefix string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sum float64
	for k, c := range to {
		if t := m.procs[k]; t != nil && strings.HasPrefix(t.role, prefix) {
			sum += c - from[k]
		}
	}
	return sum
}

// memInfo is a process's memory: RSS and its peak (VmHWM), and the
// anonymous part of RSS (without file pages such as bbolt's mmap, which
// the kernel can drop) and its peak as sampled.
type memInfo struct{ rss, hwm, anon, peakAnon int64 }

// mem returns root p's memory (zero if unknown).
func (m *Monitor) mem(p *Proc) memInfo {
	m.Sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.roots[p]; ok {
		t := m.procs[k]
		return memInfo{t.rss, t.hwm, t.anon, t.peakAnon}
	}
	return memInfo{}
}
