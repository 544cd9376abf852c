package controlplane_test

import (
	"context"
	"errors"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestReadinessOfAHealthyServer: a server whose store can write is ready
// on every channel: /readyz 200, gRPC health SERVING, the writability
// gauge 1 and no failed commits. (The unready side is exercised with a
// real full disk in cmd/hookwire TestDiskFullStoreRecoversWithoutRestart
// and with injected faults in the store's tests.)
func TestReadinessOfAHealthyServer(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{AdminAddr: "127.0.0.1:0"})
	resp, err := http.Get("http://" + h.srv.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ready" {
		t.Fatalf("/readyz: %d %q", resp.StatusCode, body)
	}
	if err := h.srv.Ready(); err != nil {
		t.Fatalf("Ready() = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The health watcher sets the status right after Start; wait for it.
	w, err := healthpb.NewHealthClient(h.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, err := w.Recv()
		if err != nil {
			t.Fatalf("gRPC health watch: %v", err)
		}
		if r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
	}
	get := scrape(t, h.srv.AdminAddr())
	if v := get("hookwire_store_writable"); v != 1 {
		t.Errorf("hookwire_store_writable = %v, want 1", v)
	}
	if v := get("hookwire_store_commit_failures_total"); v != 0 {
		t.Errorf("hookwire_store_commit_failures_total = %v, want 0", v)
	}
}

// TestStartRebuildsOrRefusesAMissingStore: a data directory whose database
// file is gone is rebuilt from its raft log (the durable record) with
// everything in it; one that lost its raft directory too is refused (not
// silently replaced by an empty store with a new admin key), unless
// Config.AllowNewStore starts a new one.
func TestStartRebuildsOrRefusesAMissingStore(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, controlplane.Config{})
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "kept"}); err != nil {
		t.Fatal(err)
	}
	h.stop()
	if err := os.Remove(filepath.Join(dir, "hookwire.db")); err != nil {
		t.Fatal(err)
	}
	h = start(t, dir, controlplane.Config{})
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).GetTenant(h.ctx(), &hookwirev1.GetTenantRequest{Id: "kept"}); err != nil {
		t.Fatalf("the tenant created before the database file was lost: %v", err)
	}
	h.stop()

	for _, name := range []string{"hookwire.db", "raft"} {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := controlplane.Config{DataDir: dir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "off", MasterKey: mustMasterKey(t, testMasterKey)}
	if srv, err := controlplane.Start(context.Background(), cfg); !errors.Is(err, controlplane.ErrStoreMissing) {
		if srv != nil {
			srv.Close()
		}
		t.Fatalf("Start on a data directory whose store file and raft log are gone: %v, want ErrStoreMissing", err)
	}
	cfg.AllowNewStore = true
	srv, err := controlplane.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start with AllowNewStore: %v", err)
	}
	defer srv.Close()
	if srv.NewAdminKey() == "" {
		t.Error("a new store did not get a new admin key")
	}
}
