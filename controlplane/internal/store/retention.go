package store

import (
	"context"
	"math"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
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
	var after []byte
	for ctx.Err() == nil {
		c := &storev1.PurgeEvents{After: after, CutoffUnixNanos: cutoff.UnixNano(), Batch: uint32(max(batch, 1))}
		r, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PurgeEvents{PurgeEvents: c}})
		if err != nil {
			return total, err
		}
		total.Events += r.Purged.Events
		total.Deliveries += r.Purged.Deliveries
		total.Attempts += r.Purged.Attempts
		if r.PurgedLast == nil {
			return total, nil
		}
		after = r.PurgedLast
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
