package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/tlstest"
)

func loadPair(t *testing.T, f tlstest.Files) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func loadPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA in", file)
	}
	return pool
}

// nodeTLS is a node's cluster TLS: the server certificate to listen, the
// client certificate to dial (tlstest issues them separately), one CA.
func nodeTLS(t *testing.T, set tlstest.Set) *tls.Config {
	server, client := loadPair(t, set.Server), loadPair(t, set.Client)
	return &tls.Config{
		Certificates: []tls.Certificate{server},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &client, nil
		},
		RootCAs: loadPool(t, set.CA),
	}
}

// hello sends one handshake request over a raw connection of the given
// dialer and returns the reply or the error.
func hello(ctx context.Context, d *dialer, addr string) (rpcResponse, error) {
	var resp rpcResponse
	conn, err := d.dialKind(ctx, addr, connRPC)
	if err != nil {
		return resp, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if err := json.NewEncoder(conn).Encode(rpcRequest{Op: opHello, From: Server{ID: "rogue", Address: "127.0.0.1:1"}}); err != nil {
		return resp, err
	}
	err = json.NewDecoder(conn).Decode(&resp)
	return resp, err
}

func TestTLSClusterRefusesPeersWithoutTheCA(t *testing.T) {
	set := tlstest.New(t)
	c := newTestCluster(t)
	nodes := c.startCluster(2, func(cfg *Config) { cfg.TLS = nodeTLS(t, set) })
	leader := c.waitLeader(nodes...)
	want := map[string]string{}
	for i := range 10 {
		apply(t, leader, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	waitConverged(t, want, nodes...)

	// A well-configured client gets an answer: the check below is not
	// failing for some unrelated reason.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, good, err := tlsConfigs(nodeTLS(t, set))
	if err != nil {
		t.Fatal(err)
	}
	var nd net.Dialer
	plainDial := func(ctx context.Context, addr string) (net.Conn, error) { return nd.DialContext(ctx, "tcp", addr) }
	if resp, err := hello(ctx, &dialer{dial: plainDial, clientTLS: good}, leader.node.Addr()); err != nil || !resp.Member {
		t.Fatalf("a client with the cluster CA: %+v, %v", resp, err)
	}

	rogueCA, rogueClient := tlstest.NewCA(t, "rogue CA")
	rogueCert := loadPair(t, rogueClient)
	for name, clientTLS := range map[string]*tls.Config{
		"certificate from another CA": {
			Certificates: []tls.Certificate{rogueCert},
			RootCAs:      loadPool(t, set.CA), // trusts the cluster, is not trusted by it
		},
		"no client certificate": {RootCAs: loadPool(t, set.CA)},
		"does not trust the cluster CA": {
			Certificates: []tls.Certificate{loadPair(t, set.Client)},
			RootCAs:      loadPool(t, rogueCA),
		},
		"plain TCP": nil,
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := hello(ctx, &dialer{dial: plainDial, clientTLS: clientTLS}, leader.node.Addr())
			if err == nil {
				t.Fatalf("the cluster answered: %+v", resp)
			}
		})
	}

	// And raft itself: a rogue node with the other CA cannot join.
	rogue := c.add("rogue", func(cfg *Config) {
		cfg.Join = []string{leader.node.Addr()}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{rogueCert}, RootCAs: loadPool(t, set.CA)}
	})
	// Its discovery rounds keep being refused in the handshake while the
	// cluster keeps its two members.
	refused := leader.node.mux.tlsRefused.Load()
	waitFor(t, 5*time.Second, "three more refused handshakes", func() bool {
		return leader.node.mux.tlsRefused.Load() >= refused+3
	})
	peers, err := leader.node.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 {
		t.Fatalf("peers changed: %+v", peers)
	}
	if rogue.node.isMember() {
		t.Fatal("the rogue node became a member")
	}
}
