package controlplane_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	"github.com/hookwire/hookwire/controlplane/tlstest"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startCluster starts three in-process servers that form one cluster on
// loopback; cluster, if set, adds settings (TLS files) to each server's.
func startCluster(t *testing.T, cluster func(*controlplane.ClusterConfig)) []*harness {
	t.Helper()
	addrs := []string{freeLoopback(t), freeLoopback(t), freeLoopback(t)}
	var hs []*harness
	for i, id := range []string{"n1", "n2", "n3"} {
		var join []string
		for j, a := range addrs {
			if j != i {
				join = append(join, a)
			}
		}
		cc := controlplane.ClusterConfig{NodeID: id, Addr: addrs[i], BootstrapExpect: 3, Join: join}
		if cluster != nil {
			cluster(&cc)
		}
		hs = append(hs, start(t, t.TempDir(), controlplane.Config{Cluster: cc}))
	}
	return hs
}

// TestClusterOverMutualTLS: three in-process servers form a cluster whose
// traffic is mutual TLS; a call made to any of them is served (followers
// forward it to the leader over the cluster port), and a client without a
// certificate from the cluster CA is refused on that port.
func TestClusterOverMutualTLS(t *testing.T) {
	set := tlstest.New(t)
	hs := startCluster(t, func(cc *controlplane.ClusterConfig) {
		cc.CertFile, cc.KeyFile, cc.CAFile = set.Peer.Cert, set.Peer.Key, set.CA
	})
	// Every server knows the leader.
	for _, h := range hs {
		for deadline := time.Now().Add(20 * time.Second); ; {
			st, err := hookwirev1.NewClusterServiceClient(h.conn).GetClusterStatus(h.ctx(), &hookwirev1.GetClusterStatusRequest{})
			if err == nil && st.GetLeaderId() != "" && len(st.GetPeers()) == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no leader known within 20s: %v %v", st, err)
			}
			time.Sleep(20 * time.Millisecond) // polling an election
		}
	}
	// Writes through each server, reads through the others.
	for i, h := range hs {
		id := "tenant-" + string(rune('a'+i))
		for deadline := time.Now().Add(10 * time.Second); ; {
			_, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: id})
			if err == nil {
				break
			}
			if time.Now().After(deadline) { // a leader still loading answers Unavailable
				t.Fatalf("create tenant through server %d: %v", i+1, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		other := hs[(i+1)%3]
		if _, err := hookwirev1.NewTenantServiceClient(other.conn).GetTenant(other.ctx(), &hookwirev1.GetTenantRequest{Id: id}); err != nil {
			t.Fatalf("read tenant %s through another server: %v", id, err)
		}
	}
	// A follower relaying a stream to the leader stops promptly: the relay
	// ends instead of holding its graceful stop.
	var follower *harness
	live := "" // the cluster address of a server that keeps running
	for _, h := range hs {
		st, err := hookwirev1.NewClusterServiceClient(h.conn).GetClusterStatus(h.ctx(), &hookwirev1.GetClusterStatusRequest{})
		if err == nil && st.GetState() == "Follower" && follower == nil {
			follower = h
			continue
		}
		live = st.GetAddress()
	}
	if follower == nil {
		t.Fatal("no follower found")
	}
	tctx, tcancel := context.WithCancel(follower.ctx())
	defer tcancel()
	tail, err := hookwirev1.NewDeliveryServiceClient(follower.conn).TailDeliveries(tctx, &hookwirev1.TailDeliveriesRequest{Tenant: "tenant-a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tail.Header(); err != nil {
		t.Fatalf("tail through a follower: %v", err)
	}
	stopped := make(chan error, 1)
	closeStart := time.Now()
	go func() { stopped <- follower.srv.Close() }()
	select {
	case <-stopped:
		t.Logf("the follower stopped in %v", time.Since(closeStart).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("a follower relaying a tail stream did not stop within 10s")
	}

	// The cluster port refuses a TLS client without a cluster certificate.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}).DialContext(ctx, "tcp", live)
	if err == nil {
		_, err = conn.Write([]byte{'G'})
		if err == nil {
			_, err = conn.Read(make([]byte, 1))
		}
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client without a certificate on the cluster port: %v, want a refused handshake", err)
	}
}

// TestClusterRefusesPlaintextOffLoopback: cluster traffic off loopback must
// be mutual TLS.
func TestClusterRefusesPlaintextOffLoopback(t *testing.T) {
	_, err := controlplane.Start(context.Background(), controlplane.Config{DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", HTTPAddr: "off",
		MasterKey: mustMasterKey(t, testMasterKey), Cluster: controlplane.ClusterConfig{Addr: "0.0.0.0:0"}})
	if err == nil || !strings.Contains(err.Error(), "mutual TLS") {
		t.Fatalf("Start with a cluster address off loopback and no TLS: %v, want a refusal naming mutual TLS", err)
	}
}

// TestStartMigratesADataDirectoryFromBeforeClustering: a store written
// without Raft (by an earlier build) is served after the first start of a
// clustered server, and handed to Raft as a snapshot, so that servers that
// join later receive it; it is still there after a restart.
func TestStartMigratesADataDirectoryFromBeforeClustering(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTenant(context.Background(), &hookwirev1.Tenant{Id: "old", CreateTime: timestamppb.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the migration, then a restart
		h := start(t, dir, controlplane.Config{})
		if _, err := hookwirev1.NewTenantServiceClient(h.conn).GetTenant(h.ctx(), &hookwirev1.GetTenantRequest{Id: "old"}); err != nil {
			t.Fatalf("the tenant of the old store: %v", err)
		}
		h.stop()
		snaps, err := os.ReadDir(filepath.Join(dir, "raft", "snapshots"))
		if err != nil || len(snaps) == 0 {
			t.Fatalf("no raft snapshot holds the migrated store: %v %v", snaps, err)
		}
	}
}
