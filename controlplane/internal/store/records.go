package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// tenantKey returns tenant 0x00 id.
func tenantKey(tenant string, id []byte) []byte {
	k := make([]byte, 0, len(tenant)+1+len(id))
	k = append(k, tenant...)
	k = append(k, 0)
	return append(k, id...)
}

func tenantPrefix(tenant string) []byte { return tenantKey(tenant, nil) }

// --- tenants ---

// CreateTenant stores a new tenant (a CreateTenant command), with audit
// (if set) in the same write; ErrAlreadyExists if the id is taken,
// ErrTenantPurging while a deleted tenant of that id is being purged.
func (s *Store) CreateTenant(ctx context.Context, t *hookwirev1.Tenant, audit *hookwirev1.AuditEvent) error {
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_CreateTenant{CreateTenant: &storev1.CreateTenant{Tenant: t, Audit: audit}}})
	return err
}

// GetTenant returns a tenant or ErrNotFound.
func (s *Store) GetTenant(id string) (*hookwirev1.Tenant, error) {
	var t *hookwirev1.Tenant
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTenants).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		t, err = decode(bucketTenants, []byte(id), v, &hookwirev1.Tenant{})
		return err
	})
	return t, err
}

// ListTenants returns up to limit tenants with ids after the given one.
func (s *Store) ListTenants(after string, limit int) ([]*hookwirev1.Tenant, error) {
	var out []*hookwirev1.Tenant
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTenants).Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && after != "" && string(k) == after {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			t, err := decode(bucketTenants, k, v, &hookwirev1.Tenant{})
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

// ErrTenantNotEmpty is returned when deleting a tenant that still has
// subscriptions.
var ErrTenantNotEmpty = errors.New("tenant still has subscriptions")

// AuditDeleted builds the audit event of a deletion from the record the
// deleting write removes (its before-image, read in that write); nil
// records nothing.
type AuditDeleted[T proto.Message] func(before T) (*hookwirev1.AuditEvent, error)

// DeleteTenant removes a tenant with no subscriptions and its API keys,
// and leaves the tombstone that keeps its id from being created again
// until PurgeTenant has removed the rest of its records (tenantpurge.go).
// audit, if set, is called in the same write with the removed tenant and
// its event recorded there.
func (s *Store) DeleteTenant(ctx context.Context, id string, now time.Time, audit AuditDeleted[*hookwirev1.Tenant]) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
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
		created := t.GetCreateTime().AsTime()
		if t.GetCreateTime() == nil {
			created = time.Unix(0, 0)
		}
		tomb := &storev1.TenantPurge{DeleteUnixNanos: now.UnixNano(), CreateUnixNanos: created.UnixNano()}
		if err := put(tx.Bucket(bucketTenantPurges), []byte(id), tomb); err != nil {
			return err
		}
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		return auditDeletion(tx, audit, t)
	})
}

// --- API keys ---

// PutAPIKey stores (creates or replaces) an API key record (a PutApiKey
// command), with audit (if set) in the same write.
func (s *Store) PutAPIKey(ctx context.Context, rec *storev1.ApiKeyRecord, audit *hookwirev1.AuditEvent) error {
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PutApiKey{PutApiKey: &storev1.PutApiKey{Record: rec, Audit: audit}}})
	return err
}

// GetAPIKey returns a key record by id or ErrNotFound.
func (s *Store) GetAPIKey(id string) (*storev1.ApiKeyRecord, error) {
	var rec *storev1.ApiKeyRecord
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAPIKeys).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		rec, err = decode(bucketAPIKeys, []byte(id), v, &storev1.ApiKeyRecord{})
		return err
	})
	return rec, err
}

// ListAPIKeys returns the key records matching keep, in id order.
func (s *Store) ListAPIKeys(keep func(*storev1.ApiKeyRecord) bool) ([]*storev1.ApiKeyRecord, error) {
	var out []*storev1.ApiKeyRecord
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAPIKeys).ForEach(func(k, v []byte) error {
			rec, err := decode(bucketAPIKeys, k, v, &storev1.ApiKeyRecord{})
			if err != nil {
				return err
			}
			if keep(rec) {
				out = append(out, rec)
			}
			return nil
		})
	})
	return out, err
}

// UpdateAPIKey applies change to a stored key of the tenant.
func (s *Store) UpdateAPIKey(ctx context.Context, tenant, id string, change func(*storev1.ApiKeyRecord)) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAPIKeys)
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		rec, err := decode(bucketAPIKeys, []byte(id), v, &storev1.ApiKeyRecord{})
		if err != nil {
			return err
		}
		if rec.GetApiKey().GetTenant() != tenant {
			return ErrNotFound
		}
		change(rec)
		return put(b, []byte(id), rec)
	})
}

