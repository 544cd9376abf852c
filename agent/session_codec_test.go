package agent

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk/vtcodec"
)

// TestStreamUsesVTCodec: the agent opens its stream with the vtproto codec
// (the server sees content-type application/grpc+vtproto and, having the
// codec registered, decodes with it), and a fully populated assignment and
// its result cross unchanged.
func TestStreamUsesVTCodec(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	got := make(chan *transportv1.DeliveryRequest, 1)
	sent := &transportv1.DeliveryResult{
		Outcome:         transportv1.Outcome_OUTCOME_THROTTLED,
		StatusCode:      503,
		ResponseHeaders: map[string]string{"retry-after": "2", "x-é": "✓"},
		ResponseBody:    []byte{0, 1, 0xff},
		Error:           "target answered 503",
		Latency:         durationpb.New(1500 * time.Microsecond),
		RetryAfter:      durationpb.New(2 * time.Second),
	}
	tr := &fakeTransport{name: "fake", deliver: func(_ context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		got <- req
		return sent
	}}
	startAgent(t, testConfig(t, addr, tr), testHooks{})

	c := cp.accept(t)
	if ct := c.md.Get("content-type"); len(ct) != 1 || ct[0] != "application/grpc+"+vtcodec.Name {
		t.Errorf("stream content-type = %q, want application/grpc+%s", ct, vtcodec.Name)
	}
	cfg, err := structpb.NewStruct(map[string]any{"url": "https://example.com/h", "n": 1.5, "ok": true, "none": nil,
		"list": []any{"a", 2.0}, "obj": map[string]any{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	a := assignment("l1", "fake")
	a.Request.Config = cfg
	a.Request.ContentType = "application/json"
	a.Request.EventType = "order.créé"
	a.Request.Headers["webhook-signature"] = "v1,abc v1,def"
	a.Request.Headers["webhook-timestamp"] = "1700000000"
	a.Request.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	a.Request.Tracestate = "vendor=a"
	c.send(t, welcome())
	c.send(t, assign(a))

	select {
	case req := <-got:
		if !proto.Equal(req, a.GetRequest()) {
			t.Errorf("transport got\n %v\nwant %v", req, a.GetRequest())
		}
	case <-time.After(failsafe):
		t.Fatal("the assignment never reached the transport")
	}
	results, _, _ := c.results(t, 1)
	checkResult(t, results["l1"], "l1", transportv1.Outcome_OUTCOME_THROTTLED)
	if res := results["l1"].GetResult(); !proto.Equal(res, sent) {
		t.Errorf("control plane got result\n %v\nwant %v", res, sent)
	}
	c.send(t, acks(true, "l1")) // so the agent stops at once, nothing left to flush
}
