package natstransport

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/internal/brokertest"
)

// TestReconnectsAfterConnectionBreaks cuts the pooled connection under the
// transport (through a proxy) and checks that deliveries fail fast while it
// is down and succeed on the same pool entry once nats.go has reconnected.
func TestReconnectsAfterConnectionBreaks(t *testing.T) {
	brokertest.Require(t, "NATS with JetStream", "127.0.0.1:4222")
	proxy := brokertest.NewProxy(t, "127.0.0.1:4222")
	tr := New(WithEgress(brokertest.Loopback()))
	defer func() { _ = tr.Close() }()
	url := "nats://" + proxy.Addr()
	cfg, _ := structpb.NewStruct(map[string]any{"url": url, "subject": "hookwire.test.reconnect"})
	req := &transportv1.DeliveryRequest{Config: cfg, Body: []byte("{}")}

	if res := tr.Deliver(context.Background(), req); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("first delivery = %v (%s)", res.GetOutcome(), res.GetError())
	}
	c, err := tr.pool.Get(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	statuses := c.nc.StatusChanged(nats.RECONNECTING, nats.CONNECTED)
	proxy.Cut()

	timeout := time.After(15 * time.Second)
	for _, want := range []nats.Status{nats.RECONNECTING, nats.CONNECTED} {
		select {
		case st := <-statuses:
			if st != want {
				t.Fatalf("status %v, want %v", st, want)
			}
		case <-timeout:
			t.Fatalf("no %v within 15s", want)
		}
		if want == nats.RECONNECTING {
			// While down, a delivery fails fast and retryably (or succeeds if
			// the reconnect has already completed).
			res := tr.Deliver(context.Background(), req)
			if o := res.GetOutcome(); o != transportv1.Outcome_OUTCOME_CONNECTION_ERROR && o != transportv1.Outcome_OUTCOME_SUCCESS {
				t.Fatalf("delivery during the outage = %v (%s), want CONNECTION_ERROR", o, res.GetError())
			}
		}
	}
	if res := tr.Deliver(context.Background(), req); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("delivery after reconnect = %v (%s)", res.GetOutcome(), res.GetError())
	}
	if again, _ := tr.pool.Get(context.Background(), url); again != c || tr.pool.Len() != 1 {
		t.Error("the pool replaced a connection that nats.go reconnected")
	}
}
