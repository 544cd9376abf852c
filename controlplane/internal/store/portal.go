package store

import (
	"bytes"
	"context"
	"time"

	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// The tenant portal's records live in three buckets created on first use:
//
//	event_types      tenant 0x00 type name -> hookwire.v1.EventType (the
//	                 tenant's event catalog)
//	portal_settings  tenant id -> hookwire.v1.PortalSettings
//	portal_sessions  session id -> hookwire.store.v1.PortalSessionRecord
//	                 (keyed by id alone: a token names its session, not
//	                 its tenant)
//
// Deleting a tenant deletes its records of all three at once.
var (
	bucketEventTypes     = []byte("event_types")
	bucketPortalSettings = []byte("portal_settings")
	bucketPortalSessions = []byte("portal_sessions")
)

// --- event types ---

// PutEventType stores an event type (a PutEventType command): create
// fails with ErrAlreadyExists when the name is taken, an update with
// ErrNotFound when it is not; both with ErrNotFound without the tenant.
func (s *Store) PutEventType(ctx context.Context, et *hookwirev1.EventType, create bool, audit *hookwirev1.AuditEvent) error {
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PutEventType{PutEventType: &storev1.PutEventType{EventType: et, Create: create, Audit: audit}}})
	return err
}

// DeleteEventType removes an event type (a DeleteEventType command), or
// returns ErrNotFound.
func (s *Store) DeleteEventType(ctx context.Context, tenant, name string, audit *hookwirev1.AuditEvent) error {
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_DeleteEventType{DeleteEventType: &storev1.DeleteEventType{Tenant: tenant, Name: name, Audit: audit}}})
	return err
}

// GetEventType returns one event type of a tenant, or ErrNotFound.
func (s *Store) GetEventType(tenant, name string) (*hookwirev1.EventType, error) {
	return getOne(s, bucketEventTypes, tenantKey(tenant, []byte(name)), &hookwirev1.EventType{})
}

// ListEventTypes returns a tenant's event types in name order.
func (s *Store) ListEventTypes(tenant string) ([]*hookwirev1.EventType, error) {
	var out []*hookwirev1.EventType
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEventTypes)
		if b == nil {
			return nil
		}
		prefix := tenantPrefix(tenant)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			et, err := decode(bucketEventTypes, k, v, &hookwirev1.EventType{})
			if err != nil {
				return err
			}
			out = append(out, et)
		}
		return nil
	})
	return out, err
}

func applyPutEventType(tx *bolt.Tx, c *storev1.PutEventType) error {
	et := c.GetEventType()
	if tx.Bucket(bucketTenants).Get([]byte(et.GetTenant())) == nil {
		return ErrNotFound
	}
	b, err := tx.CreateBucketIfNotExists(bucketEventTypes)
	if err != nil {
		return err
	}
	k := tenantKey(et.GetTenant(), []byte(et.GetName()))
	exists := b.Get(k) != nil
	switch {
	case c.GetCreate() && exists:
		return ErrAlreadyExists
	case !c.GetCreate() && !exists:
		return ErrNotFound
	}
	if err := put(b, k, et); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

func applyDeleteEventType(tx *bolt.Tx, c *storev1.DeleteEventType) error {
	b := tx.Bucket(bucketEventTypes)
	k := tenantKey(c.GetTenant(), []byte(c.GetName()))
	if b == nil || b.Get(k) == nil {
		return ErrNotFound
	}
	if err := b.Delete(k); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

// --- portal settings ---

// PutPortalSettings stores a tenant's portal settings (a PutPortalSettings
// command); ErrNotFound without the tenant.
func (s *Store) PutPortalSettings(ctx context.Context, ps *hookwirev1.PortalSettings, audit *hookwirev1.AuditEvent) error {
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PutPortalSettings{PutPortalSettings: &storev1.PutPortalSettings{Settings: ps, Audit: audit}}})
	return err
}

// GetPortalSettings returns a tenant's portal settings, or ErrNotFound
// when none were stored.
func (s *Store) GetPortalSettings(tenant string) (*hookwirev1.PortalSettings, error) {
	return getOne(s, bucketPortalSettings, []byte(tenant), &hookwirev1.PortalSettings{})
}

func applyPutPortalSettings(tx *bolt.Tx, c *storev1.PutPortalSettings) error {
	tenant := []byte(c.GetSettings().GetTenant())
	if tx.Bucket(bucketTenants).Get(tenant) == nil {
		return ErrNotFound
	}
	b, err := tx.CreateBucketIfNotExists(bucketPortalSettings)
	if err != nil {
		return err
	}
	if err := put(b, tenant, c.GetSettings()); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

// --- portal sessions ---

// PutPortalSession stores a new portal session (a PutPortalSession
// command); ErrNotFound without the tenant.
func (s *Store) PutPortalSession(ctx context.Context, rec *storev1.PortalSessionRecord, audit *hookwirev1.AuditEvent) error {
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PutPortalSession{PutPortalSession: &storev1.PutPortalSession{Record: rec, Audit: audit}}})
	return err
}

