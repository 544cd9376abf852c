package cluster

import (
	"context"
	"encoding/binary"
	"io"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// The control plane's write pattern: many small commands (a published
// event with its metadata is a few hundred bytes), appended in batches by
// the leader (BatchApplyCh, up to MaxAppendEntries per append) with one
// fsync per append. BenchmarkLogStore compares raft-wal and raft-boltdb/v2
// on it: raw appends of 64-entry batches, and end to end through a
// one-node cluster, with one writer (ns/op is the commit latency) and with
// 32 concurrent writers (entries/s is the throughput). Run:
//
//	go test ./controlplane/internal/cluster -run '^$' -bench LogStore -benchtime 3s
//
// and read entries/s. raft-wal is the default (logstore.go says why).
const benchEntrySize = 256

func BenchmarkLogStore(b *testing.B) {
	for _, kind := range []string{"wal", "bolt"} {
		b.Run(kind+"/append-batch-64", func(b *testing.B) { benchAppend(b, kind, 64) })
		b.Run(kind+"/apply-1-writer", func(b *testing.B) { benchApply(b, kind, 1) })
		b.Run(kind+"/apply-32-writers", func(b *testing.B) { benchApply(b, kind, 32) })
	}
}

// benchLogStores are the candidates: nil is the default, raft-wal.
var benchLogStores = map[string]func(dir string) (logStore, error){
	"wal": nil,
	"bolt": func(dir string) (logStore, error) {
		return raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, boltLogFileName),
			BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
	},
}

func benchAppend(b *testing.B, kind string, batch int) {
	s, err := openStores(b.TempDir(), benchLogStores[kind], 0, 1, newHCLog(testLogger(b), "bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, benchEntrySize)
	logs := make([]*raft.Log, batch)
	index := uint64(0)
	b.SetBytes(int64(batch * benchEntrySize))
	b.ResetTimer()
	for b.Loop() {
		for i := range logs {
			index++
			logs[i] = &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
		}
		if err := s.logs.StoreLogs(logs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(index)/b.Elapsed().Seconds(), "entries/s")
}

func benchApply(b *testing.B, kind string, writers int) {
	fsm := &countFSM{}
	n, err := New(Config{
		NodeID:   "bench",
		DataDir:  filepath.Join(b.TempDir(), "bench"),
		BindAddr: "127.0.0.1:0",
		Logger:   testLogger(b),
		logStore: benchLogStores[kind],
	}, fsm)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			b.Fatal("no leader")
		}
		time.Sleep(5 * time.Millisecond) // polling for leadership, bounded
	}
	data := make([]byte, benchEntrySize)
	b.SetBytes(benchEntrySize)
	b.ResetTimer()
	start := fsm.applied.Load()
	if writers == 1 {
		for b.Loop() {
			if _, err := n.Apply(context.Background(), data); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := n.Apply(context.Background(), data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportMetric(float64(fsm.applied.Load()-start)/b.Elapsed().Seconds(), "entries/s")
}

// countFSM counts commands in memory: the benchmark measures the log.
type countFSM struct{ applied atomic.Int64 }

func (f *countFSM) ApplyBatch(cmds []Command) []any {
	f.applied.Add(int64(len(cmds)))
	return make([]any, len(cmds))
}

func (f *countFSM) AppliedIndex() (uint64, error) { return 0, nil }

func (f *countFSM) Snapshot() (Snapshot, error) { return countSnapshot(f.applied.Load()), nil }

func (f *countFSM) Restore(r io.Reader) error {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	f.applied.Store(int64(binary.BigEndian.Uint64(b[:])))
	return nil
}

type countSnapshot int64

func (c countSnapshot) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(binary.BigEndian.AppendUint64(nil, uint64(c)))
	return int64(n), err
}

func (countSnapshot) Release() {}
