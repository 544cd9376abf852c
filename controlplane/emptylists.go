package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// REST responses write an empty repeated field as [] (a tenant without
// subscriptions lists {"subscriptions": []}), so clients can iterate
// without checking for a missing member. protojson leaves empty lists out,
// and its EmitUnpopulated option would also write every zero scalar, null
// message and empty map, which floods responses and changes none of their
// meaning; so only lists are added, after protojson has done the rest.

// Marshal is JSONPb's, with empty lists written as [], for whole messages
// and for the {"result": message} chunks of a stream.
func (m *eventMarshaler) Marshal(v any) ([]byte, error) {
	if b, ok, err := m.marshalEvents(v); ok {
		return b, err
	}
	switch msg := v.(type) {
	case proto.Message:
		return m.marshalMessage(msg)
	case map[string]any:
		if r, ok := msg["result"].(proto.Message); ok && len(msg) == 1 {
			b, err := m.marshalMessage(r)
			if err != nil {
				return nil, err
			}
			return append(append([]byte(`{"result":`), b...), '}'), nil
		}
	}
	return m.JSONPb.Marshal(v)
}

func (m *eventMarshaler) marshalMessage(msg proto.Message) ([]byte, error) {
	return m.marshalWithout(msg, "")
}

// marshalWithout is marshalMessage leaving out the (empty) member skip,
// which the caller writes itself.
func (m *eventMarshaler) marshalWithout(msg proto.Message, skip string) ([]byte, error) {
	b, err := m.MarshalOptions.Marshal(msg)
	if err != nil || !m.UseProtoNames {
		return b, err
	}
	top, nested := emptyLists(msg.ProtoReflect())
	switch {
	case len(top) == 0 && !nested:
		return b, nil
	case !nested:
		// Only the message's own lists are empty (the common case, such
		// as a publish answer's filter_errors): add them as members.
		return appendEmptyMembers(b, top, skip), nil
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // numbers keep their exact text
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("add empty lists to %s: %w", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	addEmptyLists(msg.ProtoReflect(), tree)
	if obj, ok := tree.(map[string]any); ok && skip != "" {
		delete(obj, skip)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // as protojson: "<" stays "<"
	if err := enc.Encode(tree); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// ownJSON reports messages whose JSON form is not an object of their
// fields (Timestamp, Struct, Any...): they are left as protojson wrote them.
func ownJSON(d protoreflect.MessageDescriptor) bool {
	return strings.HasPrefix(string(d.FullName()), "google.protobuf.")
}

// eachChild calls fn for every set message-typed value directly inside m
// (singular fields, list elements and map values), with the path of its
// JSON member: the field's name and, for lists and maps, the index or key.
func eachChild(m protoreflect.Message, fn func(fd protoreflect.FieldDescriptor, key any, child protoreflect.Message)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := range l.Len() {
				fn(fd, i, l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				fn(fd, k.String(), mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			fn(fd, nil, v.Message())
		}
		return true
	})
}

// emptyLists returns the JSON names of m's own empty repeated fields, and
// whether a message inside m has some too.
func emptyLists(m protoreflect.Message) (top []string, nested bool) {
	if ownJSON(m.Descriptor()) {
		return nil, false
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.IsList() && !m.Has(fd) {
			top = append(top, string(fd.Name()))
		}
	}
	eachChild(m, func(_ protoreflect.FieldDescriptor, _ any, child protoreflect.Message) {
		nested = nested || hasEmptyList(child)
	})
	return top, nested
}

// appendEmptyMembers adds "name":[] for each name but skip before the
// closing brace of the JSON object b.
func appendEmptyMembers(b []byte, names []string, skip string) []byte {
	b = bytes.TrimRight(b, " \n")
	body := bytes.TrimSpace(b[1 : len(b)-1])
	out := make([]byte, 0, len(b)+16*len(names))
	out = append(out, b[:len(b)-1]...)
	first := len(body) == 0
	for _, name := range names {
		if name == skip {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, '"')
		out = append(out, name...)
		out = append(out, `":[]`...)
	}
	return append(out, '}')
}

// hasEmptyList reports whether m or a message inside it has an empty
// repeated field.
func hasEmptyList(m protoreflect.Message) bool {
	if ownJSON(m.Descriptor()) {
		return false
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.IsList() && !m.Has(fd) {
			return true
		}
	}
	found := false
	eachChild(m, func(_ protoreflect.FieldDescriptor, _ any, child protoreflect.Message) {
		found = found || hasEmptyList(child)
	})
	return found
}

// addEmptyLists sets [] in node, the decoded JSON object of m, for each
// empty repeated field of m and of the messages inside it.
func addEmptyLists(m protoreflect.Message, node any) {
	obj, ok := node.(map[string]any)
	if !ok || ownJSON(m.Descriptor()) {
		return
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.IsList() && !m.Has(fd) {
			obj[string(fd.Name())] = []any{}
		}
	}
	eachChild(m, func(fd protoreflect.FieldDescriptor, key any, child protoreflect.Message) {
		member := obj[string(fd.Name())]
		switch k := key.(type) {
		case int:
			if arr, ok := member.([]any); ok && k < len(arr) {
				addEmptyLists(child, arr[k])
			}
		case string:
			if mp, ok := member.(map[string]any); ok {
				addEmptyLists(child, mp[k])
			}
		default:
			addEmptyLists(child, member)
		}
	})
}
