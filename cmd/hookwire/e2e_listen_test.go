package main

import (
	"bufio"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var listenReady = regexp.MustCompile(`^Ready! Forwarding (\S+) events for tenant (\S+) to (\S+) \(subscription (sub_\S+), signing secret (whsec_\S+)\)$`)

// nextLine returns the next stdout line of a subprocess, failing the test
// if none comes within d.
func nextLine(t *testing.T, out *bufio.Scanner, p *proc, d time.Duration) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		if out.Scan() {
			line <- out.Text()
		}
		close(line)
	}()
	select {
	case l, ok := <-line:
		if !ok {
			t.Fatalf("stdout closed; stderr:\n%s", p.stderr.String())
		}
		return l
	case <-time.After(d):
		t.Fatalf("no stdout line within %s; stderr:\n%s", d, p.stderr.String())
	}
	return ""
}

func TestEndToEndListen(t *testing.T) {
	sk := newSink(t)
	srv := startServer(t, t.TempDir())
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants", `{"id":"acme"}`, nil); code != 200 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	env := []string{"HOOKWIRE_API_KEY=" + e2eAdminKey, "HOOKWIRE_CONFIG=" + t.TempDir() + "/config.yaml",
		"HOOKWIRE_CONTEXT=", "HOOKWIRE_ADDR=", "HOOKWIRE_TENANT="}
	p, out := startProc(t, env, "listen", "--addr", srv.grpcAddr, "--tenant", "acme",
		"--event-type", "order.*", "--forward-to", sk.url)
	ready := nextLine(t, out, p, 30*time.Second)
	m := listenReady.FindStringSubmatch(ready)
	if m == nil {
		t.Fatalf("ready line %q", ready)
	}
	if m[1] != "order.*" || m[2] != "acme" || m[3] != sk.url {
		t.Fatalf("ready line %q", ready)
	}
	subID, secret := m[4], m[5]

	var sub struct {
		AgentSelector string `json:"agent_selector"`
	}
	if code := restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/subscriptions/"+subID, "", &sub); code != 200 {
		t.Fatalf("get subscription: HTTP %d", code)
	}
	if !strings.HasPrefix(sub.AgentSelector, "hookwire.listen=") {
		t.Fatalf("agent_selector %q", sub.AgentSelector)
	}

	body := `{"id":42,"total":"9.99"}`
	publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":`+body+`}`)
	sk.await(1, 30*time.Second)
	var got received
	for _, rs := range sk.all() {
		if len(rs) != 1 {
			t.Fatalf("webhook %s received %d times", rs[0].id, len(rs))
		}
		got = rs[0]
	}
	if string(got.body) != body {
		t.Fatalf("sink body %q, want %q", got.body, body)
	}
	verify(t, secret, got)

	line := nextLine(t, out, p, 30*time.Second)
	for _, want := range []string{"order.created", got.id, "204 success"} {
		if !strings.Contains(line, want) {
			t.Errorf("listen printed %q, want it to contain %q", line, want)
		}
	}

	p.kill(syscall.SIGINT)
	if p.err != nil {
		t.Fatalf("listen exited with %v; stderr:\n%s", p.err, p.stderr.String())
	}
	if code := restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/subscriptions/"+subID, "", nil); code != 404 {
		t.Fatalf("subscription after Ctrl-C: HTTP %d, want 404", code)
	}
}

func TestEndToEndListenAttach(t *testing.T) {
	sk := newSink(t)
	srv := startServer(t, t.TempDir())
	const elsewhere = "https://billing.example.com/hooks"
	subID, secret := createSubscription(t, srv.httpAddr, "acme", elsewhere)
	env := []string{"HOOKWIRE_API_KEY=" + e2eAdminKey, "HOOKWIRE_CONFIG=" + t.TempDir() + "/config.yaml",
		"HOOKWIRE_CONTEXT=", "HOOKWIRE_ADDR=", "HOOKWIRE_TENANT="}
	p, out := startProc(t, env, "listen", "--addr", srv.grpcAddr, "--tenant", "acme",
		"--subscription", subID, "--forward-to", sk.url)
	ready := nextLine(t, out, p, 30*time.Second)
	if want := "(subscription " + subID + ", signing secret unchanged)"; !strings.HasSuffix(ready, want) {
		t.Fatalf("ready line %q, want suffix %q", ready, want)
	}
	publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":{"id":1}}`)
	sk.await(1, 30*time.Second)
	for _, rs := range sk.all() {
		verify(t, secret, rs[0])
	}
	if line := nextLine(t, out, p, 30*time.Second); !strings.Contains(line, "204 success") {
		t.Errorf("listen printed %q", line)
	}
	p.kill(syscall.SIGINT)
	if p.err != nil {
		t.Fatalf("listen exited with %v; stderr:\n%s", p.err, p.stderr.String())
	}
	var sub struct {
		AgentSelector string `json:"agent_selector"`
		Target        struct {
			Config struct {
				URL string `json:"url"`
			} `json:"config"`
		} `json:"target"`
	}
	if code := restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/subscriptions/"+subID, "", &sub); code != 200 {
		t.Fatalf("attached subscription after Ctrl-C: HTTP %d, want 200", code)
	}
	if sub.AgentSelector != "" || sub.Target.Config.URL != elsewhere {
		t.Fatalf("attached subscription not restored: selector %q url %q", sub.AgentSelector, sub.Target.Config.URL)
	}
}
