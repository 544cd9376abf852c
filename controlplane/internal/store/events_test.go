package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// typedEvent is an event of tenant received at t.
func typedEvent(tenant, typ string, t time.Time, payload string) *NewEvent {
	eid := ids.New(t)
	return &NewEvent{ID: eid, Event: &hookwirev1.Event{Id: ids.Format(ids.Event, eid), Tenant: tenant, Type: typ,
		Payload: []byte(payload), ContentType: "application/json", ReceiveTime: timestamppb.New(t)}}
}

// listAll pages through ListEvents and returns the ids in order and the
// page tokens it was given.
func listAll(t *testing.T, s *Store, tenant string, f EventFilter, limit, scan int) (got []string, tokens []ids.ID) {
	t.Helper()
	var before *ids.ID
	for range 10000 {
		page, next, err := s.ListEvents(tenant, f, before, limit, scan)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > limit {
			t.Fatalf("page of %d events, limit %d", len(page), limit)
		}
		for _, ev := range page {
			if ev.GetTenant() != tenant {
				t.Fatalf("listing %s returned %s's event %s", tenant, ev.GetTenant(), ev.GetId())
			}
			got = append(got, ev.GetId())
		}
		if next == nil {
			return got, tokens
		}
		if before != nil && *next == *before {
			t.Fatalf("next page token %s did not move", ids.Format(ids.Event, *next))
		}
		tokens = append(tokens, *next)
		before = next
	}
	t.Fatal("paging did not end")
	return nil, nil
}

