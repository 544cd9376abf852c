package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/cluster"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// replicated is a replicated store under a one-server cluster.
type replicated struct {
	st   *Store
	node *cluster.Node
}

func openReplicated(t *testing.T, dir string) *replicated {
	t.Helper()
	st, err := Open(dir, Options{Replicated: true})
	if err != nil {
		t.Fatal(err)
	}
	node, err := cluster.New(cluster.Config{NodeID: "n1", DataDir: dir, BindAddr: "127.0.0.1:0"}, st.FSM())
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	st.SetProposer(node)
	r := &replicated{st: st, node: node}
	t.Cleanup(r.close)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := node.Barrier(ctx)
		cancel()
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("the one-server cluster did not elect itself: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling an election, not standing in for one
	}
}

func (r *replicated) close() {
	if r.node != nil {
		r.st.AbortApplies()
		_ = r.node.Shutdown()
		_ = r.st.Close()
		r.node = nil
	}
}

func tenantNamed(id string) *hookwirev1.Tenant {
	return &hookwirev1.Tenant{Id: id, CreateTime: timestamppb.New(time.Unix(1700000000, 0))}
}

func TestReplicatedStoreAppliesRestartsAndRestores(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openReplicated(t, dir)
	for _, id := range []string{"acme", "globex"} {
		if err := r.st.CreateTenant(ctx, tenantNamed(id), nil); err != nil {
			t.Fatal(err)
		}
	}
	// A failing command fails its own write only, with the store's error.
	if err := r.st.CreateTenant(ctx, tenantNamed("acme"), nil); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("creating acme twice returned %v, want ErrAlreadyExists", err)
	}
	applied, err := r.st.FSM().AppliedIndex()
	if err != nil || applied == 0 {
		t.Fatalf("applied index %d, %v after three writes", applied, err)
	}

	// A restart resumes from the file: nothing is applied twice, and the
	// applied index and the records are still there.
	r.close()
	r = openReplicated(t, dir)
	if got, _ := r.st.FSM().AppliedIndex(); got < applied {
		t.Fatalf("after a restart the applied index is %d, was %d", got, applied)
	}
	list, err := r.st.ListTenants("", 10)
	if err != nil || len(list) != 2 {
		t.Fatalf("after a restart: %d tenants (%v), want 2", len(list), err)
	}
	if err := r.st.CreateTenant(ctx, tenantNamed("initech"), nil); err != nil {
		t.Fatal(err)
	}

	// A saved snapshot restored into a fresh cluster brings the records.
	var saved bytes.Buffer
	if _, err := r.node.SnapshotSave(ctx, &saved); err != nil {
		t.Fatal(err)
	}
	fresh := openReplicated(t, t.TempDir())
	if err := fresh.st.CreateTenant(ctx, tenantNamed("only-in-fresh"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.node.SnapshotRestore(ctx, &saved); err != nil {
		t.Fatal(err)
	}
	list, err = fresh.st.ListTenants("", 10)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tn := range list {
		names = append(names, tn.GetId())
	}
	if len(names) != 3 || names[0] != "acme" || names[1] != "globex" || names[2] != "initech" {
		t.Fatalf("after the restore the tenants are %v, want acme globex initech", names)
	}
	if err := fresh.st.CreateTenant(ctx, tenantNamed("after-restore"), nil); err != nil {
		t.Fatalf("a write after the restore: %v", err)
	}
	if _, err := fresh.st.GetTenant("after-restore"); err != nil {
		t.Fatal(err)
	}
}

// A proposal is encoded without checking its strings (MarshalVT); the
// state machine's own encoding of the records still refuses text that is
// not UTF-8, so such a write fails on every server alike, nothing of it is
// stored, and the next write goes through.
func TestReplicatedStoreRefusesTextThatIsNotUTF8(t *testing.T) {
	ctx := context.Background()
	r := openReplicated(t, t.TempDir())
	bad := tenantNamed("acme")
	bad.DisplayName = "Acme \xff Corp"
	err := r.st.CreateTenant(ctx, bad, nil)
	if err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("creating a tenant whose name is not UTF-8 returned %v, want an error naming UTF-8", err)
	}
	if _, err := r.st.GetTenant("acme"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the refused write GetTenant returned %v, want ErrNotFound", err)
	}
	good := tenantNamed("acme")
	good.DisplayName = "Acme Corp"
	if err := r.st.CreateTenant(ctx, good, nil); err != nil {
		t.Fatalf("a valid write after the refused one: %v", err)
	}
	if got, err := r.st.GetTenant("acme"); err != nil || got.GetDisplayName() != "Acme Corp" {
		t.Fatalf("GetTenant after the valid write: %v, %v", got, err)
	}
}
