package store

import (
	"bytes"
	"container/heap"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	bolt "go.etcd.io/bbolt"
)

// dueDepth counts the due bucket's entries in memory, per subscription,
// so queue-depth metrics never scan the bucket (a backlog of a million
// pending deliveries is a normal case). A watermark second splits the
// entries: those due before it are counted per subscription in due, the
// others per (subscription, second) in later, and moving the watermark
// forward moves whole seconds from later to due. It is loaded once at
// Open, before any write; after that every committed write that adds or
// removes a due entry adjusts it, from the transaction's OnCommit hook, so
// the counts follow the commits in order and never count a write that
// was rolled back.
type dueDepth struct {
	mu     sync.Mutex
	mark   int64 // unix second; entries due before it are in due
	due    map[ids.ID]int
	later  map[dueSecond]int
	order  secondHeap // the keys of later, earliest second first
	nLater int
	// laterBy counts later's entries per subscription.
	laterBy map[ids.ID]int
}

type dueSecond struct {
	sub ids.ID
	sec int64
}

func newDueDepth(now time.Time) *dueDepth {
	return &dueDepth{mark: now.Unix() + 1, due: map[ids.ID]int{}, later: map[dueSecond]int{}, laterBy: map[ids.ID]int{}}
}

// load counts the due bucket; called from Open before the committer runs.
func (d *dueDepth) load(tx *bolt.Tx) error {
	c := tx.Bucket(bucketDue).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		e, err := decodeDue(k)
		if err != nil {
			return err
		}
		d.add(e.SubID, e.At.UnixNano(), 1)
	}
	return nil
}

// reload counts the due bucket again, after the committer reopened the
// file (writable.go); no write runs meanwhile.
func (d *dueDepth) reload(tx *bolt.Tx) error {
	fresh := newDueDepth(time.Now())
	if err := fresh.load(tx); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mark, d.due, d.later, d.order, d.nLater, d.laterBy = fresh.mark, fresh.due, fresh.later, fresh.order, fresh.nLater, fresh.laterBy
	return nil
}

// track adjusts the counts by n (+1 put, -1 delete) once tx commits.
func (d *dueDepth) track(tx *bolt.Tx, sub ids.ID, unixNanos int64, n int) {
	tx.OnCommit(func() {
		d.mu.Lock()
		d.add(sub, unixNanos, n)
		d.mu.Unlock()
	})
}

func (d *dueDepth) add(sub ids.ID, unixNanos int64, n int) {
	sec := unixNanos / 1e9
	if unixNanos < 0 && unixNanos%1e9 != 0 {
		sec--
	}
	if sec < d.mark {
		d.due[sub] += n
		if d.due[sub] <= 0 {
			delete(d.due, sub)
		}
		return
	}
	k := dueSecond{sub: sub, sec: sec}
	c, ok := d.later[k]
	if !ok {
		heap.Push(&d.order, k)
	}
	d.later[k] = c + n
	d.nLater += n
	d.addLaterBy(sub, n)
}

func (d *dueDepth) addLaterBy(sub ids.ID, n int) {
	d.laterBy[sub] += n
	if d.laterBy[sub] <= 0 {
		delete(d.laterBy, sub)
	}
}

// advance moves the watermark past now's second: what is due by the end of
// that second counts as due.
func (d *dueDepth) advance(now time.Time) {
	mark := now.Unix() + 1
	if mark <= d.mark {
		return
	}
	d.mark = mark
	for len(d.order) > 0 && d.order[0].sec < mark {
		k := heap.Pop(&d.order).(dueSecond)
		c := d.later[k]
		delete(d.later, k)
		d.nLater -= c
		d.addLaterBy(k.sub, -c)
		if c != 0 {
			d.due[k.sub] += c
			if d.due[k.sub] <= 0 {
				delete(d.due, k.sub)
			}
		}
	}
}

// DueDepth reports the due index as of now, from counters kept in memory
// (it never reads the file): per subscription, how many pending deliveries
// are due by the end of now's second, and how many are due later (waiting
// for a retry). Deliveries of ordered groups queued behind their head are
// in neither.
func (s *Store) DueDepth(now time.Time) (due map[ids.ID]int, later int) {
	d := s.depth
	d.mu.Lock()
	defer d.mu.Unlock()
	d.advance(now)
	due = make(map[ids.ID]int, len(d.due))
	for k, v := range d.due {
		due[k] = v
	}
	return due, d.nLater
}

// DueDepthBySub is DueDepth with the deliveries waiting for a retry
// counted per subscription too.
func (s *Store) DueDepthBySub(now time.Time) (due, later map[ids.ID]int) {
	d := s.depth
	d.mu.Lock()
	defer d.mu.Unlock()
	d.advance(now)
	due = make(map[ids.ID]int, len(d.due))
	for k, v := range d.due {
		due[k] = v
	}
	later = make(map[ids.ID]int, len(d.laterBy))
	for k, v := range d.laterBy {
		later[k] = v
	}
	return due, later
}

// putDue writes a due entry and counts it once the write commits.
func (s *Store) putDue(b *bolt.Bucket, sub ids.ID, unixNanos int64, id ids.ID) error {
	k := dueKey(sub, unixNanos, id)
	if hasKey(b, k) {
		return nil
	}
	if err := b.Put(k, nil); err != nil {
		return err
	}
	s.depth.track(b.Tx(), sub, unixNanos, 1)
	return nil
}

// deleteDue removes a due entry and uncounts it once the write commits.
func (s *Store) deleteDue(b *bolt.Bucket, sub ids.ID, unixNanos int64, id ids.ID) error {
	k := dueKey(sub, unixNanos, id)
	if !hasKey(b, k) {
		return nil
	}
	if err := b.Delete(k); err != nil {
		return err
	}
	s.depth.track(b.Tx(), sub, unixNanos, -1)
	return nil
}

// secondHeap orders (subscription, second) keys by second.
type secondHeap []dueSecond

func (h secondHeap) Len() int           { return len(h) }
func (h secondHeap) Less(i, j int) bool { return h[i].sec < h[j].sec }
func (h secondHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *secondHeap) Push(x any)        { *h = append(*h, x.(dueSecond)) }
func (h *secondHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	*h = old[:len(old)-1]
	return k
}

// hasKey reports whether b holds k. Index entries have empty values, and
// for a key put earlier in the same transaction bbolt's Get returns nil
// for an empty value just as for a missing key; a cursor tells them apart.
func hasKey(b *bolt.Bucket, k []byte) bool {
	got, _ := b.Cursor().Seek(k)
	return bytes.Equal(got, k)
}
