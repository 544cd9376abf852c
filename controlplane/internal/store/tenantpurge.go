package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
)

// Deleting a tenant removes its record and API keys at once and leaves a
// tombstone (bucket tenant_purges) in the same write. Everything else kept
// under the tenant — deliveries with their attempts, due and ordered
// entries, events with their trace contexts, idempotency keys, and the
// tenant's audit events — is removed afterwards by PurgeTenant, in small
// writes like the retention purge, so API writes are never held up for
// long. The tombstone goes in the write that finds nothing left; until
// then the id cannot be created again, so a new tenant with the same id
// never sees the old one's data. The tombstone survives a restart, and the
// purge resumes where it stopped (TenantPurges lists what is unfinished).
//
// The tenant's own deletion is audited under AuditGlobal, which the purge
// does not touch.

// ErrTenantPurging means the tenant id belongs to a deleted tenant whose
// records are still being purged.
var ErrTenantPurging = errors.New("tenant is still being deleted")

// tenantEventMargin is how far before a tenant's creation time the purge
// starts looking for its events, to allow for a clock that stepped back.
const tenantEventMargin = 24 * time.Hour

// eventScanFactor: one purge step examines up to batch*eventScanFactor
// events (most belong to other tenants and are only read).
const eventScanFactor = 16

// TenantPurgeStats counts what purging a deleted tenant removed.
type TenantPurgeStats struct {
	Events, Deliveries, Attempts, IdempotencyKeys, AuditEvents, APIKeys int
	StatsMinutes                                                        int
}

func (a *TenantPurgeStats) add(b TenantPurgeStats) {
	a.Events += b.Events
	a.Deliveries += b.Deliveries
	a.Attempts += b.Attempts
	a.IdempotencyKeys += b.IdempotencyKeys
	a.AuditEvents += b.AuditEvents
	a.APIKeys += b.APIKeys
	a.StatsMinutes += b.StatsMinutes
}

// TenantPurges returns the ids of deleted tenants whose purge is unfinished.
func (s *Store) TenantPurges() ([]string, error) {
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTenantPurges).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// PurgeTenant removes every record of the deleted tenant id, at most batch
// deliveries (or events, keys, audit events) per write transaction, and
// then its tombstone. It returns done=false when ctx ended first; a later
// call continues. A tenant with no tombstone is done at once.
func (s *Store) PurgeTenant(ctx context.Context, id string, batch int) (st TenantPurgeStats, done bool, err error) {
	for ctx.Err() == nil {
		step, fin, err := s.PurgeTenantStep(ctx, id, batch)
		st.add(step)
		if err != nil || fin {
			return st, fin, err
		}
	}
	return st, false, nil
}

// PurgeTenantStep makes one write of a tenant's purge and reports whether
// the purge is finished (the tombstone is gone).
func (s *Store) PurgeTenantStep(ctx context.Context, id string, batch int) (TenantPurgeStats, bool, error) {
	c := &storev1.PurgeTenantStep{Tenant: id, Batch: uint32(max(batch, 1))}
	r, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PurgeTenantStep{PurgeTenantStep: c}})
	return r.TenantPurged, r.TenantPurgedDone, err
}

// purgeTenantDeliveries removes up to batch of the tenant's deliveries.
func (s *Store) purgeTenantDeliveries(tx *bolt.Tx, prefix []byte, batch int) (deliveries, attempts int, err error) {
	var keys [][]byte
	c := tx.Bucket(bucketDeliveriesByTenant).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < batch; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		var did ids.ID
		copy(did[:], k[len(prefix):])
		a, err := s.removeDelivery(tx, did)
		if err != nil {
			return 0, 0, err
		}
		// The index entry goes even if the delivery itself was missing.
		if err := tx.Bucket(bucketDeliveriesByTenant).Delete(k); err != nil {
			return 0, 0, err
		}
		attempts += a
	}
	return len(keys), attempts, nil
}

// removeDelivery deletes a delivery, finished or not, with its attempts
// and every index entry (due and ordered included), and returns how many
// attempts it had. A missing delivery is nothing to do.
func (s *Store) removeDelivery(tx *bolt.Tx, did ids.ID) (int, error) {
	dvb := tx.Bucket(bucketDeliveries)
	v := dvb.Get(did[:])
	if v == nil {
		return 0, nil
	}
	d, err := decode(bucketDeliveries, did[:], v, &hookwirev1.Delivery{})
	if err != nil {
		return 0, err
	}
	return s.removeLoaded(tx, did, d)
}

// removeLoaded is removeDelivery for a delivery already read as d.
func (s *Store) removeLoaded(tx *bolt.Tx, did ids.ID, d *hookwirev1.Delivery) (int, error) {
	att := tx.Bucket(bucketAttempts)
	attKeys := prefixKeys(att, did[:], math.MaxInt)
	for _, k := range attKeys {
		if err := att.Delete(k); err != nil {
			return 0, err
		}
	}
	sub, _ := ids.Parse(ids.Subscription, d.GetSubscriptionId())
	eid, _ := ids.Parse(ids.Event, d.GetEventId())
	if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
		// deleteDue keeps the in-memory due counts right.
		if err := s.deleteDue(tx.Bucket(bucketDue), sub, d.GetNextAttemptTime().AsTime().UnixNano(), did); err != nil {
			return 0, err
		}
	}
	for _, del := range []struct {
		b *bolt.Bucket
		k []byte
	}{
		{tx.Bucket(bucketOrdered), orderedKey(sub, OrderingHash(d.GetOrderingKey()), did)},
		{tx.Bucket(bucketDeliveriesBySub), append(bytes.Clone(sub[:]), did[:]...)},
		{tx.Bucket(bucketDeliveriesByEvent), append(bytes.Clone(eid[:]), did[:]...)},
		{tx.Bucket(bucketDeliveriesByTenant), append(tenantPrefix(d.GetTenant()), did[:]...)},
		{tx.Bucket(bucketDeliveries), did[:]},
	} {
		if err := del.b.Delete(del.k); err != nil {
			return 0, err
		}
	}
	return len(attKeys), nil
}

