package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// commandSequence builds a sequence covering every command kind, with
// preconditions that hold and ones that fail, failing commands, ordered
// groups, duplicates by idempotency key, map fields and purges.
func commandSequence(t *testing.T) []*storev1.Command {
	t.Helper()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(base.Add(d)) }
	n := 0
	id := func() ids.ID { // distinct, increasing ids (the sequence is built once)
		n++
		return ids.New(base.Add(time.Duration(n) * time.Millisecond))
	}
	audit := func(scope, action string) *hookwirev1.AuditEvent {
		return &hookwirev1.AuditEvent{Id: ids.Format(AuditIDPrefix, id()), Tenant: scope, Action: action, Time: at(0),
			Details: nil, Resource: "r/" + action}
	}
	cmd := func(c any) *storev1.Command {
		switch k := c.(type) {
		case *storev1.CreateTenant:
			return &storev1.Command{Kind: &storev1.Command_CreateTenant{CreateTenant: k}}
		case *storev1.PutApiKey:
			return &storev1.Command{Kind: &storev1.Command_PutApiKey{PutApiKey: k}}
		case *storev1.CreateSubscription:
			return &storev1.Command{Kind: &storev1.Command_CreateSubscription{CreateSubscription: k}}
		case *storev1.PutSubscription:
			return &storev1.Command{Kind: &storev1.Command_PutSubscription{PutSubscription: k}}
		case *storev1.DeleteSubscription:
			return &storev1.Command{Kind: &storev1.Command_DeleteSubscription{DeleteSubscription: k}}
		case *storev1.PublishEvents:
			return &storev1.Command{Kind: &storev1.Command_PublishEvents{PublishEvents: k}}
		case *storev1.AddDeliveries:
			return &storev1.Command{Kind: &storev1.Command_AddDeliveries{AddDeliveries: k}}
		case *storev1.UpdateDeliveries:
			return &storev1.Command{Kind: &storev1.Command_UpdateDeliveries{UpdateDeliveries: k}}
		case *storev1.PutJoinToken:
			return &storev1.Command{Kind: &storev1.Command_PutJoinToken{PutJoinToken: k}}
		case *storev1.RevokeJoinToken:
			return &storev1.Command{Kind: &storev1.Command_RevokeJoinToken{RevokeJoinToken: k}}
		case *storev1.RevokeApiKey:
			return &storev1.Command{Kind: &storev1.Command_RevokeApiKey{RevokeApiKey: k}}
		case *storev1.AppendAudit:
			return &storev1.Command{Kind: &storev1.Command_AppendAudit{AppendAudit: k}}
		case *storev1.DeleteTenant:
			return &storev1.Command{Kind: &storev1.Command_DeleteTenant{DeleteTenant: k}}
		case *storev1.PurgeEvents:
			return &storev1.Command{Kind: &storev1.Command_PurgeEvents{PurgeEvents: k}}
		case *storev1.PurgeAudit:
			return &storev1.Command{Kind: &storev1.Command_PurgeAudit{PurgeAudit: k}}
		case *storev1.PurgeTenantStep:
			return &storev1.Command{Kind: &storev1.Command_PurgeTenantStep{PurgeTenantStep: k}}
		case *storev1.RecordStats:
			return &storev1.Command{Kind: &storev1.Command_RecordStats{RecordStats: k}}
		case *storev1.PurgeStats:
			return &storev1.Command{Kind: &storev1.Command_PurgeStats{PurgeStats: k}}
		}
		t.Fatalf("no command for %T", c)
		return nil
	}
	var out []*storev1.Command
	add := func(cs ...any) {
		for _, c := range cs {
			out = append(out, cmd(c))
		}
	}
	pending := hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING

	add(&storev1.CreateTenant{Tenant: &hookwirev1.Tenant{Id: "acme", CreateTime: at(0)}, Audit: audit(AuditGlobal, "tenant.create")},
		&storev1.CreateTenant{Tenant: &hookwirev1.Tenant{Id: "beta", CreateTime: at(0)}},
		&storev1.CreateTenant{Tenant: &hookwirev1.Tenant{Id: "acme"}}, // fails: exists
		&storev1.PutApiKey{Record: &storev1.ApiKeyRecord{ApiKey: &hookwirev1.ApiKey{Id: "k1", Tenant: "acme", CreateTime: at(0)}, Hash: []byte("h1")}, Audit: audit("acme", "api_key.create")},
		&storev1.PutApiKey{Record: &storev1.ApiKeyRecord{ApiKey: &hookwirev1.ApiKey{Id: "k2", Tenant: "beta"}, Hash: []byte("h2")}})

	plain, ordered := id(), id()
	subRec := func(sid ids.ID, desc string, rev uint64) *storev1.SubscriptionRecord {
		return &storev1.SubscriptionRecord{Subscription: &hookwirev1.Subscription{Id: ids.Format(ids.Subscription, sid), Tenant: "acme", Description: desc, UpdateTime: at(0)},
			SigningKeys: []*storev1.SigningKey{{Version: 1, SealedKey: []byte("sealed")}}, Revision: rev}
	}
	add(&storev1.CreateSubscription{Record: subRec(plain, "plain", 0), Audit: audit("acme", "subscription.create")},
		&storev1.CreateSubscription{Record: subRec(ordered, "ordered", 0)},
		&storev1.PutSubscription{Record: subRec(plain, "plain v2", 0), Audit: audit("acme", "subscription.update")},
		&storev1.PutSubscription{Record: subRec(plain, "stale", 0)}) // fails: revision 1 now

	// Events: plain deliveries, an ordered group of three, a duplicate.
	newDel := func(eid, did, sid ids.ID, isOrdered bool, key string) *storev1.NewDelivery {
		return &storev1.NewDelivery{Id: did[:], SubscriptionId: sid[:], Ordered: isOrdered, Delivery: &hookwirev1.Delivery{
			Id: ids.Format(ids.Delivery, did), Tenant: "acme", EventId: ids.Format(ids.Event, eid), SubscriptionId: ids.Format(ids.Subscription, sid),
			Status: pending, NextAttemptTime: at(time.Second), CreateTime: at(0), UpdateTime: at(0), OrderingKey: key}}
	}
	var events []*storev1.NewEvent
	var plainDels, orderedDels []ids.ID
	for i := range 3 {
		eid := id()
		pd, od := id(), id()
		plainDels, orderedDels = append(plainDels, pd), append(orderedDels, od)
		events = append(events, &storev1.NewEvent{Id: eid[:], Event: &hookwirev1.Event{Id: ids.Format(ids.Event, eid), Tenant: "acme", Type: "a.b",
			Payload: []byte("{}"), IdempotencyKey: fmt.Sprint("idem-", i), ReceiveTime: at(0),
			Metadata: map[string]string{"z": "1", "a": "2", "m": "3", "b": "4", "y": "5"}},
			Trace:      &storev1.TraceContext{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			Deliveries: []*storev1.NewDelivery{newDel(eid, pd, plain, false, ""), newDel(eid, od, ordered, true, "group")}})
	}
	dupID := id()
	events = append(events, &storev1.NewEvent{Id: dupID[:], Event: &hookwirev1.Event{Id: ids.Format(ids.Event, dupID), Tenant: "acme", IdempotencyKey: "idem-0"}})
	add(&storev1.PublishEvents{Tenant: "acme", Events: events},
		&storev1.PublishEvents{Tenant: "nobody", Events: events[:1]}) // fails: no tenant
	resent := id()
	add(&storev1.AddDeliveries{Tenant: "acme", EventId: events[0].GetId(), Deliveries: []*storev1.NewDelivery{newDel(ids.ID(events[0].GetId()), resent, plain, false, "")},
		Audit: audit("acme", "delivery.resend")})

	// Results: a success, a retry, a stale result, the ordered head done
	// (promotes the next), a cancel.
	below := func(n int32) *int32 { return &n }
	result := func(did ids.ID, n int32, set *hookwirev1.Delivery) *storev1.DeliveryUpdate {
		return &storev1.DeliveryUpdate{DeliveryId: did[:], IfStatus: []hookwirev1.DeliveryStatus{pending}, IfAttemptCountBelow: below(n),
			Mask: &fieldmaskpb.FieldMask{Paths: []string{"status", "attempt_count", "last_outcome", "last_error", "update_time", "next_attempt_time"}}, Set: set,
			Attempt: &hookwirev1.Attempt{DeliveryId: ids.Format(ids.Delivery, did), Number: n, StartTime: at(2 * time.Second),
				ResponseHeaders: map[string]string{"x-b": "1", "x-a": "2", "x-c": "3"}}}
	}
	succeeded := &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, AttemptCount: 1, LastOutcome: transportv1.Outcome_OUTCOME_SUCCESS, UpdateTime: at(3 * time.Second)}
	retrying := &hookwirev1.Delivery{Status: pending, AttemptCount: 1, LastError: "refused", UpdateTime: at(3 * time.Second), NextAttemptTime: at(time.Minute)}
	add(&storev1.UpdateDeliveries{Updates: []*storev1.DeliveryUpdate{
		result(plainDels[0], 1, succeeded),
		result(plainDels[1], 1, retrying),
		result(plainDels[0], 1, succeeded), // stale: already recorded
		result(orderedDels[0], 1, succeeded),
		{DeliveryId: plainDels[2][:], IfStatus: []hookwirev1.DeliveryStatus{pending}, Mask: &fieldmaskpb.FieldMask{Paths: []string{"status", "next_attempt_time", "last_error", "update_time"}},
			Set: &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED, LastError: "cancelled", UpdateTime: at(4 * time.Second)}, Audit: audit("acme", "delivery.cancel")},
	}})

	// Tokens, keys, audit.
	add(&storev1.PutJoinToken{Token: &hookwirev1.JoinToken{Id: "jt1", Name: "n", Labels: map[string]string{"q": "1", "a": "2"}, CreateTime: at(0)}, Hash: []byte("th"), Audit: audit(AuditGlobal, "join_token.create")},
		&storev1.RevokeJoinToken{Id: "jt1", Audit: audit(AuditGlobal, "join_token.revoke")},
		&storev1.RevokeJoinToken{Id: "nope"}, // fails
		&storev1.RevokeApiKey{Tenant: "acme", Id: "k1", Audit: audit("acme", "api_key.revoke")},
		&storev1.RevokeApiKey{Tenant: "beta", Id: "k1"}, // fails: another tenant's
		&storev1.AppendAudit{Event: audit("acme", "agent.drain")})

	// Statistics: two flushes into the same minutes (added up), one of a
	// subscription that does not exist (skipped), then a purge of the
	// oldest minute; deleting the ordered subscription deletes its own.
	minute := base.Unix() / 60
	gone := id()
	delta := func(sid ids.ID, m int64, add *storev1.StatsMinute) *storev1.StatsDelta {
		return &storev1.StatsDelta{Tenant: "acme", SubscriptionId: sid[:], Minute: m, Add: add}
	}
	for range 2 {
		add(&storev1.RecordStats{Deltas: []*storev1.StatsDelta{
			delta(plain, minute, &storev1.StatsMinute{Created: 2, Succeeded: 1, Retrying: 1, Outcomes: []int64{0, 1, 0, 0, 0, 0, 1}, Latency: []int64{0, 3, 1}}),
			delta(plain, minute+1, &storev1.StatsMinute{Dead: 1, QueueSampled: true, WaitingRetry: 4}),
			delta(ordered, minute, &storev1.StatsMinute{Created: 1}),
			delta(gone, minute, &storev1.StatsMinute{Created: 1}),
		}})
	}
	add(&storev1.PurgeStats{BeforeMinute: minute + 1, Batch: 1},
		&storev1.PurgeStats{BeforeMinute: minute + 1, Batch: 100})

	// Deletions and purges.
	add(&storev1.DeleteSubscription{Tenant: "acme", Id: ordered[:], Revision: 0, Audit: audit("acme", "subscription.delete")},
		&storev1.DeleteSubscription{Tenant: "acme", Id: plain[:], Revision: 0}, // fails: revision 1
		&storev1.DeleteTenant{Id: "acme", DeleteUnixNanos: base.UnixNano()},    // fails: has a subscription
		&storev1.DeleteTenant{Id: "beta", DeleteUnixNanos: base.UnixNano(), Audit: audit(AuditGlobal, "tenant.delete")},
		&storev1.CreateTenant{Tenant: &hookwirev1.Tenant{Id: "beta"}}) // fails: purging
	for range 4 {
		add(&storev1.PurgeTenantStep{Tenant: "beta", Batch: 1})
	}
	add(&storev1.PurgeEvents{CutoffUnixNanos: base.Add(time.Hour).UnixNano(), Batch: 2},
		&storev1.PurgeEvents{After: events[1].GetId(), CutoffUnixNanos: base.Add(time.Hour).UnixNano(), Batch: 2},
		&storev1.PurgeAudit{CutoffUnixNanos: base.Add(5 * time.Millisecond).UnixNano(), Batch: 2})
	return out
}

