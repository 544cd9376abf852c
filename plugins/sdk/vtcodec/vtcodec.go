// Package vtcodec is the gRPC codec of Hookwire's two hot streams: the
// agent's AgentService.Connect stream to the control plane and the Deliver
// stream between an agent and its transport plugins.
//
// It encodes and decodes with the MarshalVT/UnmarshalVT/SizeVT methods that
// protoc-gen-go-vtproto generates (for hookwire/v1/agent.proto and
// hookwire/transport/v1 only, see buf.gen.yaml) and hands every other
// message to gRPC's standard proto codec. The bytes on the wire are the
// same protobuf encoding either way; only the CPU cost differs: the generic
// codec walks map fields (the signed request's headers, the target
// config's Struct) through reflection.
//
// Importing the package registers the codec under Name. A client uses it
// per call with grpc.ForceCodecV2(Codec{}), which sends the content-subtype
// Name ("application/grpc+vtproto"); a gRPC server picks the codec by that
// content-subtype, so a server only has to import this package, and other
// services and clients are unaffected. A server built without it answers
// such calls with the standard codec (gRPC falls back to "proto"), which
// reads the same bytes.
//
// Decoding keeps the standard codec's strictness: a string field that is
// not valid UTF-8 is an error, as it is for proto.Unmarshal (the generated
// decoders do not check), so a peer cannot get text into the control plane
// that it could not send before.
package vtcodec

import (
	"fmt"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Name is the codec's name and the content-subtype of the calls that use it.
const Name = "vtproto"

func init() { encoding.RegisterCodecV2(Codec{}) }

// Codec is the gRPC encoding.CodecV2 described in the package comment.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// message is what protoc-gen-go-vtproto generates with the features
// marshal+unmarshal+size.
type message interface {
	SizeVT() int
	MarshalToSizedBufferVT(b []byte) (int, error)
	UnmarshalVT(b []byte) error
}

// standard is gRPC's own proto codec, for messages without vt methods.
var standard = encoding.GetCodecV2(grpcproto.Name)

// Name returns Name.
func (Codec) Name() string { return Name }

// Marshal encodes v with MarshalToSizedBufferVT into a buffer from gRPC's
// pool (small messages: a plain slice, as the standard codec does).
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(message)
	if !ok {
		return standard.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		b := make([]byte, size)
		if err := marshalExact(m, b); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	pool := mem.DefaultBufferPool()
	b := pool.Get(size)
	if err := marshalExact(m, *b); err != nil {
		pool.Put(b)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(b, pool)}, nil
}

// marshalExact fills b, which has exactly m's size. The generated code
// writes from the end of b backwards, so a message that changed size since
// it was measured (a caller modifying it concurrently) would leave garbage
// at the front: that is reported rather than sent.
func marshalExact(m message, b []byte) error {
	n, err := m.MarshalToSizedBufferVT(b)
	if err != nil {
		return fmt.Errorf("vtproto: marshal %T: %w", m, err)
	}
	if n != len(b) {
		return fmt.Errorf("vtproto: marshal %T: wrote %d bytes, sized %d (was the message modified while being sent?)", m, n, len(b))
	}
	return nil
}

// Unmarshal decodes data into v, which it first resets (as proto.Unmarshal
// does; the generated UnmarshalVT merges). The decoded message does not
// alias data: the generated code copies bytes and strings.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(message)
	if !ok {
		return standard.Unmarshal(data, v)
	}
	pm, ok := v.(proto.Message)
	if !ok {
		return standard.Unmarshal(data, v)
	}
	proto.Reset(pm)
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if err := m.UnmarshalVT(buf.ReadOnlyData()); err != nil {
		return fmt.Errorf("vtproto: unmarshal %T: %w", v, err)
	}
	if fd := invalidUTF8(buf.ReadOnlyData(), pm.ProtoReflect().Descriptor()); fd != nil {
		return fmt.Errorf("vtproto: unmarshal %T: string field %s contains invalid UTF-8", v, fd.FullName())
	}
	return nil
}

// invalidUTF8 returns the first string field of the message md whose
// value in the encoding b (which UnmarshalVT accepted) is not valid UTF-8,
// looking into nested messages and map entries, or nil. It reads the wire
// bytes rather than the decoded message (walking maps through reflection
// cost more than the generated decoder saves), guided by a plan per message
// type that says which field numbers hold text or messages.
func invalidUTF8(b []byte, md protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	return planFor(md).check(b)
}

// textPlan says, per field number of one message type, whether the field
// holds text (a string, or a message that may contain some).
type textPlan struct {
	fields []textField // indexed by field number
}

type textField struct {
	fd  protoreflect.FieldDescriptor // nil: nothing to check
	sub *textPlan                    // message fields and map entries
}

var plans sync.Map // protoreflect.FullName -> *textPlan

func planFor(md protoreflect.MessageDescriptor) *textPlan {
	if p, ok := plans.Load(md.FullName()); ok {
		return p.(*textPlan)
	}
	p := buildPlan(md, make(map[protoreflect.FullName]*textPlan))
	plans.Store(md.FullName(), p)
	return p
}

// buildPlan builds md's plan and those of the messages it contains; seen
// ties recursive types (Struct, Value, ListValue) into a cycle of plans.
func buildPlan(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*textPlan) *textPlan {
	if p, ok := seen[md.FullName()]; ok {
		return p
	}
	p := &textPlan{}
	seen[md.FullName()] = p
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		var f textField
		switch {
		case fd.Kind() == protoreflect.StringKind:
			f.fd = fd
		case fd.Message() != nil: // also a map entry: key 1, value 2
			f.fd, f.sub = fd, buildPlan(fd.Message(), seen)
		default:
			continue
		}
		n := int(fd.Number())
		for len(p.fields) <= n {
			p.fields = append(p.fields, textField{})
		}
		p.fields[n] = f
	}
	return p
}

func (p *textPlan) check(b []byte) protoreflect.FieldDescriptor {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil // malformed: UnmarshalVT would have said so
		}
		b = b[n:]
		var f textField
		if int(num) < len(p.fields) {
			f = p.fields[num]
		}
		if f.fd == nil || typ != protowire.BytesType {
			// Unknown fields are not checked (nor are they by the
			// standard codec); other wire types hold no text.
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return nil
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		if f.sub == nil {
			if !utf8.Valid(v) {
				return f.fd
			}
		} else if bad := f.sub.check(v); bad != nil {
			return bad
		}
	}
	return nil
}
