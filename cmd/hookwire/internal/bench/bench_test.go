package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for a transport plugin: run as
// `<test binary> plugin http` with BENCH_FAKE_PLUGIN=1 it waits for its
// stdin to close (or to be killed).
func TestMain(m *testing.M) {
	if os.Getenv("BENCH_FAKE_PLUGIN") == "1" {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPayloadRoundTrip(t *testing.T) {
	for _, size := range []int{0, 40, 256, 4096} {
		p := makePayload(1764246000123456789, 42, size)
		if len(p) < size {
			t.Errorf("size %d: payload has %d bytes", size, len(p))
		}
		sent, seq, ok := parsePayload(p)
		if !ok || sent != 1764246000123456789 || seq != 42 {
			t.Errorf("size %d: parsed %d %d %v from %s", size, sent, seq, ok, p)
		}
	}
	if _, _, ok := parsePayload([]byte(`{"other":1}`)); ok {
		t.Error("parsed a foreign payload")
	}
}

func TestRESTPayload(t *testing.T) {
	for _, pad := range []int{0, 100} {
		p := restPayload(1764246000123456789, 12345, pad)
		want := `{"sent":1764246000123456789,"seq":12345,"pad":"` + strings.Repeat("x", pad) + `"}`
		if string(p) != want {
			t.Errorf("pad %d: %s", pad, p)
		}
		if !json.Valid(p) {
			t.Errorf("pad %d: not JSON", pad)
		}
		if sent, seq, ok := parsePayload(p); !ok || sent != 1764246000123456789 || seq != 12345 {
			t.Errorf("pad %d: parsed %d %d %v", pad, sent, seq, ok)
		}
	}
}

func TestRESTErrKind(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("REST publish: HTTP %d: %.200s", 503, `{"code":14}`): "publish HTTP 503",
		fmt.Errorf("post: %w", context.DeadlineExceeded):                "publish deadline exceeded",
		errors.New("connection refused"):                                "publish error",
	} {
		if got := restErrKind(err); got != want {
			t.Errorf("restErrKind(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestPercentiles(t *testing.T) {
	var xs []int64
	for i := 100; i >= 1; i-- {
		xs = append(xs, int64(i)*int64(time.Millisecond))
	}
	p := percentiles(xs)
	if p.N != 100 || p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 {
		t.Errorf("percentiles = %+v", p)
	}
	if (percentiles(nil) != Percentiles{}) {
		t.Error("empty input")
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 50,
	// cutime 30, cstime 20 ticks; start time 12345.
	line := "4870 (we (ird) name) S 4867 4867 32352 0 -1 4194304 95 0 0 0 250 50 30 20 20 0 1 0 12345 3133440 360 18446744073709551615"
	ps, ok := parseStat(4870, []byte(line))
	if !ok || ps.ppid != 4867 || ps.start != 12345 || ps.self != 3 || ps.reaped != 0.5 {
		t.Fatalf("parseStat = %+v %v", ps, ok)
	}
}

func TestSinkPathAndTally(t *testing.T) {
	if tag, sub := parseSinkPath("/s/e2e-ab-1/7"); tag != "e2e-ab-1" || sub != 7 {
		t.Errorf("parseSinkPath = %q %d", tag, sub)
	}
	if _, sub := parseSinkPath("/hook"); sub != -1 {
		t.Error("foreign path accepted")
	}
	s := &Sink{recs: map[uint64]rec{}}
	s.recs[recKey(0, 1)] = rec{id: hashID("dlv_a"), n: 2}
	s.recs[recKey(1, 1)] = rec{id: hashID("dlv_b"), n: 1}
	s.recs[recKey(0, 2)] = rec{id: hashID("dlv_c"), n: 1}
	s.recs[recKey(0, 9)] = rec{id: hashID("dlv_d"), n: 1, otherID: 0}
	acked := func(seq int64) bool { return seq <= 3 }
	s.recs[recKey(1, 2)] = rec{id: hashID("dlv_e"), n: 5, otherID: 3}
	got := s.tally(2, 3, acked)
	// Expected pairs: seqs 1..3 × subs 0,1 = 6; arrived: (0,1),(1,1),(0,2),(1,2).
	// The most one webhook-id arrived: dlv_a twice (dlv_e 5 times, but 3
	// of those carried other webhook-ids).
	if got.Expected != 6 || got.Lost != 2 || got.Duplicates != 5 || got.OtherIDs != 3 || got.Unexpected != 1 || got.Arrived != 10 || got.MaxPerID != 2 {
		t.Errorf("tally = %+v", got)
	}
}

func TestSinkLateness(t *testing.T) {
	const sec = int64(time.Second)
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	hits := map[string][]hit{
		// 500 answered at 10ms; retry at 1.25s: 40ms past the latest
		// jittered due time (10ms + 1.2s); then a reset and an early
		// retry (inside the jitter window: 0).
		"a": {{0, ms(10), fault500}, {ms(1250), ms(1251), faultReset}, {ms(1251) + ms(900), 0, faultNone}},
		// After a 429 the retry waits the throttling minimum: skipped.
		"b": {{0, 0, fault429}, {60 * sec, 60 * sec, faultNone}},
		// Stalled for 5s.
		"c": {{0, 0, fault500}, {ms(6200), ms(6200), faultNone}},
	}
	got, dues := sinkLateness(hits, nil, time.Second)
	l := lateness{samples: got, dues: dues}
	p := percentiles(slices.Clone(got))
	if p.N != 3 || p.Max != 5000 || p.P50 != 40 || len(dues) != 3 {
		t.Errorf("sinkLateness = %v (%+v) due %v", got, p, dues)
	}
	// "c" was due at 1s, "a" at 1.01s and 2.251s.
	phases := l.byPhase([]string{"early", "late"}, []int64{ms(1005)})
	if phases["early"].N != 1 || phases["early"].Max != 5000 || phases["late"].N != 2 {
		t.Errorf("byPhase = %+v", phases)
	}
	if got, _ := sinkLateness(hits, map[string]bool{"a": true}, time.Second); len(got) != 2 {
		t.Errorf("sinkLateness with keep = %v", got)
	}
}

func TestQuietProbeFaults(t *testing.T) {
	q := newQuietProbe()
	if _, ok := q.fault("x", 5); ok {
		t.Fatal("probe fault before the quiet period")
	}
	q.seq.Store(10)
	if _, ok := q.fault("x", 11); ok {
		t.Fatal("fault for another seq")
	}
	for i := range quietFails {
		if k, ok := q.fault("p", 10); !ok || k != fault500 {
			t.Fatalf("probe request %d: %v %v", i+1, k, ok)
		}
	}
	if q.arrived() != 0 {
		t.Error("arrived before the probe was accepted")
	}
	if k, ok := q.fault("p", 10); !ok || k != faultNone || q.arrived() != 1 {
		t.Errorf("after %d failures: %v %v (arrived %d), want accepted", quietFails, k, ok, q.arrived())
	}
}

func TestExitReason(t *testing.T) {
	log := "time=... level=ERROR msg=\"plugin process exited\"\nError: start transport plugins: launch: boom\nFailed to read any lines\n  Path: /x\n"
	if got := exitReason(log); got != "Error: start transport plugins: launch: boom" {
		t.Errorf("exitReason = %q", got)
	}
	if got := exitReason("a\nlast line\n"); got != "last line" {
		t.Errorf("exitReason without Error: %q", got)
	}
}

func TestChaosTmpfsSize(t *testing.T) {
	cfg := Defaults()
	// The store, the raft log and a snapshot each hold the run's writes:
	// the default run took 79 MiB before the disk phase.
	if got := chaosTmpfsSize(cfg, 60*time.Second); got < 150<<20 || got > 250<<20 || got%(1<<20) != 0 {
		t.Errorf("default run: %d MiB, want 150 to 250, whole MiB", got>>20)
	}
	if got := chaosTmpfsSize(cfg, 10*time.Minute); got < 250<<20 || got%(1<<20) != 0 {
		t.Errorf("10 minute soak: %d bytes, want whole MiB and room for the store", got)
	}
}

// TestKillPlugin kills a stand-in plugin process (this test binary run as
// `plugin http`) found under this process, and sees a new one started.
func TestKillPlugin(t *testing.T) {
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "plugin", "http")
		cmd.Env = append(os.Environ(), "BENCH_FAKE_PLUGIN=1")
		if _, err := cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	first := start()
	restarted := make(chan *exec.Cmd, 1)
	go func() { // the "agent": start another once the first has died
		_ = first.Wait()
		restarted <- start()
	}()
	ctx := context.Background()
	back, err := killPlugin(ctx, os.Getpid(), nil, "http", 5*time.Second)
	if err != nil || back < 0 {
		t.Fatalf("killPlugin = %v, %v", back, err)
	}
	second := <-restarted // after first.Wait
	if ws, ok := first.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Errorf("first plugin ended with %v", first.ProcessState)
	}
	if pid, ok := pluginPid(os.Getpid(), "http"); !ok || pid != second.Process.Pid {
		t.Errorf("pluginPid = %d %v, want %d", pid, ok, second.Process.Pid)
	}
	if _, err := killPlugin(ctx, os.Getpid(), nil, "nats", 50*time.Millisecond); err == nil {
		t.Error("killed a plugin that does not run")
	}
}

// TestTmpfsFillAndFree mounts a small tmpfs (root only), fills it, frees
// it and unmounts it.
func TestTmpfsFillAndFree(t *testing.T) {
	dir := t.TempDir()
	fs, err := mountTmpfs(dir, 4<<20)
	if err != nil {
		t.Skip(err)
	}
	defer func() {
		if err := fs.unmount(false); err != nil {
			t.Error(err)
		}
	}()
	n, err := fs.fill()
	if err != nil || n < 3<<20 || n > 4<<20 {
		t.Fatalf("fill = %d, %v", n, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), make([]byte, 8192), 0o600); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write on the full tmpfs: %v, want ENOSPC", err)
	}
	if err := fs.free(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), make([]byte, 8192), 0o600); err != nil {
		t.Errorf("write after free: %v", err)
	}
}

func TestSeqs(t *testing.T) {
	s := newSeqs(true)
	first := s.take(3)
	if first != 1 || s.max() != 3 {
		t.Fatalf("take = %d, max = %d", first, s.max())
	}
	s.ack(2, "evt_2")
	s.ack(2, "evt_2")
	if !s.acked(2) || s.acked(1) || s.acked(1000) || s.count() != 1 || s.eventID(2) != "evt_2" {
		t.Error("ack bookkeeping")
	}
}

func TestExpand(t *testing.T) {
	got, err := expand([]string{"latency", "all"})
	if err != nil || len(got) != len(Scenarios) || got[0] != "latency" {
		t.Errorf("expand = %v, %v", got, err)
	}
	if _, err := expand([]string{"nope"}); err == nil {
		t.Error("unknown scenario accepted")
	}
}

func TestRoundKeepsCounts(t *testing.T) {
	if got := round(23933); got != 23933 {
		t.Errorf("round(23933) = %v", got)
	}
	if got := round(0.123456); got != 0.1235 {
		t.Errorf("round(0.123456) = %v", got)
	}
}

func TestAckLogFirstAfter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var l ackLog
	if _, ok := l.firstAfter(t0); ok {
		t.Fatal("an answer in an empty log")
	}
	l.add(at(-50), at(10))  // sent before the kill, answered after: proves nothing
	l.add(at(700), at(900)) // sent after, answered late
	l.add(at(800), at(820)) // sent later, answered first
	l.add(at(-10), at(-5))  // before the kill altogether
	got, ok := l.firstAfter(t0)
	if !ok || !got.Equal(at(820)) {
		t.Errorf("firstAfter = %v %v, want %v", got, ok, at(820))
	}
	if _, ok := l.firstAfter(at(801)); ok {
		t.Error("an answer to an attempt sent before the time asked")
	}
}
