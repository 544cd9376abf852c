package controlplane_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/agent"
	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/controlplane/tlstest"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func dialTLS(t *testing.T, addr string, files agent.TLSFiles) *grpc.ClientConn {
	t.Helper()
	opt, err := files.DialOption()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestMutualTLS(t *testing.T) {
	certs := tlstest.New(t)
	h := start(t, t.TempDir(), controlplane.Config{TLS: &controlplane.TLSConfig{
		CertFile: certs.Server.Cert, KeyFile: certs.Server.Key, ClientCAFile: certs.CA,
	}})
	addr := h.srv.GRPCAddr()

	// The right CA and client certificate: connects and delivers.
	good := dialTLS(t, addr, agent.TLSFiles{CAFile: certs.CA, CertFile: certs.Client.Cert, KeyFile: certs.Client.Key})
	ctx := h.ctx()
	if _, err := hookwirev1.NewTenantServiceClient(good).CreateTenant(ctx, &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	tlsH := &harness{t: t, srv: h.srv, conn: good}
	if _, err := tlsH.subscribeWith("acme", &hookwirev1.Subscription{}); err != nil {
		t.Fatal(err)
	}
	a := mustDialAgent(t, good, adminKey, &hookwirev1.Hello{AgentId: "mtls", MaxInFlight: 1})

	// The REST gateway works over TLS (it calls the services in process, so
	// it needs no client certificate for the mTLS gRPC listener).
	caPEM, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("POST", "https://"+h.srv.HTTPAddr()+"/v1/tenants/acme/events", strings.NewReader(`{"type":"order.created","payload":{"n":1}}`))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish over HTTPS: %d", resp.StatusCode)
	}
	asg := a.assignments(t, 1)[0]
	if acks := a.report(t, ok(asg)); !acks[0].GetAccepted() {
		t.Fatalf("acks %v", acks)
	}

	// No client certificate: refused.
	noCert := dialTLS(t, addr, agent.TLSFiles{CAFile: certs.CA})
	if _, err := dialAgent(t, noCert, adminKey, &hookwirev1.Hello{AgentId: "nocert", MaxInFlight: 1}); err == nil {
		t.Fatal("agent without a client certificate was accepted")
	}
	// A client certificate from another CA: refused.
	_, other := tlstest.NewCA(t, "other CA")
	wrong := dialTLS(t, addr, agent.TLSFiles{CAFile: certs.CA, CertFile: other.Cert, KeyFile: other.Key})
	if _, err := dialAgent(t, wrong, adminKey, &hookwirev1.Hello{AgentId: "wrong", MaxInFlight: 1}); err == nil {
		t.Fatal("agent with a client certificate from an unknown CA was accepted")
	}
	// Plaintext: refused.
	plain, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := dialAgent(t, plain, adminKey, &hookwirev1.Hello{AgentId: "plain", MaxInFlight: 1}); err == nil {
		t.Fatal("plaintext agent was accepted")
	}
	// Plain HTTP to the REST listener gets no answer it can use.
	if resp, err := http.Get("http://" + h.srv.HTTPAddr() + "/v1/agents"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served")
		}
	}
}

func TestTLSWithoutClientCA(t *testing.T) {
	certs := tlstest.New(t)
	h := start(t, t.TempDir(), controlplane.Config{TLS: &controlplane.TLSConfig{CertFile: certs.Server.Cert, KeyFile: certs.Server.Key}})
	conn := dialTLS(t, h.srv.GRPCAddr(), agent.TLSFiles{CAFile: certs.CA})
	if _, err := hookwirev1.NewAgentAdminServiceClient(conn).ListAgents(h.ctx(), &hookwirev1.ListAgentsRequest{}); err != nil {
		t.Fatal(err)
	}
	// A wrong server name is caught by the client.
	bad := dialTLS(t, h.srv.GRPCAddr(), agent.TLSFiles{CAFile: certs.CA, ServerName: "elsewhere.example"})
	if _, err := hookwirev1.NewAgentAdminServiceClient(bad).ListAgents(h.ctx(), &hookwirev1.ListAgentsRequest{}); err == nil {
		t.Fatal("wrong server name accepted")
	}
	// Bad files fail Start with a clear error.
	_, err := controlplane.Start(context.Background(), controlplane.Config{DataDir: t.TempDir(), MasterKey: mustMasterKey(t, testMasterKey),
		TLS: &controlplane.TLSConfig{CertFile: certs.Server.Cert}})
	if err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("start without key: %v", err)
	}
}
