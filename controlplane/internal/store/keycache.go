package store

import (
	"sync"
	"sync/atomic"

	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
)

// The API key cache. Every API call authenticates with its key's record
// (GetAPIKey): a read transaction, a checksum and a decode per call, about
// 4% of the control plane's CPU under single-event publishes. The cache
// keeps the records read and is emptied after every write transaction that
// ran a command other than the hot path's (publishes, deliveries, stats,
// audit), which never touch a key, and whenever the file is replaced or
// reopened. A command that can change a key is thus never followed by a
// stale read: the write's caller gets its answer after the transaction,
// and so after the cache was emptied.
type keyCache struct {
	mu  sync.Mutex
	gen uint64 // bumped by every invalidation
	m   map[string]*storev1.ApiKeyRecord
	// dirty is set inside a write transaction that ran a command which may
	// change a key; the committer empties the cache once it ends.
	dirty atomic.Bool
}

// keyCacheMax bounds the cache; past it, it starts over.
const keyCacheMax = 4096

// get returns the cached record of id, or the generation a record read now
// must be put with.
func (c *keyCache) get(id string) (*storev1.ApiKeyRecord, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id], c.gen
}

// put caches rec, read at generation gen, unless the cache was emptied
// since (the read may predate the write that emptied it).
func (c *keyCache) put(id string, rec *storev1.ApiKeyRecord, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil || len(c.m) >= keyCacheMax {
		c.m = make(map[string]*storev1.ApiKeyRecord)
	}
	c.m[id] = rec
}

// invalidate empties the cache.
func (c *keyCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.m = nil
}

// afterWrite empties the cache if the write transaction just ended ran a
// command that may have changed a key.
func (c *keyCache) afterWrite() {
	if c.dirty.Swap(false) {
		c.invalidate()
	}
}

// noteCommand marks the running write transaction if cmd may change a key.
func (c *keyCache) noteCommand(cmd *storev1.Command) {
	switch cmd.GetKind().(type) {
	case *storev1.Command_PublishEvents, *storev1.Command_AddDeliveries, *storev1.Command_UpdateDeliveries,
		*storev1.Command_RecordStats, *storev1.Command_AppendAudit:
	default:
		c.dirty.Store(true)
	}
}
