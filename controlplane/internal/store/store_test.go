package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func event(tenant string, now time.Time, subs ...ids.ID) *NewEvent {
	eid := ids.New(now)
	ne := &NewEvent{ID: eid, Event: &hookwirev1.Event{Id: ids.Format(ids.Event, eid), Tenant: tenant, Type: "a.b", Payload: []byte("{}")}}
	for _, sub := range subs {
		did := ids.New(now)
		ne.Deliveries = append(ne.Deliveries, NewDelivery{ID: did, SubID: sub, Delivery: &hookwirev1.Delivery{
			Id: ids.Format(ids.Delivery, did), Tenant: tenant, EventId: ne.Event.Id, SubscriptionId: ids.Format(ids.Subscription, sub),
			Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING, NextAttemptTime: timestamppb.New(now),
		}})
	}
	return ne
}

func TestGroupCommitSharesCommits(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	sub := ids.New(time.Now())
	const writers, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				errs <- s.Publish(ctx, "acme", []*NewEvent{event("acme", time.Now(), sub)})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	after := s.Stats()
	writes, commits := after.Writes-before.Writes, after.Commits-before.Commits
	if writes != writers*each {
		t.Fatalf("writes = %d, want %d", writes, writers*each)
	}
	if commits >= writes {
		t.Errorf("%d writes took %d commits; concurrent writers should share commits", writes, commits)
	}
	if n, err := s.CountDue(); n != writers*each || err != nil {
		t.Errorf("due index holds %d (%v), want %d", n, err, writers*each)
	}
}

func TestFailedWriteDoesNotSpoilItsBatch(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	results := make([]error, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.enqueue(ctx, func(tx *bolt.Tx) error {
				if err := tx.Bucket(bucketMeta).Put([]byte{byte(i)}, []byte("x")); err != nil {
					return err
				}
				if i%5 == 0 {
					return boom
				}
				return nil
			})
		}()
	}
	wg.Wait()
	_ = s.view(func(tx *bolt.Tx) error {
		for i, err := range results {
			stored := tx.Bucket(bucketMeta).Get([]byte{byte(i)}) != nil
			if i%5 == 0 && (!errors.Is(err, boom) || stored) {
				t.Errorf("write %d: err %v stored %v, want boom and nothing stored", i, err, stored)
			}
			if i%5 != 0 && (err != nil || !stored) {
				t.Errorf("write %d: err %v stored %v, want success", i, err, stored)
			}
		}
		return nil
	})
}

func TestChangeDeliveriesKeepsDueIndex(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	sub := ids.New(now)
	ne := event("acme", now, sub, sub)
	if err := s.Publish(ctx, "acme", []*NewEvent{ne}); err != nil {
		t.Fatal(err)
	}
	retry, done := ne.Deliveries[0].ID, ne.Deliveries[1].ID
	later := now.Add(time.Hour)
	changes := []*DeliveryChange{
		{DeliveryID: retry, Attempt: &hookwirev1.Attempt{Number: 1, Error: "refused"},
			Fields: []string{"attempt_count", "next_attempt_time"}, Set: &hookwirev1.Delivery{AttemptCount: 1, NextAttemptTime: timestamppb.New(later)}},
		{DeliveryID: done, Attempt: &hookwirev1.Attempt{Number: 1},
			Fields: []string{"status"}, Set: &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED}},
		{DeliveryID: ids.New(now), Fields: []string{"status"}, Set: &hookwirev1.Delivery{}},
	}
	added, err := s.ChangeDeliveries(ctx, changes)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 || added[0].SubID != sub || !added[0].At.Equal(later) {
		t.Fatalf("due added = %+v", added)
	}
	if !changes[0].Applied || !changes[1].Applied || changes[2].Applied {
		t.Fatalf("applied = %v %v %v", changes[0].Applied, changes[1].Applied, changes[2].Applied)
	}
	s.Close()
	s = open(t, dir) // and it all survives a reopen
	defer s.Close()
	var due []Due
	if err := s.ScanDue(sub, func(d Due) bool { due = append(due, d); return true }); err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].DeliveryID != retry || !due[0].At.Equal(later) || due[0].SubID != sub {
		t.Fatalf("due index = %+v", due)
	}
	attempts, err := s.ListAttempts("acme", ids.Format(ids.Delivery, retry))
	if err != nil || len(attempts) != 1 || attempts[0].GetError() != "refused" {
		t.Fatalf("attempts = %v, %v", attempts, err)
	}
	if _, err := s.ListAttempts("globex", ids.Format(ids.Delivery, retry)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other tenant's attempts: %v", err)
	}
}

func TestListDeliveriesPagesNewestFirst(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	for _, tn := range []string{"acme", "globex"} {
		if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: tn}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sub := ids.New(time.Now())
	var want []string
	for range 5 {
		ne := event("acme", time.Now(), sub)
		if err := s.Publish(ctx, "acme", []*NewEvent{ne, event("globex", time.Now(), sub)}); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		want = append([]string{ne.Deliveries[0].Delivery.Id}, want...)
	}
	var got []string
	var before *ids.ID
	for {
		page, next, err := s.ListDeliveries("acme", DeliveryFilter{}, before, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			got = append(got, d.GetId())
		}
		if next == nil {
			break
		}
		before = next
	}
	if len(got) != len(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("listed %v, want %v", got, want)
		}
	}
}

