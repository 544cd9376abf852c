package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Commands (proto/hookwire/store/v1/commands.proto) are the store's writes:
// a write method reads what it needs, decides (with the clock, randomness
// and fresh ids) and builds commands; Apply commits them through the group
// committer; applyCommand is the one code path that changes buckets for
// them. Applying is deterministic: it reads only the command and the
// stored state, so the same commands applied to the same state give the
// same bytes (the property the Raft log of issue 13 relies on).

// Result is what applying one command reports, per kind.
type Result struct {
	// PublishEvents: per event, the original event when its idempotency
	// key was used before (nothing was stored), else nil; and per event
	// and delivery, whether the delivery queued behind an earlier one of
	// its ordered group instead of becoming due.
	Duplicates []*Duplicate
	Waiting    [][]bool
	// UpdateDeliveries: per update, the delivery as stored after it, or
	// nil when it did not apply (missing, or a precondition failed).
	Updated []*hookwirev1.Delivery
	// PublishEvents, AddDeliveries, UpdateDeliveries: the subscriptions
	// that gained due deliveries.
	DueAdded []DueAdded
	// RevokeJoinToken: the token as stored.
	JoinToken *hookwirev1.JoinToken
	// PutSubscription: the record as stored.
	Subscription *storev1.SubscriptionRecord
	// PurgeEvents: what it removed, and the last event id it examined
	// (nil: none was left before the cutoff).
	Purged     PurgeStats
	PurgedLast []byte
	// PurgeAudit: how many audit events it removed.
	AuditPurged int
	// PurgePortalSessions: how many sessions it removed.
	PortalSessionsPurged int
	// PurgeTenantStep: what it removed, and whether the purge is finished.
	TenantPurged     TenantPurgeStats
	TenantPurgedDone bool
	// PurgeStats: how many minutes of statistics it removed (and, in
	// PurgedLast, the last key it examined; nil: done).
	StatsPurged int
}

// Duplicate is an event a publish found under its idempotency key.
type Duplicate struct {
	Of ids.ID
	// Deliveries is the original event's delivery count.
	Deliveries int
}

