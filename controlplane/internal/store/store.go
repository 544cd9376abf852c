// Package store keeps all durable control-plane state in one bbolt file.
//
// It owns the bucket layout, key encoding and the group-commit writer; it
// knows nothing about gRPC, agents or scheduling. Every write goes through
// one committer goroutine that packs the writes queued while the previous
// commit was syncing into the next transaction, so concurrent publishers and
// result reports share fsyncs. Callers return only after their write is on
// disk. Read transactions are short; slices read from bbolt are copied
// before a transaction ends.
//
// Bucket layout (keys big-endian; values are protobuf unless noted):
//
//	meta                 "schema" -> uint32 version
//	tenants              tenant id -> hookwire.v1.Tenant
//	apikeys              key id -> hookwire.store.v1.ApiKeyRecord
//	subscriptions        tenant 0x00 sub ulid(16) -> hookwire.store.v1.SubscriptionRecord
//	                     (signing keys only sealed under the master key; see
//	                     catalog/keys.go and package secrets)
//	events               event ulid(16) -> hookwire.v1.Event
//	deliveries           delivery ulid(16) -> hookwire.v1.Delivery
//	deliveries_by_tenant tenant 0x00 delivery ulid(16) -> empty
//	deliveries_by_event  event ulid(16) delivery ulid(16) -> empty
//	deliveries_by_sub    sub ulid(16) delivery ulid(16) -> empty
//	attempts             delivery ulid(16) attempt number(u32) -> hookwire.v1.Attempt
//	due                  sub ulid(16) due unix nanos(u64) delivery ulid(16) -> empty
//	ordered              sub ulid(16) key hash(8) delivery ulid(16) -> empty
//	idempotency          tenant 0x00 idempotency key -> event ulid(16)
//	audit, audit_by_time the audit log (see audit.go)
//	event_traces         event ulid(16) -> hookwire.store.v1.TraceContext
//	                     (only events published while tracing was on)
//	tenant_purges        tenant id -> hookwire.store.v1.TenantPurge: the
//	                     tombstone of a deleted tenant whose records are
//	                     still being purged (see tenantpurge.go)
//
// The due bucket holds the pending deliveries that may be attempted, per
// subscription in the order their next attempt is due; it is the
// scheduler's durable queue. For ordered subscriptions only the head of
// each ordering-key group is in it; the others wait in the ordered bucket
// (which holds every pending delivery of an ordered subscription, in
// publish order) and are promoted when the head is done.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const schemaVersion = 1

var (
	bucketMeta               = []byte("meta")
	bucketTenants            = []byte("tenants")
	bucketAPIKeys            = []byte("apikeys")
	bucketSubscriptions      = []byte("subscriptions")
	bucketEvents             = []byte("events")
	bucketDeliveries         = []byte("deliveries")
	bucketDeliveriesByTenant = []byte("deliveries_by_tenant")
	bucketDeliveriesByEvent  = []byte("deliveries_by_event")
	bucketDeliveriesBySub    = []byte("deliveries_by_sub")
	bucketAttempts           = []byte("attempts")
	bucketDue                = []byte("due")
	bucketOrdered            = []byte("ordered")
	bucketIdempotency        = []byte("idempotency")
	bucketEventTraces        = []byte("event_traces")
	bucketTenantPurges       = []byte("tenant_purges")

	allBuckets = [][]byte{
		bucketMeta, bucketTenants, bucketAPIKeys, bucketSubscriptions,
		bucketEvents, bucketDeliveries, bucketDeliveriesByTenant,
		bucketDeliveriesByEvent, bucketDeliveriesBySub, bucketAttempts, bucketDue,
		bucketOrdered, bucketIdempotency, bucketEventTraces, bucketTenantPurges,
	}
)

// Errors callers map to API codes.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrInUse means another process holds the data directory.
	ErrInUse = errors.New("data directory in use")
	// ErrBroken means a commit failed; the store refuses further writes
	// because it can no longer promise what is on disk.
	ErrBroken = errors.New("store failed a commit and refuses writes")
)

// Options tune the store.
type Options struct {
	// OpenTimeout bounds the wait for the file lock. Default 1s.
	OpenTimeout time.Duration
	// MaxBatch bounds how many writes share one commit. Default 4096.
	MaxBatch int
	// NoSync skips fsync; only for tests that measure nothing durable.
	NoSync bool
	// OnCommit, if set, is told the size and duration of every group
	// commit (metrics).
	OnCommit func(writes int, took time.Duration)
	Logger   *slog.Logger
}

