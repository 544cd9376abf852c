package store

import (
	"context"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// TestStatsRecordReadPurge records minutes of three subscriptions (one of
// them deleted before its flush), reads windows back, purges the old
// minutes in small steps, and deletes a subscription with its minutes.
func TestStatsRecordReadPurge(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	var subs []ids.ID
	for range 2 {
		id := ids.New(now)
		subs = append(subs, id)
		rec := &storev1.SubscriptionRecord{Subscription: &hookwirev1.Subscription{Id: ids.Format(ids.Subscription, id), Tenant: "acme"}}
		if err := s.CreateSubscription(ctx, rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	ghost := ids.New(now)
	m0 := now.Unix() / 60
	var deltas []*storev1.StatsDelta
	for _, sub := range append(subs, ghost) {
		for i := range int64(10) {
			deltas = append(deltas, &storev1.StatsDelta{Tenant: "acme", SubscriptionId: sub[:], Minute: m0 + i, Add: &storev1.StatsMinute{Created: 1, Succeeded: i, Latency: []int64{0, 1}}})
		}
	}
	for range 2 { // the second flush adds to the first
		if err := s.RecordStats(ctx, deltas); err != nil {
			t.Fatal(err)
		}
	}
	read := func(sub *ids.ID, from, to int64) map[ids.ID][]int64 {
		t.Helper()
		out := map[ids.ID][]int64{}
		if err := s.StatsMinutes("acme", sub, from, to, func(id ids.ID, minute int64, m *storev1.StatsMinute) {
			if m.GetCreated() != 2 || m.GetSucceeded() != 2*(minute-m0) || m.GetLatency()[1] != 2 {
				t.Errorf("minute %d of %v: %v", minute, id, m)
			}
			out[id] = append(out[id], minute-m0)
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := read(nil, m0+3, m0+5)
	if len(got) != 2 || len(got[subs[0]]) != 2 || got[subs[0]][0] != 3 || len(got[subs[1]]) != 2 || got[ghost] != nil {
		t.Fatalf("window [3, 5): %v", got)
	}
	if got := read(&subs[1], m0+8, m0+100); len(got) != 1 || len(got[subs[1]]) != 2 {
		t.Fatalf("one subscription, [8, 100): %v", got)
	}
	if got := read(nil, m0-100, m0); len(got) != 0 {
		t.Fatalf("before anything: %v", got)
	}

	n, err := s.PurgeStats(ctx, m0+7, 3)
	if err != nil || n != 14 {
		t.Fatalf("purge before minute 7: %d, %v; want 14", n, err)
	}
	if got := read(nil, m0-100, m0+100); len(got[subs[0]]) != 3 || got[subs[0]][0] != 7 || len(got[subs[1]]) != 3 {
		t.Fatalf("after the purge: %v", got)
	}

	rec, err := s.GetSubscription("acme", ids.Format(ids.Subscription, subs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSubscription(ctx, rec, nil); err != nil {
		t.Fatal(err)
	}
	if got := read(nil, m0-100, m0+100); len(got) != 1 || got[subs[0]] != nil {
		t.Fatalf("after deleting a subscription: %v", got)
	}
	if err := s.RecordStats(ctx, deltas[:1]); err != nil { // a late flush of the deleted one
		t.Fatal(err)
	}
	if got := read(&subs[0], m0-100, m0+100); len(got) != 0 {
		t.Fatalf("a flush after the deletion stored: %v", got)
	}
}
