package pluginhost_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/agent/pluginhost"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	httptransport "github.com/hookwire/hookwire/plugins/http"
	"github.com/hookwire/hookwire/plugins/sdk"
)

// helperArg makes the test binary act as a transport plugin (go-plugin's
// helperProcess pattern): `<test binary> helperArg <name>` serves a
// fakePlugin called <name> (or, for "builtin-http", the real http transport
// allowed to reach loopback servers over plain http) and exits. Run through
// a link named hookwire-transport-<name> (as a discovered plugin is), with
// no arguments, it serves a fakePlugin called <name>.
const helperArg = "hookwire-pluginhost-test-plugin"

// exitAfterEnv makes a helper plugin process exit on its own this long
// after it starts (a plugin in a crash loop).
const exitAfterEnv = "HOOKWIRE_PLUGINHOST_TEST_EXIT_AFTER"

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == helperArg {
		if d, err := time.ParseDuration(os.Getenv(exitAfterEnv)); err == nil {
			time.AfterFunc(d, func() { os.Exit(3) })
		}
		if os.Args[2] == "builtin-http" {
			sdk.Serve(httptransport.New(httptransport.WithPolicy(httptransport.DevPolicy())))
		} else {
			sdk.Serve(&fakePlugin{name: os.Args[2]})
		}
		os.Exit(0)
	}
	if name, ok := strings.CutPrefix(filepath.Base(os.Args[0]), pluginhost.PluginPrefix); ok && len(os.Args) == 1 {
		sdk.Serve(&fakePlugin{name: name})
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// fakePlugin runs inside the plugin process. Its behaviour is chosen by the
// request's event type.
type fakePlugin struct {
	name    string
	blocked atomic.Int64
}

func (f *fakePlugin) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: f.name, Version: "0.0.1-test", APIVersions: []uint32{sdk.APIVersion}}, nil
}

func (f *fakePlugin) Validate(_ context.Context, cfg *structpb.Struct) ([]string, error) {
	if _, ok := cfg.GetFields()["target"]; !ok {
		return []string{"target is required"}, nil
	}
	return nil, nil
}

