package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func auditEv(scope, action string, at time.Time) *hookwirev1.AuditEvent {
	return &hookwirev1.AuditEvent{Id: ids.Format(AuditIDPrefix, ids.New(at)), Tenant: scope, Action: action,
		Resource: "tenants/" + scope, Time: timestamppb.New(at)}
}

func TestAuditListScanBudgetAndPurge(t *testing.T) {
	s := open(t, t.TempDir())
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	base := time.Now().Add(-time.Hour)
	// 30 records per tenant, a match every tenth.
	for i := range 30 {
		for _, scope := range []string{"acme", "beta", AuditGlobal} {
			action := "subscription.update"
			if i%10 == 0 {
				action = "api_key.create"
			}
			if err := s.AppendAudit(ctx, auditEv(scope, action, base.Add(time.Duration(i)*time.Second))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A write that fails records nothing; one that succeeds records its event.
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, auditEv("acme", "tenant.create", time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, auditEv("acme", "tenant.create", time.Now())); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second create: %v", err)
	}

	list := func(scope string, all bool, f AuditFilter, limit, scan int) (pages [][]string) {
		t.Helper()
		var before *ids.ID
		for range 100 {
			got, next, err := s.ListAudit(scope, all, f, before, limit, scan)
			if err != nil {
				t.Fatal(err)
			}
			var page []string
			for _, ev := range got {
				page = append(page, ev.GetTenant()+":"+ev.GetAction())
			}
			pages = append(pages, page)
			if next == nil {
				return pages
			}
			before = next
		}
		t.Fatal("paging does not end")
		return nil
	}
	count := func(pages [][]string) int {
		n := 0
		for _, p := range pages {
			n += len(p)
		}
		return n
	}
	if n := count(list("acme", false, AuditFilter{}, 7, 10000)); n != 31 {
		t.Fatalf("acme has %d records, want 31 (30 appended, one from a successful write)", n)
	}
	if n := count(list("", true, AuditFilter{}, 1000, 10000)); n != 91 {
		t.Fatalf("all scopes: %d, want 91", n)
	}
	// A scan budget of 4 yields short pages but still finds all 3 matches.
	pages := list("beta", false, AuditFilter{Action: "api_key.*"}, 100, 4)
	if count(pages) != 3 || len(pages) < 8 {
		t.Fatalf("budgeted pages %v", pages)
	}
	// Time range: seconds 10 to 19.
	f := AuditFilter{Start: base.Add(10 * time.Second), End: base.Add(20 * time.Second)}
	if n := count(list(AuditGlobal, false, f, 3, 10000)); n != 10 {
		t.Fatalf("time range: %d records, want 10", n)
	}

	n, err := s.PurgeAudit(ctx, base.Add(15*time.Second), 7)
	if err != nil || n != 45 {
		t.Fatalf("purge: %d, %v; want 45", n, err)
	}
	if n := count(list("", true, AuditFilter{}, 1000, 10000)); n != 46 {
		t.Fatalf("after purge: %d, want 46", n)
	}
}
