package api

import (
	"fmt"
	"strings"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// checkControlChars refuses NUL in any string of a request, and any
// control character in the strings that name things (ids, tenants,
// idempotency keys, page tokens): such a value cannot be what the caller
// meant, would not survive a round trip through logs, headers and URLs,
// and may be cut short by C-string code downstream. (Invalid UTF-8 never
// gets this far: protobuf and JSON decoding refuse it.)
func checkControlChars(m protoreflect.Message) error {
	return walkStrings(m, "", func(field, name, v string) error {
		for i := 0; i < len(v); i++ {
			c := v[i]
			switch {
			case c == 0:
				return &catalog.InputError{Field: field, Problem: fmt.Sprintf("must not contain NUL (byte 0x00 at offset %d)", i)}
			case (c < 0x20 || c == 0x7f) && namesSomething(name):
				return &catalog.InputError{Field: field, Problem: fmt.Sprintf("must not contain control characters (byte 0x%02x at offset %d)", c, i)}
			}
		}
		return nil
	})
}

// namesSomething reports whether a field of this name holds an identifier.
func namesSomething(name string) bool {
	return name == "id" || name == "tenant" || strings.HasSuffix(name, "_id") ||
		name == "idempotency_key" || name == "page_token"
}

// walkStrings calls fn for every set string field, list item and map key
// or value in m, with its path ("event.metadata[k]").
func walkStrings(m protoreflect.Message, prefix string, fn func(path, name, v string) error) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				p := fmt.Sprintf("%s[%q]", path, k.String())
				if fd.MapKey().Kind() == protoreflect.StringKind {
					if err = fn(path+" key", name, k.String()); err != nil {
						return false
					}
				}
				err = walkValue(fd.MapValue(), mv, p, name, fn)
				return err == nil
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = walkValue(fd, l.Get(i), fmt.Sprintf("%s[%d]", path, i), name, fn)
			}
		default:
			err = walkValue(fd, v, path, name, fn)
		}
		return err == nil
	})
	return err
}

func walkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, path, name string, fn func(path, name, v string) error) error {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return fn(path, name, v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return walkStrings(v.Message(), path, fn)
	}
	return nil
}
