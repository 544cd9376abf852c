package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

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
	var results []Result
	err := s.enqueue(ctx, func(tx *bolt.Tx) error {
		results = make([]Result, len(cmds)) // a rerun of the write starts afresh
		for i, c := range cmds {
			r, err := s.applyCommand(tx, c)
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

// applyCommand applies one command inside the committer's transaction. It
// is the only code that changes buckets for a command, and it must stay
// deterministic (see commands.proto): no clock, no randomness, nothing
// read from outside tx and cmd.
func (s *Store) applyCommand(tx *bolt.Tx, cmd *storev1.Command) (Result, error) {
	switch k := cmd.GetKind().(type) {
	case *storev1.Command_PublishEvents:
		return s.applyPublish(tx, k.PublishEvents)
	case *storev1.Command_AddDeliveries:
		return s.applyAddDeliveries(tx, k.AddDeliveries)
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

func (s *Store) applyPublish(tx *bolt.Tx, c *storev1.PublishEvents) (Result, error) {
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
		if err := put(evb, eid[:], e.GetEvent()); err != nil {
			return Result{}, err
		}
		if e.GetTrace() != nil {
			if err := put(tx.Bucket(bucketEventTraces), eid[:], e.GetTrace()); err != nil {
				return Result{}, err
			}
		}
		r.Waiting[i] = make([]bool, len(e.GetDeliveries()))
		for j, d := range e.GetDeliveries() {
			if r.Waiting[i][j], err = w.putNew(eid, d); err != nil {
				return Result{}, err
			}
		}
	}
	return r, nil
}

func (s *Store) applyAddDeliveries(tx *bolt.Tx, c *storev1.AddDeliveries) (Result, error) {
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
		if waiting[i], err = w.putNew(eid, d); err != nil {
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

// putNew stores a new delivery of event eventID and reports whether it
// waits behind an earlier delivery of its ordered group.
func (w *deliveryWriter) putNew(eventID ids.ID, d *storev1.NewDelivery) (waiting bool, err error) {
	did, err := commandID("delivery id", d.GetId())
	if err != nil {
		return false, err
	}
	sub, err := commandID("subscription id", d.GetSubscriptionId())
	if err != nil {
		return false, err
	}
	if err := put(w.dvb, did[:], d.GetDelivery()); err != nil {
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
