package pluginhost_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/agent/pluginhost"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

// BenchmarkDeliverThroughPlugin measures deliveries per second through one
// real plugin process: the fake transport answers at once, so this is the
// cost of the host, the stream and the plugin SDK.
func BenchmarkDeliverThroughPlugin(b *testing.B) {
	benchDeliver(b, "fake", nil)
}

// BenchmarkHTTPThroughPlugin runs the built-in http transport in a plugin
// process against a loopback server in this process (which shares the CPU).
func BenchmarkHTTPThroughPlugin(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cfg, err := structpb.NewStruct(map[string]any{"url": srv.URL + "/hook"})
	if err != nil {
		b.Fatal(err)
	}
	benchDeliver(b, "http", cfg)
}

func benchDeliver(b *testing.B, name string, cfg *structpb.Struct) {
	h := pluginhost.New(discardLogger())
	defer h.Close()
	exe := benchSpec(b, name)
	if err := h.Start(context.Background(), []pluginhost.Spec{exe}); err != nil {
		b.Fatal(err)
	}
	tr, _ := h.Transport(name)
	req := &transportv1.DeliveryRequest{
		Config:      cfg,
		Body:        []byte(`{"type":"order.created","data":{"id":"ord_123","amount":4200}}`),
		ContentType: "application/json",
		Headers:     map[string]string{"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": "v1,abc"},
		Timeout:     durationpb.New(10 * time.Second),
		DeliveryId:  "msg_1",
		EventType:   "echo",
	}
	var failed atomic.Int64
	var lastErr atomic.Value
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if res := tr.Deliver(ctx, req); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
				failed.Add(1)
				lastErr.Store(res.GetError())
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d deliveries failed, last: %v", f, b.N, lastErr.Load())
	}
}
