package api

import (
	"slices"
	"strings"
	"testing"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

func subJSON(t *testing.T, s string) *hookwirev1.Subscription {
	t.Helper()
	out := &hookwirev1.Subscription{}
	if err := protojson.Unmarshal([]byte(s), out); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return out
}

func TestParseUpdateMask(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mask  []string
		in    string
		paths []string // normalised, sorted
		fixed []string
		err   string
	}{
		{name: "json names and nesting", mask: []string{"eventTypes", "flowControl.ratePerSecond", "target.config.url"},
			paths: []string{"event_types", "flow_control.rate_per_second", "target.config.url"}},
		{name: "inner path dropped under its parent", mask: []string{"target.timeout", "target", "description"},
			paths: []string{"description", "target"}, fixed: []string{"target.transport"}},
		{name: "config keys at any depth", mask: []string{"target.config.tls.ca"}, paths: []string{"target.config.tls.ca"}},
		{name: "output only ignored", mask: []string{"update_time", "circuit_state", "id"}},
		{name: "fixed fields checked", mask: []string{"tenant", "target.transport"}, fixed: []string{"target.transport", "tenant"}},
		{name: "no mask: the set fields", in: `{"id":"sub_1","description":"d","target":{"config":{"url":"u","tls":{"ca":"x"}}},"retry_policy":{}}`,
			paths: []string{"description", "retry_policy", "target.config.tls.ca", "target.config.url"}},
		{name: "star", mask: []string{"*"},
			paths: []string{"agent_selector", "circuit_breaker", "description", "event_types", "filter", "flow_control", "metadata", "retry_policy", "target"}},
		{name: "unknown", mask: []string{"colour"}, err: `update_mask path "colour": Subscription has no field "colour"; fields that can be updated: description, event_types, target, metadata, filter, retry_policy, flow_control, circuit_breaker, agent_selector`},
		{name: "unknown nested", mask: []string{"flow_control.speed"}, err: `update_mask path "flow_control.speed": flow_control has no field "speed"`},
		{name: "into a scalar", mask: []string{"description.x"}, err: `description has no fields`},
		{name: "into a duration", mask: []string{"target.timeout.seconds"}, err: `target.timeout is set as a whole`},
		{name: "into a list", mask: []string{"event_types.0"}, err: `event_types is replaced as a whole`},
		{name: "empty path", mask: []string{""}, err: `empty path`},
		{name: "empty segment", mask: []string{"target..url"}, err: `empty segment`},
		{name: "dotted config key", mask: []string{"target.config.a"}, in: `{"target":{"config":{"a.b":1}}}`, err: `the key "a.b"`},
	} {
		in := &hookwirev1.Subscription{}
		if tc.in != "" {
			in = subJSON(t, tc.in)
		}
		var mask *fieldmaskpb.FieldMask
		if tc.mask != nil {
			mask = &fieldmaskpb.FieldMask{Paths: tc.mask}
		}
		m, err := parseUpdateMask(mask, in)
		if tc.err != "" {
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.err) {
				t.Errorf("%s: %v, want InvalidArgument with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var paths, fixed []string
		for _, p := range m.paths {
			paths = append(paths, strings.Join(p, "."))
		}
		for _, f := range m.fixed {
			fixed = append(fixed, f.path)
		}
		if tc.name == "star" {
			fixed = slices.DeleteFunc(fixed, func(string) bool { return true }) // every fixed field; checked below
			if len(m.fixed) != len(fixedFields) {
				t.Errorf("star: fixed checks %v, want all of %d", m.fixed, len(fixedFields))
			}
		}
		slices.Sort(paths)
		if !slices.Equal(paths, tc.paths) || !slices.Equal(fixed, tc.fixed) {
			t.Errorf("%s: paths %q fixed %q, want %q and %q", tc.name, paths, fixed, tc.paths, tc.fixed)
		}
	}
}

func TestUpdateMaskApply(t *testing.T) {
	stored := `{"description":"d","event_types":["a.*"],"target":{"transport":"http","config":{"url":"u1","tls":{"ca":"c","cert":"k"}},"timeout":"10s"},` +
		`"retry_policy":{"schedule":{"delays":["1s"]}},"flow_control":{"rate_per_second":5,"burst":2}}`
	for _, tc := range []struct {
		name, mask, in, want string
	}{
		{"config key set, others kept", "target.config.tls.ca", `{"target":{"config":{"tls":{"ca":"c2"}}}}`,
			`{"description":"d","event_types":["a.*"],"target":{"transport":"http","config":{"url":"u1","tls":{"ca":"c2","cert":"k"}},"timeout":"10s"},"retry_policy":{"schedule":{"delays":["1s"]}},"flow_control":{"rate_per_second":5,"burst":2}}`},
		{"config key removed", "target.config.tls", `{}`,
			`{"description":"d","event_types":["a.*"],"target":{"transport":"http","config":{"url":"u1"},"timeout":"10s"},"retry_policy":{"schedule":{"delays":["1s"]}},"flow_control":{"rate_per_second":5,"burst":2}}`},
		{"oneof switched", "retry_policy.exponential.base", `{"retry_policy":{"exponential":{"base":"2s"}}}`,
			`{"description":"d","event_types":["a.*"],"target":{"transport":"http","config":{"url":"u1","tls":{"ca":"c","cert":"k"}},"timeout":"10s"},"retry_policy":{"exponential":{"base":"2s"}},"flow_control":{"rate_per_second":5,"burst":2}}`},
		{"sub-field cleared", "flow_control.burst", `{}`,
			`{"description":"d","event_types":["a.*"],"target":{"transport":"http","config":{"url":"u1","tls":{"ca":"c","cert":"k"}},"timeout":"10s"},"retry_policy":{"schedule":{"delays":["1s"]}},"flow_control":{"rate_per_second":5}}`},
		{"whole target keeps an unset transport", "target", `{"target":{"config":{"url":"u2"}}}`,
			`{"description":"d","event_types":["a.*"],"target":{"transport":"http","config":{"url":"u2"}},"retry_policy":{"schedule":{"delays":["1s"]}},"flow_control":{"rate_per_second":5,"burst":2}}`},
	} {
		m, err := parseUpdateMask(&fieldmaskpb.FieldMask{Paths: strings.Split(tc.mask, ",")}, subJSON(t, tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := subJSON(t, stored)
		in := subJSON(t, tc.in)
		m.apply(got, in)
		if want := subJSON(t, tc.want); !proto.Equal(got, want) {
			t.Errorf("%s: got %s\nwant %s", tc.name, protojson.Format(got), protojson.Format(want))
		}
		if !proto.Equal(in, subJSON(t, tc.in)) {
			t.Errorf("%s: apply changed the request", tc.name)
		}
	}
}

// TestChangedReportsOnlyWhatTheUpdateBreaks: a violation the stored
// subscription already has, in a field the update does not touch, is not
// the update's fault; one in a touched field, or a new one anywhere, is.
func TestChangedReportsOnlyWhatTheUpdateBreaks(t *testing.T) {
	v, err := newValidator()
	if err != nil {
		t.Fatal(err)
	}
	// Stored before a rule it breaks: a description over 1000 characters.
	before := subJSON(t, `{"description":"`+strings.Repeat("x", 1001)+`","event_types":["a.*"],"target":{"transport":"http","config":{"url":"u"}},`+
		`"retry_policy":{"schedule":{"delays":["1s"]}}}`)
	for _, tc := range []struct {
		name, mask, in, err string
	}{
		{"untouched old violation", "filter", `{"filter":"true"}`, ""},
		{"touched old violation", "description", `{"description":"` + strings.Repeat("y", 1001) + `"}`, "subscription.description:"},
		{"touched field", "event_types", `{"event_types":["bad type"]}`, "subscription.event_types[0]:"},
		{"new violation in an untouched field", "retry_policy.exponential.base", `{"retry_policy":{"exponential":{"base":"1s"}}}`,
			"subscription.retry_policy.exponential.max_attempts:"},
	} {
		in := subJSON(t, tc.in)
		m, err := parseUpdateMask(&fieldmaskpb.FieldMask{Paths: []string{tc.mask}}, in)
		if err != nil {
			t.Fatal(err)
		}
		after := proto.Clone(before).(*hookwirev1.Subscription)
		m.apply(after, in)
		err = v.changed("subscription", before, after, m.touches)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want InvalidArgument with %q", tc.name, err, tc.err)
		case tc.err != "" && strings.Contains(err.Error(), "subscription.description") && tc.mask != "description":
			t.Errorf("%s: %v reports the untouched description", tc.name, err)
		}
	}
}