// Apply commits cmds in one write (all or none) and returns one result per
// command. A command that fails (ErrNotFound, ErrAlreadyExists, ...) fails
// the write. While the store cannot write it fails at once with an error
// wrapping ErrUnavailable; after Close, with ErrClosed.
func (s *Store) Apply(ctx context.Context, cmds ...*storev1.Command) ([]Result, error) {
	if s.opts.Replicated {
		return s.propose(ctx, cmds)
	}
	// Records are encoded here, by the caller's goroutine, rather than by
	// the committer's, which every write waits for.
	pre := make([]*encoded, len(cmds))
	for i, c := range cmds {
		var err error
		if pre[i], err = encodeCommand(c); err != nil {
			return nil, err
		}
	}
	var results []Result
	err := s.enqueue(ctx, func(tx *bolt.Tx) error {
		results = make([]Result, len(cmds)) // a rerun of the write starts afresh
		for i, c := range cmds {
			r, err := s.applyEncoded(tx, c, pre[i])
			if err != nil {
				return err
			}
			results[i] = r
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// applyOne applies a single command and returns its result.
func (s *Store) applyOne(ctx context.Context, cmd *storev1.Command) (Result, error) {
	rs, err := s.Apply(ctx, cmd)
	if err != nil {
		return Result{}, err
	}
	return rs[0], nil
}

// encoded holds the records of a command encoded before its write (the
// bytes apply would produce itself): per event its value and trace
// context's, and per event and delivery the delivery's. AddDeliveries has
// one "event" (the one it adds to) without values.
type encoded struct {
	events, traces [][]byte
	deliveries     [][][]byte
}

// encodeCommand encodes the new records of the commands that create many
// (publishes and re-sends); nil for the others.
func encodeCommand(cmd *storev1.Command) (*encoded, error) {
	var events []*storev1.NewEvent
	switch k := cmd.GetKind().(type) {
	case *storev1.Command_PublishEvents:
		events = k.PublishEvents.GetEvents()
	case *storev1.Command_AddDeliveries:
		events = []*storev1.NewEvent{{Deliveries: k.AddDeliveries.GetDeliveries()}}
	default:
		return nil, nil
	}
	enc := &encoded{events: make([][]byte, len(events)), traces: make([][]byte, len(events)), deliveries: make([][][]byte, len(events))}
	for i, e := range events {
		var err error
		if e.GetEvent() != nil {
			if enc.events[i], err = encode(e.GetId(), e.GetEvent()); err != nil {
				return nil, fmt.Errorf("encode event: %w", err)
			}
		}
		if e.GetTrace() != nil {
			if enc.traces[i], err = encode(e.GetId(), e.GetTrace()); err != nil {
				return nil, fmt.Errorf("encode event trace context: %w", err)
			}
		}
		enc.deliveries[i] = make([][]byte, len(e.GetDeliveries()))
		for j, d := range e.GetDeliveries() {
			if enc.deliveries[i][j], err = encode(d.GetId(), d.GetDelivery()); err != nil {
				return nil, fmt.Errorf("encode delivery: %w", err)
			}
		}
	}
	return enc, nil
}

// event, trace and delivery are the pre-encoded records, or nil.
func (e *encoded) event(i int) []byte {
	if e == nil || i >= len(e.events) {
		return nil
	}
	return e.events[i]
}

func (e *encoded) trace(i int) []byte {
	if e == nil || i >= len(e.traces) {
		return nil
	}
	return e.traces[i]
}

func (e *encoded) delivery(i, j int) []byte {
	if e == nil || i >= len(e.deliveries) || j >= len(e.deliveries[i]) {
		return nil
	}
	return e.deliveries[i][j]
}

// applyCommand applies one command inside the committer's transaction. It
// is the only code that changes buckets for a command, and it must stay
// deterministic (see commands.proto): no clock, no randomness, nothing
// read from outside tx and cmd.
func (s *Store) applyCommand(tx *bolt.Tx, cmd *storev1.Command) (Result, error) {
	return s.applyEncoded(tx, cmd, nil)
}

// applyEncoded is applyCommand with the command's records encoded already
// (pre is encodeCommand's result, or nil to encode them here).
func (s *Store) applyEncoded(tx *bolt.Tx, cmd *storev1.Command, pre *encoded) (Result, error) {
	s.keys.noteCommand(cmd)
	switch k := cmd.GetKind().(type) {
	case *storev1.Command_PublishEvents:
		return s.applyPublish(tx, k.PublishEvents, pre)
	case *storev1.Command_AddDeliveries:
		return s.applyAddDeliveries(tx, k.AddDeliveries, pre)
	case *storev1.Command_UpdateDeliveries:
		return s.applyUpdateDeliveries(tx, k.UpdateDeliveries)
	case *storev1.Command_CreateTenant:
		return Result{}, applyCreateTenant(tx, k.CreateTenant)
	case *storev1.Command_PutApiKey:
		return Result{}, applyPutAPIKey(tx, k.PutApiKey)
	case *storev1.Command_CreateSubscription:
		return Result{}, applyCreateSubscription(tx, k.CreateSubscription)
	case *storev1.Command_PutJoinToken:
		return Result{}, applyPutJoinToken(tx, k.PutJoinToken)
	case *storev1.Command_RevokeJoinToken:
		t, err := applyRevokeJoinToken(tx, k.RevokeJoinToken)
		return Result{JoinToken: t}, err
	case *storev1.Command_AppendAudit:
		return Result{}, putAudit(tx, k.AppendAudit.GetEvent())
	case *storev1.Command_PutSubscription:
		rec, err := applyPutSubscription(tx, k.PutSubscription)
		return Result{Subscription: rec}, err
	case *storev1.Command_DeleteSubscription:
		return Result{}, applyDeleteSubscription(tx, k.DeleteSubscription)
	case *storev1.Command_RevokeApiKey:
		return Result{}, applyRevokeAPIKey(tx, k.RevokeApiKey)
	case *storev1.Command_DeleteTenant:
		return Result{}, applyDeleteTenant(tx, k.DeleteTenant)
	case *storev1.Command_PurgeEvents:
		st, last, err := s.applyPurgeEvents(tx, k.PurgeEvents)
		return Result{Purged: st, PurgedLast: last}, err
	case *storev1.Command_PurgeAudit:
		n, err := applyPurgeAudit(tx, k.PurgeAudit)
		return Result{AuditPurged: n}, err
	case *storev1.Command_PurgeTenantStep:
		st, done, err := s.applyPurgeTenantStep(tx, k.PurgeTenantStep)
		return Result{TenantPurged: st, TenantPurgedDone: done}, err
	case *storev1.Command_RecordStats:
		return Result{}, applyRecordStats(tx, k.RecordStats)
	case *storev1.Command_PurgeStats:
		n, last, err := applyPurgeStats(tx, k.PurgeStats)
		return Result{StatsPurged: n, PurgedLast: last}, err
	case *storev1.Command_PutEventType:
		return Result{}, applyPutEventType(tx, k.PutEventType)
	case *storev1.Command_DeleteEventType:
		return Result{}, applyDeleteEventType(tx, k.DeleteEventType)
	case *storev1.Command_PutPortalSettings:
		return Result{}, applyPutPortalSettings(tx, k.PutPortalSettings)
	case *storev1.Command_PutPortalSession:
		return Result{}, applyPutPortalSession(tx, k.PutPortalSession)
	case *storev1.Command_RevokePortalSession:
		return Result{}, applyRevokePortalSession(tx, k.RevokePortalSession)
	case *storev1.Command_PurgePortalSessions:
		n, err := applyPurgePortalSessions(tx, k.PurgePortalSessions)
		return Result{PortalSessionsPurged: n}, err
	case nil:
		return Result{}, fmt.Errorf("apply command: no kind set")
	default:
		return Result{}, fmt.Errorf("apply command: unknown kind %T", k)
	}
}

// commandID reads a 16-byte id carried by a command.
func commandID(what string, b []byte) (ids.ID, error) {
	var id ids.ID
	if len(b) != len(id) {
		return id, fmt.Errorf("command: %s is %d bytes, want %d", what, len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// auditIfSet records ev when the command carries one.
func auditIfSet(tx *bolt.Tx, ev *hookwirev1.AuditEvent) error {
	if ev == nil {
		return nil
	}
	return putAudit(tx, ev)
}

// --- events and deliveries ---

func (s *Store) applyPublish(tx *bolt.Tx, c *storev1.PublishEvents, pre *encoded) (Result, error) {
	tenant := c.GetTenant()
	if tx.Bucket(bucketTenants).Get([]byte(tenant)) == nil {
		return Result{}, ErrNotFound
	}
	r := Result{Duplicates: make([]*Duplicate, len(c.GetEvents())), Waiting: make([][]bool, len(c.GetEvents()))}
	evb := tx.Bucket(bucketEvents)
	byEvent := tx.Bucket(bucketDeliveriesByEvent)
	idem := tx.Bucket(bucketIdempotency)
	w := newDeliveryWriter(s, tx, tenantPrefix(tenant))
	for i, e := range c.GetEvents() {
		eid, err := commandID("event id", e.GetId())
		if err != nil {
			return Result{}, err
		}
		if key := e.GetEvent().GetIdempotencyKey(); key != "" {
			if v := idem.Get(idemKey(tenant, key)); v != nil {
				rec, err := openValue(bucketIdempotency, idemKey(tenant, key), v)
				if err != nil {
					return Result{}, err
				}
				var orig ids.ID
				copy(orig[:], rec)
				r.Duplicates[i] = &Duplicate{Of: orig, Deliveries: countPrefix(byEvent.Cursor(), orig[:])}
				continue
			}
			if err := putRecord(idem, idemKey(tenant, key), eid[:]); err != nil {
				return Result{}, err
			}
		}
		if err := putEncoded(evb, eid[:], e.GetEvent(), pre.event(i)); err != nil {
			return Result{}, err
		}
		if e.GetTrace() != nil {
			if err := putEncoded(tx.Bucket(bucketEventTraces), eid[:], e.GetTrace(), pre.trace(i)); err != nil {
				return Result{}, err
			}
		}
		r.Waiting[i] = make([]bool, len(e.GetDeliveries()))
		for j, d := range e.GetDeliveries() {
			if r.Waiting[i][j], err = w.putNew(eid, d, pre.delivery(i, j)); err != nil {
				return Result{}, err
			}
		}
	}
	return r, nil
}

func (s *Store) applyAddDeliveries(tx *bolt.Tx, c *storev1.AddDeliveries, pre *encoded) (Result, error) {
	eid, err := commandID("event id", c.GetEventId())
	if err != nil {
		return Result{}, err
	}
	v := tx.Bucket(bucketEvents).Get(eid[:])
	if v == nil {
		return Result{}, ErrNotFound
	}
	ev, err := decode(bucketEvents, eid[:], v, &hookwirev1.Event{})
	if err != nil {
		return Result{}, err
	}
	if ev.GetTenant() != c.GetTenant() {
		return Result{}, ErrNotFound
	}
	w := newDeliveryWriter(s, tx, tenantPrefix(c.GetTenant()))
	waiting := make([]bool, len(c.GetDeliveries()))
	for i, d := range c.GetDeliveries() {
		if waiting[i], err = w.putNew(eid, d, pre.delivery(0, i)); err != nil {
			return Result{}, err
		}
	}
	return Result{Waiting: [][]bool{waiting}}, auditIfSet(tx, c.GetAudit())
}

// deliveryWriter inserts new deliveries with their indexes.
type deliveryWriter struct {
	s                                           *Store // counts the due entries (duedepth.go)
	prefix                                      []byte
	dvb, byTenant, byEvent, bySub, due, ordered *bolt.Bucket
}

func newDeliveryWriter(s *Store, tx *bolt.Tx, tenantPrefix []byte) *deliveryWriter {
	return &deliveryWriter{
		s:        s,
		prefix:   tenantPrefix,
		dvb:      tx.Bucket(bucketDeliveries),
		byTenant: tx.Bucket(bucketDeliveriesByTenant),
		byEvent:  tx.Bucket(bucketDeliveriesByEvent),
		bySub:    tx.Bucket(bucketDeliveriesBySub),
		due:      tx.Bucket(bucketDue),
		ordered:  tx.Bucket(bucketOrdered),
	}
}

// putNew stores a new delivery of event eventID (value: its record
// encoded already, or nil) and reports whether it waits behind an earlier
// delivery of its ordered group.
func (w *deliveryWriter) putNew(eventID ids.ID, d *storev1.NewDelivery, value []byte) (waiting bool, err error) {
	did, err := commandID("delivery id", d.GetId())
	if err != nil {
		return false, err
	}
	sub, err := commandID("subscription id", d.GetSubscriptionId())
	if err != nil {
		return false, err
	}
	if err := putEncoded(w.dvb, did[:], d.GetDelivery(), value); err != nil {
		return false, err
	}
	if err := w.byTenant.Put(append(bytes.Clone(w.prefix), did[:]...), nil); err != nil {
		return false, err
	}
	if err := w.byEvent.Put(append(bytes.Clone(eventID[:]), did[:]...), nil); err != nil {
		return false, err
	}
	if err := w.bySub.Put(append(bytes.Clone(sub[:]), did[:]...), nil); err != nil {
		return false, err
	}
	if d.GetOrdered() {
		h := OrderingHash(d.GetDelivery().GetOrderingKey())
		group := orderedKey(sub, h, ids.ID{})[:24]
		if k, _ := w.ordered.Cursor().Seek(group); k != nil && bytes.HasPrefix(k, group) {
			waiting = true
		}
		if err := w.ordered.Put(orderedKey(sub, h, did), nil); err != nil {
			return false, err
		}
		if waiting {
			return true, nil
		}
	}
	return false, w.s.putDue(w.due, sub, d.GetDelivery().GetNextAttemptTime().AsTime().UnixNano(), did)
}

// deliveryPreconditions reports whether d satisfies u's preconditions.
func deliveryPreconditions(u *storev1.DeliveryUpdate, d *hookwirev1.Delivery) bool {
	if st := u.GetIfStatus(); len(st) > 0 {
		ok := false
		for _, s := range st {
			ok = ok || d.GetStatus() == s
		}
		if !ok {
			return false
		}
	}
	if u.IfAttemptCountBelow != nil && d.GetAttemptCount() >= u.GetIfAttemptCountBelow() {
		return false
	}
	if u.IfAttemptCount != nil && d.GetAttemptCount() != u.GetIfAttemptCount() {
		return false
	}
	if t := u.GetIfUpdateTime(); t != nil && !proto.Equal(t, d.GetUpdateTime()) {
		return false
	}
	return true
}

// patchDelivery copies the fields named by paths from set into d (clearing
// those unset in set).
func patchDelivery(d, set *hookwirev1.Delivery, paths []string) error {
	dm, sm := d.ProtoReflect(), set.ProtoReflect()
	fields := dm.Descriptor().Fields()
	for _, p := range paths {
		fd := fields.ByName(protoreflect.Name(p))
		if fd == nil {
			return fmt.Errorf("delivery update: hookwire.v1.Delivery has no field %q", p)
		}
		if sm.Has(fd) {
			dm.Set(fd, sm.Get(fd))
		} else {
			dm.Clear(fd)
		}
	}
	return nil
}

func (s *Store) applyUpdateDeliveries(tx *bolt.Tx, c *storev1.UpdateDeliveries) (Result, error) {
	r := Result{Updated: make([]*hookwirev1.Delivery, len(c.GetUpdates()))}
	b := tx.Bucket(bucketDeliveries)
	due := tx.Bucket(bucketDue)
	ordered := tx.Bucket(bucketOrdered)
	att := tx.Bucket(bucketAttempts)
	const pending = hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING
	for i, u := range c.GetUpdates() {
		did, err := commandID("delivery id", u.GetDeliveryId())
		if err != nil {
			return Result{}, err
		}
		v := b.Get(did[:])
		if v == nil {
			continue
		}
		d, err := decode(bucketDeliveries, did[:], v, &hookwirev1.Delivery{})
		if err != nil {
			return Result{}, err
		}
		if !deliveryPreconditions(u, d) {
			continue
		}
		wasPending := d.GetStatus() == pending
		oldDue := d.GetNextAttemptTime().AsTime().UnixNano()
		subID, _ := ids.Parse(ids.Subscription, d.GetSubscriptionId())
		okey := orderedKey(subID, OrderingHash(d.GetOrderingKey()), did)
		group := okey[:24]
		isOrdered := hasKey(ordered, okey) || (u.GetOrdered() && !wasPending)
		if err := patchDelivery(d, u.GetSet(), u.GetMask().GetPaths()); err != nil {
			return Result{}, err
		}
		if wasPending {
			if err := s.deleteDue(due, subID, oldDue, did); err != nil {
				return Result{}, err
			}
		}
		nowPending := d.GetStatus() == pending
		switch {
		case nowPending && isOrdered:
			if err := ordered.Put(okey, nil); err != nil {
				return Result{}, err
			}
			// Due only when first in its group.
			if k, _ := ordered.Cursor().Seek(group); bytes.Equal(k, okey) {
				at := d.GetNextAttemptTime().AsTime()
				if err := s.putDue(due, subID, at.UnixNano(), did); err != nil {
					return Result{}, err
				}
				r.DueAdded = append(r.DueAdded, DueAdded{SubID: subID, At: at})
				d.WaitingReason = ""
			}
		case nowPending:
			at := d.GetNextAttemptTime().AsTime()
			if err := s.putDue(due, subID, at.UnixNano(), did); err != nil {
				return Result{}, err
			}
			r.DueAdded = append(r.DueAdded, DueAdded{SubID: subID, At: at})
		case isOrdered && wasPending:
			first, _ := ordered.Cursor().Seek(group)
			wasHead := bytes.Equal(first, okey)
			if err := ordered.Delete(okey); err != nil {
				return Result{}, err
			}
			if !wasHead {
				break
			}
			// Promote the next delivery of the group.
			next, _ := ordered.Cursor().Seek(group)
			if next == nil || !bytes.HasPrefix(next, group) {
				break
			}
			var nid ids.ID
			copy(nid[:], next[24:])
			nv := b.Get(nid[:])
			if nv == nil {
				break
			}
			nd, err := decode(bucketDeliveries, nid[:], nv, &hookwirev1.Delivery{})
			if err != nil {
				return Result{}, err
			}
			at := nd.GetNextAttemptTime().AsTime()
			if err := s.putDue(due, subID, at.UnixNano(), nid); err != nil {
				return Result{}, err
			}
			nd.WaitingReason = ""
			if err := put(b, nid[:], nd); err != nil {
				return Result{}, err
			}
			r.DueAdded = append(r.DueAdded, DueAdded{SubID: subID, At: at})
		}
		if err := put(b, did[:], d); err != nil {
			return Result{}, err
		}
		if a := u.GetAttempt(); a != nil {
			k := binary.BigEndian.AppendUint32(bytes.Clone(did[:]), uint32(a.GetNumber()))
			if err := put(att, k, a); err != nil {
				return Result{}, err
			}
		}
		if err := auditIfSet(tx, u.GetAudit()); err != nil {
			return Result{}, err
		}
		r.Updated[i] = d
	}
	return r, nil
}

// --- tenants, API keys, subscriptions, join tokens ---

func applyCreateTenant(tx *bolt.Tx, c *storev1.CreateTenant) error {
	id := []byte(c.GetTenant().GetId())
	b := tx.Bucket(bucketTenants)
	if b.Get(id) != nil {
		return ErrAlreadyExists
	}
	if tx.Bucket(bucketTenantPurges).Get(id) != nil {
		return ErrTenantPurging
	}
	if err := put(b, id, c.GetTenant()); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

func applyPutAPIKey(tx *bolt.Tx, c *storev1.PutApiKey) error {
	if err := put(tx.Bucket(bucketAPIKeys), []byte(c.GetRecord().GetApiKey().GetId()), c.GetRecord()); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

func applyCreateSubscription(tx *bolt.Tx, c *storev1.CreateSubscription) error {
	sub := c.GetRecord().GetSubscription()
	k, err := subKey(sub.GetTenant(), sub.GetId())
	if err != nil {
		return err
	}
	if tx.Bucket(bucketTenants).Get([]byte(sub.GetTenant())) == nil {
		return ErrNotFound
	}
	if err := put(tx.Bucket(bucketSubscriptions), k, c.GetRecord()); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

func applyPutJoinToken(tx *bolt.Tx, c *storev1.PutJoinToken) error {
	b, err := tx.CreateBucketIfNotExists(bucketJoinTokens)
	if err != nil {
		return err
	}
	h, err := tx.CreateBucketIfNotExists(bucketJoinTokenHashes)
	if err != nil {
		return err
	}
	id := []byte(c.GetToken().GetId())
	if err := put(b, id, c.GetToken()); err != nil {
		return err
	}
	if err := putRecord(h, id, c.GetHash()); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

func applyRevokeJoinToken(tx *bolt.Tx, c *storev1.RevokeJoinToken) (*hookwirev1.JoinToken, error) {
	b := tx.Bucket(bucketJoinTokens)
	if b == nil {
		return nil, ErrNotFound
	}
	id := []byte(c.GetId())
	v := b.Get(id)
	if v == nil {
		return nil, ErrNotFound
	}
	t, err := decode(bucketJoinTokens, id, v, &hookwirev1.JoinToken{})
	if err != nil {
		return nil, err
	}
	t.Revoked = true
	if err := put(b, id, t); err != nil {
		return nil, err
	}
	return t, auditIfSet(tx, c.GetAudit())
}

// readSubscription loads a tenant's stored subscription, ErrNotFound.
func readSubscription(b *bolt.Bucket, k []byte) (*storev1.SubscriptionRecord, error) {
	v := b.Get(k)
	if v == nil {
		return nil, ErrNotFound
	}
	return decode(bucketSubscriptions, k, v, &storev1.SubscriptionRecord{})
}

func applyPutSubscription(tx *bolt.Tx, c *storev1.PutSubscription) (*storev1.SubscriptionRecord, error) {
	rec := c.GetRecord()
	k, err := subKey(rec.GetSubscription().GetTenant(), rec.GetSubscription().GetId())
	if err != nil {
		return nil, err
	}
	b := tx.Bucket(bucketSubscriptions)
	cur, err := readSubscription(b, k)
	if err != nil {
		return nil, err
	}
	if cur.GetRevision() != rec.GetRevision() {
		return nil, fmt.Errorf("%w: subscription %s is at revision %d, the change was made to %d", ErrConflict, rec.GetSubscription().GetId(), cur.GetRevision(), rec.GetRevision())
	}
	out := proto.Clone(rec).(*storev1.SubscriptionRecord)
	out.Revision = cur.GetRevision() + 1
	if err := put(b, k, out); err != nil {
		return nil, err
	}
	return out, auditIfSet(tx, c.GetAudit())
}

func applyDeleteSubscription(tx *bolt.Tx, c *storev1.DeleteSubscription) error {
	sid, err := commandID("subscription id", c.GetId())
	if err != nil {
		return err
	}
	k := tenantKey(c.GetTenant(), sid[:])
	b := tx.Bucket(bucketSubscriptions)
	cur, err := readSubscription(b, k)
	if err != nil {
		return err
	}
	if cur.GetRevision() != c.GetRevision() {
		return fmt.Errorf("%w: subscription %s is at revision %d, the deletion was decided at %d", ErrConflict, ids.Format(ids.Subscription, sid), cur.GetRevision(), c.GetRevision())
	}
	if err := b.Delete(k); err != nil {
		return err
	}
	if err := deleteSubStats(tx, c.GetTenant(), sid); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

func applyRevokeAPIKey(tx *bolt.Tx, c *storev1.RevokeApiKey) error {
	b := tx.Bucket(bucketAPIKeys)
	id := []byte(c.GetId())
	v := b.Get(id)
	if v == nil {
		return ErrNotFound
	}
	rec, err := decode(bucketAPIKeys, id, v, &storev1.ApiKeyRecord{})
	if err != nil {
		return err
	}
	if rec.GetApiKey().GetTenant() != c.GetTenant() {
		return ErrNotFound
	}
	rec.ApiKey.Revoked = true
	if err := put(b, id, rec); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

func applyDeleteTenant(tx *bolt.Tx, c *storev1.DeleteTenant) error {
	id := c.GetId()
	b := tx.Bucket(bucketTenants)
	v := b.Get([]byte(id))
	if v == nil {
		return ErrNotFound
	}
	t, err := decode(bucketTenants, []byte(id), v, &hookwirev1.Tenant{})
	if err != nil {
		return fmt.Errorf("read tenant %s before deleting it: %w", id, err)
	}
	prefix := tenantPrefix(id)
	if k, _ := tx.Bucket(bucketSubscriptions).Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
		return ErrTenantNotEmpty
	}
	if _, err := deleteTenantAPIKeys(tx, id); err != nil {
		return err
	}
	if err := deleteTenantPortal(tx, id); err != nil {
		return err
	}
	var created int64 // the Unix epoch for a tenant stored without one
	if t.GetCreateTime() != nil {
		created = t.GetCreateTime().AsTime().UnixNano()
	}
	tomb := &storev1.TenantPurge{DeleteUnixNanos: c.GetDeleteUnixNanos(), CreateUnixNanos: created}
	if err := put(tx.Bucket(bucketTenantPurges), []byte(id), tomb); err != nil {
		return err
	}
	if err := b.Delete([]byte(id)); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

// --- purges ---

func (s *Store) applyPurgeEvents(tx *bolt.Tx, cmd *storev1.PurgeEvents) (st PurgeStats, last []byte, err error) {
	end := timeID(time.Unix(0, cmd.GetCutoffUnixNanos()))
	after := cmd.GetAfter()
	batch := max(int(cmd.GetBatch()), 1)
	evb := tx.Bucket(bucketEvents)
	c := evb.Cursor()
	var k, v []byte
	if len(after) == 0 {
		k, v = c.First()
	} else {
		k, v = c.Seek(after)
		if bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	var doomed [][]byte
	seen := 0
	for ; k != nil && bytes.Compare(k, end) < 0 && seen < batch; k, v = c.Next() {
		seen++
		last = bytes.Clone(k)
		ev, err := decode(bucketEvents, k, v, &hookwirev1.Event{})
		if err != nil {
			return st, nil, err
		}
		var eid ids.ID
		copy(eid[:], k)
		n, a, kept, err := s.purgeDeliveries(tx, eid)
		if err != nil {
			return st, nil, err
		}
		st.Deliveries += n
		st.Attempts += a
		if kept {
			continue
		}
		if key := ev.GetIdempotencyKey(); key != "" {
			if err := tx.Bucket(bucketIdempotency).Delete(idemKey(ev.GetTenant(), key)); err != nil {
				return st, nil, err
			}
		}
		doomed = append(doomed, bytes.Clone(k))
	}
	traces := tx.Bucket(bucketEventTraces)
	for _, k := range doomed {
		if err := evb.Delete(k); err != nil {
			return st, nil, err
		}
		if err := traces.Delete(k); err != nil {
			return st, nil, err
		}
	}
	st.Events = len(doomed)
	return st, last, nil
}

func applyPurgeAudit(tx *bolt.Tx, cmd *storev1.PurgeAudit) (int, error) {
	end := timeID(time.Unix(0, cmd.GetCutoffUnixNanos()))
	batch := max(int(cmd.GetBatch()), 1)
	b, bt := tx.Bucket(bucketAudit), tx.Bucket(bucketAuditByTime)
	if b == nil || bt == nil {
		return 0, nil
	}
	var doomed [][]byte
	c := bt.Cursor()
	for k, v := c.First(); k != nil && bytes.Compare(k, end) < 0 && len(doomed) < batch; k, v = c.Next() {
		scope, err := openValue(bucketAuditByTime, k, v)
		if err != nil {
			return 0, err
		}
		doomed = append(doomed, bytes.Clone(k))
		if err := b.Delete(tenantKey(string(scope), k)); err != nil {
			return 0, err
		}
	}
	if err := deleteAll(bt, doomed); err != nil {
		return 0, err
	}
	return len(doomed), nil
}

func (s *Store) applyPurgeTenantStep(tx *bolt.Tx, cmd *storev1.PurgeTenantStep) (st TenantPurgeStats, done bool, err error) {
	id := cmd.GetTenant()
	batch := max(int(cmd.GetBatch()), 1)
	tb := tx.Bucket(bucketTenantPurges)
	v := tb.Get([]byte(id))
	if v == nil {
		return st, true, nil
	}
	tomb, err := decode(bucketTenantPurges, []byte(id), v, &storev1.TenantPurge{})
	if err != nil {
		return st, false, err
	}
	prefix := tenantPrefix(id)
	// Deliveries first (they are indexed by tenant), then the events
	// (found by scanning), then the tenant-keyed buckets. Every step looks
	// at the deliveries again: an operator's resend racing the deletion
	// may have added one.
	if n, a, err := s.purgeTenantDeliveries(tx, prefix, batch); err != nil || n > 0 {
		st.Deliveries, st.Attempts = n, a
		return st, false, err
	}
	if !tomb.GetEventsDone() {
		if st, err = s.purgeTenantEvents(tx, id, tomb, batch); err != nil {
			return st, false, err
		}
		return st, false, put(tb, []byte(id), tomb)
	}
	if n, err := deletePrefix(tx.Bucket(bucketIdempotency), prefix, batch); err != nil || n > 0 {
		st.IdempotencyKeys = n
		return st, false, err
	}
	if n, err := purgeTenantAudit(tx, prefix, batch); err != nil || n > 0 {
		st.AuditEvents = n
		return st, false, err
	}
	if b := tx.Bucket(bucketDeliveryStats); b != nil {
		// Deleting its subscriptions deleted their statistics already;
		// the purge makes sure nothing of the tenant is left.
		if n, err := deletePrefix(b, prefix, batch); err != nil || n > 0 {
			st.StatsMinutes = n
			return st, false, err
		}
	}
	// Nothing is left but keys created by a request that raced the
	// deletion (the check of the tenant and the key's write are two
	// steps); they go with the tombstone.
	if st.APIKeys, err = deleteTenantAPIKeys(tx, id); err != nil {
		return st, false, err
	}
	return st, true, tb.Delete([]byte(id))
}

// putEncoded stores m under k in b: value when m was encoded (under k)
// already, else m encoded now.
func putEncoded(b *bolt.Bucket, k []byte, m proto.Message, value []byte) error {
	if value == nil {
		return put(b, k, m)
	}
	return b.Put(k, value)
}
