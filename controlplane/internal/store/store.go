// Package store keeps all durable control-plane state in one bbolt file.
//
// It owns the bucket layout, key and value encoding, the group-commit writer
// and the file's safety (validation at open, checksums on records, recovery
// from failed commits); it knows nothing about gRPC, agents or scheduling.
// Every state change is a command (hookwire.store.v1.Command, apply.go):
// the write methods read what they need, decide, and build commands that
// carry every value needing the clock or randomness; applyCommand applies
// them deterministically, and is the only code that changes records.
// Every write goes through one committer goroutine that packs the writes
// queued while the previous commit was syncing into the next transaction, so
// concurrent publishers and result reports share fsyncs. Callers return
// only after their write is on disk. Read transactions are short; slices
// read from bbolt are copied before a transaction ends.
//
// Bucket layout (keys big-endian; values are protobuf unless noted, and
// every value of a record bucket is sealed with a checksum, see value.go):
//
//	meta                 "schema" -> uint32 version, "store_id" -> the
//	                     store's id (also in the data directory's marker
//	                     file, see marker.go); neither sealed
//	tenants              tenant id -> hookwire.v1.Tenant
//	apikeys              key id -> hookwire.store.v1.ApiKeyRecord
//	subscriptions        tenant 0x00 sub ulid(16) -> hookwire.store.v1.SubscriptionRecord
//	                     (signing keys only sealed under the master key; see
//	                     catalog/keys.go and package secrets)
//	events               event ulid(16) -> hookwire.v1.Event (every tenant's;
//	                     a tenant's list walks it, see events.go)
//	deliveries           delivery ulid(16) -> hookwire.v1.Delivery
//	deliveries_by_tenant tenant 0x00 delivery ulid(16) -> empty
//	deliveries_by_event  event ulid(16) delivery ulid(16) -> empty
//	deliveries_by_sub    sub ulid(16) delivery ulid(16) -> empty
//	attempts             delivery ulid(16) attempt number(u32) -> hookwire.v1.Attempt
//	due                  sub ulid(16) due unix nanos(u64) delivery ulid(16) -> empty
//	ordered              sub ulid(16) key hash(8) delivery ulid(16) -> empty
//	idempotency          tenant 0x00 idempotency key -> event ulid(16)
//	audit, audit_by_time the audit log (see audit.go)
//	join_tokens, join_token_hashes  agent join tokens (see jointokens.go)
//	event_types, portal_settings, portal_sessions  the tenant portal (see
//	                     portal.go)
//	event_traces         event ulid(16) -> hookwire.store.v1.TraceContext
//	                     (only events published while tracing was on)
//	tenant_purges        tenant id -> hookwire.store.v1.TenantPurge: the
//	                     tombstone of a deleted tenant whose records are
//	                     still being purged (see tenantpurge.go)
//	delivery_stats       tenant 0x00 sub ulid(16) minute(u32) ->
//	                     hookwire.store.v1.StatsMinute: per-minute delivery
//	                     statistics (see deliverystats.go)
//
// The due bucket holds the pending deliveries that may be attempted, per
// subscription in the order their next attempt is due; it is the
// scheduler's durable queue. For ordered subscriptions only the head of
// each ordering-key group is in it; the others wait in the ordered bucket
// (which holds every pending delivery of an ordered subscription, in
// publish order) and are promoted when the head is done.
//
// Index buckets (empty values) carry no checksum: an index entry is only
// a key, and `hookwire store check` verifies each against its record.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// schemaVersion 2 seals every record value with a checksum (value.go);
// version 1 stores are migrated on open (migrate.go).
const schemaVersion = 2

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

// Meta bucket keys.
var (
	metaSchema  = []byte("schema")
	metaStoreID = []byte("store_id")
	// metaWriteProbe is written and removed by the commits that test
	// whether a store that failed a commit can write again (writable.go).
	metaWriteProbe = []byte("write_probe")
	// metaMigration records how far an unfinished schema migration got
	// (migrate.go).
	metaMigration = []byte("migration")
)

// Errors callers map to API codes.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrInUse means another process holds the data directory.
	ErrInUse = errors.New("data directory in use")
	// ErrClosed is returned by calls made after Close; it wraps bbolt's
	// ErrDatabaseNotOpen.
	ErrClosed = fmt.Errorf("the store is closed: %w", berrors.ErrDatabaseNotOpen)
)

