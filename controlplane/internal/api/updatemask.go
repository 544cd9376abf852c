package api

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// This file is UpdateSubscription's field mask (AIP-134, AIP-161): which
// paths a request may name, what an absent mask or "*" stands for, and
// how the named fields of the request are copied onto the stored
// subscription.

// fixedFields are the fields of a Subscription an update cannot change,
// with the reason a caller is told when the request asks for another
// value. A request may name them with the value they have (so a
// subscription read with Get can be sent back).
var fixedFields = map[string]string{
	"tenant":             "tenant cannot be changed: a subscription stays in the tenant it was created in",
	"create_time":        "create_time cannot be changed: Hookwire sets it when the subscription is created",
	"ordered":            "ordered cannot be changed after creation: the subscription's deliveries are queued under its ordering; create a new subscription with the ordering you want",
	"target.transport":   "target.transport cannot be changed: create a new subscription for the other transport (the target's config belongs to its transport)",
	"status":             "status cannot be changed by an update: use POST .../subscriptions/{id}:pause or :resume",
	"disabled_reason":    "disabled_reason cannot be changed by an update: Hookwire sets it when it disables the subscription, and :resume clears it",
	"signature_scheme":   "signature_scheme cannot be updated: rotate the key with POST .../subscriptions/{id}:rotateSecret (its scheme field migrates to another scheme)",
	"signing_public_key": "signing_public_key cannot be updated: it is the current key's; rotate the key with POST .../subscriptions/{id}:rotateSecret",
	"signing_secret":     "signing_secret cannot be set: rotate the key with POST .../subscriptions/{id}:rotateSecret, whose response shows the new secret once",
}

// ignoredFields are output only and change by themselves (id names the
// subscription, from the request path over REST); an update ignores them
// wherever the mask names them, as AIP-161 asks.
var ignoredFields = []string{"id", "update_time", "circuit_state", "failing_since"}

var subscriptionDesc = (&hookwirev1.Subscription{}).ProtoReflect().Descriptor()

// mutableFields are the top-level fields an update can change, in
// declaration order: every field neither fixed nor ignored.
var mutableFields = func() []string {
	var out []string
	fields := subscriptionDesc.Fields()
	for i := range fields.Len() {
		name := string(fields.Get(i).Name())
		if _, fixed := fixedFields[name]; !fixed && !slices.Contains(ignoredFields, name) {
			out = append(out, name)
		}
	}
	return out
}()

// updateMask is an UpdateSubscription's mask, checked and normalised.
type updateMask struct {
	// paths are the fields to copy from the request (proto names, split
	// at the dots), none inside another.
	paths [][]string
	// fixed are the fixed fields the mask names or covers; explicit ones
	// are compared even when the request leaves them unset.
	fixed []fixedCheck
	// headers: the request's target.headers replace the stored set.
	headers bool
	// target: the target's transport or config may change, so the
	// transport must validate the result.
	target bool
}

type fixedCheck struct {
	path     string
	explicit bool
}

// parseUpdateMask checks the request's mask and returns what it changes.
// An absent or empty mask stands for the fields set in the request (the
// REST gateway has already filled it with the fields present in the
// body); "*" for every field an update can change.
func parseUpdateMask(mask *fieldmaskpb.FieldMask, in *hookwirev1.Subscription) (*updateMask, error) {
	paths := mask.GetPaths()
	if len(paths) == 0 {
		paths = setPaths(in.ProtoReflect(), "", nil)
	}
	m := &updateMask{}
	if slices.Contains(paths, "*") {
		if len(paths) > 1 {
			return nil, status.Errorf(codes.InvalidArgument, "update_mask %q: \"*\" (replace every field) must be the only path", strings.Join(paths, ","))
		}
		for _, name := range mutableFields {
			m.add([]string{name})
		}
		for name := range fixedFields {
			m.fixed = append(m.fixed, fixedCheck{path: name})
		}
		m.normalise()
		return m, nil
	}
	for _, p := range paths {
		segs, err := resolvePath(p)
		if err != nil {
			return nil, err
		}
		name := strings.Join(segs, ".")
		switch {
		case slices.Contains(ignoredFields, name):
		case fixedFields[name] != "":
			m.fixed = append(m.fixed, fixedCheck{path: name, explicit: true})
		default:
			m.add(segs)
		}
	}
	m.normalise()
	if m.inConfig() {
		if key := dottedKey(in.GetTarget().GetConfig()); key != "" {
			return nil, status.Errorf(codes.InvalidArgument, "target.config has the key %q, which a field mask path cannot name (a dot separates path segments): set update_mask=target.config and send the whole configuration", key)
		}
	}
	return m, nil
}

func (m *updateMask) add(segs []string) {
	m.paths = append(m.paths, segs)
	name := strings.Join(segs, ".")
	switch {
	case name == "target":
		m.fixed = append(m.fixed, fixedCheck{path: "target.transport"})
		m.headers, m.target = true, true
	case name == "target.headers":
		m.headers = true
	case name == "target.config" || strings.HasPrefix(name, "target.config."):
		m.target = true
	}
}

