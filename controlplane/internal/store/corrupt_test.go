package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// filledStore writes a closed store with a tenant, a subscription and n
// events whose payloads carry the marker "PAYLOAD-%04d"; it returns the
// event ids.
func filledStore(t *testing.T, dir string, n int) []ids.ID {
	t.Helper()
	s := open(t, dir)
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	sub := ids.New(time.Now())
	if err := s.CreateSubscription(ctx, &storev1.SubscriptionRecord{Subscription: &hookwirev1.Subscription{Id: ids.Format(ids.Subscription, sub), Tenant: "acme"}}, nil); err != nil {
		t.Fatal(err)
	}
	var out []ids.ID
	for i := range n {
		ne := event("acme", time.Now(), sub)
		ne.Event.Payload = fmt.Appendf(nil, `{"marker":"PAYLOAD-%04d","pad":"%s"}`, i, strings.Repeat("x", 300))
		if err := s.Publish(ctx, "acme", []*NewEvent{ne}); err != nil {
			t.Fatal(err)
		}
		out = append(out, ne.ID)
	}
	return out
}

// bucketRoot is the root page of a bucket, read with bbolt.
func bucketRoot(t *testing.T, path string, name []byte) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var root uint64
	_ = db.View(func(tx *bolt.Tx) error { root = uint64(tx.Bucket(name).Root()); return nil })
	if root == 0 {
		t.Fatalf("bucket %s is inline; the test needs a page of its own", name)
	}
	return root
}

// patch writes b at off in the file.
func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func mustCheck(t *testing.T, dir string) *CheckReport {
	t.Helper()
	rep, err := Check(dir, time.Second)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return rep
}

func hasProblem(rep *CheckReport, substr string) bool {
	for _, p := range rep.Problems {
		if strings.Contains(p, substr) {
			return true
		}
	}
	return false
}

// TestOpenRefusesATruncatedFile: a file cut short (today: SIGBUS and a
// goroutine dump) is refused with one error saying so.
func TestOpenRefusesATruncatedFile(t *testing.T) {
	dir := t.TempDir()
	filledStore(t, dir, 300)
	path := filepath.Join(dir, FileName)
	info, _ := os.Stat(path)
	if err := os.Truncate(path, info.Size()/2); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "cut short") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open of a truncated file: %v, want one line wrapping ErrCorrupt that says it was cut short", err)
	}
	if rep := mustCheck(t, dir); rep.OK() || !hasProblem(rep, "cut short") {
		t.Fatalf("Check of a truncated file: %+v", rep.Problems)
	}
}

// TestOpenRefusesDamagedPages: damage to a page's header or its element
// table (today: a bbolt assertion panic) is found by the validation at
// open, before bbolt reads the page.
func TestOpenRefusesDamagedPages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, root int64)
		want   string
	}{
		{"page header", func(t *testing.T, path string, root int64) {
			patch(t, path, root*4096, bytes.Repeat([]byte{0xa5}, 16))
		}, "identifies itself as page"},
		{"element offsets", func(t *testing.T, path string, root int64) {
			// The first element's pos and key size of a branch or leaf.
			patch(t, path, root*4096+16, bytes.Repeat([]byte{0xff}, 12))
		}, "outside the page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			filledStore(t, dir, 300)
			path := filepath.Join(dir, FileName)
			tc.damage(t, path, int64(bucketRoot(t, path, bucketEvents)))
			_, err := Open(dir, Options{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want ErrCorrupt saying %q", err, tc.want)
			}
			if rep := mustCheck(t, dir); !hasProblem(rep, tc.want) {
				t.Fatalf("Check problems %q, want one saying %q", rep.Problems, tc.want)
			}
		})
	}
}

