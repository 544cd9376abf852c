package main

import (
	"io"
	"testing"

	"github.com/hookwire/hookwire/controlplane/tlstest"
)

// TestCLIClientCertificate runs client commands against a control plane
// that requires client certificates (--tls-client-ca).
func TestCLIClientCertificate(t *testing.T) {
	certs := tlstest.New(t)
	p, out := startProc(t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY=" + e2eMasterKey},
		"server", "--data-dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--tls-cert", certs.Server.Cert, "--tls-key", certs.Server.Key, "--tls-client-ca", certs.CA)
	var grpcAddr string
	for out.Scan() {
		if m := tlsAddrLine.FindStringSubmatch(out.Text()); m != nil {
			grpcAddr = m[1]
			break
		}
	}
	if grpcAddr == "" {
		t.Fatalf("server exited before printing its addresses: %s", p.stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, readerOf(out)) }()

	h := newHW(t, grpcAddr)
	ca := []string{"--ca-file", certs.CA}
	withCert := append([]string{"--cert-file", certs.Client.Cert, "--key-file", certs.Client.Key}, ca...)

	// Without a certificate: a clear error naming what to pass.
	h.fail(exitUnavailable, "client certificate (mTLS): pass --cert-file and --key-file", append([]string{"tenants", "create", "acme"}, ca...)...)
	// Half a pair is a usage error before any connection.
	h.fail(exitUsage, "has no key", append([]string{"tenants", "list", "--cert-file", certs.Client.Cert}, ca...)...)
	// A certificate from a CA the server does not trust is refused.
	_, stranger := tlstest.NewCA(t, "stranger CA")
	h.fail(exitUnavailable, "refused the client certificate", append([]string{"tenants", "list", "--cert-file", stranger.Cert, "--key-file", stranger.Key}, ca...)...)

	// Flags.
	h.ok(append([]string{"tenants", "create", "acme"}, withCert...)...)
	// Environment.
	var list obj
	h.with("HOOKWIRE_CERT_FILE="+certs.Client.Cert, "HOOKWIRE_KEY_FILE="+certs.Client.Key).json(&list, append([]string{"tenants", "list"}, ca...)...)
	if got := ids(listOf(t, list, "tenants")); len(got) != 1 || got[0] != "acme" {
		t.Fatalf("tenants over mTLS (env) = %v", got)
	}
	// A context carries the files with its address.
	c := newHW(t, "")
	c.ok("context", "set", "secure", "--addr", grpcAddr, "--api-key", e2eAdminKey, "--ca-file", certs.CA,
		"--cert-file", certs.Client.Cert, "--key-file", certs.Client.Key)
	c.json(&list, "tenants", "list")
	if got := ids(listOf(t, list, "tenants")); len(got) != 1 || got[0] != "acme" {
		t.Fatalf("tenants over mTLS (context) = %v", got)
	}
	var ctxs struct {
		Contexts []struct {
			Name     string `json:"name"`
			CertFile string `json:"cert_file"`
			KeyFile  string `json:"key_file"`
		} `json:"contexts"`
	}
	c.json(&ctxs, "context", "list")
	if len(ctxs.Contexts) != 1 || ctxs.Contexts[0].CertFile != certs.Client.Cert || ctxs.Contexts[0].KeyFile != certs.Client.Key {
		t.Fatalf("context list = %+v", ctxs)
	}
	c.fail(exitUsage, "needs both --cert-file and --key-file", "context", "set", "half", "--addr", grpcAddr, "--cert-file", certs.Client.Cert)
}