// Options tune the store.
type Options struct {
	// OpenTimeout bounds the wait for the file lock. Default 1s.
	OpenTimeout time.Duration
	// MaxBatch bounds how many writes share one commit. Default 4096.
	MaxBatch int
	// NoSync skips fsync; only for tests that measure nothing durable.
	NoSync bool
	// Replicated makes the store the state machine of a Raft node
	// (fsm.go): Apply proposes through SetProposer's Proposer, the node
	// applies committed entries through FSM, and commits skip fsync (the
	// raft log is the durable record).
	Replicated bool
	// AllowNewStore lets Open create a new, empty store in a data
	// directory whose marker shows it held one before but whose database
	// file is missing or empty (see marker.go). Without it Open refuses.
	AllowNewStore bool
	// RetryMin and RetryMax bound the wait between attempts to write
	// again after a failed commit (doubling from RetryMin). Defaults 50ms
	// and 5s.
	RetryMin, RetryMax time.Duration
	// OnCommit, if set, is told the size and duration of every group
	// commit (metrics).
	OnCommit func(writes int, took time.Duration)
	// OnPropose, if set, is told how long each successful write of a
	// replicated store took from proposal to applied (metrics).
	OnPropose func(took time.Duration)
	Logger    *slog.Logger

	// faults injects commit failures (tests only; see writable.go).
	faults func(faultPoint) error
}

// Store is the control plane's durable state.
type Store struct {
	// mu guards db: read transactions hold it shared, the committer takes
	// it exclusively to close and reopen the file after a failed commit.
	// db is nil while the file could not be reopened, and after Close.
	mu   sync.RWMutex
	db   *bolt.DB
	dir  string
	path string
	opts Options
	log  *slog.Logger
	lock *dirLock // held from Open to Close (marker.go)

	// sendMu orders enqueue's queueing against Close: once closed is set
	// no write enters the queue, so none is left behind by the committer.
	sendMu sync.RWMutex
	closed bool

	writes   chan *write
	quit     chan struct{}
	done     chan struct{}
	max      int
	stats    commitStats
	onCommit func(writes int, took time.Duration)
	depth    *dueDepth // the due bucket's counts (duedepth.go)
	keys     keyCache  // API key records read (keycache.go)
	// unmapDone is closed when unmapLoop (mapping.go) has stopped.
	unmapDone chan struct{}

	state    writeState // writable.go
	recovery recoveryState
	// finalErr is the outcome of the last commit made by Close.
	finalErr error
	// storeID names this store (marker.go).
	storeID string

	// Replicated stores (fsm.go).
	proposer  Proposer
	diskWatch atomic.Bool // diskguard.go
	aborted   chan struct{}
	abortOnce sync.Once
}

// FileName is the database file inside the data directory.
const FileName = "hookwire.db"

// Open opens (creating if needed) the store in dir. It refuses a file that
// is damaged (ErrCorrupt) and a missing or empty file in a directory that
// held a store before (ErrMissingStore, unless Options.AllowNewStore).
func Open(dir string, opts Options) (*Store, error) {
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 50 * time.Millisecond
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(5*time.Second, opts.RetryMin)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", dir, err)
	}
	lock, err := lockDir(dir, opts.OpenTimeout)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir:      dir,
		path:     filepath.Join(dir, FileName),
		opts:     opts,
		log:      opts.Logger,
		lock:     lock,
		writes:   make(chan *write, opts.MaxBatch),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		max:      opts.MaxBatch,
		onCommit: opts.OnCommit,
		aborted:  make(chan struct{}),
	}
	if opts.Replicated {
		s.opts.NoSync = true
	}
	s.state.init()
	if err := s.open(); err != nil {
		lock.release()
		return nil, err
	}
	go s.commitLoop()
	s.unmapDone = make(chan struct{})
	go s.unmapLoop()
	return s, nil
}

// open checks the data directory and the file, opens it, migrates an older
// schema and loads the due counts.
func (s *Store) open() error {
	marker, err := readMarker(s.dir)
	if err != nil {
		return err
	}
	fresh, err := s.checkPresence(marker)
	if err != nil {
		return err
	}
	if !fresh {
		// Validate the whole file before bbolt reads it: bbolt trusts its
		// pages and panics, or faults on a truncated mapping, otherwise.
		if err := verifyFile(s.path); err != nil {
			return fmt.Errorf("open store %s: %w", s.path, err)
		}
	}
	db, err := s.openBolt()
	if err != nil {
		return err
	}
	if err := s.prepare(db, fresh); err != nil {
		_ = db.Close()
		return fmt.Errorf("prepare store %s: %w", s.path, err)
	}
	if err := s.syncMarker(marker, fresh); err != nil {
		_ = db.Close()
		return err
	}
	depth := newDueDepth(time.Now())
	if err := safeView(db, func(tx *bolt.Tx) error { return depth.load(tx) }); err != nil {
		_ = db.Close()
		return fmt.Errorf("count due deliveries in %s: %w", s.path, err)
	}
	s.depth = depth
	s.db = db
	s.keys.invalidate()
	return nil
}

