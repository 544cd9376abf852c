// Package apiref builds Hookwire's API reference from the generated
// descriptor set of proto/hookwire/v1 (package gen/openapi): every service
// and method with its gRPC name and REST bindings, and every message and
// enum with the comments written in the protos. It renders the reference
// as Markdown (docs/API.md, `hookwire docs api`) and as one self-contained
// HTML page (GET /docs). It reads only what generation embedded; it never
// touches the network or the store.
package apiref

import (
	"fmt"
	"slices"
	"strings"

	// The generated Go packages register the files the protos import
	// (google/api, buf/validate, well-known types).
	_ "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/hookwire/hookwire/gen/openapi"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Package is the proto package documented.
const Package = "hookwire.v1"

// Reference is the whole public API.
type Reference struct {
	Services []Service
	Messages []Message
	Enums    []Enum
}

// Service is one gRPC service.
type Service struct {
	Name        string
	Description string
	Methods     []Method
}

// Method is one RPC.
type Method struct {
	Service, Name   string
	GRPC            string // full method name: /hookwire.v1.EventService/PublishEvent
	Description     string
	Request         TypeRef
	Response        TypeRef
	ClientStreaming bool
	ServerStreaming bool
	HTTP            []Binding
}

// Binding is one REST route of a method.
type Binding struct {
	Verb, Path string
	// Body names the request field read from the body ("*": all fields not
	// in the path; "": no body).
	Body string
}

// Message is one message type.
type Message struct {
	Name        string // relative to Package: "Subscription", "Hello.Transport"
	Description string
	Fields      []Field
}

// Field is one field of a message.
type Field struct {
	Name        string // as in the proto; also the JSON name on REST
	Type        TypeRef
	Oneof       string
	Description string
}

// TypeRef names a field or method type; Local is true when the type is
// documented on the same page.
type TypeRef struct {
	Text  string // "string", "repeated Target", "map<string, string>"
	Name  string // the referenced type's name ("" for scalars)
	Local bool
}

// Anchor is the id of the referenced type's section.
func (t TypeRef) Anchor() string { return Anchor(t.Name) }

// Anchor is the id of a message or enum section.
func Anchor(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, ".", ""))
}

// Enum is one enum type.
type Enum struct {
	Name        string
	Description string
	Values      []EnumValue
}

// EnumValue is one value of an enum.
type EnumValue struct {
	Name        string
	Number      int32
	Description string
}

// Load builds the reference from the embedded descriptor set.
func Load() (*Reference, error) {
	return load(openapi.Descriptors)
}

