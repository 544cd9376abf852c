package store

import (
	"bytes"
	"context"
	"math"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
)

// PurgeStats counts what a purge removed.
type PurgeStats struct {
	Events, Deliveries, Attempts int
}

// Purge removes events received before cutoff, with their deliveries,
// attempts and index entries, in small writes of at most batch events so
// no write transaction runs long. An event with a pending delivery is kept
// (its work is not done). It stops early when ctx ends.
func (s *Store) Purge(ctx context.Context, cutoff time.Time, batch int) (PurgeStats, error) {
	var total PurgeStats
	end := timeID(cutoff)
	var after []byte
	for ctx.Err() == nil {
		var st PurgeStats
		var last []byte
		err := s.update(ctx, func(tx *bolt.Tx) error {
			st, last = PurgeStats{}, nil
			evb := tx.Bucket(bucketEvents)
			c := evb.Cursor()
			var k, v []byte
			if after == nil {
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
					return err
				}
				var eid ids.ID
				copy(eid[:], k)
				n, a, kept, err := s.purgeDeliveries(tx, eid)
				if err != nil {
					return err
				}
				st.Deliveries += n
				st.Attempts += a
				if kept {
					continue
				}
				if key := ev.GetIdempotencyKey(); key != "" {
					if err := tx.Bucket(bucketIdempotency).Delete(idemKey(ev.GetTenant(), key)); err != nil {
						return err
					}
				}
				doomed = append(doomed, bytes.Clone(k))
			}
			traces := tx.Bucket(bucketEventTraces)
			for _, k := range doomed {
				if err := evb.Delete(k); err != nil {
					return err
				}
				if err := traces.Delete(k); err != nil {
					return err
				}
			}
			st.Events = len(doomed)
			return nil
		})
		if err != nil {
			return total, err
		}
		total.Events += st.Events
		total.Deliveries += st.Deliveries
		total.Attempts += st.Attempts
		if last == nil {
			return total, nil
		}
		after = last
	}
	return total, ctx.Err()
}

// purgeDeliveries deletes an event's finished deliveries and reports
// whether any pending one was kept.
func (s *Store) purgeDeliveries(tx *bolt.Tx, eid ids.ID) (deliveries, attempts int, kept bool, err error) {
	byEvent := tx.Bucket(bucketDeliveriesByEvent)
	dvb := tx.Bucket(bucketDeliveries)
	for _, k := range prefixKeys(byEvent, eid[:], math.MaxInt) {
		var did ids.ID
		copy(did[:], k[16:])
		v := dvb.Get(did[:])
		if v == nil {
			if err := byEvent.Delete(k); err != nil {
				return 0, 0, false, err
			}
			continue
		}
		d, err := decode(bucketDeliveries, did[:], v, &hookwirev1.Delivery{})
		if err != nil {
			return 0, 0, false, err
		}
		if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
			kept = true
			continue
		}
		a, err := s.removeLoaded(tx, did, d)
		if err != nil {
			return 0, 0, false, err
		}
		// Its own index entry, even if the delivery names another event.
		if err := byEvent.Delete(k); err != nil {
			return 0, 0, false, err
		}
		attempts += a
		deliveries++
	}
	return deliveries, attempts, kept, nil
}