// openBolt opens the file with bbolt after the cheap checks of its meta
// pages and size (verify.go), converting a fault into an error.
func (s *Store) openBolt() (db *bolt.DB, err error) {
	if info, statErr := os.Stat(s.path); statErr == nil && info.Size() > 0 {
		if _, err := readMeta(s.path); err != nil {
			return nil, fmt.Errorf("open store %s: %w", s.path, err)
		}
	}
	err = catchFault(func() error {
		var err error
		db, err = bolt.Open(s.path, 0o600, &bolt.Options{
			Timeout:        s.opts.OpenTimeout,
			NoSync:         s.opts.NoSync,
			NoFreelistSync: true,
			FreelistType:   bolt.FreelistMapType,
		})
		return err
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is locked by another hookwire process; stop it or choose another --data-dir", ErrInUse, s.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", s.path, err)
	}
	return db, nil
}

// prepare creates the buckets, checks the schema version (migrating a
// version 1 store) and gives a new store its id.
func (s *Store) prepare(db *bolt.DB, fresh bool) error {
	var version uint32
	migrating := false
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(metaSchema)
		switch {
		case v == nil && !fresh && hasRecords(tx):
			// Written by a build that did not record the schema: none did.
			return errors.New("the store has records but no schema version; it was not written by hookwire")
		case v == nil:
			version = schemaVersion
			if err := meta.Put(metaSchema, binary.BigEndian.AppendUint32(nil, schemaVersion)); err != nil {
				return err
			}
		case len(v) != 4:
			return fmt.Errorf("%w: the schema version is %d bytes long, want 4", ErrCorrupt, len(v))
		default:
			version = binary.BigEndian.Uint32(v)
		}
		if meta.Get(metaStoreID) == nil {
			if err := meta.Put(metaStoreID, []byte(newStoreID())); err != nil {
				return err
			}
		}
		s.storeID = string(meta.Get(metaStoreID))
		migrating = meta.Get(metaMigration) != nil
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case version == schemaVersion && migrating:
		s.log.Info("store: resuming an interrupted migration to schema version 2", "path", s.path)
		_, err := s.resumeMigration(db)
		return err
	case version == schemaVersion:
		return nil
	case version == 1:
		return s.migrateV1(db)
	default:
		return fmt.Errorf("data directory has schema version %d, this hookwire understands %d (and migrates 1)", version, schemaVersion)
	}
}

// Empty reports whether the store holds no record (only its meta data).
func (s *Store) Empty() bool {
	empty := true
	_ = s.view(func(tx *bolt.Tx) error { empty = !hasRecords(tx); return nil })
	return empty
}

// hasRecords reports whether any bucket but meta holds a key.
func hasRecords(tx *bolt.Tx) bool {
	for _, name := range allBuckets[1:] {
		if b := tx.Bucket(name); b != nil {
			if k, _ := b.Cursor().First(); k != nil {
				return true
			}
		}
	}
	return false
}

// Close stops the committer after the writes already queued, closes the
// file and reports what failed on the way: the last commit's error (those
// writes' callers were told too) or the file's.
func (s *Store) Close() error {
	s.sendMu.Lock()
	if s.closed {
		s.sendMu.Unlock()
		return nil
	}
	s.closed = true
	s.sendMu.Unlock()
	close(s.quit)
	<-s.done
	<-s.unmapDone
	s.mu.Lock()
	var err error
	if s.db != nil {
		if err = s.db.Close(); err != nil {
			err = fmt.Errorf("close store %s: %w", s.path, err)
		}
		s.db = nil
	}
	s.mu.Unlock()
	s.lock.release()
	s.state.set(false, ErrClosed)
	return errors.Join(s.finalErr, err)
}

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// ID is the store's id (also in the data directory's marker file).
func (s *Store) ID() string { return s.storeID }

// Size reports the database file's size in bytes (0 when it cannot be
// read).
func (s *Store) Size() int64 {
	var n int64
	_ = s.view(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// view runs a read-only transaction. A fault or a bbolt panic while
// reading (a damaged page) becomes an error wrapping ErrCorrupt.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return s.unusable()
	}
	return safeView(s.db, fn)
}

// unusable is the error of a call made while the file is not open.
func (s *Store) unusable() error {
	if ok, reason, _ := s.Writable(); !ok && !errors.Is(reason, ErrClosed) {
		return unavailable(reason)
	}
	return ErrClosed
}

// write is one caller's piece of a group commit.
type write struct {
	fn   func(tx *bolt.Tx) error
	done chan error
}

// CommitStats describe the group-commit writer.
type CommitStats struct {
	Commits, Writes uint64
	// Failures counts failed commits, including failed attempts to write
	// again afterwards.
	Failures uint64
}

