package dispatch_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkEncode measures the protobuf encoding (and decoding) of the
// agent stream's two hot messages, as gRPC's codec does it: a batch of
// assignments (control plane → agent), each a signed 256-byte webhook, and
// a batch of results (agent → control plane). Batch sizes are one and the
// default credit (64).
func BenchmarkEncode(b *testing.B) {
	body := []byte(`{"seq":1,"pad":"` + strings.Repeat("x", 240) + `"}`)
	config, err := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:8080/hook/0"})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	assignment := func(i int) *hookwirev1.Assignment {
		id := fmt.Sprintf("dlv_01HZZZZZZZZZZZZZZZZZZZZ%03d", i)
		return &hookwirev1.Assignment{
			LeaseId: fmt.Sprintf("lse_%016d", i), LeaseToken: "3q2+7wAAAAAAAAAAAAAAAA", Deadline: timestamppb.New(now.Add(35 * time.Second)),
			DeliveryId: id, Attempt: 1, Transport: "http",
			Request: &transportv1.DeliveryRequest{
				Config: config, Body: body, ContentType: "application/json", Timeout: durationpb.New(30 * time.Second),
				DeliveryId: id, EventType: "bench.e2e",
				Headers: map[string]string{
					"webhook-id": id, "webhook-timestamp": "1700000000",
					"webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
				},
			},
		}
	}
	result := func(i int) *hookwirev1.Result {
		return &hookwirev1.Result{
			LeaseId: fmt.Sprintf("lse_%016d", i), LeaseToken: "3q2+7wAAAAAAAAAAAAAAAA", StartTime: timestamppb.New(now),
			Result: &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS, StatusCode: 200, Latency: durationpb.New(800 * time.Microsecond)},
		}
	}
	for _, n := range []int{1, 64} {
		assign := &hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_Assignments{Assignments: &hookwirev1.Assignments{}}}
		results := &hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Results{Results: &hookwirev1.Results{}}}
		for i := range n {
			assign.GetAssignments().Items = append(assign.GetAssignments().Items, assignment(i))
			results.GetResults().Items = append(results.GetResults().Items, result(i))
		}
		for _, m := range []struct {
			name string
			msg  proto.Message
			into func() proto.Message
		}{
			{"assignments", assign, func() proto.Message { return &hookwirev1.ControlMessage{} }},
			{"results", results, func() proto.Message { return &hookwirev1.AgentMessage{} }},
		} {
			wire, err := proto.Marshal(m.msg)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s=%d/marshal", m.name, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(wire)))
				for b.Loop() {
					if _, err := proto.Marshal(m.msg); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s=%d/unmarshal", m.name, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(wire)))
				for b.Loop() {
					if err := proto.Unmarshal(wire, m.into()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