// RevokePortalSession marks a session revoked (a RevokePortalSession
// command); ErrNotFound when it is not the tenant's.
func (s *Store) RevokePortalSession(ctx context.Context, tenant, id string, audit *hookwirev1.AuditEvent) error {
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_RevokePortalSession{RevokePortalSession: &storev1.RevokePortalSession{Tenant: tenant, Id: id, Audit: audit}}})
	return err
}

// GetPortalSession returns a session record by id, or ErrNotFound.
func (s *Store) GetPortalSession(id string) (*storev1.PortalSessionRecord, error) {
	return getOne(s, bucketPortalSessions, []byte(id), &storev1.PortalSessionRecord{})
}

// ListPortalSessions returns the sessions of a tenant, in id order.
func (s *Store) ListPortalSessions(tenant string) ([]*hookwirev1.PortalSession, error) {
	var out []*hookwirev1.PortalSession
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPortalSessions)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			rec, err := decode(bucketPortalSessions, k, v, &storev1.PortalSessionRecord{})
			if err != nil {
				return err
			}
			if rec.GetSession().GetTenant() == tenant {
				out = append(out, rec.GetSession())
			}
			return nil
		})
	})
	return out, err
}

func applyPutPortalSession(tx *bolt.Tx, c *storev1.PutPortalSession) error {
	sess := c.GetRecord().GetSession()
	if tx.Bucket(bucketTenants).Get([]byte(sess.GetTenant())) == nil {
		return ErrNotFound
	}
	b, err := tx.CreateBucketIfNotExists(bucketPortalSessions)
	if err != nil {
		return err
	}
	id := []byte(sess.GetId())
	if b.Get(id) != nil {
		return ErrAlreadyExists
	}
	if err := put(b, id, c.GetRecord()); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

func applyRevokePortalSession(tx *bolt.Tx, c *storev1.RevokePortalSession) error {
	b := tx.Bucket(bucketPortalSessions)
	if b == nil {
		return ErrNotFound
	}
	id := []byte(c.GetId())
	v := b.Get(id)
	if v == nil {
		return ErrNotFound
	}
	rec, err := decode(bucketPortalSessions, id, v, &storev1.PortalSessionRecord{})
	if err != nil {
		return err
	}
	if rec.GetSession().GetTenant() != c.GetTenant() {
		return ErrNotFound
	}
	rec = proto.Clone(rec).(*storev1.PortalSessionRecord)
	rec.Session.Revoked = true
	if err := put(b, id, rec); err != nil {
		return err
	}
	return auditIfSet(tx, c.GetAudit())
}

// PurgePortalSessions removes the portal sessions that expired before
// cutoff, at most batch per write, and returns how many it removed.
func (s *Store) PurgePortalSessions(ctx context.Context, cutoff time.Time, batch int) (int, error) {
	batch = max(batch, 1)
	total := 0
	for ctx.Err() == nil {
		c := &storev1.PurgePortalSessions{CutoffUnixNanos: cutoff.UnixNano(), Batch: uint32(batch)}
		r, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PurgePortalSessions{PurgePortalSessions: c}})
		if err != nil {
			return total, err
		}
		total += r.PortalSessionsPurged
		if r.PortalSessionsPurged < batch {
			return total, nil
		}
	}
	return total, ctx.Err()
}

func applyPurgePortalSessions(tx *bolt.Tx, c *storev1.PurgePortalSessions) (int, error) {
	b := tx.Bucket(bucketPortalSessions)
	if b == nil {
		return 0, nil
	}
	batch := max(int(c.GetBatch()), 1)
	var doomed [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if len(doomed) >= batch {
			return nil
		}
		rec, err := decode(bucketPortalSessions, k, v, &storev1.PortalSessionRecord{})
		if err != nil {
			return err
		}
		if exp := rec.GetSession().GetExpireTime(); exp != nil && exp.AsTime().UnixNano() < c.GetCutoffUnixNanos() {
			doomed = append(doomed, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := deleteAll(b, doomed); err != nil {
		return 0, err
	}
	return len(doomed), nil
}

// deleteTenantPortal deletes a tenant's event types, portal settings and
// portal sessions (part of DeleteTenant).
func deleteTenantPortal(tx *bolt.Tx, tenant string) error {
	if b := tx.Bucket(bucketEventTypes); b != nil {
		prefix := tenantPrefix(tenant)
		var doomed [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			doomed = append(doomed, bytes.Clone(k))
		}
		if err := deleteAll(b, doomed); err != nil {
			return err
		}
	}
	if b := tx.Bucket(bucketPortalSettings); b != nil {
		if err := b.Delete([]byte(tenant)); err != nil {
			return err
		}
	}
	b := tx.Bucket(bucketPortalSessions)
	if b == nil {
		return nil
	}
	var doomed [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		rec, err := decode(bucketPortalSessions, k, v, &storev1.PortalSessionRecord{})
		if err != nil {
			return err
		}
		if rec.GetSession().GetTenant() == tenant {
			doomed = append(doomed, bytes.Clone(k))
		}
		return nil
	}); err != nil {
		return err
	}
	return deleteAll(b, doomed)
}
