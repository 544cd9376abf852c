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
// write. It returns ErrNotFound when the tenant does not exist. Events whose
// idempotency key was seen before are not written; see NewEvent.DuplicateOf.
func (s *Store) Publish(ctx context.Context, tenant string, events []*NewEvent) error {
	type encoded struct {
		value      []byte
		trace      []byte
		deliveries [][]byte
	}
	enc := make([]encoded, len(events))
	for i, e := range events {
		v, err := encode(e.ID[:], e.Event)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		enc[i] = encoded{value: v, deliveries: make([][]byte, len(e.Deliveries))}
		if e.Trace != nil {
			if enc[i].trace, err = encode(e.ID[:], e.Trace); err != nil {
				return fmt.Errorf("encode event trace context: %w", err)
			}
		}
		for j, d := range e.Deliveries {
			if enc[i].deliveries[j], err = encode(d.ID[:], d.Delivery); err != nil {
				return fmt.Errorf("encode delivery: %w", err)
			}
		}
	}
	prefix := tenantPrefix(tenant)
	return s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTenants).Get([]byte(tenant)) == nil {
			return ErrNotFound
		}
		evb := tx.Bucket(bucketEvents)
		byEvent := tx.Bucket(bucketDeliveriesByEvent)
		idem := tx.Bucket(bucketIdempotency)
		w := newDeliveryWriter(s, tx, prefix)
		for i, e := range events {
			e.DuplicateOf = nil
			if key := e.Event.GetIdempotencyKey(); key != "" {
				if v := idem.Get(idemKey(tenant, key)); v != nil {
					rec, err := openValue(bucketIdempotency, idemKey(tenant, key), v)
					if err != nil {
						return err
					}
					var orig ids.ID
					copy(orig[:], rec)
					e.DuplicateOf = &orig
					e.DuplicateDeliveries = countPrefix(byEvent.Cursor(), orig[:])
					continue
				}
				if err := putRecord(idem, idemKey(tenant, key), e.ID[:]); err != nil {
					return err
				}
			}
			if err := evb.Put(e.ID[:], enc[i].value); err != nil {
				return err
			}
			if enc[i].trace != nil {
				if err := tx.Bucket(bucketEventTraces).Put(e.ID[:], enc[i].trace); err != nil {
					return err
				}
			}
			for j := range e.Deliveries {
				if err := w.putNew(e.ID, &e.Deliveries[j], enc[i].deliveries[j]); err != nil {
					return err
				}
			}
		}
		return nil
	})
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

func (w *deliveryWriter) putNew(eventID ids.ID, d *NewDelivery, value []byte) error {
	if err := w.dvb.Put(d.ID[:], value); err != nil {
		return err
	}
	if err := w.byTenant.Put(append(bytes.Clone(w.prefix), d.ID[:]...), nil); err != nil {
		return err
	}
	if err := w.byEvent.Put(append(bytes.Clone(eventID[:]), d.ID[:]...), nil); err != nil {
		return err
	}
	if err := w.bySub.Put(append(bytes.Clone(d.SubID[:]), d.ID[:]...), nil); err != nil {
		return err
	}
	d.Waiting = false
	if d.Ordered {
		h := OrderingHash(d.Delivery.GetOrderingKey())
		group := orderedKey(d.SubID, h, ids.ID{})[:24]
		if k, _ := w.ordered.Cursor().Seek(group); k != nil && bytes.HasPrefix(k, group) {
			d.Waiting = true
		}
		if err := w.ordered.Put(orderedKey(d.SubID, h, d.ID), nil); err != nil {
			return err
		}
		if d.Waiting {
			return nil
		}
	}
	return w.s.putDue(w.due, d.SubID, d.Delivery.GetNextAttemptTime().AsTime().UnixNano(), d.ID)
}

// AddDeliveries stores new deliveries of an existing event of the tenant
// (a re-send). ErrNotFound when the event is not the tenant's.
func (s *Store) AddDeliveries(ctx context.Context, tenant string, eventID ids.ID, list []*NewDelivery) error {
	values := make([][]byte, len(list))
	for i, d := range list {
		v, err := encode(d.ID[:], d.Delivery)
		if err != nil {
			return err
		}
		values[i] = v
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEvents).Get(eventID[:])
		if v == nil {
			return ErrNotFound
		}
		ev, err := decode(bucketEvents, eventID[:], v, &hookwirev1.Event{})
		if err != nil {
			return err
		}
		if ev.GetTenant() != tenant {
			return ErrNotFound
		}
		w := newDeliveryWriter(s, tx, tenantPrefix(tenant))
		for i, d := range list {
			if err := w.putNew(eventID, d, values[i]); err != nil {
				return err
			}
		}
		return nil
	})
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

