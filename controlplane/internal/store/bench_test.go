package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if err := s.CreateTenant(context.Background(), &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		b.Fatal(err)
	}
	return s
}

// benchEvent is an event with a 256-byte payload and one delivery per sub.
func benchEvent(subs []ids.ID) *NewEvent {
	ne := event("acme", time.Now(), subs...)
	ne.Event.Payload = []byte(`{"seq":1,"pad":"` + strings.Repeat("x", 240) + `"}`)
	ne.Event.ContentType = "application/json"
	return ne
}

// BenchmarkPublish measures one durable commit (fsync included) of an
// event with N deliveries: the fan-out write.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("deliveries=%d", n), func(b *testing.B) {
			s := benchStore(b)
			subs := make([]ids.ID, n)
			for i := range subs {
				subs[i] = ids.New(time.Now())
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				ne := benchEvent(subs)
				b.StartTimer()
				if err := s.Publish(ctx, "acme", []*NewEvent{ne}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}

// BenchmarkGroupCommit has 64 concurrent publishers of one-delivery events
// share commits; writes/commit shows how many share one fsync.
func BenchmarkGroupCommit(b *testing.B) {
	s := benchStore(b)
	sub := []ids.ID{ids.New(time.Now())}
	ctx := context.Background()
	before := s.Stats()
	b.ReportAllocs()
	b.SetParallelism(32) // × GOMAXPROCS publishers
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Publish(ctx, "acme", []*NewEvent{benchEvent(sub)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	after := s.Stats()
	if commits := after.Commits - before.Commits; commits > 0 {
		b.ReportMetric(float64(after.Writes-before.Writes)/float64(commits), "writes/commit")
	}
}

// BenchmarkPublishNoSync is BenchmarkPublish without fsync: the CPU of the
// write path (encoding, checksums, bbolt's page work), which the fsync
// hides in BenchmarkPublish.
func BenchmarkPublishNoSync(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("deliveries=%d", n), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			ctx := context.Background()
			if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
				b.Fatal(err)
			}
			subs := make([]ids.ID, n)
			for i := range subs {
				subs[i] = ids.New(time.Now())
			}
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				ne := benchEvent(subs)
				b.StartTimer()
				if err := s.Publish(ctx, "acme", []*NewEvent{ne}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}
