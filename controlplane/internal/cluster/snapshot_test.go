package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestSnapshotSaveAndRestoreIntoAFreshCluster: operator snapshot save on a
// live cluster, restore into another one: every node gets the state, and
// writes and restarts work afterwards.
func TestSnapshotSaveAndRestoreIntoAFreshCluster(t *testing.T) {
	c := newTestCluster(t)
	src := c.add("src", nil)
	c.waitLeader(src)
	want := map[string]string{}
	for i := range 100 {
		apply(t, src, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var archive bytes.Buffer
	info, err := src.node.SnapshotSave(ctx, &archive)
	if err != nil {
		t.Fatal(err)
	}
	if info.Index < 100 || info.Size == 0 || info.NodeID != "src" {
		t.Fatalf("snapshot info %+v", info)
	}
	// Nothing applied since: saving again reuses the stored snapshot.
	var again bytes.Buffer
	if info2, err := src.node.SnapshotSave(ctx, &again); err != nil || info2.Index != info.Index {
		t.Fatalf("second save: %+v, %v", info2, err)
	}

	dst := newTestCluster(t)
	nodes := dst.startCluster(3, nil)
	leader := dst.waitLeader(nodes...)
	apply(t, leader, setCmd("old", 1))
	waitConverged(t, map[string]string{"old": "1"}, nodes...)

	corrupt := bytes.Clone(archive.Bytes())
	corrupt[len(corrupt)/2] ^= 0xff
	if _, err := leader.node.SnapshotRestore(ctx, bytes.NewReader(corrupt)); err == nil {
		t.Fatal("a corrupt archive was restored")
	}
	if _, err := leader.node.SnapshotRestore(ctx, strings.NewReader("not a snapshot")); err == nil {
		t.Fatal("garbage was restored")
	}
	waitConverged(t, map[string]string{"old": "1"}, nodes...)

	if _, err := leader.node.SnapshotRestore(ctx, bytes.NewReader(archive.Bytes())); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, want, nodes...)
	if got := apply(t, leader, setCmd(keyN(0), "after")); got != uint64(2) {
		t.Fatalf("set count after restore = %v, want 2 (the restored count plus one)", got)
	}
	want[keyN(0)] = "after"
	waitConverged(t, want, nodes...)

	// The restored state's indexes come from another log, so a restart
	// restores the snapshot again and replays what followed it.
	leader.restart()
	if !leader.node.restoredOnStart {
		t.Fatal("a user-restored snapshot was not restored on start")
	}
	leader = dst.waitLeader(nodes...)
	apply(t, leader, setCmd("later", 1))
	want["later"] = "1"
	waitConverged(t, want, nodes...)
}

// TestRestoreStateMigratesAnOldDatabase: a database from before
// clustering is handed to a fresh one-node cluster with RestoreState; a
// server that joins later receives it too.
func TestRestoreStateMigratesAnOldDatabase(t *testing.T) {
	legacyPath := filepath.Join(t.TempDir(), "legacy.db")
	legacy := openKV(t, legacyPath)
	want := map[string]string{}
	err := legacy.db.Update(func(tx *bbolt.Tx) error {
		for i := range 30 {
			want[keyN(i)] = fmt.Sprint(i)
			if err := tx.Bucket(bucketKV).Put([]byte(keyN(i)), []byte(fmt.Sprint(i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := legacy.Close(); err != nil {
		t.Fatal(err)
	}

	c := newTestCluster(t)
	first := c.add("n1", nil)
	c.waitLeader(first)
	f, err := os.Open(legacyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.node.RestoreState(ctx, f); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, want, first)
	apply(t, first, setCmd("new", 1))
	want["new"] = "1"

	second := c.add("n2", func(cfg *Config) { cfg.Join = []string{first.node.Addr()} })
	waitConverged(t, want, first, second)
	if second.fsm.restores.Load() == 0 {
		t.Fatal("the joining server did not receive the migrated state as a snapshot")
	}
}

// TestFSMAheadOfEmptyRaftIsRefused: an FSM with applied entries and an
// empty raft directory would silently skip new commands.
func TestFSMAheadOfEmptyRaftIsRefused(t *testing.T) {
	dir := t.TempDir()
	fsm := openKV(t, filepath.Join(dir, "fsm.db"))
	defer fsm.Close()
	fsm.ApplyBatch([]Command{{Index: 7, Term: 1, Data: setCmd("a", 1)}})
	n, err := New(Config{NodeID: "a", DataDir: dir, BindAddr: "127.0.0.1:0"}, fsm)
	if err == nil {
		n.Shutdown()
		t.Fatal("New accepted an FSM ahead of an empty raft log")
	}
	if !strings.Contains(err.Error(), "RestoreState") {
		t.Fatalf("error %q does not say what to do", err)
	}
}
