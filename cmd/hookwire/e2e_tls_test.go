package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/tlstest"
)

func TestE2EServerRefusesPlaintextOnNonLoopback(t *testing.T) {
	p, out := startProc(t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY=" + e2eMasterKey},
		"server", "--data-dir", t.TempDir(), "--grpc-addr", "0.0.0.0:0", "--http-addr", "127.0.0.1:0")
	for out.Scan() {
	}
	<-p.done
	if p.err == nil || !strings.Contains(p.stderr.String(), "refusing to serve without TLS on non-loopback address 0.0.0.0:0") {
		t.Fatalf("server exited with %v, stderr:\n%s", p.err, p.stderr.String())
	}

	// --insecure-allow-plaintext overrides, with a warning.
	p, out = startProc(t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY=" + e2eMasterKey},
		"server", "--data-dir", t.TempDir(), "--grpc-addr", "0.0.0.0:0", "--http-addr", "127.0.0.1:0", "--insecure-allow-plaintext")
	started := false
	for out.Scan() {
		if strings.HasPrefix(out.Text(), "gRPC ") {
			started = true
			break
		}
	}
	if !started {
		t.Fatalf("server did not start: %s", p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "listening without TLS") {
		t.Fatalf("no plaintext warning: %s", p.stderr.String())
	}
}

var tlsAddrLine = regexp.MustCompile(`^gRPC (\S+)  REST https://(\S+)$`)

func TestE2EMutualTLSAgentWithJoinToken(t *testing.T) {
	certs := tlstest.New(t)
	p, out := startProc(t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY=" + e2eMasterKey},
		"server", "--data-dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--tls-cert", certs.Server.Cert, "--tls-key", certs.Server.Key, "--tls-client-ca", certs.CA)
	var grpcAddr, httpAddr string
	for out.Scan() {
		if m := tlsAddrLine.FindStringSubmatch(out.Text()); m != nil {
			grpcAddr, httpAddr = m[1], m[2]
			break
		}
	}
	if grpcAddr == "" {
		t.Fatalf("server exited before printing its addresses: %s", p.stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, readerOf(out)) }()

	caPEM, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(method, path, body string, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+httpAddr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e2eAdminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: HTTP %d %s", method, path, resp.StatusCode, data)
		}
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				t.Fatal(err)
			}
		}
	}

	s := newSink(t)
	call("POST", "/v1/tenants", `{"id":"acme"}`, nil)
	call("POST", "/v1/tenants/acme/subscriptions", `{"event_types":["order.*"],"agent_selector":"region=eu","target":{"transport":"http","config":{"url":"`+s.url+`"}}}`, nil)
	var jt struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	call("POST", "/v1/join-tokens", `{"name":"edge","labels":{"region":"eu"}}`, &jt)
	if !strings.HasPrefix(jt.Token, "hwj_") {
		t.Fatalf("join token %+v", jt)
	}

	ag, aout := startProc(t, []string{"HOOKWIRE_API_KEY=" + jt.Token}, "agent", "--server", grpcAddr, "--id", "edge-eu",
		"--label", "region=eu", "--tls-ca", certs.CA, "--tls-cert", certs.Client.Cert, "--tls-key", certs.Client.Key,
		"--allow-cidr", "127.0.0.0/8", "--allow-insecure-http")
	go func() {
		for aout.Scan() {
		}
	}()
	call("POST", "/v1/tenants/acme/events", `{"type":"order.created","payload":{"n":1}}`, nil)
	s.await(1, 30*time.Second)

	var agents struct {
		Agents []struct {
			ID          string `json:"id"`
			State       string `json:"state"`
			JoinTokenID string `json:"join_token_id"`
		} `json:"agents"`
	}
	call("GET", "/v1/agents", "", &agents)
	if len(agents.Agents) != 1 || agents.Agents[0].ID != "edge-eu" || agents.Agents[0].State != "AGENT_STATE_CONNECTED" || agents.Agents[0].JoinTokenID != jt.ID {
		t.Fatalf("agents = %+v; agent stderr:\n%s", agents, ag.stderr.String())
	}
}
