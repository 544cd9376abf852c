package vtcodec

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// streamFiles are the proto files generated with vt methods (buf.gen.yaml).
var streamFiles = []protoreflect.FileDescriptor{
	hookwirev1.File_hookwire_v1_agent_proto,
	transportv1.File_hookwire_transport_v1_transport_proto,
}

// populated returns one fully populated instance of every message of the
// stream files per oneof choice: every field set (non-zero scalars, two
// entries in every map and list, nested messages filled too, down to a
// bounded depth for the recursive Struct/Value), and in variant i every
// oneof set to its i-th member (wrapping around), so that together the
// variants cover every member of every oneof.
func populated(t testing.TB) map[string]proto.Message {
	t.Helper()
	out := make(map[string]proto.Message)
	for _, fd := range streamFiles {
		msgs := fd.Messages()
		for i := 0; i < msgs.Len(); i++ {
			md := msgs.Get(i)
			mt, err := protoRegistry(md)
			if err != nil {
				t.Fatal(err)
			}
			for variant := range 6 {
				m := mt.New()
				fill(m, variant, 0)
				out[fmt.Sprintf("%s/%d", md.Name(), variant)] = m.Interface()
			}
		}
	}
	return out
}

func protoRegistry(md protoreflect.MessageDescriptor) (protoreflect.MessageType, error) {
	m, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		return nil, fmt.Errorf("message type %s: %w", md.FullName(), err)
	}
	return m, nil
}

const maxDepth = 4

func fill(m protoreflect.Message, variant, depth int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if od.Fields().Get(variant%od.Fields().Len()) != fd {
				continue
			}
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for j := range 2 {
				key := scalar(fd.MapKey(), j).MapKey()
				if fd.MapValue().Message() != nil {
					v := mp.NewValue()
					if depth < maxDepth {
						fill(v.Message(), variant+j, depth+1)
					}
					mp.Set(key, v)
				} else {
					mp.Set(key, scalar(fd.MapValue(), j))
				}
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for j := range 2 {
				if fd.Message() != nil {
					v := l.NewElement()
					if depth < maxDepth {
						fill(v.Message(), variant+j+1, depth+1)
					}
					l.Append(v)
				} else {
					l.Append(scalar(fd, j))
				}
			}
		case fd.Message() != nil:
			v := m.NewField(fd)
			if depth < maxDepth {
				fill(v.Message(), variant, depth+1)
			}
			m.Set(fd, v)
		default:
			m.Set(fd, scalar(fd, 0))
		}
	}
}

// scalar returns a non-zero value of fd's kind; j varies it.
func scalar(fd protoreflect.FieldDescriptor, j int) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(vals.Len() - 1 - j%vals.Len()).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32([]int32{-7, math.MaxInt32}[j%2])
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64([]int64{-9, math.MaxInt64}[j%2])
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32([]uint32{300, math.MaxUint32}[j%2])
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64([]uint64{1 << 40, math.MaxUint64}[j%2])
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32([]float32{1.5, -0.25}[j%2])
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64([]float64{math.Inf(-1), 1e300}[j%2])
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d-é✓", fd.Name(), j))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{0, byte(j), 0xff})
	}
	panic(fmt.Sprintf("no test value for %s (%s)", fd.FullName(), fd.Kind()))
}

// everyFieldSet fails unless, across msgs, every field of every message
// reachable from them was populated at least once: the filler must not
// silently skip a kind of field.
func everyFieldSet(t *testing.T, msgs map[string]proto.Message) {
	seen := make(map[protoreflect.FullName]bool)
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			seen[fd.FullName()] = true
			switch {
			case fd.IsMap():
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					if fd.MapValue().Message() != nil {
						walk(mv.Message())
					}
					return true
				})
			case fd.IsList():
				if fd.Message() != nil {
					for i := 0; i < v.List().Len(); i++ {
						walk(v.List().Get(i).Message())
					}
				}
			case fd.Message() != nil:
				walk(v.Message())
			}
			return true
		})
	}
	for _, m := range msgs {
		walk(m.ProtoReflect())
	}
	for _, fd := range streamFiles {
		for i := 0; i < fd.Messages().Len(); i++ {
			fields := fd.Messages().Get(i).Fields()
			for j := 0; j < fields.Len(); j++ {
				if !seen[fields.Get(j).FullName()] {
					t.Errorf("field %s was never populated by the test's filler", fields.Get(j).FullName())
				}
			}
		}
	}
}

// TestStreamMessagesHaveVTMethods fails when a message of the two streams
// lost its generated methods (for example a new message not reachable from
// the services listed under `types` in buf.gen.yaml): the codec would still
// work, through the slow standard path.
func TestStreamMessagesHaveVTMethods(t *testing.T) {
	for name, m := range populated(t) {
		if _, ok := m.(message); !ok {
			t.Errorf("%s has no MarshalVT/UnmarshalVT/SizeVT: add it to the vtproto `types` in buf.gen.yaml and run scripts/generate.sh", name)
		}
	}
}