// purgeTenantEvents examines the next events after the tombstone's cursor,
// deletes the tenant's (with their idempotency keys, trace contexts and
// any delivery still attached), and moves the cursor.
func (s *Store) purgeTenantEvents(tx *bolt.Tx, tenant string, tomb *storev1.TenantPurge, batch int) (TenantPurgeStats, error) {
	var st TenantPurgeStats
	evb := tx.Bucket(bucketEvents)
	c := evb.Cursor()
	var k, v []byte
	if after := tomb.GetEventsAfter(); after != nil {
		k, v = c.Seek(after)
		if bytes.Equal(k, after) {
			k, v = c.Next()
		}
	} else {
		k, v = c.Seek(timeID(time.Unix(0, tomb.GetCreateUnixNanos()).Add(-tenantEventMargin)))
	}
	var doomed [][]byte
	for seen := 0; k != nil && seen < batch*eventScanFactor && len(doomed) < batch; k, v = c.Next() {
		seen++
		tomb.EventsAfter = bytes.Clone(k)
		rec, err := openValue(bucketEvents, k, v)
		if err != nil {
			return st, err
		}
		owner, err := eventTenant(rec)
		if err != nil {
			return st, err
		}
		if owner == tenant {
			doomed = append(doomed, bytes.Clone(k))
		}
	}
	if k == nil {
		tomb.EventsDone = true
	}
	byEvent := tx.Bucket(bucketDeliveriesByEvent)
	for _, k := range doomed {
		ev, err := decode(bucketEvents, k, evb.Get(k), &hookwirev1.Event{})
		if err != nil {
			return st, err
		}
		var eid ids.ID
		copy(eid[:], k)
		for _, dk := range prefixKeys(byEvent, k, math.MaxInt) {
			var did ids.ID
			copy(did[:], dk[len(k):])
			a, err := s.removeDelivery(tx, did)
			if err != nil {
				return st, err
			}
			if err := byEvent.Delete(dk); err != nil {
				return st, err
			}
			st.Attempts += a
		}
		if key := ev.GetIdempotencyKey(); key != "" {
			if err := tx.Bucket(bucketIdempotency).Delete(idemKey(tenant, key)); err != nil {
				return st, err
			}
		}
		if err := tx.Bucket(bucketEventTraces).Delete(k); err != nil {
			return st, err
		}
		if err := evb.Delete(k); err != nil {
			return st, err
		}
		st.Events++
	}
	return st, nil
}

// eventTenantField is hookwire.v1.Event's tenant field number.
var eventTenantField = (&hookwirev1.Event{}).ProtoReflect().Descriptor().Fields().ByName("tenant").Number()

// eventTenant reads only the tenant of an encoded event, so the scan does
// not copy payloads.
func eventTenant(v []byte) (string, error) {
	for len(v) > 0 {
		num, typ, n := protowire.ConsumeTag(v)
		if n < 0 {
			return "", fmt.Errorf("decode stored event: %w", protowire.ParseError(n))
		}
		v = v[n:]
		if num == eventTenantField && typ == protowire.BytesType {
			b, n := protowire.ConsumeBytes(v)
			if n < 0 {
				return "", fmt.Errorf("decode stored event tenant: %w", protowire.ParseError(n))
			}
			return string(b), nil
		}
		n = protowire.ConsumeFieldValue(num, typ, v)
		if n < 0 {
			return "", fmt.Errorf("decode stored event: %w", protowire.ParseError(n))
		}
		v = v[n:]
	}
	return "", nil
}

// prefixKeys returns copies of up to limit keys of b starting with prefix.
func prefixKeys(b *bolt.Bucket, prefix []byte, limit int) [][]byte {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < limit; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	return keys
}

// deletePrefix deletes up to limit keys of b starting with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte, limit int) (int, error) {
	keys := prefixKeys(b, prefix, limit)
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// purgeTenantAudit deletes up to limit of a tenant's audit events.
func purgeTenantAudit(tx *bolt.Tx, prefix []byte, limit int) (int, error) {
	b, bt := tx.Bucket(bucketAudit), tx.Bucket(bucketAuditByTime)
	if b == nil || bt == nil {
		return 0, nil
	}
	keys := prefixKeys(b, prefix, limit)
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
		if err := bt.Delete(k[len(prefix):]); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// deleteTenantAPIKeys deletes every API key of the tenant.
func deleteTenantAPIKeys(tx *bolt.Tx, tenant string) (int, error) {
	keys := tx.Bucket(bucketAPIKeys)
	var doomed [][]byte
	if err := keys.ForEach(func(k, v []byte) error {
		rec, err := decode(bucketAPIKeys, k, v, &storev1.ApiKeyRecord{})
		if err != nil {
			return err
		}
		if rec.GetApiKey().GetTenant() == tenant {
			doomed = append(doomed, bytes.Clone(k))
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if err := deleteAll(keys, doomed); err != nil {
		return 0, err
	}
	return len(doomed), nil
}