// normalise sorts the paths and drops those inside another one.
func (m *updateMask) normalise() {
	slices.SortFunc(m.paths, func(a, b []string) int { return slices.Compare(a, b) })
	out := m.paths[:0]
	for _, p := range m.paths {
		if len(out) > 0 && isPrefix(out[len(out)-1], p) {
			continue
		}
		out = append(out, p)
	}
	m.paths = out
	// One check per field, explicit if any path named it.
	slices.SortFunc(m.fixed, func(a, b fixedCheck) int { return strings.Compare(a.path, b.path) })
	fixed := m.fixed[:0]
	for _, c := range m.fixed {
		if n := len(fixed); n > 0 && fixed[n-1].path == c.path {
			fixed[n-1].explicit = fixed[n-1].explicit || c.explicit
			continue
		}
		fixed = append(fixed, c)
	}
	m.fixed = fixed
}

// inConfig reports whether a path names keys inside target.config.
func (m *updateMask) inConfig() bool {
	for _, p := range m.paths {
		if len(p) > 2 && p[0] == "target" && p[1] == "config" {
			return true
		}
	}
	return false
}

// touches reports whether the mask changes the field at path (dotted,
// list and map subscripts removed) or one inside or around it.
func (m *updateMask) touches(path []string) bool {
	for _, p := range m.paths {
		if isPrefix(p, path) || isPrefix(path, p) {
			return true
		}
	}
	return false
}

func isPrefix(prefix, path []string) bool {
	return len(prefix) <= len(path) && slices.Equal(prefix, path[:len(prefix)])
}

// resolvePath checks one mask path against Subscription and returns it
// with proto field names (JSON names are accepted too).
func resolvePath(p string) ([]string, error) {
	if p == "" {
		return nil, status.Error(codes.InvalidArgument, "update_mask has an empty path; name fields such as description or target.config.url")
	}
	segs := strings.Split(p, ".")
	out := make([]string, 0, len(segs))
	md := subscriptionDesc
	inStruct := false
	for i, seg := range segs {
		where := "Subscription"
		if len(out) > 0 {
			where = strings.Join(out, ".")
		}
		if seg == "" {
			return nil, status.Errorf(codes.InvalidArgument, "update_mask path %q has an empty segment", p)
		}
		if inStruct {
			out = append(out, seg) // a key of target.config
			continue
		}
		fd := md.Fields().ByName(protoreflect.Name(seg))
		if fd == nil {
			fd = md.Fields().ByJSONName(seg)
		}
		if fd == nil {
			if md == subscriptionDesc {
				return nil, status.Errorf(codes.InvalidArgument, "update_mask path %q: Subscription has no field %q; fields that can be updated: %s", p, seg, strings.Join(mutableFields, ", "))
			}
			return nil, status.Errorf(codes.InvalidArgument, "update_mask path %q: %s has no field %q", p, where, seg)
		}
		out = append(out, string(fd.Name()))
		if i == len(segs)-1 {
			break
		}
		name := strings.Join(out, ".")
		switch {
		case fd.IsList() || fd.IsMap():
			return nil, status.Errorf(codes.InvalidArgument, "update_mask path %q: %s is replaced as a whole; use the path %q", p, name, name)
		case fd.Message() == nil:
			return nil, status.Errorf(codes.InvalidArgument, "update_mask path %q: %s has no fields", p, name)
		case fd.Message().FullName() == "google.protobuf.Struct":
			inStruct = true
		case strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf."):
			return nil, status.Errorf(codes.InvalidArgument, "update_mask path %q: %s is set as a whole; use the path %q", p, name, name)
		default:
			md = fd.Message()
		}
	}
	return out, nil
}

// setPaths lists the fields set in m as mask paths, the way the REST
// gateway lists the fields present in a body: into messages and
// google.protobuf.Struct objects down to their set fields (an empty one
// is a path itself), lists and maps whole.
func setPaths(m protoreflect.Message, prefix string, out []string) []string {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := string(fd.Name())
		if prefix != "" {
			p = prefix + "." + p
		}
		switch {
		case fd.IsList() || fd.IsMap() || fd.Message() == nil:
			out = append(out, p)
		case fd.Message().FullName() == "google.protobuf.Struct":
			out = structPaths(v.Message().Interface().(*structpb.Struct), p, out)
		case strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf."):
			out = append(out, p)
		default:
			n := len(out)
			out = setPaths(v.Message(), p, out)
			if len(out) == n {
				out = append(out, p)
			}
		}
		return true
	})
	return out
}

func structPaths(s *structpb.Struct, prefix string, out []string) []string {
	if len(s.GetFields()) == 0 {
		return append(out, prefix)
	}
	for k, v := range s.GetFields() {
		if sv := v.GetStructValue(); len(sv.GetFields()) > 0 {
			out = structPaths(sv, prefix+"."+k, out)
			continue
		}
		out = append(out, prefix+"."+k)
	}
	return out
}