// TestCodecMatchesStandard checks, for fully populated messages of every
// stream type, that what the vt codec writes the standard codec reads back
// equal and vice versa, and that both agree on the size.
func TestCodecMatchesStandard(t *testing.T) {
	std := encoding.GetCodecV2(grpcproto.Name)
	msgs := populated(t)
	everyFieldSet(t, msgs)
	for name, m := range msgs {
		t.Run(name, func(t *testing.T) {
			vt, err := Codec{}.Marshal(m)
			if err != nil {
				t.Fatalf("vt marshal: %v", err)
			}
			if got, want := vt.Len(), proto.Size(m); got != want {
				t.Errorf("vt encoding is %d bytes, standard %d", got, want)
			}
			back := m.ProtoReflect().New().Interface()
			if err := std.Unmarshal(vt, back); err != nil {
				t.Fatalf("standard codec cannot read the vt encoding: %v", err)
			}
			if !proto.Equal(m, back) {
				t.Errorf("vt → standard changed the message:\n got %v\nwant %v", back, m)
			}

			sb, err := std.Marshal(m)
			if err != nil {
				t.Fatalf("standard marshal: %v", err)
			}
			back = m.ProtoReflect().New().Interface()
			if err := (Codec{}).Unmarshal(sb, back); err != nil {
				t.Fatalf("vt codec cannot read the standard encoding: %v", err)
			}
			if !proto.Equal(m, back) {
				t.Errorf("standard → vt changed the message:\n got %v\nwant %v", back, m)
			}
			vt.Free()
			sb.Free()
		})
	}
}

// TestCodecKeepsUnknownFields: a field from a newer peer survives a pass
// through an older one in both directions.
func TestCodecKeepsUnknownFields(t *testing.T) {
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7)
	req := &transportv1.DeliveryRequest{DeliveryId: "dlv_u"}
	req.ProtoReflect().SetUnknown(unknown)
	m := &transportv1.DeliverRequest{RequestId: 3, Request: req}

	b, err := Codec{}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back := &transportv1.DeliverRequest{}
	if err := (Codec{}).Unmarshal(b, back); err != nil {
		t.Fatal(err)
	}
	if got := back.GetRequest().ProtoReflect().GetUnknown(); string(got) != string(unknown) {
		t.Errorf("unknown fields after a round trip: %x, want %x", got, unknown)
	}
	if !proto.Equal(m, back) {
		t.Errorf("round trip changed the message: %v, want %v", back, m)
	}
}

// TestCodecResetsTarget: like proto.Unmarshal, decoding replaces what the
// target held (the generated UnmarshalVT alone would merge).
func TestCodecResetsTarget(t *testing.T) {
	b, err := Codec{}.Marshal(&transportv1.DeliverResponse{RequestId: 2})
	if err != nil {
		t.Fatal(err)
	}
	into := &transportv1.DeliverResponse{RequestId: 1, Result: &transportv1.DeliveryResult{Error: "old"}}
	if err := (Codec{}).Unmarshal(b, into); err != nil {
		t.Fatal(err)
	}
	if want := (&transportv1.DeliverResponse{RequestId: 2}); !proto.Equal(into, want) {
		t.Errorf("decoded into a used message: %v, want %v", into, want)
	}
}

// TestCodecRejectsInvalidUTF8 keeps the standard codec's rule: text that
// is not UTF-8 (say a target's response header in Latin-1, or a hostile
// agent's labels) is refused when decoded, wherever it sits.
func TestCodecRejectsInvalidUTF8(t *testing.T) {
	const bad = "caf\xe9"
	cases := map[string]proto.Message{
		"map value": &transportv1.DeliverResponse{Result: &transportv1.DeliveryResult{ResponseHeaders: map[string]string{"x": bad}}},
		"map key":   &hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Hello{Hello: &hookwirev1.Hello{Labels: map[string]string{bad: "x"}}}},
		"list":      &hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_Welcome{Welcome: &hookwirev1.Welcome{HonouredLeaseIds: []string{"ok", bad}}}},
		"scalar":    &hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Results{Results: &hookwirev1.Results{Items: []*hookwirev1.Result{{Result: &transportv1.DeliveryResult{Error: bad}}}}}},
		"in a Struct": &transportv1.DeliverRequest{Request: &transportv1.DeliveryRequest{Config: &structpb.Struct{Fields: map[string]*structpb.Value{
			"url": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue(bad)}}),
		}}}},
	}
	std := encoding.GetCodecV2(grpcproto.Name)
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			// The generated encoder does not check, which lets the test
			// produce the bytes a careless or hostile peer would send.
			wire, err := m.(interface{ MarshalVT() ([]byte, error) }).MarshalVT()
			if err != nil {
				t.Fatal(err)
			}
			into := m.ProtoReflect().New().Interface()
			err = Codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, into)
			if err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
				t.Errorf("vt codec decoded invalid UTF-8: err %v", err)
			}
			if std.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, m.ProtoReflect().New().Interface()) == nil {
				t.Error("the standard codec accepts this input too; the test no longer shows a difference")
			}
		})
	}
}

