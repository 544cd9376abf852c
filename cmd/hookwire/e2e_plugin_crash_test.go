package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// countingReceiver answers every webhook with 204 after latency and counts
// the requests per webhook-id. Unlike sink it never blocks on a reader, so
// it can take thousands of deliveries.
type countingReceiver struct {
	url  string
	mu   sync.Mutex
	hits map[string]int
}

func newCountingReceiver(t *testing.T, latency time.Duration) *countingReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &countingReceiver{url: "http://" + lis.Addr().String() + "/hook", hits: map[string]int{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits[req.Header.Get("webhook-id")]++
		r.mu.Unlock()
		time.Sleep(latency) // a target that takes a while to answer, so attempts are in flight when the plugin dies
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	return r
}

// counts returns the receipts per webhook-id.
func (r *countingReceiver) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.hits))
	for k, v := range r.hits {
		out[k] = v
	}
	return out
}

// maxReceipts is the largest number of receipts of one webhook-id, and
// which id.
func maxReceipts(counts map[string]int) (int, string) {
	best, id := 0, ""
	for k, v := range counts {
		if v > best {
			best, id = v, k
		}
	}
	return best, id
}

// pluginChildren lists the pids of the agent's `hookwire plugin <name>`
// child processes.
func pluginChildren(t *testing.T, agentPID int, name string) []int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", agentPID))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited meanwhile
		}
		for _, field := range strings.Fields(string(data)) {
			pid, err := strconv.Atoi(field)
			if err != nil {
				continue
			}
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil {
				continue
			}
			args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
			if len(args) >= 3 && string(args[1]) == "plugin" && string(args[2]) == name {
				out = append(out, pid)
			}
		}
	}
	return out
}

// awaitPlugin waits until the agent has exactly one `plugin name` child
// other than old, and returns its pid.
func awaitPlugin(t *testing.T, agentPID int, name string, old int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if pids := pluginChildren(t, agentPID, name); len(pids) == 1 && pids[0] != old {
			return pids[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %d has no new %q plugin process within %s (old pid %d)", agentPID, name, within, old)
		}
		time.Sleep(5 * time.Millisecond) // polling /proc for a process the agent starts
	}
}

// agentMetrics returns the named series from an agent's /metrics, as
// "name value" pairs ("name missing" for an absent one).
func agentMetrics(t *testing.T, addr string, names ...string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "unavailable: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for _, n := range names {
		v := "missing"
		for _, line := range strings.Split(string(body), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == n {
				v = f[1]
			}
		}
		out = append(out, n+" "+v)
	}
	return strings.Join(out, ", ")
}

func deliveryClient(t *testing.T, addr string) hookwirev1.DeliveryServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return hookwirev1.NewDeliveryServiceClient(conn)
}

