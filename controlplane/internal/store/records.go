package store

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
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
	return getOne(s, bucketTenants, []byte(id), &hookwirev1.Tenant{})
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

// DeleteTenant removes a tenant with no subscriptions and its API keys,
// and leaves the tombstone that keeps its id from being created again
// until PurgeTenant has removed the rest of its records (tenantpurge.go),
// with audit (if set) in the same write (a DeleteTenant command). now is
// the deletion time recorded in the tombstone.
func (s *Store) DeleteTenant(ctx context.Context, id string, now time.Time, audit *hookwirev1.AuditEvent) error {
	c := &storev1.DeleteTenant{Id: id, DeleteUnixNanos: now.UnixNano(), Audit: audit}
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_DeleteTenant{DeleteTenant: c}})
	return err
}

// --- API keys ---

// PutAPIKey stores (creates or replaces) an API key record (a PutApiKey
// command), with audit (if set) in the same write.
func (s *Store) PutAPIKey(ctx context.Context, rec *storev1.ApiKeyRecord, audit *hookwirev1.AuditEvent) error {
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PutApiKey{PutApiKey: &storev1.PutApiKey{Record: rec, Audit: audit}}})
	return err
}

// GetAPIKey returns a key record by id or ErrNotFound.
//
// The record may be shared with other callers (keycache.go): do not
// modify it.
func (s *Store) GetAPIKey(id string) (*storev1.ApiKeyRecord, error) {
	rec, gen := s.keys.get(id)
	if rec != nil {
		return rec, nil
	}
	rec, err := getOne(s, bucketAPIKeys, []byte(id), &storev1.ApiKeyRecord{})
	if err == nil {
		s.keys.put(id, rec, gen)
	}
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

// RevokeAPIKey marks a key of the tenant revoked (a RevokeApiKey
// command), with audit (if set) in the same write; ErrNotFound if the key
// is not the tenant's.
func (s *Store) RevokeAPIKey(ctx context.Context, tenant, id string, audit *hookwirev1.AuditEvent) error {
	c := &storev1.RevokeApiKey{Tenant: tenant, Id: id, Audit: audit}
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_RevokeApiKey{RevokeApiKey: c}})
	return err
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

// ErrConflict means a compare-and-set command found the record changed
// since the change was decided: read it again and decide again.
var ErrConflict = errors.New("the record changed since it was read")

// PutSubscription stores rec in place of the subscription it was decided
// from (a PutSubscription command): rec.Revision is the revision read, and
// the write fails with ErrConflict when the stored record has changed
// since. It returns the record as stored (at the next revision), with
// audit (if set) recorded in the same write; ErrNotFound if the
// subscription does not exist.
func (s *Store) PutSubscription(ctx context.Context, rec *storev1.SubscriptionRecord, audit *hookwirev1.AuditEvent) (*storev1.SubscriptionRecord, error) {
	r, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PutSubscription{PutSubscription: &storev1.PutSubscription{Record: rec, Audit: audit}}})
	return r.Subscription, err
}

// DeleteSubscription removes the subscription rec was read as (a
// DeleteSubscription command; ErrConflict if it has changed since), with
// audit (if set) in the same write. Its pending deliveries stay in the
// queue and are cancelled by the scheduler when they come due.
func (s *Store) DeleteSubscription(ctx context.Context, rec *storev1.SubscriptionRecord, audit *hookwirev1.AuditEvent) error {
	sub := rec.GetSubscription()
	sid, err := ids.Parse(ids.Subscription, sub.GetId())
	if err != nil {
		return ErrNotFound
	}
	c := &storev1.DeleteSubscription{Tenant: sub.GetTenant(), Id: sid[:], Revision: rec.GetRevision(), Audit: audit}
	_, err = s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_DeleteSubscription{DeleteSubscription: c}})
	return err
}
