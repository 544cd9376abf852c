package sdk

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

// TestWithTimeoutCopiesEveryField guards the hand-written shallow copy in
// withTimeout: when DeliveryRequest gains a field, this test fails until the
// copy (and the sample below) are updated.
func TestWithTimeoutCopiesEveryField(t *testing.T) {
	cfg, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1/"})
	req := &transportv1.DeliveryRequest{
		Config:      cfg,
		Body:        []byte("body"),
		ContentType: "application/json",
		Headers:     map[string]string{"webhook-id": "msg_1"},
		Timeout:     durationpb.New(30 * time.Second),
		DeliveryId:  "msg_1",
		EventType:   "order.created",
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Tracestate:  "vendor=a",
	}
	fields := req.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if !req.ProtoReflect().Has(fields.Get(i)) {
			t.Fatalf("sample request leaves field %s unset; set it here and copy it in withTimeout", fields.Get(i).Name())
		}
	}

	if got := withTimeout(req, time.Minute); got != req {
		t.Error("a deadline later than the request timeout should keep the request as is")
	}
	short := withTimeout(req, 2*time.Second)
	if short == req {
		t.Fatal("a deadline sooner than the request timeout should produce a copy")
	}
	if d := short.GetTimeout().AsDuration(); d != 2*time.Second {
		t.Errorf("copy timeout = %v, want 2s", d)
	}
	if req.GetTimeout().AsDuration() != 30*time.Second {
		t.Error("withTimeout modified the caller's request")
	}
	short.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool { return true })
	cp := proto.Clone(short).(*transportv1.DeliveryRequest)
	cp.Timeout = req.GetTimeout()
	if !proto.Equal(cp, req) {
		t.Errorf("copy differs from the original beyond the timeout:\n got %v\nwant %v", cp, req)
	}
}