func (f *fakePlugin) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	switch req.GetEventType() {
	case "block": // hold the delivery until its deadline
		f.blocked.Add(1)
		defer f.blocked.Add(-1)
		<-ctx.Done()
		return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_TIMEOUT}
	case "stderr": // say something on stderr, which the host relays to its log
		fmt.Fprintln(os.Stderr, "fake plugin says", req.GetDeliveryId())
		return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS}
	case "blocked": // how many deliveries are being held
		return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS, StatusCode: int32(f.blocked.Load())}
	case "env": // the plugin process's value of the variable named by the delivery id
		return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS, ResponseBody: []byte(os.Getenv(req.GetDeliveryId()))}
	default: // echo, with the serving process's id
		return &transportv1.DeliveryResult{
			Outcome:         transportv1.Outcome_OUTCOME_SUCCESS,
			StatusCode:      200,
			ResponseBody:    []byte(req.GetDeliveryId()),
			ResponseHeaders: map[string]string{"pid": strconv.Itoa(os.Getpid())},
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// benchSpec runs the fake transport, or the built-in http one for "http".
func benchSpec(tb testing.TB, name string) pluginhost.Spec {
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	arg := name
	if name == "http" {
		arg = "builtin-http"
	}
	return pluginhost.Spec{Name: name, Command: []string{exe, helperArg, arg}}
}

func spec(t *testing.T, name, describesAs string) pluginhost.Spec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return pluginhost.Spec{Name: name, Command: []string{exe, helperArg, describesAs}}
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newHost(t *testing.T, opts ...pluginhost.Option) (*pluginhost.Host, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	h := pluginhost.New(slog.New(slog.NewTextHandler(logs, nil)), opts...)
	t.Cleanup(h.Close)
	return h, logs
}

func echo(t *testing.T, tr sdk.Transport, id string) (*transportv1.DeliveryResult, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := tr.Deliver(ctx, &transportv1.DeliveryRequest{DeliveryId: id, EventType: "echo"})
	pid, _ := strconv.Atoi(res.GetResponseHeaders()["pid"])
	return res, pid
}

func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestStartDeliverClose(t *testing.T) {
	h, logs := newHost(t)
	if err := h.Start(context.Background(), []pluginhost.Spec{spec(t, "fake", "fake"), spec(t, "other", "other")}); err != nil {
		t.Fatalf("start: %v", err)
	}

	infos := h.Infos()
	if len(infos) != 2 || infos[0].Name != "fake" || infos[1].Name != "other" || infos[0].Version != "0.0.1-test" {
		t.Errorf("infos = %+v", infos)
	}
	tr, ok := h.Transport("fake")
	if !ok {
		t.Fatal(`Transport("fake") not found`)
	}
	if _, ok := h.Transport("missing"); ok {
		t.Error(`Transport("missing") found`)
	}

	res, pid := echo(t, tr, "msg_1")
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS || string(res.GetResponseBody()) != "msg_1" || pid == 0 || pid == os.Getpid() {
		t.Fatalf("delivery = %v %q pid %d, want SUCCESS echoed by the plugin process", res.GetOutcome(), res.GetError(), pid)
	}
	problems, err := tr.Validate(context.Background(), &structpb.Struct{})
	if err != nil || len(problems) != 1 || problems[0] != "target is required" {
		t.Errorf("validate = %q, %v", problems, err)
	}

	// The plugin's stderr reaches the agent's log.
	tr.Deliver(context.Background(), &transportv1.DeliveryRequest{DeliveryId: "hello-42", EventType: "stderr"})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "fake plugin says hello-42"); {
		if time.Now().After(deadline) {
			t.Fatalf("plugin stderr not relayed to the log within 10s; logs:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Many concurrent deliveries through one plugin.
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			id := fmt.Sprint("c", i)
			if res, _ := echo(t, tr, id); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS || string(res.GetResponseBody()) != id {
				t.Errorf("concurrent delivery %s = %v %q", id, res.GetOutcome(), res.GetError())
			}
		})
	}
	wg.Wait()

	h.Close()
	if !processGone(pid) {
		t.Errorf("plugin process %d still exists after Close", pid)
	}
	if res, _ := echo(t, tr, "late"); res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR {
		t.Errorf("delivery after Close = %v, want CONNECTION_ERROR", res.GetOutcome())
	}
	if err := h.Start(context.Background(), []pluginhost.Spec{spec(t, "third", "third")}); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestChecksumPin(t *testing.T) {
	s := spec(t, "fake", "fake")
	bin, err := os.ReadFile(s.Command[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)

	t.Run("match", func(t *testing.T) {
		h, _ := newHost(t)
		pinned := s
		pinned.SHA256 = hex.EncodeToString(sum[:])
		if err := h.Start(context.Background(), []pluginhost.Spec{pinned}); err != nil {
			t.Fatalf("start with the right pin: %v", err)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		h, _ := newHost(t)
		pinned := s
		pinned.SHA256 = strings.Repeat("ab", sha256.Size)
		err := h.Start(context.Background(), []pluginhost.Spec{pinned})
		if err == nil || !strings.Contains(err.Error(), "does not match the pinned sha256") || !strings.Contains(err.Error(), `"fake"`) {
			t.Fatalf("start with a wrong pin = %v, want a refusal naming the plugin", err)
		}
		if _, ok := h.Transport("fake"); ok {
			t.Error("a refused plugin is registered")
		}
	})
	t.Run("malformed", func(t *testing.T) {
		h, _ := newHost(t)
		pinned := s
		pinned.SHA256 = "not-hex"
		if err := h.Start(context.Background(), []pluginhost.Spec{pinned}); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
			t.Fatalf("start with a malformed pin = %v", err)
		}
	})
}

func TestStartRefusals(t *testing.T) {
	good := spec(t, "fake", "fake")
	tests := []struct {
		name  string
		specs []pluginhost.Spec
		want  string
	}{
		{"name mismatch", []pluginhost.Spec{good, spec(t, "http", "not-http")}, `describes itself as transport "not-http", but it is configured as "http"`},
		{"missing binary", []pluginhost.Spec{{Name: "x", Command: []string{"/nonexistent/hookwire-plugin"}}}, "/nonexistent/hookwire-plugin"},
		{"not a plugin", []pluginhost.Spec{{Name: "x", Command: []string{"/bin/true"}}}, `"x"`},
		{"no command", []pluginhost.Spec{{Name: "x"}}, "no command"},
		{"no name", []pluginhost.Spec{{Command: []string{"/bin/true"}}}, "no name"},
		{"duplicate", []pluginhost.Spec{good, good}, "configured twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHost(t, pluginhost.WithStartTimeout(10*time.Second))
			err := h.Start(context.Background(), tt.specs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("start = %v, want an error containing %q", err, tt.want)
			}
			if infos := h.Infos(); len(infos) != 0 {
				t.Errorf("after a failed start, infos = %+v, want none", infos)
			}
		})
	}
}

// blockDeliveries starts n deliveries that the plugin holds, waits until the
// plugin reports holding all of them, and returns their results' channel.
func blockDeliveries(t *testing.T, tr sdk.Transport, n int) <-chan *transportv1.DeliveryResult {
	t.Helper()
	results := make(chan *transportv1.DeliveryResult, n)
	for i := range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			results <- tr.Deliver(ctx, &transportv1.DeliveryRequest{DeliveryId: fmt.Sprint("b", i), EventType: "block"})
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res := tr.Deliver(context.Background(), &transportv1.DeliveryRequest{EventType: "blocked"})
		if int(res.GetStatusCode()) == n {
			return results
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin holds %d deliveries after 20s, want %d", res.GetStatusCode(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCrashFailsPendingAndRestarts(t *testing.T) {
	h, logs := newHost(t, pluginhost.WithRestartBackoff(50*time.Millisecond, time.Second))
	if err := h.Start(context.Background(), []pluginhost.Spec{spec(t, "fake", "fake")}); err != nil {
		t.Fatalf("start: %v", err)
	}
	tr, _ := h.Transport("fake")
	_, pid := echo(t, tr, "before")

	const n = 25
	results := blockDeliveries(t, tr, n)
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill plugin %d: %v", pid, err)
	}
	for range n {
		res := <-results
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR || !strings.Contains(res.GetError(), "exited or crashed") {
			t.Fatalf("in-flight delivery = %v %q, want CONNECTION_ERROR saying the plugin exited or crashed", res.GetOutcome(), res.GetError())
		}
	}
	if d := time.Since(killed); d > 10*time.Second {
		t.Errorf("in-flight deliveries took %v to fail after the crash", d)
	}

	// Until the restart, deliveries fail fast and retryably; afterwards they
	// succeed on a new process.
	deadline := time.Now().Add(30 * time.Second)
	for {
		start := time.Now()
		res, newPID := echo(t, tr, "after")
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("delivery during restart took %v, want an immediate answer", took)
		}
		if res.GetOutcome() == transportv1.Outcome_OUTCOME_SUCCESS {
			if newPID == pid || string(res.GetResponseBody()) != "after" {
				t.Fatalf("delivery after restart = pid %d body %q, want a new process (old %d)", newPID, res.GetResponseBody(), pid)
			}
			break
		}
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR {
			t.Fatalf("delivery during restart = %v %q, want CONNECTION_ERROR", res.GetOutcome(), res.GetError())
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin not restarted after 30s; last result %q\nlogs:\n%s", res.GetError(), logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "transport plugin exited unexpectedly; restarting") {
		t.Errorf("crash not logged at warn level; logs:\n%s", logs)
	}
	if infos := h.Infos(); len(infos) != 1 || infos[0].Name != "fake" {
		t.Errorf("infos after restart = %+v", infos)
	}
}

// linkedSpec runs the fake plugin through a symlink in a temporary
// directory, so that a test can remove the link to make restarts fail.
func linkedSpec(t *testing.T, name string) (pluginhost.Spec, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "plugin-"+name)
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	return pluginhost.Spec{Name: name, Command: []string{link, helperArg, name}}, link
}

