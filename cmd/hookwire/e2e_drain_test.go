package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAgentDrainsUnderLoad: an agent with deliveries in flight to a slow
// receiver gets SIGTERM; it finishes them, reports the results and exits 0.
// Every delivery ends SUCCEEDED and reached the receiver under one
// webhook-id. The agent is configured through --config and
// HOOKWIRE_AGENT_* variables.
func TestAgentDrainsUnderLoad(t *testing.T) {
	const n = 6
	sk := newSink(t)
	arrived := make(chan string, 100)
	release := make(chan struct{})
	sk.mu.Lock()
	sk.gate = func(r received) {
		arrived <- r.id
		<-release
	}
	sk.mu.Unlock()
	var released bool
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})

	srv := startServer(t, t.TempDir())
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("server: %s\nid: drain-agent\nlabel: [role=drain]\nallow-cidr: [127.0.0.0/8]\nallow-insecure-http: true\n", srv.grpcAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hookwireBin, "agent", "--config", cfg)
	cmd.Env = append(os.Environ(), "HOOKWIRE_API_KEY="+e2eAdminKey, fmt.Sprintf("HOOKWIRE_AGENT_MAX_IN_FLIGHT=%d", n))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	draining := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			if !once && strings.Contains(sc.Text(), "agent stopping: draining") {
				once = true
				close(draining)
			}
		}
	}()
	exited := make(chan error, 1)
	go func() {
		<-scanned // Wait must not close the pipe before it is read to the end
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("agent stderr:\n%s", logs.String())
		}
	})

	// Only an agent labelled role=drain (from the --config file) may deliver.
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants", `{"id":"acme"}`, nil); code != 200 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	var sub struct {
		SigningSecret string `json:"signing_secret"`
	}
	body := `{"event_types":["order.*"],"agent_selector":"role=drain","target":{"transport":"http","config":{"url":"` + sk.url + `"}}}`
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants/acme/subscriptions", body, &sub); code != 200 {
		t.Fatalf("create subscription: HTTP %d", code)
	}
	secret := sub.SigningSecret
	bodies := map[string]bool{}
	for i := range n {
		body := fmt.Sprintf(`{"order":%d}`, i)
		bodies[body] = true
		publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":`+body+`}`)
	}
	// All n deliveries are in flight, held by the receiver.
	timeout := time.After(30 * time.Second)
	for range n {
		select {
		case <-arrived:
		case <-timeout:
			t.Fatalf("not all %d deliveries reached the receiver", n)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-draining:
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not start draining after SIGTERM")
	}
	released = true
	close(release)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("agent exited with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("agent did not exit after draining")
	}
	if !strings.Contains(logs.String(), "agent drained") {
		t.Errorf("agent did not report a complete drain")
	}

	// The receiver got every event under one webhook-id each.
	got := sk.all()
	if len(got) != n {
		t.Fatalf("receiver got %d distinct webhook-ids, want %d", len(got), n)
	}
	for id, rs := range got {
		if !bodies[string(rs[0].body)] {
			t.Errorf("webhook %s: unexpected body %q", id, rs[0].body)
		}
		delete(bodies, string(rs[0].body))
		for _, r := range rs {
			if string(r.body) != string(rs[0].body) {
				t.Errorf("webhook %s: duplicate with another body", id)
			}
			verify(t, secret, r)
		}
	}
	// The results were reported before the agent exited: every delivery is
	// SUCCEEDED now, with no other agent running.
	var list struct {
		Deliveries []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"deliveries"`
	}
	restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/deliveries", "", &list)
	if len(list.Deliveries) != n {
		t.Fatalf("%d deliveries, want %d", len(list.Deliveries), n)
	}
	for _, d := range list.Deliveries {
		if d.Status != "DELIVERY_STATUS_SUCCEEDED" {
			t.Errorf("delivery %s: %s", d.ID, d.Status)
		}
		if _, ok := got[d.ID]; !ok {
			t.Errorf("delivery %s never reached the receiver under its id", d.ID)
		}
	}
}