func load(data []byte) (*Reference, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("read the API descriptor set: %w", err)
	}
	files := new(protoregistry.Files)
	res := resolver{local: files, inSet: map[string]bool{}}
	for _, fdp := range set.GetFile() {
		res.inSet[fdp.GetName()] = true
	}
	var fds []protoreflect.FileDescriptor
	// The set holds only proto/hookwire/v1; imports of other hookwire
	// files must be built first, so repeat until every file resolves.
	todo := set.GetFile()
	for len(todo) > 0 {
		var later []*descriptorpb.FileDescriptorProto
		var lastErr error
		for _, fdp := range todo {
			fd, err := protodesc.NewFile(fdp, res)
			if err != nil {
				later, lastErr = append(later, fdp), err
				continue
			}
			if err := files.RegisterFile(fd); err != nil {
				return nil, fmt.Errorf("register %s: %w", fdp.GetName(), err)
			}
			fds = append(fds, fd)
		}
		if len(later) == len(todo) {
			return nil, fmt.Errorf("build the API descriptors: %w", lastErr)
		}
		todo = later
	}
	slices.SortFunc(fds, func(a, b protoreflect.FileDescriptor) int { return strings.Compare(a.Path(), b.Path()) })

	ref := &Reference{}
	for _, fd := range fds {
		if fd.Package() != Package {
			continue
		}
		svcs := fd.Services()
		for i := range svcs.Len() {
			ref.Services = append(ref.Services, service(fd, svcs.Get(i)))
		}
		addTypes(ref, fd, fd.Messages(), fd.Enums())
	}
	slices.SortFunc(ref.Services, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(ref.Messages, func(a, b Message) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(ref.Enums, func(a, b Enum) int { return strings.Compare(a.Name, b.Name) })
	return ref, nil
}

// resolver finds the set's files among those already built from it, and
// everything else (hookwire/transport, google/api, buf/validate,
// well-known types) in the files the generated Go packages registered.
type resolver struct {
	local *protoregistry.Files
	inSet map[string]bool
}

func (r resolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.local.FindFileByPath(path); err == nil {
		return fd, nil
	}
	if r.inSet[path] {
		return nil, fmt.Errorf("%s: not built yet", path)
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

func (r resolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.local.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}

func comment(fd protoreflect.FileDescriptor, d protoreflect.Descriptor) string {
	text := fd.SourceLocations().ByDescriptor(d).LeadingComments
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

func service(fd protoreflect.FileDescriptor, sd protoreflect.ServiceDescriptor) Service {
	s := Service{Name: string(sd.Name()), Description: comment(fd, sd)}
	methods := sd.Methods()
	for i := range methods.Len() {
		md := methods.Get(i)
		m := Method{
			Service:         s.Name,
			Name:            string(md.Name()),
			GRPC:            fmt.Sprintf("/%s/%s", sd.FullName(), md.Name()),
			Description:     comment(fd, md),
			Request:         typeRef(md.Input().FullName(), ""),
			Response:        typeRef(md.Output().FullName(), ""),
			ClientStreaming: md.IsStreamingClient(),
			ServerStreaming: md.IsStreamingServer(),
		}
		if opts, ok := md.Options().(*descriptorpb.MethodOptions); ok && proto.HasExtension(opts, annotations.E_Http) {
			rule, _ := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
			m.HTTP = bindings(rule)
		}
		s.Methods = append(s.Methods, m)
	}
	return s
}

func bindings(rule *annotations.HttpRule) []Binding {
	if rule == nil {
		return nil
	}
	var verb, path string
	switch p := rule.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		verb, path = "GET", p.Get
	case *annotations.HttpRule_Post:
		verb, path = "POST", p.Post
	case *annotations.HttpRule_Put:
		verb, path = "PUT", p.Put
	case *annotations.HttpRule_Patch:
		verb, path = "PATCH", p.Patch
	case *annotations.HttpRule_Delete:
		verb, path = "DELETE", p.Delete
	case *annotations.HttpRule_Custom:
		verb, path = p.Custom.GetKind(), p.Custom.GetPath()
	}
	var out []Binding
	if path != "" {
		out = append(out, Binding{Verb: verb, Path: path, Body: rule.GetBody()})
	}
	for _, extra := range rule.GetAdditionalBindings() {
		out = append(out, bindings(extra)...)
	}
	return out
}

// typeRef names a message or enum type; the prefix ("repeated ", ...) is
// prepended.
func typeRef(full protoreflect.FullName, prefix string) TypeRef {
	name := string(full)
	local := strings.HasPrefix(name, Package+".")
	if local {
		name = strings.TrimPrefix(name, Package+".")
	}
	return TypeRef{Text: prefix + name, Name: name, Local: local}
}

func fieldType(f protoreflect.FieldDescriptor) TypeRef {
	if f.IsMap() {
		k, v := fieldType(f.MapKey()), fieldType(f.MapValue())
		return TypeRef{Text: fmt.Sprintf("map<%s, %s>", k.Text, v.Text), Name: v.Name, Local: v.Local}
	}
	prefix := ""
	if f.IsList() {
		prefix = "repeated "
	} else if f.HasOptionalKeyword() {
		prefix = "optional "
	}
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return typeRef(f.Message().FullName(), prefix)
	case protoreflect.EnumKind:
		return typeRef(f.Enum().FullName(), prefix)
	}
	return TypeRef{Text: prefix + f.Kind().String()}
}

func addTypes(ref *Reference, fd protoreflect.FileDescriptor, msgs protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors) {
	for i := range enums.Len() {
		ed := enums.Get(i)
		e := Enum{Name: typeRef(ed.FullName(), "").Name, Description: comment(fd, ed)}
		values := ed.Values()
		for j := range values.Len() {
			v := values.Get(j)
			e.Values = append(e.Values, EnumValue{Name: string(v.Name()), Number: int32(v.Number()), Description: comment(fd, v)})
		}
		ref.Enums = append(ref.Enums, e)
	}
	for i := range msgs.Len() {
		md := msgs.Get(i)
		if md.IsMapEntry() {
			continue
		}
		m := Message{Name: typeRef(md.FullName(), "").Name, Description: comment(fd, md)}
		fields := md.Fields()
		for j := range fields.Len() {
			f := fields.Get(j)
			field := Field{Name: string(f.Name()), Type: fieldType(f), Description: comment(fd, f)}
			if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
				field.Oneof = string(o.Name())
			}
			m.Fields = append(m.Fields, field)
		}
		ref.Messages = append(ref.Messages, m)
		addTypes(ref, fd, md.Messages(), md.Enums())
	}
}

// Routes lists every REST route, sorted by path then verb.
func (r *Reference) Routes() []Route {
	var out []Route
	for _, s := range r.Services {
		for _, m := range s.Methods {
			for _, b := range m.HTTP {
				out = append(out, Route{Binding: b, Method: m})
			}
		}
	}
	slices.SortFunc(out, func(a, b Route) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Verb, b.Verb)
	})
	return out
}

// Route is a REST binding with its method.
type Route struct {
	Binding
	Method Method
}

// MethodAnchor is the id of a method's section.
func (m Method) MethodAnchor() string { return strings.ToLower(m.Service + m.Name) }

// Signature is the RPC as written in the proto.
func (m Method) Signature() string {
	in, out := m.Request.Text, m.Response.Text
	if m.ClientStreaming {
		in = "stream " + in
	}
	if m.ServerStreaming {
		out = "stream " + out
	}
	return fmt.Sprintf("rpc %s(%s) returns (%s)", m.Name, in, out)
}
