package api

import (
	"context"
	"time"
)

// tenantPurgeBatch bounds each write of a tenant purge (deliveries,
// events, keys or audit events per transaction), as the retention purge's
// batches do, so API writes queue behind small transactions only.
const tenantPurgeBatch = 200

// tenantPurgeRetry is how long the purge waits after a failed write before
// it tries again (unless another deletion wakes it sooner).
const tenantPurgeRetry = time.Minute

// wakeTenantPurges tells RunTenantPurges that a tenant was deleted.
func (s *Services) wakeTenantPurges() {
	select {
	case s.tenantPurgeWake <- struct{}{}:
	default:
	}
}

// RunTenantPurges removes the records of deleted tenants in the
// background: at once for the tombstones left by an earlier run, then
// after every DeleteTenant. It returns when ctx ends; an unfinished purge
// resumes at the next start.
func (s *Services) RunTenantPurges(ctx context.Context) {
	retry := time.NewTimer(tenantPurgeRetry)
	retry.Stop()
	defer retry.Stop()
	for {
		if s.purgeDeletedTenants(ctx) {
			retry.Reset(tenantPurgeRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.tenantPurgeWake:
			retry.Stop()
		case <-retry.C:
		}
	}
}

// purgeDeletedTenants purges every tombstoned tenant; it reports whether
// one failed.
func (s *Services) purgeDeletedTenants(ctx context.Context) (failed bool) {
	tenants, err := s.cfg.Store.TenantPurges()
	if err != nil {
		s.cfg.Logger.Error("list deleted tenants to purge", "err", err)
		return true
	}
	for _, id := range tenants {
		started := time.Now()
		st, done, err := s.cfg.Store.PurgeTenant(ctx, id, tenantPurgeBatch)
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			s.cfg.Logger.Error("purge deleted tenant; retrying in a minute", "tenant", id, "err", err)
			failed = true
			continue
		}
		if done {
			s.cfg.Logger.Info("deleted tenant purged; its id can be used again", "tenant", id,
				"events", st.Events, "deliveries", st.Deliveries, "attempts", st.Attempts,
				"idempotency_keys", st.IdempotencyKeys, "audit_events", st.AuditEvents, "took", time.Since(started))
		}
	}
	return failed
}
