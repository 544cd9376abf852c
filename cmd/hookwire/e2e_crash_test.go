package main

import (
	"context"
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
	drainHits(t, sk)
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
	// Quiescence: every acknowledged event on both paths; duplicates are
	// allowed (at least once) but keep their webhook-id.
	checkDelivered(t, sk, acked, "/hook/a", 90*time.Second, nil)
	dups := checkDelivered(t, sk, acked, "/hook/b", 90*time.Second, nil)
	t.Logf("%d events acknowledged across 3 SIGKILLs; %d deliveries, %d duplicates, 0 lost", want, 2*want, dups)
}

func authedCtx(ctx context.Context) context.Context {
	return withBearer(ctx, e2eAdminKey)
}
