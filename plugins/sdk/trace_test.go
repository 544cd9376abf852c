package sdk_test

import (
	"reflect"
	"testing"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

func TestTraceHeaders(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name   string
		parent string
		state  string
		want   map[string]string
	}{
		{"none", "", "", map[string]string{}},
		{"parent only", tp, "", map[string]string{"traceparent": tp}},
		{"parent and state", tp, "a=1, b=2", map[string]string{"traceparent": tp, "tracestate": "a=1, b=2"}},
		{"state without parent", "", "a=1", map[string]string{}},
		{"line break in parent", tp + "\r\nx-injected: 1", "", map[string]string{}},
		{"line break in state", tp, "a=1\nb", map[string]string{"traceparent": tp}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			sdk.TraceHeaders(&transportv1.DeliveryRequest{Traceparent: tc.parent, Tracestate: tc.state}, func(k, v string) { got[k] = v })
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
