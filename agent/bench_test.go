package agent

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// BenchmarkDeliveryThroughput measures assignments → transport → results →
// acks over a real loopback stream, with an instant transport. The fake
// control plane runs in the same process, so it shares the CPU.
func BenchmarkDeliveryThroughput(b *testing.B) {
	for _, maxInFlight := range []int{64, 256} {
		b.Run("inflight="+strconv.Itoa(maxInFlight), func(b *testing.B) {
			cp := newFakeCP()
			_, addr := startCP(b, "127.0.0.1:0", cp)
			cfg := testConfig(b, addr, &fakeTransport{name: "fake", deliver: echo})
			cfg.MaxInFlight = maxInFlight
			cfg.Logger = slog.New(slog.DiscardHandler)
			a := startAgent(b, cfg, testHooks{})
			c := cp.accept(b)
			c.send(b, welcome())

			template := assignment("x", "fake")
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = "l" + strconv.Itoa(i)
			}
			credit := int(c.hello.GetMaxInFlight())
			next, done, msgs := 0, 0, 0
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for done < b.N {
				if credit > 0 && next < b.N {
					k := min(credit, b.N-next, 128)
					items := make([]*hookwirev1.Assignment, k)
					for i := range items {
						id := ids[next+i]
						items[i] = &hookwirev1.Assignment{
							LeaseId: id, LeaseToken: id, Deadline: template.Deadline,
							Transport: "fake", Request: template.Request,
						}
					}
					c.send(b, assign(items...))
					credit -= k
					next += k
					continue
				}
				m := c.next(b)
				if rs := m.GetResults(); rs != nil {
					msgs++
					ackIDs := make([]string, len(rs.GetItems()))
					for i, r := range rs.GetItems() {
						ackIDs[i] = r.GetLeaseId()
					}
					done += len(ackIDs)
					c.send(b, acks(true, ackIDs...))
				} else if cr := m.GetCredit(); cr != nil {
					credit += int(cr.GetAmount())
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(float64(b.N)/float64(max(msgs, 1)), "results/msg")
			a.cancel()
			if err := a.wait(b); err != nil {
				b.Fatal(err)
			}
		})
	}
}