// DeliveryChange is one update to a delivery made in a shared write.
type DeliveryChange struct {
	DeliveryID ids.ID
	// Attempt, if set, is recorded under the delivery.
	Attempt *hookwirev1.Attempt
	// Apply changes the stored delivery; the due index follows its status
	// and next_attempt_time. Returning false leaves the delivery unchanged
	// (and records no attempt).
	Apply func(d *hookwirev1.Delivery) bool
	// Applied reports, after the write, whether Apply accepted the change.
	Applied bool
	// Result is the delivery as stored after the change.
	Result *hookwirev1.Delivery
	// Ordered: the delivery belongs to an ordered subscription (needed only
	// when a finished delivery is made pending again).
	Ordered bool
}

// ChangeDeliveries applies changes in one durable write. A delivery that no
// longer exists is skipped (Applied false). It reports every subscription
// that gained a due delivery (a retry, or the next delivery of an ordered
// group promoted when the one before it finished).
func (s *Store) ChangeDeliveries(ctx context.Context, changes []*DeliveryChange) ([]DueAdded, error) {
	var added []DueAdded
	err := s.update(ctx, func(tx *bolt.Tx) error {
		added = added[:0]
		b := tx.Bucket(bucketDeliveries)
		due := tx.Bucket(bucketDue)
		ordered := tx.Bucket(bucketOrdered)
		att := tx.Bucket(bucketAttempts)
		for _, ch := range changes {
			ch.Applied, ch.Result = false, nil
			v := b.Get(ch.DeliveryID[:])
			if v == nil {
				continue
			}
			d, err := decode(bucketDeliveries, ch.DeliveryID[:], v, &hookwirev1.Delivery{})
			if err != nil {
				return err
			}
			const pending = hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING
			wasPending := d.GetStatus() == pending
			oldDue := d.GetNextAttemptTime().AsTime().UnixNano()
			subID, _ := ids.Parse(ids.Subscription, d.GetSubscriptionId())
			okey := orderedKey(subID, OrderingHash(d.GetOrderingKey()), ch.DeliveryID)
			group := okey[:24]
			isOrdered := hasKey(ordered, okey) || (ch.Ordered && !wasPending)
			if !ch.Apply(d) {
				continue
			}
			if wasPending {
				if err := s.deleteDue(due, subID, oldDue, ch.DeliveryID); err != nil {
					return err
				}
			}
			nowPending := d.GetStatus() == pending
			switch {
			case nowPending && isOrdered:
				if err := ordered.Put(okey, nil); err != nil {
					return err
				}
				// Due only when first in its group.
				if k, _ := ordered.Cursor().Seek(group); bytes.Equal(k, okey) {
					at := d.GetNextAttemptTime().AsTime()
					if err := s.putDue(due, subID, at.UnixNano(), ch.DeliveryID); err != nil {
						return err
					}
					added = append(added, DueAdded{SubID: subID, At: at})
					d.WaitingReason = ""
				}
			case nowPending:
				at := d.GetNextAttemptTime().AsTime()
				if err := s.putDue(due, subID, at.UnixNano(), ch.DeliveryID); err != nil {
					return err
				}
				added = append(added, DueAdded{SubID: subID, At: at})
			case isOrdered && wasPending:
				c := ordered.Cursor()
				first, _ := c.Seek(group)
				wasHead := bytes.Equal(first, okey)
				if err := ordered.Delete(okey); err != nil {
					return err
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
					return err
				}
				at := nd.GetNextAttemptTime().AsTime()
				if err := s.putDue(due, subID, at.UnixNano(), nid); err != nil {
					return err
				}
				nd.WaitingReason = ""
				if err := put(b, nid[:], nd); err != nil {
					return err
				}
				added = append(added, DueAdded{SubID: subID, At: at})
			}
			if err := put(b, ch.DeliveryID[:], d); err != nil {
				return err
			}
			if ch.Attempt != nil {
				k := binary.BigEndian.AppendUint32(bytes.Clone(ch.DeliveryID[:]), uint32(ch.Attempt.GetNumber()))
				if err := put(att, k, ch.Attempt); err != nil {
					return err
				}
			}
			ch.Applied, ch.Result = true, d
		}
		return nil
	})
	return added, err
}
