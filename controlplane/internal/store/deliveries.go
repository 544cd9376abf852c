package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// NewDelivery is a delivery to create with its event.
type NewDelivery struct {
	ID    ids.ID
	SubID ids.ID
	// Ordered puts the delivery in its subscription's ordering-key group
	// (Delivery.ordering_key): it becomes due only when every earlier
	// delivery of the group is done.
	Ordered bool
	// Delivery must be PENDING with next_attempt_time set.
	Delivery *hookwirev1.Delivery
	// Waiting is set by Publish when the delivery queued behind an earlier
	// one of its ordered group instead of becoming due.
	Waiting bool
}

// NewEvent is an event to store with its fan-out.
type NewEvent struct {
	ID         ids.ID
	Event      *hookwirev1.Event
	Deliveries []NewDelivery
	// DuplicateOf is set by Publish when the event's idempotency key was
	// already used: nothing was written and this is the original event.
	DuplicateOf *ids.ID
	// DuplicateDeliveries is the original event's delivery count.
	DuplicateDeliveries int
	// Trace, if set, is the trace context of the publish, stored with the
	// event (bucket event_traces) so its attempts join the publisher's trace.
	Trace *storev1.TraceContext
}

// DueAdded reports a subscription that gained due deliveries, so the
// scheduler can look at it.
type DueAdded struct {
	SubID ids.ID
	At    time.Time
}

// OrderingHash is the group key of an ordering key.
func OrderingHash(key string) [8]byte {
	sum := sha256.Sum256([]byte(key))
	var h [8]byte
	copy(h[:], sum[:8])
	return h
}

func orderedKey(sub ids.ID, hash [8]byte, id ids.ID) []byte {
	k := make([]byte, 0, 40)
	k = append(k, sub[:]...)
	k = append(k, hash[:]...)
	return append(k, id[:]...)
}

func dueKey(sub ids.ID, unixNanos int64, id ids.ID) []byte {
	k := make([]byte, 40)
	copy(k, sub[:])
	binary.BigEndian.PutUint64(k[16:], uint64(unixNanos))
	copy(k[24:], id[:])
	return k
}

func idemKey(tenant, key string) []byte {
	return append(tenantPrefix(tenant), key...)
}

// Publish durably stores events of one tenant and their deliveries in one
// write (a PublishEvents command). It returns ErrNotFound when the tenant
// does not exist. Events whose idempotency key was seen before are not
// written; see NewEvent.DuplicateOf.
func (s *Store) Publish(ctx context.Context, tenant string, events []*NewEvent) error {
	c := &storev1.PublishEvents{Tenant: tenant, Events: make([]*storev1.NewEvent, len(events))}
	for i, e := range events {
		ne := &storev1.NewEvent{Id: bytes.Clone(e.ID[:]), Event: e.Event, Trace: e.Trace, Deliveries: make([]*storev1.NewDelivery, len(e.Deliveries))}
		for j := range e.Deliveries {
			ne.Deliveries[j] = newDelivery(&e.Deliveries[j])
		}
		c.Events[i] = ne
	}
	r, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PublishEvents{PublishEvents: c}})
	if err != nil {
		return err
	}
	for i, e := range events {
		e.DuplicateOf, e.DuplicateDeliveries = nil, 0
		if dup := r.Duplicates[i]; dup != nil {
			orig := dup.Of
			e.DuplicateOf, e.DuplicateDeliveries = &orig, dup.Deliveries
			continue
		}
		for j := range e.Deliveries {
			e.Deliveries[j].Waiting = r.Waiting[i][j]
		}
	}
	return nil
}

// newDelivery is the command form of d.
func newDelivery(d *NewDelivery) *storev1.NewDelivery {
	return &storev1.NewDelivery{Id: bytes.Clone(d.ID[:]), SubscriptionId: bytes.Clone(d.SubID[:]), Ordered: d.Ordered, Delivery: d.Delivery}
}

// AddDeliveries stores new deliveries of an existing event of the tenant
// (a re-send), with audit (if set) in the same write. ErrNotFound when the
// event is not the tenant's.
func (s *Store) AddDeliveries(ctx context.Context, tenant string, eventID ids.ID, list []*NewDelivery, audit *hookwirev1.AuditEvent) error {
	c := &storev1.AddDeliveries{Tenant: tenant, EventId: bytes.Clone(eventID[:]), Deliveries: make([]*storev1.NewDelivery, len(list)), Audit: audit}
	for i, d := range list {
		c.Deliveries[i] = newDelivery(d)
	}
	r, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_AddDeliveries{AddDeliveries: c}})
	if err != nil {
		return err
	}
	for i, d := range list {
		d.Waiting = r.Waiting[0][i]
	}
	return nil
}

