package main

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cutProxy forwards TCP to target and can cut every open connection.
type cutProxy struct {
	lis    net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{lis: lis, target: target}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { lis.Close(); p.cut() })
	return p
}

func (p *cutProxy) addr() string { return p.lis.Addr().String() }

// cut closes every connection through the proxy; new ones still work.
func (p *cutProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns) / 2
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	return n
}

func TestAgentReconnectsAfterStreamCut(t *testing.T) {
	sk := newSink(t)
	srv := startServer(t, t.TempDir())
	proxy := newCutProxy(t, srv.grpcAddr)
	startAgent(t, proxy.addr(), "cut-agent")
	createSubscription(t, srv.httpAddr, "acme", sk.url)

	// Hold the first batch at the sink so it is in flight when the stream
	// is cut; its results can only reach the control plane on a new stream.
	const first = 5
	arrived := make(chan struct{}, 100)
	release := make(chan struct{})
	sk.mu.Lock()
	sk.gate = func(received) {
		arrived <- struct{}{}
		<-release
	}
	sk.mu.Unlock()
	for i := range first {
		publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":{"n":`+strconv.Itoa(i)+`}}`)
	}
	for range first {
		select {
		case <-arrived:
		case <-time.After(30 * time.Second):
			t.Fatal("first batch never reached the sink")
		}
	}
	if n := proxy.cut(); n == 0 {
		t.Fatal("no agent connection to cut")
	}
	sk.mu.Lock()
	sk.gate = nil
	sk.mu.Unlock()
	close(release)
	// Published after the cut: reaches the agent only once it reconnects.
	for i := range 5 {
		publishREST(t, srv.httpAddr, "acme", `{"type":"order.updated","payload":{"m":`+strconv.Itoa(i)+`}}`)
	}
	sk.await(first+5, 30*time.Second)

	// Every delivery ends up recorded as succeeded: the in-flight results
	// were reported over the new stream.
	var list struct {
		Deliveries []struct {
			Status string `json:"status"`
		} `json:"deliveries"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/deliveries?status=DELIVERY_STATUS_SUCCEEDED", "", &list)
		if len(list.Deliveries) == first+5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling the API for eventually recorded results
	}
	if len(list.Deliveries) != first+5 {
		t.Fatalf("%d deliveries recorded as succeeded, want %d", len(list.Deliveries), first+5)
	}
}

func TestControlPlaneRestartKeepsState(t *testing.T) {
	sk := newSink(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	subID, _ := createSubscription(t, srv.httpAddr, "acme", sk.url)
	// No agent yet: these stay pending.
	for i := range 5 {
		publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":{"n":`+strconv.Itoa(i)+`}}`)
	}
	srv.kill(syscall.SIGKILL)

	srv = startServer(t, dir)
	var sub struct {
		ID            string `json:"id"`
		SigningSecret string `json:"signing_secret"`
	}
	if code := restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/subscriptions/"+subID, "", &sub); code != 200 || sub.ID != subID || sub.SigningSecret != "" {
		t.Fatalf("subscription after restart: HTTP %d %+v", code, sub)
	}
	var pending struct {
		Deliveries []struct{} `json:"deliveries"`
	}
	restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/deliveries?status=DELIVERY_STATUS_PENDING", "", &pending)
	if len(pending.Deliveries) != 5 {
		t.Fatalf("%d pending deliveries after restart, want 5", len(pending.Deliveries))
	}
	startAgent(t, srv.grpcAddr, "late-agent")
	sk.await(5, 30*time.Second)
}

func TestSecondServerOnSameDataDirFails(t *testing.T) {
	dir := t.TempDir()
	startServer(t, dir)
	p, out := startProc(t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY=" + e2eMasterKey},
		"server", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	go func() {
		for out.Scan() {
		}
	}()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("second server on the same data dir did not exit")
	}
	if p.err == nil {
		t.Fatal("second server exited 0")
	}
	if !strings.Contains(p.stderr.String(), "data directory in use") {
		t.Fatalf("stderr does not say the data directory is in use: %q", p.stderr.String())
	}
}
