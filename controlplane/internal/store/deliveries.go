package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// NewDelivery is a delivery to create with its event.
type NewDelivery struct {
	ID    ids.ID
	SubID ids.ID
	// Delivery must be PENDING with next_attempt_time set.
	Delivery *hookwirev1.Delivery
}

// NewEvent is an event to store with its fan-out.
type NewEvent struct {
	ID         ids.ID
	Event      *hookwirev1.Event
	Deliveries []NewDelivery
}

type encodedDelivery struct {
	id, sub ids.ID
	due     int64
	value   []byte
}

// Publish durably stores events of one tenant and their deliveries in one
// write. It returns ErrNotFound when the tenant does not exist.
func (s *Store) Publish(ctx context.Context, tenant string, events []NewEvent) error {
	type encoded struct {
		id         ids.ID
		value      []byte
		deliveries []encodedDelivery
	}
	enc := make([]encoded, len(events))
	for i, e := range events {
		v, err := proto.Marshal(e.Event)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		enc[i] = encoded{id: e.ID, value: v, deliveries: make([]encodedDelivery, len(e.Deliveries))}
		for j, d := range e.Deliveries {
			dv, err := proto.Marshal(d.Delivery)
			if err != nil {
				return fmt.Errorf("encode delivery: %w", err)
			}
			enc[i].deliveries[j] = encodedDelivery{id: d.ID, sub: d.SubID, due: d.Delivery.GetNextAttemptTime().AsTime().UnixNano(), value: dv}
		}
	}
	prefix := tenantPrefix(tenant)
	return s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTenants).Get([]byte(tenant)) == nil {
			return ErrNotFound
		}
		evb := tx.Bucket(bucketEvents)
		dvb := tx.Bucket(bucketDeliveries)
		byTenant := tx.Bucket(bucketDeliveriesByTenant)
		byEvent := tx.Bucket(bucketDeliveriesByEvent)
		bySub := tx.Bucket(bucketDeliveriesBySub)
		due := tx.Bucket(bucketDue)
		var k32 [32]byte
		for _, e := range enc {
			if err := evb.Put(e.id[:], e.value); err != nil {
				return err
			}
			for _, d := range e.deliveries {
				if err := dvb.Put(d.id[:], d.value); err != nil {
					return err
				}
				tk := make([]byte, 0, len(prefix)+16)
				tk = append(append(tk, prefix...), d.id[:]...)
				if err := byTenant.Put(tk, nil); err != nil {
					return err
				}
				copy(k32[:16], e.id[:])
				copy(k32[16:], d.id[:])
				if err := byEvent.Put(bytes.Clone(k32[:]), nil); err != nil {
					return err
				}
				copy(k32[:16], d.sub[:])
				if err := bySub.Put(bytes.Clone(k32[:]), nil); err != nil {
					return err
				}
				if err := due.Put(dueKey(d.due, d.id), bytes.Clone(d.sub[:])); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func dueKey(unixNanos int64, id ids.ID) []byte {
	k := make([]byte, 24)
	binary.BigEndian.PutUint64(k, uint64(unixNanos))
	copy(k[8:], id[:])
	return k
}

// Due is one pending delivery in the due index.
type Due struct {
	At         time.Time
	DeliveryID ids.ID
	SubID      ids.ID
}

// ScanDue calls fn for pending deliveries in due order, starting at the
// first due at or after from, until fn returns false. It holds one read
// transaction; fn must be quick and must not call the store.
func (s *Store) ScanDue(from time.Time, fn func(Due) bool) error {
	return s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		var start [8]byte
		if n := from.UnixNano(); n > 0 {
			binary.BigEndian.PutUint64(start[:], uint64(n))
		}
		for k, v := c.Seek(start[:]); k != nil; k, v = c.Next() {
			var d Due
			d.At = time.Unix(0, int64(binary.BigEndian.Uint64(k)))
			copy(d.DeliveryID[:], k[8:])
			copy(d.SubID[:], v)
			if !fn(d) {
				return nil
			}
		}
		return nil
	})
}

// CountDue returns the number of pending deliveries.
func (s *Store) CountDue() int {
	var n int
	_ = s.view(func(tx *bolt.Tx) error { n = tx.Bucket(bucketDue).Stats().KeyN; return nil })
	return n
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
			d, err := unmarshal(v, &hookwirev1.Delivery{})
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
			e, err := unmarshal(v, &hookwirev1.Event{})
			if err != nil {
				return err
			}
			out[i] = e
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
			d, err := unmarshal(v, &hookwirev1.Delivery{})
			if err != nil {
				return err
			}
			if d.GetTenant() != tenant || (f.Status != 0 && d.GetStatus() != f.Status) {
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
			a, err := unmarshal(v, &hookwirev1.Attempt{})
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
}

// ChangeDeliveries applies changes in one durable write. A delivery that no
// longer exists is skipped (Applied false).
func (s *Store) ChangeDeliveries(ctx context.Context, changes []*DeliveryChange) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries)
		due := tx.Bucket(bucketDue)
		att := tx.Bucket(bucketAttempts)
		for _, ch := range changes {
			ch.Applied, ch.Result = false, nil
			v := b.Get(ch.DeliveryID[:])
			if v == nil {
				continue
			}
			d, err := unmarshal(v, &hookwirev1.Delivery{})
			if err != nil {
				return err
			}
			oldPending := d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING
			oldDue := d.GetNextAttemptTime().AsTime().UnixNano()
			subID, _ := ids.Parse(ids.Subscription, d.GetSubscriptionId())
			if !ch.Apply(d) {
				continue
			}
			if oldPending {
				if err := due.Delete(dueKey(oldDue, ch.DeliveryID)); err != nil {
					return err
				}
			}
			if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
				if err := due.Put(dueKey(d.GetNextAttemptTime().AsTime().UnixNano(), ch.DeliveryID), bytes.Clone(subID[:])); err != nil {
					return err
				}
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
}