// GetEvent returns one of a tenant's events or ErrNotFound.
func (s *Store) GetEvent(tenant string, id ids.ID) (*hookwirev1.Event, error) {
	evs, err := s.GetEvents([]ids.ID{id})
	if err != nil {
		return nil, err
	}
	if evs[0] == nil || evs[0].GetTenant() != tenant {
		return nil, ErrNotFound
	}
	return evs[0], nil
}

// SubDeliveries returns up to limit ids of a subscription's deliveries
// created in [from, to), after the id after (nil: from the start).
func (s *Store) SubDeliveries(sub ids.ID, from, to time.Time, after *ids.ID, limit int) ([]ids.ID, error) {
	start := append(bytes.Clone(sub[:]), timeID(from)...)
	if after != nil {
		start = append(bytes.Clone(sub[:]), after[:]...)
	}
	end := timeID(to)
	var out []ids.ID
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDeliveriesBySub).Cursor()
		k, _ := c.Seek(start)
		if after != nil && bytes.Equal(k, start) {
			k, _ = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, sub[:]) && len(out) < limit; k, _ = c.Next() {
			if bytes.Compare(k[16:], end) >= 0 {
				break
			}
			var id ids.ID
			copy(id[:], k[16:])
			out = append(out, id)
		}
		return nil
	})
	return out, err
}

// CountSubDeliveries counts a subscription's deliveries created in
// [from, to).
func (s *Store) CountSubDeliveries(sub ids.ID, from, to time.Time) (int, error) {
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDeliveriesBySub).Cursor()
		end := timeID(to)
		for k, _ := c.Seek(append(bytes.Clone(sub[:]), timeID(from)...)); k != nil && bytes.HasPrefix(k, sub[:]); k, _ = c.Next() {
			if bytes.Compare(k[16:], end) >= 0 {
				break
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count deliveries of subscription %s: %w", ids.Format(ids.Subscription, sub), err)
	}
	return n, nil
}

// timeID is the smallest ULID of time t (IDs sort by creation time).
func timeID(t time.Time) []byte {
	var id ids.ID
	_ = id.SetTime(uint64(max(t.UnixMilli(), 0)))
	return id[:]
}

func countPrefix(c *bolt.Cursor, prefix []byte) int {
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	return n
}

// Due is one due delivery.
type Due struct {
	At         time.Time
	DeliveryID ids.ID
	SubID      ids.ID
}

// dueKeyLen is the length of a due index key.
const dueKeyLen = 40

func decodeDue(k []byte) (Due, error) {
	var d Due
	if len(k) != dueKeyLen {
		return d, fmt.Errorf("%w: due index key %x is %d bytes, want %d (run 'hookwire store check')", ErrCorrupt, k, len(k), dueKeyLen)
	}
	copy(d.SubID[:], k[:16])
	d.At = time.Unix(0, int64(binary.BigEndian.Uint64(k[16:24])))
	copy(d.DeliveryID[:], k[24:40])
	return d, nil
}

// ScanDue calls fn for a subscription's due deliveries in due order until
// fn returns false. It holds one read transaction; fn must be quick and
// must not call the store.
func (s *Store) ScanDue(sub ids.ID, fn func(Due) bool) error {
	return s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]); k, _ = c.Next() {
			d, err := decodeDue(k)
			if err != nil {
				return err
			}
			if !fn(d) {
				return nil
			}
		}
		return nil
	})
}

// DueSubscriptions calls fn once per subscription with due deliveries, with
// its earliest due time.
func (s *Store) DueSubscriptions(fn func(sub ids.ID, first time.Time)) error {
	return s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil; {
			d, err := decodeDue(k)
			if err != nil {
				return err
			}
			fn(d.SubID, d.At)
			next, ok := increment(d.SubID[:])
			if !ok {
				return nil
			}
			k, _ = c.Seek(next)
		}
		return nil
	})
}

// increment returns the smallest key greater than every key with prefix p.
func increment(p []byte) ([]byte, bool) {
	out := bytes.Clone(p)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] < 0xff {
			out[i]++
			return out[:i+1], true
		}
	}
	return nil, false
}

// CountDue returns the number of due deliveries (it reads the whole due
// index; DueDepth counts from memory).
func (s *Store) CountDue() (int, error) {
	var n int
	if err := s.view(func(tx *bolt.Tx) error { n = tx.Bucket(bucketDue).Stats().KeyN; return nil }); err != nil {
		return 0, fmt.Errorf("count due deliveries: %w", err)
	}
	return n, nil
}