// --- subscriptions ---

func subKey(tenant, id string) ([]byte, error) {
	sid, err := ids.Parse(ids.Subscription, id)
	if err != nil {
		return nil, ErrNotFound
	}
	return tenantKey(tenant, sid[:]), nil
}

// CreateSubscription stores a new subscription (a CreateSubscription
// command), with audit (if set) in the same write; ErrNotFound if its
// tenant does not exist.
func (s *Store) CreateSubscription(ctx context.Context, rec *storev1.SubscriptionRecord, audit *hookwirev1.AuditEvent) error {
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_CreateSubscription{CreateSubscription: &storev1.CreateSubscription{Record: rec, Audit: audit}}})
	return err
}

// GetSubscription returns a tenant's subscription or ErrNotFound.
func (s *Store) GetSubscription(tenant, id string) (*storev1.SubscriptionRecord, error) {
	k, err := subKey(tenant, id)
	if err != nil {
		return nil, err
	}
	var rec *storev1.SubscriptionRecord
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSubscriptions).Get(k)
		if v == nil {
			return ErrNotFound
		}
		rec, err = decode(bucketSubscriptions, k, v, &storev1.SubscriptionRecord{})
		return err
	})
	return rec, err
}

// ListSubscriptions returns up to limit of a tenant's subscriptions with ids
// after the given one ("" for the first page), in creation order.
func (s *Store) ListSubscriptions(tenant, after string, limit int) ([]*storev1.SubscriptionRecord, error) {
	prefix := tenantPrefix(tenant)
	start := prefix
	if after != "" {
		k, err := subKey(tenant, after)
		if err != nil {
			return nil, err
		}
		start = k
	}
	var out []*storev1.SubscriptionRecord
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSubscriptions).Cursor()
		k, v := c.Seek(start)
		if k != nil && after != "" && bytes.Equal(k, start) {
			k, v = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			rec, err := decode(bucketSubscriptions, k, v, &storev1.SubscriptionRecord{})
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

// AllSubscriptions calls fn for every subscription of every tenant.
func (s *Store) AllSubscriptions(fn func(*storev1.SubscriptionRecord) error) error {
	return s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubscriptions).ForEach(func(k, v []byte) error {
			rec, err := decode(bucketSubscriptions, k, v, &storev1.SubscriptionRecord{})
			if err != nil {
				return err
			}
			return fn(rec)
		})
	})
}

// UpdateSubscription applies change to a stored subscription inside one
// write and returns the stored result. change may return an error to abort.
func (s *Store) UpdateSubscription(ctx context.Context, tenant, id string, change func(*storev1.SubscriptionRecord) error) (*storev1.SubscriptionRecord, error) {
	k, err := subKey(tenant, id)
	if err != nil {
		return nil, err
	}
	var out *storev1.SubscriptionRecord
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSubscriptions)
		v := b.Get(k)
		if v == nil {
			return ErrNotFound
		}
		rec, err := decode(bucketSubscriptions, k, v, &storev1.SubscriptionRecord{})
		if err != nil {
			return err
		}
		if err := change(rec); err != nil {
			return err
		}
		out = rec
		return put(b, k, rec)
	})
	return out, err
}

// DeleteSubscription removes a subscription. Its pending deliveries stay in
// the queue and are cancelled by the scheduler when they come due. audit,
// if set, is called in the same write with the removed record and its
// event recorded there.
func (s *Store) DeleteSubscription(ctx context.Context, tenant, id string, audit AuditDeleted[*storev1.SubscriptionRecord]) error {
	k, err := subKey(tenant, id)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSubscriptions)
		v := b.Get(k)
		if v == nil {
			return ErrNotFound
		}
		before, err := decode(bucketSubscriptions, k, v, &storev1.SubscriptionRecord{})
		if err != nil {
			return fmt.Errorf("read subscription %s before deleting it: %w", id, err)
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		return auditDeletion(tx, audit, before)
	})
}

// auditDeletion records the audit event of a deletion inside its write.
func auditDeletion[T proto.Message](tx *bolt.Tx, audit AuditDeleted[T], before T) error {
	if audit == nil {
		return nil
	}
	ev, err := audit(before)
	if err != nil || ev == nil {
		return err
	}
	return putAudit(tx, ev)
}
