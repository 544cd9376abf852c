package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// kvFSM is the test state machine: a key/value map in bbolt, committed
// without fsync like the real store will be, with the applied index in the
// same transaction. Commands are "set KEY VALUE" (the response is how many
// times KEY has been set) and "fail" (the response is an error).
type kvFSM struct {
	path string

	mu sync.RWMutex // guards db against Restore swapping it
	db *bbolt.DB

	applied  atomic.Int64 // commands applied by this process
	restores atomic.Int64
	closing  sync.WaitGroup // old files a restore replaced, closing
}

var (
	bucketKV   = []byte("kv")
	bucketSets = []byte("sets")
	bucketMeta = []byte("meta")
	keyApplied = []byte("applied")
)

var errFailCommand = errors.New("the command asked to fail")

func openKV(t testing.TB, path string) *kvFSM {
	t.Helper()
	f := &kvFSM{path: path}
	if err := f.open(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *kvFSM) open() error {
	db, err := bbolt.Open(f.path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketKV, bucketSets, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return err
	}
	f.db = db
	return nil
}

func (f *kvFSM) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.db.Close()
	f.closing.Wait()
	return err
}

func (f *kvFSM) ApplyBatch(cmds []Command) []any {
	f.mu.RLock()
	defer f.mu.RUnlock()
	resp := make([]any, len(cmds))
	err := f.db.Update(func(tx *bbolt.Tx) error {
		kv, sets := tx.Bucket(bucketKV), tx.Bucket(bucketSets)
		for i, c := range cmds {
			fields := strings.Fields(string(c.Data))
			switch {
			case len(fields) == 3 && fields[0] == "set":
				k := []byte(fields[1])
				if err := kv.Put(k, []byte(fields[2])); err != nil {
					return err
				}
				var count uint64
				if v := sets.Get(k); v != nil {
					count = binary.BigEndian.Uint64(v)
				}
				count++
				if err := sets.Put(k, binary.BigEndian.AppendUint64(nil, count)); err != nil {
					return err
				}
				resp[i] = count
			case len(fields) == 1 && fields[0] == "fail":
				resp[i] = errFailCommand
			default:
				resp[i] = fmt.Errorf("bad command %q", c.Data)
			}
		}
		return tx.Bucket(bucketMeta).Put(keyApplied, binary.BigEndian.AppendUint64(nil, cmds[len(cmds)-1].Index))
	})
	if err != nil {
		// A failed commit is fatal for a state machine (etcd does the same).
		panic(fmt.Sprintf("kvFSM: commit: %v", err))
	}
	f.applied.Add(int64(len(cmds)))
	return resp
}

func (f *kvFSM) AppliedIndex() (uint64, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var index uint64
	err := f.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyApplied); v != nil {
			index = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return index, err
}

type kvSnapshot struct{ tx *bbolt.Tx }

func (s kvSnapshot) WriteTo(w io.Writer) (int64, error) { return s.tx.WriteTo(w) }
func (s kvSnapshot) Release()                           { _ = s.tx.Rollback() }

func (f *kvFSM) Snapshot() (Snapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, err
	}
	return kvSnapshot{tx}, nil
}

func (f *kvFSM) Restore(r io.Reader) error {
	tmp := f.path + ".restore"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// As the store does: a snapshot being written out may hold a read
	// transaction on the old file until this restore returns.
	old := f.db
	f.closing.Add(1)
	go func() {
		defer f.closing.Done()
		_ = old.Close()
	}()
	if err := os.Rename(tmp, f.path); err != nil {
		return err
	}
	if err := f.open(); err != nil {
		return err
	}
	f.restores.Add(1)
	return nil
}

func (f *kvFSM) get(key string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var v []byte
	_ = f.db.View(func(tx *bbolt.Tx) error {
		v = tx.Bucket(bucketKV).Get([]byte(key))
		if v != nil {
			v = append([]byte(nil), v...)
		}
		return nil
	})
	return string(v), v != nil
}

// dump returns the whole map (to compare nodes).
func (f *kvFSM) dump() map[string]string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := map[string]string{}
	_ = f.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketKV).ForEach(func(k, v []byte) error {
			m[string(k)] = string(v)
			return nil
		})
	})
	return m
}

func setCmd(key string, value any) []byte {
	return []byte("set " + key + " " + fmt.Sprint(value))
}

func keyN(i int) string { return "k" + strconv.Itoa(i) }