// GetDeliveries loads deliveries by id; missing ones are nil.
func (s *Store) GetDeliveries(idList []ids.ID) ([]*hookwirev1.Delivery, error) {
	out := make([]*hookwirev1.Delivery, len(idList))
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries)
		for i, id := range idList {
			v := b.Get(id[:])
			if v == nil {
				continue
			}
			d, err := decode(bucketDeliveries, id[:], v, &hookwirev1.Delivery{})
			if err != nil {
				return err
			}
			out[i] = d
		}
		return nil
	})
	return out, err
}

// GetEvents loads events by id; missing ones are nil.
func (s *Store) GetEvents(idList []ids.ID) ([]*hookwirev1.Event, error) {
	out := make([]*hookwirev1.Event, len(idList))
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		for i, id := range idList {
			v := b.Get(id[:])
			if v == nil {
				continue
			}
			e, err := decode(bucketEvents, id[:], v, &hookwirev1.Event{})
			if err != nil {
				return err
			}
			out[i] = e
		}
		return nil
	})
	return out, err
}

// EventTraces loads the trace contexts stored with events by id; events
// published without one (or missing) are nil.
func (s *Store) EventTraces(idList []ids.ID) ([]*storev1.TraceContext, error) {
	out := make([]*storev1.TraceContext, len(idList))
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEventTraces)
		for i, id := range idList {
			v := b.Get(id[:])
			if v == nil {
				continue
			}
			tc, err := decode(bucketEventTraces, id[:], v, &storev1.TraceContext{})
			if err != nil {
				return err
			}
			out[i] = tc
		}
		return nil
	})
	return out, err
}

// GetDelivery returns one of a tenant's deliveries or ErrNotFound.
func (s *Store) GetDelivery(tenant, id string) (*hookwirev1.Delivery, error) {
	did, err := ids.Parse(ids.Delivery, id)
	if err != nil {
		return nil, ErrNotFound
	}
	list, err := s.GetDeliveries([]ids.ID{did})
	if err != nil {
		return nil, err
	}
	if list[0] == nil || list[0].GetTenant() != tenant {
		return nil, ErrNotFound
	}
	return list[0], nil
}

// DeliveryFilter narrows ListDeliveries.
type DeliveryFilter struct {
	EventID, SubID *ids.ID
	Status         hookwirev1.DeliveryStatus
	EventType      string
	// Created in [Start, End); zero values are open ends.
	Start, End time.Time
}

func (f DeliveryFilter) keep(tenant string, d *hookwirev1.Delivery) bool {
	if d.GetTenant() != tenant || (f.Status != 0 && d.GetStatus() != f.Status) || (f.EventType != "" && d.GetEventType() != f.EventType) {
		return false
	}
	created := d.GetCreateTime().AsTime()
	return (f.Start.IsZero() || !created.Before(f.Start)) && (f.End.IsZero() || created.Before(f.End))
}

// ListDeliveries returns up to limit of a tenant's deliveries matching f,
// newest first, starting after the delivery id before (nil for the first
// page). It reports the id to continue from, or nil at the end.
func (s *Store) ListDeliveries(tenant string, f DeliveryFilter, before *ids.ID, limit int) ([]*hookwirev1.Delivery, *ids.ID, error) {
	var out []*hookwirev1.Delivery
	var next *ids.ID
	err := s.view(func(tx *bolt.Tx) error {
		var c *bolt.Cursor
		var prefix []byte
		switch {
		case f.EventID != nil:
			c, prefix = tx.Bucket(bucketDeliveriesByEvent).Cursor(), f.EventID[:]
		case f.SubID != nil:
			c, prefix = tx.Bucket(bucketDeliveriesBySub).Cursor(), f.SubID[:]
		default:
			c, prefix = tx.Bucket(bucketDeliveriesByTenant).Cursor(), tenantPrefix(tenant)
		}
		// Walk backwards from the end of the prefix range (or from before).
		var k []byte
		if before != nil {
			k, _ = c.Seek(append(bytes.Clone(prefix), before[:]...))
			k, _ = c.Prev()
		} else {
			upper := append(bytes.Clone(prefix), bytes.Repeat([]byte{0xff}, 17)...)
			k, _ = c.Seek(upper)
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		}
		b := tx.Bucket(bucketDeliveries)
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			did := k[len(k)-16:]
			v := b.Get(did)
			if v == nil {
				continue
			}
			d, err := decode(bucketDeliveries, did, v, &hookwirev1.Delivery{})
			if err != nil {
				return err
			}
			if !f.keep(tenant, d) {
				continue
			}
			if len(out) == limit {
				last, _ := ids.Parse(ids.Delivery, out[len(out)-1].GetId())
				next = &last
				return nil
			}
			out = append(out, d)
		}
		return nil
	})
	return out, next, err
}