// listAllDeliveries pages through a tenant's deliveries.
func listAllDeliveries(t *testing.T, dc hookwirev1.DeliveryServiceClient, tenant string) []*hookwirev1.Delivery {
	t.Helper()
	var out []*hookwirev1.Delivery
	token := ""
	for {
		ctx, cancel := context.WithTimeout(authedCtx(context.Background()), 30*time.Second)
		resp, err := dc.ListDeliveries(ctx, &hookwirev1.ListDeliveriesRequest{Tenant: tenant, PageSize: 1000, PageToken: token})
		cancel()
		if err != nil {
			t.Fatalf("list deliveries: %v", err)
		}
		out = append(out, resp.GetDeliveries()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// TestPluginCrashIsNotAnAttempt kills the agent's http plugin process four
// times, 4 s apart, under steady publishing to a subscription that retries
// once after 1 s (issue 11 item 3). A delivery the plugin never saw must not
// cost an attempt: nothing may end dead, every delivery must reach the
// receiver, and the only failed attempts allowed are the ones that were
// inside the plugin when it was killed.
func TestPluginCrashIsNotAnAttempt(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes, about 30 s")
	}
	const (
		tenant = "crashy"
		kills  = 4
		gap    = 4 * time.Second
		rate   = 150 // events per second
	)
	rcv := newCountingReceiver(t, 30*time.Millisecond)
	srv := startServer(t, t.TempDir())
	metricsAddr := freeAddr(t)
	agent := startAgent(t, srv.grpcAddr, "plugin-crash-agent", "--metrics-addr", metricsAddr)
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants", `{"id":"`+tenant+`"}`, nil); code != 200 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants/"+tenant+"/subscriptions",
		`{"event_types":["order.*"],"target":{"transport":"http","config":{"url":"`+rcv.url+`"}},"retry_policy":{"schedule":{"delays":["1s"]}}}`, nil); code != 200 {
		t.Fatalf("create subscription: HTTP %d", code)
	}
	agentPID := agent.cmd.Process.Pid
	pid := awaitPlugin(t, agentPID, "http", 0, 30*time.Second)

	events, _ := grpcClient(t, srv.grpcAddr)
	ctx, stopPublishing := context.WithCancel(context.Background())
	defer stopPublishing()
	var (
		mu        sync.Mutex
		published = map[string]bool{} // event ids
		pubErr    error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cctx, cancel := context.WithTimeout(authedCtx(context.Background()), 10*time.Second)
			resp, err := events.PublishEvent(cctx, &hookwirev1.PublishEventRequest{Tenant: tenant, Event: &hookwirev1.Event{
				Type: "order.created", Payload: []byte(`{"seq":` + strconv.Itoa(seq) + `}`)}})
			cancel()
			mu.Lock()
			if err != nil {
				pubErr = err
			} else {
				published[resp.GetId()] = true
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()

	var restarts []time.Duration
	for range kills {
		time.Sleep(gap) // steady load between kills: the test's own pacing, not synchronisation
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill plugin %d: %v", pid, err)
		}
		killed := time.Now()
		pid = awaitPlugin(t, agentPID, "http", pid, 30*time.Second)
		restarts = append(restarts, time.Since(killed).Round(time.Millisecond))
	}
	time.Sleep(gap) // and a last stretch after the final restart
	stopPublishing()
	<-done
	mu.Lock()
	if pubErr != nil {
		mu.Unlock()
		t.Fatalf("publish failed: %v", pubErr)
	}
	want := len(published)
	mu.Unlock()

	// Quiescence: every delivery final (succeeded or dead), at most 30 s.
	dc := deliveryClient(t, srv.grpcAddr)
	var dels []*hookwirev1.Delivery
	for deadline := time.Now().Add(30 * time.Second); ; {
		dels = listAllDeliveries(t, dc, tenant)
		pending := 0
		for _, d := range dels {
			if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
				pending++
			}
		}
		if len(dels) == want && pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d deliveries for %d events, %d still pending", len(dels), want, pending)
		}
		time.Sleep(200 * time.Millisecond) // polling the API for the backlog to finish
	}

	counts := rcv.counts()
	var dead, neverReached, extraAttempts int
	var failed []*hookwirev1.Delivery
	for _, d := range dels {
		if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD {
			dead++
		}
		if counts[d.GetId()] == 0 {
			neverReached++
		}
		if d.GetAttemptCount() > 1 {
			extraAttempts += int(d.GetAttemptCount()) - 1
			failed = append(failed, d)
		}
	}
	most, mostID := maxReceipts(counts)
	t.Logf("%d events, %d plugin kills (restarted after %v): %d dead, %d never reached the receiver, %d extra attempts, max receipts of one webhook-id %d (%s)",
		want, kills, restarts, dead, neverReached, extraAttempts, most, mostID)
	t.Logf("agent metrics: %s", agentMetrics(t, metricsAddr, "hookwire_agent_handed_back_total", "hookwire_agent_plugin_restarts_total", "hookwire_agent_attempts_total"))

	if dead != 0 || neverReached != 0 {
		t.Errorf("%d deliveries dead and %d never reached the receiver; a plugin crash must not cost deliveries", dead, neverReached)
	}
	for _, r := range restarts {
		if r > 2*time.Second {
			t.Errorf("a plugin restart took %v; the first restart after a crash must be immediate", r)
		}
	}
	// Every failed attempt must be a real try: one that was inside the
	// plugin when it died (it may have reached the target), never one the
	// agent made while the plugin was down.
	classes := map[string]int{}
	var whileDown []string
	for _, d := range failed {
		actx, cancel := context.WithTimeout(authedCtx(context.Background()), 10*time.Second)
		resp, err := dc.ListAttempts(actx, &hookwirev1.ListAttemptsRequest{Tenant: tenant, DeliveryId: d.GetId()})
		cancel()
		if err != nil {
			t.Fatalf("list attempts of %s: %v", d.GetId(), err)
		}
		for _, a := range resp.GetAttempts() {
			if a.GetOutcome() == transportv1.Outcome_OUTCOME_SUCCESS {
				continue
			}
			e := a.GetError()
			switch {
			case strings.Contains(e, "is not running"):
				classes["plugin not running"]++
				whileDown = append(whileDown, fmt.Sprintf("%s attempt %d: %s %q", d.GetId(), a.GetNumber(), a.GetOutcome(), e))
			case strings.Contains(e, "before answering"):
				classes["in flight when the plugin died"]++
			default:
				classes[e]++
			}
		}
	}
	t.Logf("failed attempts by cause: %v", classes)
	if len(whileDown) > 0 {
		t.Errorf("%d attempts were counted while the plugin was down (not real tries), e.g. %v", len(whileDown), whileDown[:min(5, len(whileDown))])
	}
}