// TestCodecFallsBack: messages without vt methods go through the standard
// codec, so any service may be called with this codec.
func TestCodecFallsBack(t *testing.T) {
	m := &hookwirev1.CreateTenantRequest{Id: "acme", DisplayName: "Acme"}
	if _, ok := any(m).(message); ok {
		t.Fatal("CreateTenantRequest has vt methods; pick a message without them for this test")
	}
	b, err := Codec{}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back := &hookwirev1.CreateTenantRequest{}
	if err := (Codec{}).Unmarshal(b, back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, back) {
		t.Errorf("round trip: %v, want %v", back, m)
	}
}

// TestCodecPooledBuffer covers messages above gRPC's pooling threshold,
// which are written into a buffer from gRPC's pool.
func TestCodecPooledBuffer(t *testing.T) {
	m := assignments(64)
	if mem.IsBelowBufferPoolingThreshold(proto.Size(m)) {
		t.Fatalf("%d bytes is below the pooling threshold; use a bigger message", proto.Size(m))
	}
	b, err := Codec{}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	back := &hookwirev1.ControlMessage{}
	if err := proto.Unmarshal(b.Materialize(), back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, back) {
		t.Error("a pooled encoding did not decode to the message")
	}
}

func TestCodecRegistered(t *testing.T) {
	if _, ok := encoding.GetCodecV2(Name).(Codec); !ok {
		t.Fatalf("codec registered as %q is %T, want vtcodec.Codec", Name, encoding.GetCodecV2(Name))
	}
}

// assignments is a batch of n assignments as the control plane sends them:
// each a signed 256-byte webhook.
func assignments(n int) *hookwirev1.ControlMessage {
	body := []byte(`{"seq":1,"pad":"` + strings.Repeat("x", 240) + `"}`)
	config, err := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:8080/hook/0"})
	if err != nil {
		panic(err)
	}
	now := time.Unix(1_700_000_000, 0)
	batch := &hookwirev1.Assignments{}
	for i := range n {
		id := fmt.Sprintf("dlv_01HZZZZZZZZZZZZZZZZZZZZ%03d", i)
		batch.Items = append(batch.Items, &hookwirev1.Assignment{
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
		})
	}
	return &hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_Assignments{Assignments: batch}}
}

// results is a batch of n results as an agent sends them.
func results(n int) *hookwirev1.AgentMessage {
	now := time.Unix(1_700_000_000, 0)
	batch := &hookwirev1.Results{}
	for i := range n {
		batch.Items = append(batch.Items, &hookwirev1.Result{
			LeaseId: fmt.Sprintf("lse_%016d", i), LeaseToken: "3q2+7wAAAAAAAAAAAAAAAA", StartTime: timestamppb.New(now),
			Result: &transportv1.DeliveryResult{
				Outcome: transportv1.Outcome_OUTCOME_SUCCESS, StatusCode: 204, Latency: durationpb.New(800 * time.Microsecond),
				ResponseHeaders: map[string]string{"date": "Mon, 27 Nov 2023 16:00:00 GMT", "server": "sink"},
			},
		})
	}
	return &hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Results{Results: batch}}
}

// BenchmarkCodec compares the standard codec with this one on the hot
// messages: a batch of 64 assignments, a batch of 64 results, and one
// plugin DeliverRequest.
func BenchmarkCodec(b *testing.B) {
	std := encoding.GetCodecV2(grpcproto.Name)
	deliver := &transportv1.DeliverRequest{RequestId: 7, Request: assignments(1).GetAssignments().GetItems()[0].GetRequest()}
	for _, m := range []struct {
		name string
		msg  proto.Message
	}{
		{"assignments=64", assignments(64)},
		{"results=64", results(64)},
		{"deliver", deliver},
	} {
		for _, c := range []struct {
			name  string
			codec encoding.CodecV2
		}{{"standard", std}, {"vtproto", Codec{}}} {
			b.Run(m.name+"/"+c.name+"/marshal", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					d, err := c.codec.Marshal(m.msg)
					if err != nil {
						b.Fatal(err)
					}
					d.Free()
				}
			})
			wire, err := proto.Marshal(m.msg)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(m.name+"/"+c.name+"/unmarshal", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					into := m.msg.ProtoReflect().New().Interface()
					if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, into); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
