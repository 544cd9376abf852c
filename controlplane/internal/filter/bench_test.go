package filter

import (
	"fmt"
	"testing"
)

const benchExpr = `payload.amount > 100 && metadata["region"] == "eu" && payload.items.exists(i, i.sku == "A")`

func BenchmarkCompile(b *testing.B) {
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := compile(benchExpr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		mustCompile(b, benchExpr)
		for b.Loop() {
			if _, err := Compile(benchExpr); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMatchEvent(b *testing.B) {
	f := mustCompile(b, benchExpr)
	payload := []byte(orderPayload)
	b.Run("parse+match", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			if !f.MatchEvent(NewEvent("order.created", "application/json", payload, orderMetadata)) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("match", func(b *testing.B) {
		b.ReportAllocs()
		ev := NewEvent("order.created", "application/json", payload, orderMetadata)
		for b.Loop() {
			if !f.MatchEvent(ev) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("simple", func(b *testing.B) {
		b.ReportAllocs()
		f := mustCompile(b, `payload.amount > 100`)
		ev := NewEvent("order.created", "application/json", payload, orderMetadata)
		for b.Loop() {
			if !f.MatchEvent(ev) {
				b.Fatal("no match")
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	payload := []byte(orderPayload)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if !NewEvent("order.created", "application/json", payload, orderMetadata).IsJSON() {
			b.Fatal("not JSON")
		}
	}
}

// thousandFilters returns 1,000 distinct filters in the shapes subscriptions
// typically use.
func thousandFilters(b *testing.B) []*Filter {
	fs := make([]*Filter, 0, 1000)
	for i := range 1000 {
		var expr string
		switch i % 5 {
		case 0:
			expr = fmt.Sprintf(`payload.amount > %d`, i)
		case 1:
			expr = fmt.Sprintf(`type == "order.created" && metadata["tenant"] == "t%d"`, i)
		case 2:
			expr = fmt.Sprintf(`payload.items.exists(i, i.sku == "S%d")`, i)
		case 3:
			expr = fmt.Sprintf(`has(payload.customer) && payload.customer.tier in ["gold", "t%d"] && payload.id != %d`, i, i)
		case 4:
			expr = fmt.Sprintf(`payload.customer.address.country == "C%d" || payload.tags.exists(t, t == "tag%d")`, i, i)
		}
		fs = append(fs, mustCompile(b, expr))
	}
	return fs
}

func BenchmarkThousandFilters(b *testing.B) {
	fs := thousandFilters(b)
	payload := []byte(orderPayload)
	b.ReportAllocs()
	var matched int
	for b.Loop() {
		ev := NewEvent("order.created", "application/json", payload, orderMetadata)
		matched = 0
		for _, f := range fs {
			if f.MatchEvent(ev) {
				matched++
			}
		}
	}
	if matched == 0 {
		b.Fatal("nothing matched")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(fs)), "ns/filter")
}