func TestListEventsPagesFiltersAndSkipsOtherTenants(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	for _, tenant := range []string{"acme", "globex"} {
		if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: tenant}, nil); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var acme []*NewEvent // in publish order
	globex := map[string]bool{}
	for i := range 20 {
		at := t0.Add(time.Duration(i) * 10 * time.Millisecond).Add(300 * time.Microsecond)
		typ := "order.created"
		if i%2 == 1 {
			typ = "invoice.paid"
		}
		ne := typedEvent("acme", typ, at, fmt.Sprintf(`{"i":%d}`, i))
		if i == 7 {
			ne.Event.IdempotencyKey = "key-7"
		}
		acme = append(acme, ne)
		if err := s.Publish(ctx, "acme", []*NewEvent{ne}); err != nil {
			t.Fatal(err)
		}
		// Several of globex's events in one millisecond, between acme's.
		var batch []*NewEvent
		for range 3 {
			g := typedEvent("globex", "order.created", at.Add(5*time.Millisecond), `{}`)
			if i == 7 {
				g.Event.IdempotencyKey = "key-7"
				batch = append(batch, g)
				break
			}
			batch = append(batch, g)
		}
		if err := s.Publish(ctx, "globex", batch); err != nil {
			t.Fatal(err)
		}
		for _, g := range batch {
			globex[g.Event.Id] = true
		}
	}
	newestFirst := func(keep func(i int, ev *hookwirev1.Event) bool) []string {
		var out []string
		for i := len(acme) - 1; i >= 0; i-- {
			if keep == nil || keep(i, acme[i].Event) {
				out = append(out, acme[i].Event.Id)
			}
		}
		return out
	}

	t.Run("all pages", func(t *testing.T) {
		got, _ := listAll(t, s, "acme", EventFilter{}, 3, 10000)
		if want := newestFirst(nil); !slices.Equal(got, want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
	})

	t.Run("scan budget", func(t *testing.T) {
		// Two events examined per call: most pages end on the budget,
		// some empty, and together they list everything exactly once.
		got, tokens := listAll(t, s, "acme", EventFilter{}, 5, 2)
		if want := newestFirst(nil); !slices.Equal(got, want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
		if len(tokens) < 20 {
			t.Errorf("only %d pages with a budget of 2 events per call", len(tokens))
		}
		for _, tok := range tokens {
			if text := ids.Format(ids.Event, tok); globex[text] {
				t.Errorf("page token %s is globex's event", text)
			}
		}
	})

	t.Run("type", func(t *testing.T) {
		f := EventFilter{Type: func(typ string) bool { return typ == "invoice.paid" }}
		got, _ := listAll(t, s, "acme", f, 4, 10000)
		want := newestFirst(func(_ int, ev *hookwirev1.Event) bool { return ev.Type == "invoice.paid" })
		if !slices.Equal(got, want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
	})

	t.Run("time range to the microsecond", func(t *testing.T) {
		// Events 5..12: start just at event 5, end just after event 12,
		// both inside an event's millisecond.
		f := EventFilter{Start: acme[5].Event.ReceiveTime.AsTime(), End: acme[12].Event.ReceiveTime.AsTime().Add(time.Microsecond)}
		got, _ := listAll(t, s, "acme", f, 3, 10000)
		want := newestFirst(func(i int, _ *hookwirev1.Event) bool { return i >= 5 && i <= 12 })
		if !slices.Equal(got, want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
		f = EventFilter{Start: acme[5].Event.ReceiveTime.AsTime().Add(time.Microsecond), End: acme[12].Event.ReceiveTime.AsTime()}
		got, _ = listAll(t, s, "acme", f, 3, 10000)
		want = newestFirst(func(i int, _ *hookwirev1.Event) bool { return i > 5 && i < 12 })
		if !slices.Equal(got, want) {
			t.Errorf("exclusive ends: got %v\nwant %v", got, want)
		}
	})

	t.Run("idempotency key", func(t *testing.T) {
		got, _ := listAll(t, s, "acme", EventFilter{IdempotencyKey: "key-7"}, 10, 10000)
		if !slices.Equal(got, []string{acme[7].Event.Id}) {
			t.Errorf("got %v, want %s", got, acme[7].Event.Id)
		}
		if got, _ := listAll(t, s, "acme", EventFilter{IdempotencyKey: "key-8"}, 10, 10000); len(got) != 0 {
			t.Errorf("unknown key: %v", got)
		}
		f := EventFilter{IdempotencyKey: "key-7", Type: func(string) bool { return false }}
		if got, _ := listAll(t, s, "acme", f, 10, 10000); len(got) != 0 {
			t.Errorf("key with a type that does not match: %v", got)
		}
	})

	t.Run("payloads", func(t *testing.T) {
		page, _, err := s.ListEvents("acme", EventFilter{WithoutPayload: true}, nil, 5, 10000)
		if err != nil || len(page) != 5 {
			t.Fatalf("%d events, %v", len(page), err)
		}
		for _, ev := range page {
			if ev.Payload != nil || ev.Type == "" || ev.ReceiveTime == nil {
				t.Errorf("without payload: %v", ev)
			}
		}
		// The newest payloads are 8 bytes each: a 16-byte page holds two.
		page, next, err := s.ListEvents("acme", EventFilter{MaxPageBytes: 16}, nil, 5, 10000)
		if err != nil || len(page) != 2 || next == nil || string(page[0].Payload) != `{"i":19}` {
			t.Errorf("16 bytes of payload: %d events (%v), next %v", len(page), err, next)
		}
		page, _, err = s.ListEvents("acme", EventFilter{MaxPageBytes: 1}, nil, 5, 10000)
		if err != nil || len(page) != 1 {
			t.Errorf("a page always holds one event: %d (%v)", len(page), err)
		}
	})
}

func TestEventDeliveriesOldestFirstAndOwnTenantOnly(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ne := event("acme", now, ids.New(now), ids.New(now), ids.New(now))
	if err := s.Publish(ctx, "acme", []*NewEvent{ne}); err != nil {
		t.Fatal(err)
	}
	list, err := s.EventDeliveries("acme", ne.ID)
	if err != nil || len(list) != 3 {
		t.Fatalf("%d deliveries, %v", len(list), err)
	}
	for i, d := range list {
		if d.GetId() != ne.Deliveries[i].Delivery.GetId() {
			t.Errorf("delivery %d: %s, want %s", i, d.GetId(), ne.Deliveries[i].Delivery.GetId())
		}
	}
	if list, err := s.EventDeliveries("globex", ne.ID); err != nil || len(list) != 0 {
		t.Errorf("another tenant: %v %v", list, err)
	}
}