// ListAttempts returns a delivery's attempts, oldest first, or ErrNotFound
// if the delivery is not the tenant's.
func (s *Store) ListAttempts(tenant, deliveryID string) ([]*hookwirev1.Attempt, error) {
	if _, err := s.GetDelivery(tenant, deliveryID); err != nil {
		return nil, err
	}
	did, _ := ids.Parse(ids.Delivery, deliveryID)
	var out []*hookwirev1.Attempt
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAttempts).Cursor()
		for k, v := c.Seek(did[:]); k != nil && bytes.HasPrefix(k, did[:]); k, v = c.Next() {
			a, err := decode(bucketAttempts, k, v, &hookwirev1.Attempt{})
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// DeliveryChange is one update to a delivery made in a shared write: a
// compare-and-set the caller decides on from the delivery it read (see
// storev1.DeliveryUpdate). If the stored delivery still satisfies every
// precondition that is set, the fields named in Fields are copied from Set
// and Attempt is recorded; otherwise nothing changes.
type DeliveryChange struct {
	DeliveryID ids.ID
	// Preconditions: the stored status is one of IfStatus (empty: any),
	// its attempt_count is below IfAttemptCountBelow (0: no check) or
	// exactly IfAttemptCount (nil: no check), and its update_time is
	// IfUpdateTime (nil: no check).
	IfStatus            []hookwirev1.DeliveryStatus
	IfAttemptCountBelow int32
	IfAttemptCount      *int32
	IfUpdateTime        *timestamppb.Timestamp
	// Fields names the top-level fields of hookwire.v1.Delivery taken from
	// Set (a field unset in Set is cleared). The due index follows status
	// and next_attempt_time.
	Fields []string
	Set    *hookwirev1.Delivery
	// Attempt, if set, is recorded under the delivery.
	Attempt *hookwirev1.Attempt
	// Ordered: the delivery belongs to an ordered subscription (needed only
	// when a finished delivery is made pending again).
	Ordered bool
	// Audit, if set, is recorded when the change applies.
	Audit *hookwirev1.AuditEvent

	// Applied reports, after the write, whether the change applied.
	Applied bool
	// Result is the delivery as stored after the change.
	Result *hookwirev1.Delivery
}

// ChangedFields lists the top-level fields of hookwire.v1.Delivery whose
// values differ between before and after (for DeliveryChange.Fields).
func ChangedFields(before, after *hookwirev1.Delivery) []string {
	var out []string
	bm, am := before.ProtoReflect(), after.ProtoReflect()
	fields := bm.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if bm.Has(fd) != am.Has(fd) || (bm.Has(fd) && !bm.Get(fd).Equal(am.Get(fd))) {
			out = append(out, string(fd.Name()))
		}
	}
	return out
}

func (ch *DeliveryChange) command() *storev1.DeliveryUpdate {
	u := &storev1.DeliveryUpdate{
		DeliveryId: bytes.Clone(ch.DeliveryID[:]), IfStatus: ch.IfStatus, IfAttemptCount: ch.IfAttemptCount,
		IfUpdateTime: ch.IfUpdateTime, Mask: &fieldmaskpb.FieldMask{Paths: ch.Fields}, Set: ch.Set,
		Attempt: ch.Attempt, Ordered: ch.Ordered, Audit: ch.Audit,
	}
	if ch.IfAttemptCountBelow > 0 {
		u.IfAttemptCountBelow = &ch.IfAttemptCountBelow
	}
	return u
}

// ChangeDeliveries applies changes in one durable write (an
// UpdateDeliveries command). A delivery that no longer exists, or whose
// preconditions fail, is skipped (Applied false). It reports every
// subscription that gained a due delivery (a retry, or the next delivery
// of an ordered group promoted when the one before it finished).
func (s *Store) ChangeDeliveries(ctx context.Context, changes []*DeliveryChange) ([]DueAdded, error) {
	c := &storev1.UpdateDeliveries{Updates: make([]*storev1.DeliveryUpdate, len(changes))}
	for i, ch := range changes {
		c.Updates[i] = ch.command()
	}
	r, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_UpdateDeliveries{UpdateDeliveries: c}})
	for i, ch := range changes {
		ch.Applied, ch.Result = false, nil
		if err == nil && r.Updated[i] != nil {
			ch.Applied, ch.Result = true, r.Updated[i]
		}
	}
	if err != nil {
		return nil, err
	}
	return r.DueAdded, nil
}
