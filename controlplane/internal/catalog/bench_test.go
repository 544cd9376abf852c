package catalog

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
)

// benchPayload is about 256 bytes, like the bench command's payloads.
const benchPayload = `{"seq": 1, "sent_ns": 1700000000000000000, "customer": {"id": "cus_0123456789", "tier": "gold"}, "amount": 125.5, "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}], "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`

// BenchmarkMatchEvent matches one event against a tenant with n
// subscriptions, of which exactly one takes it:
//
//   - types: half exact types, half "*" patterns, no filters (the bench
//     command's event-type shape);
//   - cel: one type, each with payload.seq == i (indexed);
//   - cel-unindexed: one type, each with payload.seq + 0 == i, which the
//     index cannot use: every filter is evaluated, as before the index.
func BenchmarkMatchEvent(b *testing.B) {
	shapes := []struct {
		name  string
		typ   string
		sub   func(i int) (string, string)
		match string
	}{
		{"types", "bench.match.e0", func(i int) (string, string) {
			if i%2 == 1 {
				return fmt.Sprintf("bench.match.w%d.*", i), ""
			}
			return fmt.Sprintf("bench.match.e%d", i), ""
		}, ""},
		{"cel", "bench.match.cel", func(i int) (string, string) {
			return "bench.match.cel", fmt.Sprintf("payload.seq == %d", i+1)
		}, ""},
		{"cel-unindexed", "bench.match.cel", func(i int) (string, string) {
			return "bench.match.cel", fmt.Sprintf("payload.seq + 0 == %d", i+1)
		}, ""},
	}
	for _, shape := range shapes {
		for _, n := range []int{1, 1000, 10000} {
			if shape.name == "cel-unindexed" && n == 10000 {
				continue // slow, and linear: 10x the 1,000 figure
			}
			b.Run(fmt.Sprintf("%s/subs=%d", shape.name, n), func(b *testing.B) {
				c := New(filter.DefaultLimits())
				for i := range n {
					typ, expr := shape.sub(i)
					id := ids.New(time.Now())
					s := &Sub{ID: id, IDText: ids.Format(ids.Subscription, id), Tenant: "acme", patterns: []pattern{compile(typ)}}
					if expr != "" {
						f, err := filter.Compile(expr)
						if err != nil {
							b.Fatal(err)
						}
						s.Filter = f
					}
					c.Put(s)
				}
				payload := []byte(benchPayload)
				b.ReportAllocs()
				for b.Loop() {
					// A new Event per publish, as the API builds it: the
					// payload is parsed once per iteration.
					ev := filter.NewEvent(shape.typ, "application/json", payload, nil)
					if got, _ := c.MatchEvent("acme", ev); len(got) != 1 {
						b.Fatalf("matched %d subscriptions, want 1", len(got))
					}
				}
			})
		}
	}
}