func TestDeliveriesWhileDownFailImmediately(t *testing.T) {
	// The plugin's binary disappears, so every restart fails; the retry
	// delay is far longer than the test: the plugin stays down.
	h, _ := newHost(t, pluginhost.WithRestartBackoff(time.Hour, time.Hour))
	s, link := linkedSpec(t, "fake")
	if err := h.Start(context.Background(), []pluginhost.Spec{s}); err != nil {
		t.Fatalf("start: %v", err)
	}
	tr, _ := h.Transport("fake")
	_, pid := echo(t, tr, "before")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill plugin %d: %v", pid, err)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		start := time.Now()
		res, _ := echo(t, tr, "down")
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("delivery to a dead plugin took %v, want an immediate answer", took)
		}
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR {
			t.Fatalf("delivery to a dead plugin = %v %q, want CONNECTION_ERROR", res.GetOutcome(), res.GetError())
		}
		if strings.Contains(res.GetError(), `transport plugin "fake" is not running: restarting it failed`) {
			break // the supervisor has tried to restart it
		}
		if time.Now().After(deadline) {
			t.Fatalf("the host did not report the failed restart within 20s; last error %q", res.GetError())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := tr.Validate(context.Background(), &structpb.Struct{}); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("validate while down = %v, want an error saying the plugin is not running", err)
	}
	if info, err := tr.Describe(context.Background()); err != nil || info.Name != "fake" {
		t.Errorf("describe while down = %+v, %v, want the last known info", info, err)
	}
	// A caller that can tell "not attempted" from "failed" gets no result.
	checked, ok := tr.(interface {
		DeliverIfRunning(context.Context, *transportv1.DeliveryRequest) (*transportv1.DeliveryResult, string)
	})
	if !ok {
		t.Fatalf("%T has no DeliverIfRunning", tr)
	}
	if res, why := checked.DeliverIfRunning(context.Background(), &transportv1.DeliveryRequest{DeliveryId: "x"}); res != nil || !strings.Contains(why, `transport plugin "fake" is not running`) {
		t.Errorf("DeliverIfRunning while down = %v, %q; want no result and the reason", res, why)
	}
	if down, _ := h.Unavailable(); !strings.Contains(down["fake"], "restarting it failed") {
		t.Errorf("Unavailable while down = %q, want fake with the failed restart", down)
	}

	closed := make(chan struct{})
	go func() {
		h.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not interrupt the restart backoff")
	}
}