func TestSecondOpenReportsInUse(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	_, err := Open(dir, Options{OpenTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second open: %v", err)
	}
}

func TestOrderedGroupsPromoteInPublishOrder(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	sub := ids.New(now)
	var published []*NewEvent
	for _, key := range []string{"a", "a", "b", "a"} {
		ne := event("acme", now, sub)
		ne.Deliveries[0].Ordered = true
		ne.Deliveries[0].Delivery.OrderingKey = key
		published = append(published, ne)
	}
	if err := s.Publish(ctx, "acme", published); err != nil {
		t.Fatal(err)
	}
	waiting := []bool{}
	for _, ne := range published {
		waiting = append(waiting, ne.Deliveries[0].Waiting)
	}
	if want := []bool{false, true, false, true}; fmt.Sprint(waiting) != fmt.Sprint(want) {
		t.Fatalf("waiting = %v, want %v", waiting, want)
	}
	dueIDs := func() map[ids.ID]bool {
		out := map[ids.ID]bool{}
		_ = s.ScanDue(sub, func(d Due) bool { out[d.DeliveryID] = true; return true })
		return out
	}
	id := func(i int) ids.ID { return published[i].Deliveries[0].ID }
	if d := dueIDs(); len(d) != 2 || !d[id(0)] || !d[id(2)] {
		t.Fatalf("due = %v, want heads of a and b", d)
	}
	finish := func(i int) []DueAdded {
		added, err := s.ChangeDeliveries(ctx, []*DeliveryChange{{DeliveryID: id(i),
			Fields: []string{"status"}, Set: &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED}}})
		if err != nil {
			t.Fatal(err)
		}
		return added
	}
	// A retry of the head keeps the group blocked.
	if _, err := s.ChangeDeliveries(ctx, []*DeliveryChange{{DeliveryID: id(0),
		Fields: []string{"next_attempt_time"}, Set: &hookwirev1.Delivery{NextAttemptTime: timestamppb.New(now.Add(time.Minute))}}}); err != nil {
		t.Fatal(err)
	}
	if d := dueIDs(); d[id(1)] || !d[id(0)] {
		t.Fatalf("after a retry of the head, due = %v", d)
	}
	if added := finish(0); len(added) != 1 {
		t.Fatalf("finishing the head promoted %v", added)
	}
	if d := dueIDs(); !d[id(1)] || d[id(3)] {
		t.Fatalf("after the head, due = %v, want the second of group a only", d)
	}
	finish(1)
	if d := dueIDs(); !d[id(3)] {
		t.Fatalf("after the second, due = %v, want the third of group a", d)
	}
}

func TestIdempotencyKeyReturnsOriginal(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	sub := ids.New(time.Now())
	first := event("acme", time.Now(), sub, sub)
	first.Event.IdempotencyKey = "order-42"
	if err := s.Publish(ctx, "acme", []*NewEvent{first}); err != nil || first.DuplicateOf != nil {
		t.Fatalf("first publish: %v dup %v", err, first.DuplicateOf)
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	again := event("acme", time.Now(), sub)
	again.Event.IdempotencyKey = "order-42"
	if err := s.Publish(ctx, "acme", []*NewEvent{again}); err != nil {
		t.Fatal(err)
	}
	if again.DuplicateOf == nil || *again.DuplicateOf != first.ID || again.DuplicateDeliveries != 2 {
		t.Fatalf("duplicate of %v (%d deliveries), want %v (2)", again.DuplicateOf, again.DuplicateDeliveries, first.ID)
	}
	if evs, _ := s.GetEvents([]ids.ID{again.ID}); evs[0] != nil {
		t.Fatal("the duplicate event was stored")
	}
}

func TestPurgeRemovesOldFinishedWork(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-40 * 24 * time.Hour)
	sub := ids.New(old)
	var oldEvents []*NewEvent
	for range 25 {
		ne := event("acme", old, sub)
		ne.Event.IdempotencyKey = ne.Event.Id
		oldEvents = append(oldEvents, ne)
	}
	fresh := event("acme", time.Now(), sub)
	if err := s.Publish(ctx, "acme", append(oldEvents, fresh)); err != nil {
		t.Fatal(err)
	}
	// All but the last old delivery finish, with one attempt each.
	var changes []*DeliveryChange
	for _, ne := range oldEvents[:24] {
		changes = append(changes, &DeliveryChange{DeliveryID: ne.Deliveries[0].ID, Attempt: &hookwirev1.Attempt{Number: 1},
			Fields: []string{"status"}, Set: &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED}})
	}
	if _, err := s.ChangeDeliveries(ctx, changes); err != nil {
		t.Fatal(err)
	}
	st, err := s.Purge(ctx, time.Now().Add(-30*24*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 24 || st.Deliveries != 24 || st.Attempts != 24 {
		t.Fatalf("purged %+v, want 24 events, deliveries and attempts", st)
	}
	left, _, err := s.ListDeliveries("acme", DeliveryFilter{}, nil, 100)
	if err != nil || len(left) != 2 {
		t.Fatalf("left %d deliveries (%v), want the pending old one and the fresh one", len(left), err)
	}
	// A purged event's idempotency key is free again.
	again := event("acme", time.Now(), sub)
	again.Event.IdempotencyKey = oldEvents[0].Event.Id
	if err := s.Publish(ctx, "acme", []*NewEvent{again}); err != nil || again.DuplicateOf != nil {
		t.Fatalf("republish after purge: %v dup %v", err, again.DuplicateOf)
	}
}