// TestChecksumCatchesAFlippedRecordByte: a byte flipped inside a record
// leaves the file's structure intact (bbolt would serve it); the record's
// checksum catches it on read, the other records still read, and Check
// names the record.
func TestChecksumCatchesAFlippedRecordByte(t *testing.T) {
	dir := t.TempDir()
	evs := filledStore(t, dir, 50)
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Free pages may hold older copies of the record's page; flip the
	// byte in every copy so the live one is among them.
	marker := []byte("PAYLOAD-0042")
	if bytes.Count(data, marker) == 0 {
		t.Fatal("marker not found in the file")
	}
	for off := 0; ; {
		at := bytes.Index(data[off:], marker)
		if at < 0 {
			break
		}
		at += off
		patch(t, path, int64(at+8), []byte{data[at+8] ^ 0x01}) // "0042" -> "1042"
		off = at + len(marker)
	}

	s := open(t, dir)
	defer s.Close()
	if _, err := s.GetEvents([]ids.ID{evs[42]}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("reading the damaged event: %v, want ErrCorrupt (checksum mismatch)", err)
	}
	if got, err := s.GetEvents([]ids.ID{evs[41], evs[43]}); err != nil || got[0] == nil || got[1] == nil {
		t.Fatalf("reading the events next to it: %v %v", got, err)
	}
	s.Close()
	rep := mustCheck(t, dir)
	want := "record events/" + fmt.Sprintf("%x", evs[42][:]) + ": checksum mismatch"
	if rep.OK() || !hasProblem(rep, want) || rep.ProblemCount() != 1 {
		t.Fatalf("Check problems %q, want exactly %q", rep.Problems, want)
	}
}

// TestFaultWhileRunningBecomesAnError: a file that shrinks under a running
// store makes reads fault past the end of the mapping; the read fails with
// ErrCorrupt instead of crashing the process.
func TestFaultWhileRunningBecomesAnError(t *testing.T) {
	dir := t.TempDir()
	evs := filledStore(t, dir, 300)
	s := open(t, dir)
	defer s.Close()
	if err := os.Truncate(filepath.Join(dir, FileName), 8192); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetEvents(evs)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a file cut short under the store: %v, want ErrCorrupt", err)
	}
}

// TestMissingOrEmptyFileInADirectoryThatHeldAStore: bbolt would create a
// new empty database (a new admin key, every tenant gone); Open refuses
// unless AllowNewStore, which starts a new store and rewrites the marker.
func TestMissingOrEmptyFileInADirectoryThatHeldAStore(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string) error
		want   string
	}{
		{"missing", os.Remove, "is missing"},
		{"empty", func(p string) error { return os.Truncate(p, 0) }, "is empty (0 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			filledStore(t, dir, 1)
			m, err := readMarker(dir)
			if err != nil || m == nil || !strings.HasPrefix(m.StoreID, storeIDPrefix+"_") {
				t.Fatalf("marker after creating a store: %+v, %v", m, err)
			}
			if err := tc.damage(filepath.Join(dir, FileName)); err != nil {
				t.Fatal(err)
			}
			_, err = Open(dir, Options{})
			if !errors.Is(err, ErrMissingStore) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), m.StoreID) || !strings.Contains(err.Error(), "--allow-new-store") {
				t.Fatalf("Open: %v, want ErrMissingStore naming the store and --allow-new-store", err)
			}
			if rep := mustCheck(t, dir); !hasProblem(rep, tc.want) {
				t.Fatalf("Check problems %q", rep.Problems)
			}
			s := openWith(t, dir, Options{AllowNewStore: true})
			defer s.Close()
			if _, err := s.GetTenant("acme"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("the new store has the old tenant: %v", err)
			}
			if s.ID() == m.StoreID {
				t.Fatal("the new store kept the old store's id")
			}
			if m2, _ := readMarker(dir); m2 == nil || m2.StoreID != s.ID() {
				t.Fatalf("marker %+v, want the new store %s", m2, s.ID())
			}
		})
	}
}

