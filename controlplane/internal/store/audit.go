package store

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
)

// The audit log lives in two buckets, created on first use:
//
//	audit          scope 0x00 audit ulid(16) -> hookwire.v1.AuditEvent
//	audit_by_time  audit ulid(16) -> scope
//
// The scope is the tenant id, or AuditGlobal for changes that belong to no
// tenant. A tenant's log is the range scan of its prefix in audit; the
// whole log (and the retention purge) walks audit_by_time.
var (
	bucketAudit       = []byte("audit")
	bucketAuditByTime = []byte("audit_by_time")
)

// AuditGlobal is the scope of audit events that belong to no tenant
// (tenant create/delete, join tokens, agent drains). No tenant id can be
// "-", so it cannot collide with one.
const AuditGlobal = "-"

// AuditIDPrefix is the type prefix of audit event ids ("aud_...").
const AuditIDPrefix = "aud"

func auditID(ev *hookwirev1.AuditEvent) (ids.ID, error) {
	id, err := ids.Parse(AuditIDPrefix, ev.GetId())
	if err != nil {
		return ids.ID{}, fmt.Errorf("audit event: %w", err)
	}
	return id, nil
}

func putAudit(tx *bolt.Tx, ev *hookwirev1.AuditEvent) error {
	id, err := auditID(ev)
	if err != nil {
		return err
	}
	scope := ev.GetTenant()
	if scope == "" {
		return fmt.Errorf("audit event %s has no tenant or global scope", ev.GetId())
	}
	b, err := tx.CreateBucketIfNotExists(bucketAudit)
	if err != nil {
		return err
	}
	bt, err := tx.CreateBucketIfNotExists(bucketAuditByTime)
	if err != nil {
		return err
	}
	if err := put(b, tenantKey(scope, id[:]), ev); err != nil {
		return err
	}
	return putRecord(bt, id[:], []byte(scope))
}

// AppendAudit records an audit event in a write of its own, for changes
// that make no store write (an agent drain) or whose write cannot carry it.
func (s *Store) AppendAudit(ctx context.Context, ev *hookwirev1.AuditEvent) error {
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_AppendAudit{AppendAudit: &storev1.AppendAudit{Event: ev}}})
	return err
}

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	// Action is an exact action, or "kind.*" for every action of a kind.
	Action string
	// Resource matches the resource itself and every resource under it.
	Resource string
	// Start (inclusive) and End (exclusive) bound the event time.
	Start, End time.Time
}

func (f AuditFilter) keep(ev *hookwirev1.AuditEvent) bool {
	if f.Action != "" {
		if kind, ok := strings.CutSuffix(f.Action, ".*"); ok {
			if !strings.HasPrefix(ev.GetAction(), kind+".") {
				return false
			}
		} else if ev.GetAction() != f.Action {
			return false
		}
	}
	if r := ev.GetResource(); f.Resource != "" && r != f.Resource && !strings.HasPrefix(r, f.Resource+"/") {
		return false
	}
	return true
}

// ListAudit returns audit events of scope (a tenant, AuditGlobal for only
// the global ones) or of every scope (all true), newest first, starting
// before the event id before (nil: from the newest). It examines at most
// scan records so a filter that matches little cannot make one call run
// long; next is where the following page starts (nil: nothing more).
func (s *Store) ListAudit(scope string, all bool, f AuditFilter, before *ids.ID, limit, scan int) (out []*hookwirev1.AuditEvent, next *ids.ID, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		b, bt := tx.Bucket(bucketAudit), tx.Bucket(bucketAuditByTime)
		if b == nil || bt == nil {
			return nil
		}
		var c *bolt.Cursor
		var prefix []byte
		if all {
			c = bt.Cursor()
		} else {
			c, prefix = b.Cursor(), tenantPrefix(scope)
		}
		// The newest key to look at: just before before, or before End.
		upper := append(bytes.Clone(prefix), bytes.Repeat([]byte{0xff}, 16)...)
		if before != nil {
			upper = append(bytes.Clone(prefix), before[:]...)
		}
		if !f.End.IsZero() {
			if end := append(bytes.Clone(prefix), timeID(f.End)...); bytes.Compare(end, upper) < 0 {
				upper = end
			}
		}
		k, _ := c.Seek(upper)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		var start []byte
		if !f.Start.IsZero() {
			start = append(bytes.Clone(prefix), timeID(f.Start)...)
		}
		examined := 0
		var last ids.ID
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			if start != nil && bytes.Compare(k, start) < 0 {
				return nil
			}
			if len(out) == limit || examined == scan {
				// More may follow: the next page starts before the last
				// record examined.
				next = &last
				return nil
			}
			examined++
			copy(last[:], k[len(prefix):])
			key := k
			if all {
				scope, err := getRecord(tx, bucketAuditByTime, k)
				if err != nil {
					return err
				}
				key = tenantKey(string(scope), k)
			}
			v := b.Get(key)
			if v == nil {
				continue
			}
			ev, err := decode(bucketAudit, key, v, &hookwirev1.AuditEvent{})
			if err != nil {
				return err
			}
			if f.keep(ev) {
				out = append(out, ev)
			}
		}
		return nil
	})
	return out, next, err
}

// PurgeAudit removes audit events recorded before cutoff, at most batch
// per write transaction, and returns how many it removed.
func (s *Store) PurgeAudit(ctx context.Context, cutoff time.Time, batch int) (int, error) {
	batch = max(batch, 1)
	total := 0
	for ctx.Err() == nil {
		c := &storev1.PurgeAudit{CutoffUnixNanos: cutoff.UnixNano(), Batch: uint32(batch)}
		r, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PurgeAudit{PurgeAudit: c}})
		if err != nil {
			return total, err
		}
		total += r.AuditPurged
		if r.AuditPurged < batch {
			return total, nil
		}
	}
	return total, ctx.Err()
}