// enqueue queues fn for the next group commit and waits until it is
// durable. Apply is its one caller outside tests: fn applies commands.
// fn must only touch the transaction: it may run more than once if a
// write sharing its batch fails. While the store cannot write, enqueue
// fails at once with an error wrapping ErrUnavailable; after Close, with
// ErrClosed.
func (s *Store) enqueue(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	w := &write{fn: fn, done: make(chan error, 1)}
	s.sendMu.RLock()
	if s.closed {
		s.sendMu.RUnlock()
		return ErrClosed
	}
	if !s.state.ok.Load() { // the fast path takes no lock
		if ok, reason, _ := s.Writable(); !ok {
			s.sendMu.RUnlock()
			return unavailable(reason)
		}
	}
	select {
	case s.writes <- w:
	case <-ctx.Done():
		s.sendMu.RUnlock()
		return ctx.Err()
	}
	s.sendMu.RUnlock()
	// Once queued, the write will be committed or fail; wait for it even if
	// ctx ends, so a caller never reports failure for a durable write.
	return <-w.done
}

func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*write, 0, s.max)
	for {
		batch = batch[:0]
		select {
		case w := <-s.writes:
			batch = append(batch, w)
		case <-s.quit:
			s.finish(batch)
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
		if f := s.commit(batch); f != nil {
			if !s.recoverFrom(f) {
				s.finish(batch[:0])
				return
			}
		}
	}
}

// finish commits what is still queued at Close. No write can be queued
// any more (enqueue checks closed under sendMu before queueing).
func (s *Store) finish(batch []*write) {
	for {
		select {
		case w := <-s.writes:
			batch = append(batch, w)
			continue
		default:
		}
		break
	}
	if ok, reason, _ := s.Writable(); !ok || s.recovery.needReopen {
		if reason == nil {
			reason = errors.New("the last commit failed")
		}
		for _, w := range batch {
			w.done <- unavailable(reason)
		}
		s.finalErr = fmt.Errorf("store %s was closed while it could not write (%d queued writes not committed): %w", s.path, len(batch), reason)
		return
	}
	if len(batch) == 0 {
		return
	}
	if f := s.commit(batch); f != nil {
		s.stats.failures.Add(1)
		s.settle(f)
		s.finalErr = fmt.Errorf("store %s: the last commit at shutdown failed: %w", s.path, f.cause)
		s.log.Error("store: the last commit at shutdown failed", "path", s.path, "err", f.cause)
	}
}

// commitFailure is a batch whose commit failed: its writes wait for their
// outcome (settle in writable.go).
type commitFailure struct {
	pending []*write
	// txid is the failed transaction's id: if the reopened file shows it,
	// the commit reached the file although it reported an error.
	txid  int
	cause error
}

// commit runs the batch in one transaction. A write whose fn fails gets its
// error and the rest are retried without it. A failed commit is returned
// with the writes still waiting; the caller settles them.
func (s *Store) commit(batch []*write) *commitFailure {
	pending := batch
	started := time.Now()
	for len(pending) > 0 {
		failed := -1
		var failErr error
		txid := 0
		err := s.runUpdate(faultBatch, func(tx *bolt.Tx) error {
			txid = tx.ID()
			setFillPercent(tx) // mapping.go
			for i, w := range pending {
				if err := w.fn(tx); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if failed >= 0 && errors.Is(err, failErr) {
			pending[failed].done <- failErr
			pending = append(pending[:failed:failed], pending[failed+1:]...)
			continue
		}
		if err != nil {
			return &commitFailure{pending: pending, txid: txid, cause: err}
		}
		s.acknowledge(pending, time.Since(started))
		return nil
	}
	return nil
}

// acknowledge tells the writes of a durable commit that they succeeded.
func (s *Store) acknowledge(batch []*write, took time.Duration) {
	s.stats.record(len(batch))
	if s.onCommit != nil {
		s.onCommit(len(batch), took)
	}
	for _, w := range batch {
		w.done <- nil
	}
}

// runUpdate runs one write transaction of the committer. A panic or fault
// inside it (a damaged page, or a bug in a write) becomes an error, so it
// is handled like a failed commit; faults are test-injected failures.
func (s *Store) runUpdate(kind faultKind, fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	db := s.db
	s.mu.RUnlock()
	if db == nil {
		return errors.New("the store file is not open")
	}
	defer s.keys.afterWrite()
	err := catchFault(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return s.fault(faultPoint{kind: kind, stage: beforeCommit})
		})
	})
	if err == nil {
		// The commit succeeded; a fault here stands for a commit that
		// reached the file but reported an error (a failed final sync).
		err = s.fault(faultPoint{kind: kind, stage: afterCommit})
	}
	return err
}