// TestSecondOpenIsRefused: the data directory is locked while open.
func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	if _, err := Open(dir, Options{OpenTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	if _, err := Check(dir, 100*time.Millisecond); !errors.Is(err, ErrInUse) {
		t.Fatalf("Check of a store in use: %v, want ErrInUse", err)
	}
}

// copyFixture copies testdata/<name> into a new data directory.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name, FileName))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The fixture testdata/schema1/hookwire.db was written by the store of
// commit 2f3cd48 (schema version 1, values without checksums): tenant
// acme (display name Acme), API key key1, one subscription, three events
// with idempotency keys idem-a..idem-c and trace contexts, a delivery per
// event (the first SUCCEEDED with attempt 1, two PENDING), an audit event
// and join token jt1 (name "fixture", hash "hash-of-the-token").

// TestMigratesASchema1Store: a data directory written by the previous
// version is migrated on first open: every record is sealed, reads and
// writes work, and Check finds nothing wrong.
func TestMigratesASchema1Store(t *testing.T) {
	dir := copyFixture(t, "schema1")
	s := open(t, dir)
	ctx := context.Background()
	if tn, err := s.GetTenant("acme"); err != nil || tn.GetDisplayName() != "Acme" {
		t.Fatalf("tenant after migration: %v, %v", tn, err)
	}
	if k, err := s.GetAPIKey("key1"); err != nil || k.GetApiKey().GetTenant() != "acme" {
		t.Fatalf("api key: %v, %v", k, err)
	}
	subs, err := s.ListSubscriptions("acme", "", 10)
	if err != nil || len(subs) != 1 {
		t.Fatalf("subscriptions: %v, %v", subs, err)
	}
	dl, _, err := s.ListDeliveries("acme", DeliveryFilter{}, nil, 10)
	if err != nil || len(dl) != 3 {
		t.Fatalf("deliveries: %d, %v", len(dl), err)
	}
	var eventIDs []ids.ID
	for _, d := range dl {
		id, _ := ids.Parse(ids.Event, d.GetEventId())
		eventIDs = append(eventIDs, id)
		if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
			if at, err := s.ListAttempts("acme", d.GetId()); err != nil || len(at) != 1 || at[0].GetStatusCode() != 200 {
				t.Fatalf("attempts: %v, %v", at, err)
			}
		}
	}
	evs, err := s.GetEvents(eventIDs)
	if err != nil || evs[0] == nil {
		t.Fatalf("events: %v", err)
	}
	if tr, err := s.EventTraces(eventIDs); err != nil || tr[0].GetTraceparent() == "" {
		t.Fatalf("traces: %v, %v", tr, err)
	}
	if au, _, err := s.ListAudit("acme", false, AuditFilter{}, nil, 10, 100); err != nil || len(au) != 1 {
		t.Fatalf("audit: %v, %v", au, err)
	}
	if jt, hash, err := s.GetJoinToken("jt1"); err != nil || jt.GetName() != "fixture" || string(hash) != "hash-of-the-token" {
		t.Fatalf("join token: %v %q %v", jt, hash, err)
	}
	// The idempotency keys still deduplicate.
	again := event("acme", time.Now(), ids.New(time.Now()))
	again.Event.IdempotencyKey = "idem-b"
	if err := s.Publish(ctx, "acme", []*NewEvent{again}); err != nil || again.DuplicateOf == nil {
		t.Fatalf("publish with a migrated idempotency key: %v, duplicate of %v", err, again.DuplicateOf)
	}
	if m, _ := readMarker(dir); m == nil || m.StoreID != s.ID() {
		t.Fatalf("marker after migrating: %+v", m)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep := mustCheck(t, dir)
	if !rep.OK() || rep.Schema != schemaVersion || rep.Records["events"] != 3 || rep.Records["deliveries"] != 3 {
		t.Fatalf("Check after migration: schema %d, records %v, problems %q", rep.Schema, rep.Records, rep.Problems)
	}
}

// TestResumesAnInterruptedMigration: a migration stopped after sealing
// part of the records resumes where it stopped, sealing nothing twice.
func TestResumesAnInterruptedMigration(t *testing.T) {
	dir := copyFixture(t, "schema1")
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// What migrateV1's first transaction and a step that stopped inside
	// the events bucket leave behind.
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(metaSchema, []byte{0, 0, 0, 2}); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketTenants, bucketAPIKeys, bucketSubscriptions} {
			b := tx.Bucket(name)
			if err := b.ForEach(func(k, v []byte) error { return b.Put(bytes.Clone(k), sealCopy(k, v)) }); err != nil {
				return err
			}
		}
		evb := tx.Bucket(bucketEvents)
		k, v := evb.Cursor().First()
		if err := evb.Put(bytes.Clone(k), sealCopy(k, v)); err != nil {
			return err
		}
		return meta.Put(metaMigration, append(append([]byte(nil), bucketEvents...), append([]byte{0}, k...)...))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rep := mustCheck(t, dir); !rep.OK() || len(rep.Notes) == 0 {
		t.Fatalf("Check of a half-migrated store: problems %q notes %q", rep.Problems, rep.Notes)
	}
	s := open(t, dir)
	if _, err := s.GetTenant("acme"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if rep := mustCheck(t, dir); !rep.OK() || rep.Records["events"] != 3 {
		t.Fatalf("Check after resuming: records %v problems %q notes %q", rep.Records, rep.Problems, rep.Notes)
	}
}

// TestCheckFindsNothingWrongInAUsedStore: after the operations that touch
// every bucket and index, Check reports no problem (no false alarms).
func TestCheckFindsNothingWrongInAUsedStore(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	now := time.Now()
	for _, tn := range []string{"acme", "gone"} {
		if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: tn, CreateTime: timestamppb.New(now)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sub, ordered := ids.New(now), ids.New(now)
	var changes []*DeliveryChange
	for i := range 20 {
		ne := event("acme", now, sub, ordered)
		ne.Event.IdempotencyKey = fmt.Sprintf("k%d", i)
		ne.Trace = &storev1.TraceContext{Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
		ne.Deliveries[1].Ordered = true
		ne.Deliveries[1].Delivery.OrderingKey = fmt.Sprintf("g%d", i%3)
		if err := s.Publish(ctx, "acme", []*NewEvent{ne}); err != nil {
			t.Fatal(err)
		}
		if err := s.Publish(ctx, "gone", []*NewEvent{event("gone", now, sub)}); err != nil {
			t.Fatal(err)
		}
		status := hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
		if i%2 == 0 {
			status = hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING
		}
		for _, d := range ne.Deliveries {
			changes = append(changes, &DeliveryChange{DeliveryID: d.ID, Ordered: d.Ordered, Attempt: &hookwirev1.Attempt{Number: 1},
				Fields: []string{"status", "attempt_count", "next_attempt_time"},
				Set:    &hookwirev1.Delivery{Status: status, AttemptCount: 1, NextAttemptTime: timestamppb.New(now.Add(time.Minute))}})
		}
	}
	if _, err := s.ChangeDeliveries(ctx, changes); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, auditEvent("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutJoinToken(ctx, &hookwirev1.JoinToken{Id: "jt"}, []byte("h"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTenant(ctx, "gone", now, nil); err != nil {
		t.Fatal(err)
	}
	if _, done, err := s.PurgeTenant(ctx, "gone", 3); err != nil || !done {
		t.Fatalf("purge: %v %v", done, err)
	}
	if _, err := s.Purge(ctx, now.Add(time.Hour), 5); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep := mustCheck(t, dir)
	if !rep.OK() || rep.Records["deliveries"] == 0 || rep.Records["due"] == 0 || rep.Records["ordered"] == 0 || rep.Records["attempts"] == 0 {
		t.Fatalf("Check of a healthy store: records %v problems %q", rep.Records, rep.Problems)
	}
	var out bytes.Buffer
	rep.Write(&out)
	if !strings.Contains(out.String(), "OK: no problems found") {
		t.Fatalf("report:\n%s", out.String())
	}
}

// TestCheckReportsIndexDamage: index entries that disagree with their
// records are listed.
func TestCheckReportsIndexDamage(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	sub := ids.New(time.Now())
	ne := event("acme", time.Now(), sub)
	if err := s.Publish(ctx, "acme", []*NewEvent{ne}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ghost := ids.New(time.Now())
	err = db.Update(func(tx *bolt.Tx) error {
		d := ne.Deliveries[0]
		if err := tx.Bucket(bucketDue).Delete(dueKey(sub, d.Delivery.GetNextAttemptTime().AsTime().UnixNano(), d.ID)); err != nil {
			return err
		}
		return tx.Bucket(bucketDeliveriesBySub).Put(append(bytes.Clone(sub[:]), ghost[:]...), nil)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep := mustCheck(t, dir)
	if !hasProblem(rep, "is pending but not in the due index") || !hasProblem(rep, "names delivery "+ids.Format(ids.Delivery, ghost)+", which does not exist") || rep.ProblemCount() != 2 {
		t.Fatalf("Check problems %q", rep.Problems)
	}
}