// dottedKey returns a key of s (at any depth) that contains a dot, or "".
func dottedKey(s *structpb.Struct) string {
	for k, v := range s.GetFields() {
		if strings.Contains(k, ".") {
			return k
		}
		if k := dottedKey(v.GetStructValue()); k != "" {
			return k
		}
	}
	return ""
}

// checkFixed refuses a request that asks for another value of a field
// an update cannot change. cur is the stored subscription.
func (m *updateMask) checkFixed(cur, in *hookwirev1.Subscription) error {
	for _, c := range m.fixed {
		have, want := fieldAt(cur, c.path), fieldAt(in, c.path)
		if !c.explicit && !want.set {
			continue // covered by "*" or "target" but left unset: kept
		}
		if sameFixed(c.path, have, want) {
			continue
		}
		msg := fixedFields[c.path]
		if c.path != "signing_secret" {
			msg += fmt.Sprintf(" (it is %s; the request has %s)", have.text, want.text)
		}
		st := status.New(codes.InvalidArgument, msg)
		if d, err := st.WithDetails(badRequest("subscription."+c.path, msg)); err == nil {
			st = d
		}
		return st.Err()
	}
	return nil
}

// fixedValue is a scalar field's value, for comparison and messages.
type fixedValue struct {
	set  bool
	v    protoreflect.Value
	text string
}

// fieldAt reads a singular field of sub by dotted path.
func fieldAt(sub *hookwirev1.Subscription, path string) fixedValue {
	m := sub.ProtoReflect()
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(seg))
		if i < len(segs)-1 {
			m = m.Get(fd).Message()
			continue
		}
		v := m.Get(fd)
		fv := fixedValue{set: m.Has(fd), v: v}
		switch {
		case fd.Enum() != nil:
			fv.text = string(fd.Enum().Values().ByNumber(v.Enum()).Name())
		case fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Timestamp":
			fv.text = "unset"
			if fv.set {
				fv.text = v.Message().Interface().(*timestamppb.Timestamp).AsTime().Format(time.RFC3339Nano)
			}
		case fd.Kind() == protoreflect.StringKind:
			fv.text = quote(v.String())
		default:
			fv.text = fmt.Sprint(v.Interface())
		}
		return fv
	}
	return fixedValue{}
}

func sameFixed(path string, a, b fixedValue) bool {
	if path == "signature_scheme" {
		return catalog.NormalScheme(hookwirev1.SignatureScheme(a.v.Enum())) == catalog.NormalScheme(hookwirev1.SignatureScheme(b.v.Enum()))
	}
	if a.set != b.set {
		return false
	}
	if msg, ok := a.v.Interface().(protoreflect.Message); ok {
		return proto.Equal(msg.Interface(), b.v.Message().Interface())
	}
	return a.v.Equal(b.v)
}

// apply copies the masked fields of in onto sub: a field the request
// leaves unset is cleared, a key of target.config it does not have is
// removed. Header values are copied as they are; the caller seals them.
func (m *updateMask) apply(sub, in *hookwirev1.Subscription) {
	in = proto.Clone(in).(*hookwirev1.Subscription) // sub gets its values
	transport := sub.GetTarget().GetTransport()
	for _, p := range m.paths {
		applyPath(sub.ProtoReflect(), in.ProtoReflect(), p)
	}
	if sub.GetTarget() != nil {
		// checkFixed has refused another transport; an unset one is kept.
		sub.Target.Transport = transport
	}
}

func applyPath(dst, src protoreflect.Message, segs []string) {
	fd := dst.Descriptor().Fields().ByName(protoreflect.Name(segs[0]))
	switch {
	case len(segs) == 1:
		if src.Has(fd) {
			dst.Set(fd, src.Get(fd))
		} else {
			dst.Clear(fd)
		}
	case fd.Message().FullName() == "google.protobuf.Struct":
		d := dst.Mutable(fd).Message().Interface().(*structpb.Struct)
		s, _ := src.Get(fd).Message().Interface().(*structpb.Struct)
		applyStructPath(d, s, segs[1:])
	default:
		// Get of an unset message is an empty read-only one: the
		// field inside it is unset, so it is cleared.
		applyPath(dst.Mutable(fd).Message(), src.Get(fd).Message(), segs[1:])
	}
}

func applyStructPath(dst, src *structpb.Struct, keys []string) {
	k := keys[0]
	sv := src.GetFields()[k]
	if len(keys) == 1 {
		if sv == nil {
			delete(dst.Fields, k)
			return
		}
		if dst.Fields == nil {
			dst.Fields = map[string]*structpb.Value{}
		}
		dst.Fields[k] = sv
		return
	}
	child := dst.GetFields()[k].GetStructValue()
	if child == nil {
		if sv == nil {
			return // nothing there to remove
		}
		child = &structpb.Struct{}
		if dst.Fields == nil {
			dst.Fields = map[string]*structpb.Value{}
		}
		dst.Fields[k] = structpb.NewStructValue(child)
	}
	applyStructPath(child, sv.GetStructValue(), keys[1:])
}
