package store

// Reading events back (GetEvent and ListEvents of the API). Reads only:
// nothing here is a command.
//
// The events bucket is keyed by event ULID alone, for every tenant, and no
// index lists one tenant's events (the idempotency bucket covers only
// events published with a key). A tenant's list is therefore a walk of the
// events bucket in time order that skips other tenants' events, bounded
// per call (see ListEvents).

import (
	"bytes"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
)

// EventFilter narrows ListEvents.
type EventFilter struct {
	// Type, if set, keeps the events whose type it accepts.
	Type func(eventType string) bool
	// Received in [Start, End); zero values are open ends.
	Start, End time.Time
	// IdempotencyKey, if set, selects the one event published with it.
	IdempotencyKey string
	// WithoutPayload clears the payloads of the events returned.
	WithoutPayload bool
	// MaxPageBytes, if positive, ends a page once the payloads it returns
	// add up to this many bytes; a page always holds at least one event.
	MaxPageBytes int
}

func (f EventFilter) keep(ev *hookwirev1.Event) bool {
	if f.Type != nil && !f.Type(ev.GetType()) {
		return false
	}
	if f.IdempotencyKey != "" && ev.GetIdempotencyKey() != f.IdempotencyKey {
		return false
	}
	received := ev.GetReceiveTime().AsTime()
	return (f.Start.IsZero() || !received.Before(f.Start)) && (f.End.IsZero() || received.Before(f.End))
}

// ListEvents returns up to limit of a tenant's events matching f, newest
// first, starting before the position before (nil for the first page).
// It reports the position the next page starts before, or nil at the end.
//
// It examines at most about scan events of any tenant, so a tenant with
// few events among many of other tenants (or a filter that matches little)
// cannot make one call run long: when the budget runs out the page may
// hold fewer than limit events, even none, and next is set. Such a page
// stops at a millisecond boundary (it finishes the millisecond of the last
// event examined) and next is the smallest id of that millisecond, so a
// page token never names another tenant's event.
func (s *Store) ListEvents(tenant string, f EventFilter, before *ids.ID, limit, scan int) (out []*hookwirev1.Event, next *ids.ID, err error) {
	if f.IdempotencyKey != "" {
		ev, err := s.eventByIdempotencyKey(tenant, f.IdempotencyKey)
		if err != nil || ev == nil {
			return nil, nil, err
		}
		id, err := ids.Parse(ids.Event, ev.GetId())
		if err != nil {
			return nil, nil, corruptRecord(bucketEvents, id[:], err.Error())
		}
		if (before != nil && bytes.Compare(id[:], before[:]) >= 0) || !f.keep(ev) {
			return nil, nil, nil
		}
		if f.WithoutPayload {
			ev.Payload = nil
		}
		return []*hookwirev1.Event{ev}, nil, nil
	}
	scan = max(scan, 1)
	err = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		upper := bytes.Repeat([]byte{0xff}, 16)
		if before != nil {
			upper = before[:]
		}
		if !f.End.IsZero() {
			// Events of End's millisecond may be before End: start after
			// it and let keep decide.
			if end := timeID(f.End.Add(time.Millisecond)); bytes.Compare(end, upper) < 0 {
				upper = end
			}
		}
		var lower []byte
		if !f.Start.IsZero() {
			lower = timeID(f.Start)
		}
		k, v := c.Seek(upper)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		examined, pageBytes := 0, 0
		var lastMs uint64
		for ; k != nil; k, v = c.Prev() {
			if lower != nil && bytes.Compare(k, lower) < 0 {
				return nil
			}
			var id ids.ID
			copy(id[:], k)
			if examined >= scan && id.Time() != lastMs {
				// Every event of the milliseconds after this key's has
				// been examined.
				var boundary ids.ID
				_ = boundary.SetTime(lastMs)
				next = &boundary
				return nil
			}
			examined++
			lastMs = id.Time()
			// Other tenants' events are not decoded (see eventTenant).
			rec, err := openValue(bucketEvents, k, v)
			if err != nil {
				return err
			}
			if owner, err := eventTenant(rec); err != nil || owner != tenant {
				if err != nil {
					return corruptRecord(bucketEvents, k, err.Error())
				}
				continue
			}
			ev, err := decode(bucketEvents, k, v, &hookwirev1.Event{})
			if err != nil {
				return err
			}
			if ev.GetTenant() != tenant || !f.keep(ev) {
				continue
			}
			size := len(ev.GetPayload())
			if len(out) == limit || (f.MaxPageBytes > 0 && len(out) > 0 && !f.WithoutPayload && pageBytes+size > f.MaxPageBytes) {
				last, _ := ids.Parse(ids.Event, out[len(out)-1].GetId())
				next = &last
				return nil
			}
			if f.WithoutPayload {
				ev.Payload = nil
			}
			pageBytes += size
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, next, nil
}

// eventByIdempotencyKey returns the tenant's event published with key, or
// nil when there is none.
func (s *Store) eventByIdempotencyKey(tenant, key string) (*hookwirev1.Event, error) {
	var ev *hookwirev1.Event
	err := s.view(func(tx *bolt.Tx) error {
		rec, err := getRecord(tx, bucketIdempotency, idemKey(tenant, key))
		if err != nil || rec == nil {
			return err
		}
		e, found, err := getMsg(tx, bucketEvents, rec, &hookwirev1.Event{})
		if err != nil || !found || e.GetTenant() != tenant {
			return err
		}
		ev = e
		return nil
	})
	return ev, err
}

// EventDeliveries returns every delivery of one of a tenant's events,
// oldest first (one per subscription that matched, plus re-sends).
func (s *Store) EventDeliveries(tenant string, eventID ids.ID) ([]*hookwirev1.Delivery, error) {
	var out []*hookwirev1.Delivery
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDeliveriesByEvent).Cursor()
		b := tx.Bucket(bucketDeliveries)
		for k, _ := c.Seek(eventID[:]); k != nil && bytes.HasPrefix(k, eventID[:]); k, _ = c.Next() {
			did := k[len(eventID):]
			v := b.Get(did)
			if v == nil {
				continue
			}
			d, err := decode(bucketDeliveries, did, v, &hookwirev1.Delivery{})
			if err != nil {
				return err
			}
			if d.GetTenant() == tenant {
				out = append(out, d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