// awaitChange waits for an Unavailable channel to close.
func awaitChange(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("no availability change within 20s: %s", what)
	}
}

// killAndAwaitBack kills the plugin process pid and follows the transport
// until a new process answers: meanwhile Unavailable names the plugin and
// DeliverIfRunning returns no result (the request never reaches a dead
// process). It returns the new pid.
func killAndAwaitBack(t *testing.T, h *pluginhost.Host, tr sdk.Transport, pid int) int {
	t.Helper()
	checked, ok := tr.(interface {
		DeliverIfRunning(context.Context, *transportv1.DeliveryRequest) (*transportv1.DeliveryResult, string)
	})
	if !ok {
		t.Fatalf("%T has no DeliverIfRunning", tr)
	}
	if down, _ := h.Unavailable(); down != nil {
		t.Fatalf("Unavailable while running = %v, want nil", down)
	}
	_, changed := h.Unavailable()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill plugin %d: %v", pid, err)
	}
	awaitChange(t, changed, "after the crash")
	for deadline := time.Now().Add(20 * time.Second); ; {
		down, changed := h.Unavailable()
		res, why := checked.DeliverIfRunning(context.Background(), &transportv1.DeliveryRequest{DeliveryId: "after", EventType: "echo"})
		switch {
		case res == nil:
			if !strings.Contains(why, `transport plugin "fake" is not running`) {
				t.Fatalf("DeliverIfRunning while down: reason %q", why)
			}
		case res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS || res.GetResponseHeaders()["pid"] == strconv.Itoa(pid):
			t.Fatalf("DeliverIfRunning after the crash = %v %q from pid %s; want SUCCESS from a new process (old %d)",
				res.GetOutcome(), res.GetError(), res.GetResponseHeaders()["pid"], pid)
		case down == nil:
			p, _ := strconv.Atoi(res.GetResponseHeaders()["pid"])
			return p
		}
		if down != nil && !strings.Contains(down["fake"], "exited or crashed") {
			t.Fatalf("Unavailable after the crash = %q", down)
		}
		if time.Now().After(deadline) {
			t.Fatal("plugin not back within 20s")
		}
		select {
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

var restartIn = regexp.MustCompile(`transport plugin exited unexpectedly; restarting.* restart_in=(\S+)`)

// A plugin that crashes after running stably is restarted at once; one
// that crashes again soon after waits the minimum backoff; a stable run
// resets that. Availability follows every step.
func TestRestartImmediateAfterStableRunBackoffInCrashLoop(t *testing.T) {
	const stable = 400 * time.Millisecond // the maximum backoff is the stability mark
	h, logs := newHost(t, pluginhost.WithRestartBackoff(100*time.Millisecond, stable))
	if err := h.Start(context.Background(), []pluginhost.Spec{spec(t, "fake", "fake")}); err != nil {
		t.Fatalf("start: %v", err)
	}
	upSince := time.Now()
	tr, _ := h.Transport("fake")
	_, pid := echo(t, tr, "before")
	// runStably lets the plugin's uptime pass the stability mark: what
	// these crashes are about is how long the plugin had run.
	runStably := func() {
		if wait := stable + 100*time.Millisecond - time.Since(upSince); wait > 0 {
			time.Sleep(wait)
		}
	}

	runStably()
	killed := time.Now()
	pid = killAndAwaitBack(t, h, tr, pid) // stable run: restart at once
	back := time.Since(killed)
	upSince = time.Now()
	pid = killAndAwaitBack(t, h, tr, pid) // crashed right away: 100ms
	upSince = time.Now()
	runStably()
	killAndAwaitBack(t, h, tr, pid) // stable again: at once

	var got []string
	for _, m := range restartIn.FindAllStringSubmatch(logs.String(), -1) {
		got = append(got, m[1])
	}
	if want := []string{"0s", "100ms", "0s"}; !slices.Equal(got, want) {
		t.Errorf("restart delays = %v, want %v; logs:\n%s", got, want, logs)
	}
	if h.Restarts() != 3 {
		t.Errorf("restarts = %d, want 3", h.Restarts())
	}
	t.Logf("first restart: plugin answering again %v after SIGKILL", back.Round(time.Millisecond))
	if back > 10*time.Second {
		t.Errorf("plugin took %v to come back after a crash; the first restart must not wait", back)
	}
}

// A plugin that keeps dying right after it starts is restarted with a
// growing, capped delay: a handful of restarts in a few seconds, not one
// per process start.
func TestCrashLoopBacksOff(t *testing.T) {
	const window = 3 * time.Second
	h, logs := newHost(t, pluginhost.WithRestartBackoff(300*time.Millisecond, 600*time.Millisecond))
	s := spec(t, "fake", "fake")
	s.Env = []string{exitAfterEnv + "=150ms"}
	if err := h.Start(context.Background(), []pluginhost.Spec{s}); err != nil {
		t.Fatalf("start: %v", err)
	}
	time.Sleep(window) // observing the restart rate over a fixed window
	n := h.Restarts()
	t.Logf("%d restarts in %v", n, window)
	// Delays 0, 300ms, 600ms, 600ms... plus ~150ms of life each: at most
	// about 6 in 3 s. Without backoff it would be one per start (~15+).
	if n < 2 || n > 7 {
		t.Errorf("%d restarts in %v, want 2 to 7 (immediate first restart, then backoff capped at 600ms); logs:\n%s", n, window, logs)
	}
	for _, want := range []string{"restart_in=0s", "restart_in=300ms", "restart_in=600ms"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s; logs:\n%s", want, logs)
		}
	}
}
