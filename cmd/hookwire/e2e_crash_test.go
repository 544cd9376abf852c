package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
)

// freeAddr returns a loopback address with a port that was free just now,
// so a restarted server can listen where agents expect it.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startServerAt(t *testing.T, dir, grpcAddr, httpAddr string) *server {
	t.Helper()
	p, out := startProc(t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY=" + e2eMasterKey},
		"server", "--data-dir", dir, "--grpc-addr", grpcAddr, "--http-addr", httpAddr)
	for out.Scan() {
		if m := addrLine.FindStringSubmatch(out.Text()); m != nil {
			go func() {
				for out.Scan() {
				}
			}()
			return &server{proc: p, grpcAddr: m[1], httpAddr: m[2]}
		}
	}
	t.Fatalf("server exited before printing its addresses: %s", p.stderr.String())
	return nil
}

// TestCrashLosesNothingAcknowledged publishes steadily while the control
// plane is SIGKILLed and restarted three times, then proves from the sink's
// records that every acknowledged event reached both matching
// subscriptions, and that duplicates carry the same webhook-id.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	sk := newSink(t)
	dir := t.TempDir()
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	srv := startServerAt(t, dir, grpcAddr, httpAddr)
	startAgent(t, grpcAddr, "crash-agent")
	createSubscription(t, srv.httpAddr, "acme", sk.url+"/a")
	var second struct{}
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants/acme/subscriptions",
		`{"event_types":["*"],"target":{"transport":"http","config":{"url":"`+sk.url+`/b"}}}`, &second); code != 200 {
		t.Fatalf("second subscription: HTTP %d", code)
	}

	var (
		mu    sync.Mutex
		acked = map[int]bool{}
	)
	ctx, stop := context.WithCancel(context.Background())
	published := make(chan struct{})
	go func() {
		defer close(published)
		events, _ := grpcClient(t, grpcAddr)
		// Each event is retried until acknowledged, with its sequence number
		// as idempotency key, as a careful producer would.
		for seq := 0; seq < 5000 && ctx.Err() == nil; {
			cctx, cancel := context.WithTimeout(authedCtx(ctx), 2*time.Second)
			_, err := events.PublishEvent(cctx, &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{
				Type: "order.created", IdempotencyKey: strconv.Itoa(seq), Payload: []byte(`{"seq":` + strconv.Itoa(seq) + `}`)}},
				grpc.WaitForReady(true))
			cancel()
			if err == nil {
				mu.Lock()
				acked[seq] = true
				mu.Unlock()
				seq++
			}
		}
	}()
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for kill := 0; kill < 3; kill++ {
		target := ackedCount() + 60
		for deadline := time.Now().Add(30 * time.Second); ackedCount() < target; {
			if time.Now().After(deadline) {
				t.Fatalf("publishing stalled at %d acknowledged events", ackedCount())
			}
			time.Sleep(10 * time.Millisecond) // watching a counter driven by another goroutine
		}
		srv.kill(syscall.SIGKILL)
		srv = startServerAt(t, dir, grpcAddr, httpAddr)
	}
	stop()
	<-published

	mu.Lock()
	want := len(acked)
	mu.Unlock()
	// Quiescence: every acknowledged event on both paths.
	deadline := time.Now().Add(90 * time.Second)
	for {
		missing := missingDeliveries(sk, acked)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged deliveries never arrived, e.g. %v", len(missing), 2*want, missing[:min(5, len(missing))])
		}
		select {
		case <-sk.hits:
		case <-time.After(time.Second):
		}
	}
	// Duplicates are allowed (at least once) but keep their webhook-id.
	dups := 0
	ids := map[string]string{}
	for id, rs := range sk.all() {
		dups += len(rs) - 1
		for _, r := range rs {
			key := r.path + " " + string(r.body)
			if prev, ok := ids[key]; ok && prev != id {
				t.Fatalf("the same delivery %s arrived with webhook-ids %s and %s", key, prev, id)
			}
			ids[key] = id
		}
	}
	t.Logf("%d events acknowledged across 3 SIGKILLs; %d deliveries, %d duplicates, 0 lost", want, 2*want, dups)
}

func authedCtx(ctx context.Context) context.Context {
	return withBearer(ctx, e2eAdminKey)
}

// missingDeliveries lists "path seq" for acknowledged events not yet seen.
func missingDeliveries(sk *sink, acked map[int]bool) []string {
	seen := map[string]bool{}
	for _, rs := range sk.all() {
		for _, r := range rs {
			var p struct{ Seq int }
			if json.Unmarshal(r.body, &p) == nil {
				seen[fmt.Sprintf("%s %d", r.path, p.Seq)] = true
			}
		}
	}
	var out []string
	for seq := range acked {
		for _, path := range []string{"/hook/a", "/hook/b"} {
			if k := fmt.Sprintf("%s %d", path, seq); !seen[k] {
				out = append(out, k)
			}
		}
	}
	return out
}