// dump reads every bucket's keys and values, but the store's own id.
func dump(t *testing.T, s *Store) map[string][][2][]byte {
	t.Helper()
	out := map[string][][2][]byte{}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if bytes.Equal(name, bucketMeta) && bytes.Equal(k, metaStoreID) {
					return nil
				}
				out[string(name)] = append(out[string(name)], [2][]byte{bytes.Clone(k), bytes.Clone(v)})
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCommandsApplyDeterministically applies the same commands (decoded
// from their wire bytes, as a Raft follower would) to two fresh stores,
// one at a time and then all in one write, and compares every bucket byte
// for byte, and the outcome of every command.
func TestCommandsApplyDeterministically(t *testing.T) {
	seq := commandSequence(t)
	kinds := map[string]bool{}
	for _, c := range seq {
		kinds[fmt.Sprintf("%T", c.GetKind())] = true
	}
	if want := (&storev1.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("kind").Fields().Len(); len(kinds) != want {
		t.Fatalf("the sequence covers %d command kinds, want all %d", len(kinds), want)
	}
	ctx := context.Background()
	run := func() (*Store, []string) {
		s := open(t, t.TempDir())
		t.Cleanup(func() { _ = s.Close() })
		var outcomes []string
		for _, c := range seq {
			wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			var got storev1.Command
			if err := proto.Unmarshal(wire, &got); err != nil {
				t.Fatal(err)
			}
			rs, err := s.Apply(ctx, &got)
			if err != nil {
				outcomes = append(outcomes, "error: "+err.Error())
				continue
			}
			outcomes = append(outcomes, describe(rs[0]))
		}
		return s, outcomes
	}
	a, outA := run()
	b, outB := run()
	failed := 0
	for i := range outA {
		if outA[i] != outB[i] {
			t.Errorf("command %d (%T): outcomes differ:\n%s\n%s", i, seq[i].GetKind(), outA[i], outB[i])
		}
		if len(outA[i]) > 6 && outA[i][:6] == "error:" {
			failed++
		}
	}
	if failed != 8 {
		t.Errorf("%d commands failed, the sequence has 8 that must: %q", failed, outA)
	}
	da, db := dump(t, a), dump(t, b)
	for _, name := range []string{"tenants", "apikeys", "subscriptions", "events", "deliveries", "attempts", "due", "ordered", "audit", "join_tokens", "tenant_purges"} {
		if len(da[name]) == 0 && name != "tenant_purges" {
			t.Errorf("bucket %s is empty: the sequence should leave records there", name)
		}
	}
	compareDumps(t, da, db)

	// The same commands in one write (all or none: the failing ones are
	// left out), through applyCommand without the records encoded
	// beforehand as Apply does, give the same bytes as one write each.
	var ok []*storev1.Command
	for i, c := range seq {
		if outA[i][:6] != "error:" {
			ok = append(ok, c)
		}
	}
	c := open(t, t.TempDir())
	t.Cleanup(func() { _ = c.Close() })
	if err := c.enqueue(ctx, func(tx *bolt.Tx) error {
		for _, cmd := range ok {
			if _, err := c.applyCommand(tx, cmd); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	compareDumps(t, da, dump(t, c))
}

func compareDumps(t *testing.T, a, b map[string][][2][]byte) {
	t.Helper()
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	for n := range names {
		ka, kb := a[n], b[n]
		if len(ka) != len(kb) {
			t.Errorf("bucket %s: %d and %d keys", n, len(ka), len(kb))
			continue
		}
		for i := range ka {
			if !bytes.Equal(ka[i][0], kb[i][0]) || !bytes.Equal(ka[i][1], kb[i][1]) {
				t.Errorf("bucket %s, entry %d: %x=%x vs %x=%x", n, i, ka[i][0], ka[i][1], kb[i][0], kb[i][1])
				break
			}
		}
	}
}

func describe(r Result) string {
	var b bytes.Buffer
	for _, d := range r.Duplicates {
		if d != nil {
			fmt.Fprintf(&b, "dup %s %d;", d.Of, d.Deliveries)
		}
	}
	fmt.Fprintf(&b, "waiting %v;", r.Waiting)
	for _, d := range r.Updated {
		if d == nil {
			b.WriteString("skipped;")
			continue
		}
		wire, _ := proto.MarshalOptions{Deterministic: true}.Marshal(d)
		fmt.Fprintf(&b, "updated %x;", wire)
	}
	for _, d := range r.DueAdded {
		fmt.Fprintf(&b, "due %s %d;", d.SubID, d.At.UnixNano())
	}
	fmt.Fprintf(&b, "token %v; sub rev %d; purged %+v %x; audit %d; tenant %+v %v", r.JoinToken.GetRevoked(), r.Subscription.GetRevision(),
		r.Purged, r.PurgedLast, r.AuditPurged, r.TenantPurged, r.TenantPurgedDone)
	return b.String()
}

// TestStaleDeliveryUpdateDoesNotApply: an attempt result decided from a
// delivery that has changed since (recorded already, or cancelled) changes
// nothing and records no attempt.
func TestStaleDeliveryUpdateDoesNotApply(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sub := ids.New(now)
	ne := event("acme", now, sub)
	if err := s.Publish(ctx, "acme", []*NewEvent{ne}); err != nil {
		t.Fatal(err)
	}
	did := ne.Deliveries[0].ID
	pending := []hookwirev1.DeliveryStatus{hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING}
	result := func(errText string) *DeliveryChange {
		return &DeliveryChange{DeliveryID: did, IfStatus: pending, IfAttemptCountBelow: 1,
			Attempt: &hookwirev1.Attempt{Number: 1, Error: errText},
			Fields:  []string{"attempt_count", "last_error", "next_attempt_time"},
			Set:     &hookwirev1.Delivery{AttemptCount: 1, LastError: errText, NextAttemptTime: timestamppb.New(now.Add(time.Minute))}}
	}
	first := result("first")
	if _, err := s.ChangeDeliveries(ctx, []*DeliveryChange{first}); err != nil || !first.Applied {
		t.Fatalf("first result: applied %v, %v", first.Applied, err)
	}
	again := result("again")
	added, err := s.ChangeDeliveries(ctx, []*DeliveryChange{again})
	if err != nil {
		t.Fatal(err)
	}
	if again.Applied || again.Result != nil || len(added) != 0 {
		t.Fatalf("a stale result applied: %v %v %v", again.Applied, again.Result, added)
	}
	d, err := s.GetDelivery("acme", ids.Format(ids.Delivery, did))
	if err != nil {
		t.Fatal(err)
	}
	if d.GetLastError() != "first" {
		t.Fatalf("last_error %q after a stale result, want the first result's", d.GetLastError())
	}
	atts, err := s.ListAttempts("acme", ids.Format(ids.Delivery, did))
	if err != nil || len(atts) != 1 || atts[0].GetError() != "first" {
		t.Fatalf("attempts %v, %v; want the first only", atts, err)
	}

	// An operator's change decided before the result landed (status,
	// attempt count and update time as read) does not apply either.
	count := int32(0)
	cancel := &DeliveryChange{DeliveryID: did, IfStatus: pending, IfAttemptCount: &count, IfUpdateTime: ne.Deliveries[0].Delivery.GetUpdateTime(),
		Fields: []string{"status"}, Set: &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED}}
	if _, err := s.ChangeDeliveries(ctx, []*DeliveryChange{cancel}); err != nil || cancel.Applied {
		t.Fatalf("a change decided on an old read applied: %v, %v", cancel.Applied, err)
	}

	// A field that does not exist fails the write (and changes nothing).
	bad := &DeliveryChange{DeliveryID: did, Fields: []string{"no_such_field"}, Set: &hookwirev1.Delivery{}}
	if _, err := s.ChangeDeliveries(ctx, []*DeliveryChange{bad}); err == nil {
		t.Fatal("an update naming an unknown field was accepted")
	}
}

// TestPutSubscriptionRefusesAnOldRevision: a subscription change decided
// from a revision that is no longer the stored one is refused with
// ErrConflict and changes nothing; one decided from the current revision
// is stored at the next revision.
func TestPutSubscriptionRefusesAnOldRevision(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	id := ids.Format(ids.Subscription, ids.New(time.Now()))
	if err := s.CreateSubscription(ctx, &storev1.SubscriptionRecord{Subscription: &hookwirev1.Subscription{Id: id, Tenant: "acme", Description: "v0"}}, nil); err != nil {
		t.Fatal(err)
	}
	read, err := s.GetSubscription("acme", id)
	if err != nil {
		t.Fatal(err)
	}
	first := proto.Clone(read).(*storev1.SubscriptionRecord)
	first.Subscription.Description = "first"
	stored, err := s.PutSubscription(ctx, first, auditEvent("first"))
	if err != nil {
		t.Fatal(err)
	}
	if stored.GetRevision() != 1 {
		t.Fatalf("stored at revision %d, want 1", stored.GetRevision())
	}
	late := proto.Clone(read).(*storev1.SubscriptionRecord)
	late.Subscription.Description = "late"
	if _, err := s.PutSubscription(ctx, late, auditEvent("late")); !errors.Is(err, ErrConflict) {
		t.Fatalf("put on revision 0 after revision 1: %v, want ErrConflict", err)
	}
	got, err := s.GetSubscription("acme", id)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSubscription().GetDescription() != "first" || got.GetRevision() != 1 {
		t.Fatalf("stored %q at revision %d, want the first change at 1", got.GetSubscription().GetDescription(), got.GetRevision())
	}
	list, _, err := s.ListAudit(AuditGlobal, false, AuditFilter{}, nil, 10, 100)
	if err != nil || len(list) != 1 || list[0].GetAction() != "test.first" {
		t.Fatalf("audit %v, %v; want only the applied change's event", list, err)
	}
	// Decided again from the current revision, it applies.
	late.Revision = got.GetRevision()
	if stored, err := s.PutSubscription(ctx, late, nil); err != nil || stored.GetRevision() != 2 {
		t.Fatalf("put on the current revision: %v, %v", stored.GetRevision(), err)
	}
	// A record that does not exist is not created by a put.
	gone := proto.Clone(late).(*storev1.SubscriptionRecord)
	gone.Subscription.Id = ids.Format(ids.Subscription, ids.New(time.Now()))
	if _, err := s.PutSubscription(ctx, gone, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("put of a missing subscription: %v, want ErrNotFound", err)
	}
}