// Store is the control plane's durable state.
type Store struct {
	db       *bolt.DB
	path     string
	log      *slog.Logger
	writes   chan *write
	quit     chan struct{}
	done     chan struct{}
	max      int
	stats    commitStats
	onCommit func(writes int, took time.Duration)
	depth    *dueDepth // the due bucket's counts (duedepth.go)
	// unmapDone is closed when unmapLoop (mapping.go) has stopped.
	unmapDone chan struct{}
}

// FileName is the database file inside the data directory.
const FileName = "hookwire.db"

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        opts.OpenTimeout,
		NoSync:         opts.NoSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is locked by another hookwire process; stop it or choose another --data-dir", ErrInUse, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get([]byte("schema")); v != nil {
			if got := binary.BigEndian.Uint32(v); got != schemaVersion {
				return fmt.Errorf("data directory has schema version %d, this hookwire understands %d", got, schemaVersion)
			}
			return nil
		}
		return meta.Put([]byte("schema"), binary.BigEndian.AppendUint32(nil, schemaVersion))
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("prepare store %s: %w", path, err)
	}
	depth := newDueDepth(time.Now())
	if err := db.View(func(tx *bolt.Tx) error { depth.load(tx); return nil }); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("count due deliveries in %s: %w", path, err)
	}
	s := &Store{
		depth:    depth,
		db:       db,
		path:     path,
		log:      opts.Logger,
		writes:   make(chan *write, opts.MaxBatch),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		max:      opts.MaxBatch,
		onCommit: opts.OnCommit,
	}
	go s.commitLoop()
	s.unmapDone = make(chan struct{})
	go s.unmapLoop()
	return s, nil
}

// Close stops the committer after the writes already queued and closes the
// file.
func (s *Store) Close() error {
	close(s.quit)
	<-s.done
	<-s.unmapDone
	return s.db.Close()
}

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// Size reports the database file's size in bytes.
func (s *Store) Size() int64 {
	var n int64
	_ = s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// view runs a read-only transaction.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	return s.db.View(fn)
}

// write is one caller's piece of a group commit.
type write struct {
	fn   func(tx *bolt.Tx) error
	done chan error
}

// CommitStats describe the group-commit writer.
type CommitStats struct {
	Commits, Writes uint64
}

// update queues fn for the next group commit and waits until it is durable.
// fn must only touch the transaction: it may run more than once if a write
// sharing its batch fails.
func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	w := &write{fn: withAuditWrite(ctx, fn), done: make(chan error, 1)}
	select {
	case s.writes <- w:
	case <-s.quit:
		return errors.New("store is closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the write will be committed or fail; wait for it even if
	// ctx ends, so a caller never reports failure for a durable write.
	return <-w.done
}

func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*write, 0, s.max)
	broken := false
	for {
		batch = batch[:0]
		select {
		case w := <-s.writes:
			batch = append(batch, w)
		case <-s.quit:
			// Drain what is queued, then stop.
			for {
				select {
				case w := <-s.writes:
					batch = append(batch, w)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 && !broken {
				s.commit(batch)
			}
			for _, w := range batch {
				select {
				case w.done <- errors.New("store is closed"):
				default:
				}
			}
			return
		}
	fill:
		for len(batch) < s.max {
			select {
			case w := <-s.writes:
				batch = append(batch, w)
			default:
				break fill
			}
		}
		if broken {
			for _, w := range batch {
				w.done <- ErrBroken
			}
			continue
		}
		if err := s.commit(batch); err != nil {
			broken = true
			s.log.Error("store commit failed; refusing further writes", "path", s.path, "err", err)
		}
	}
}

// commit runs the batch in one transaction. A write whose fn fails gets its
// error and the rest are retried without it; a failed commit fails all.
func (s *Store) commit(batch []*write) error {
	pending := batch
	started := time.Now()
	for len(pending) > 0 {
		failed := -1
		var failErr error
		err := s.db.Update(func(tx *bolt.Tx) error {
			setFillPercent(tx) // mapping.go
			for i, w := range pending {
				if err := w.fn(tx); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			pending[failed].done <- failErr
			pending = append(pending[:failed:failed], pending[failed+1:]...)
			continue
		}
		if err != nil {
			for _, w := range pending {
				w.done <- fmt.Errorf("%w: %v", ErrBroken, err)
			}
			return err
		}
		s.stats.record(len(pending))
		if s.onCommit != nil {
			s.onCommit(len(pending), time.Since(started))
		}
		for _, w := range pending {
			w.done <- nil
		}
		return nil
	}
	return nil
}
