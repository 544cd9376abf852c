package controlplane

import (
	"testing"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// decodeEvent's one-pass split must decode every body as decodeEventSlow
// (the map of members it replaced on the publish path) does: the same
// event, or an error of the same code for the same bodies.
func FuzzDecodeEventMatchesTheSlowPath(f *testing.F) {
	for _, body := range []string{
		`{"type":"order.created","payload":{"id":42}}`,
		` { "type" : "order.created" , "payload" : { "id" : 42 , "s" : "}]\"{[" } } `,
		"{\n\t\"payload\": [1, {\"a\": [true, false, null]}, \"x\"],\r\n\t\"type\": \"a.b\"\n}",
		`{"type":"a","payload":"a string with \"quotes\" and \\ and \u00e9"}`,
		`{"type":"a","payload":-1.5e3}`,
		`{"type":"a","payload":null}`,
		`{"type":"a","payload":true,"idempotency_key":"k1","metadata":{"region":"eu"}}`,
		`{"type":"a","idempotencyKey":"k1","contentType":"application/json","payload":{}}`,
		`{"type":"a"}`,
		`{"payload":{"only":"payload"}}`,
		`{}`,
		`{"type":"a","payload":1,"payload":2}`,
		`{"type":"a","type":"b","payload":1}`,
		`{"typ\u0065":"a","payload":1}`,
		`{"type":"a","pay\u006coad":{"escaped":"key"}}`,
		`{"type":"a","unknown_field":1,"payload":1}`,
		`{"type":1,"payload":1}`,
		`{"type":"a","metadata":{"k":1}}`,
		`{"type":"<b>&amp;</b>","payload":"<script>"}`,
		`[{"type":"a"}]`,
		`"not an object"`,
		`null`,
		`{"type":"a","payload":`,
		`{"type":"a",}`,
		``,
		"{\"type\":\"\xff\",\"payload\":\"\xfe\"}",
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, wantErr := decodeEventSlow(body)
		got, err := decodeEvent(body)
		switch {
		case (err == nil) != (wantErr == nil):
			t.Fatalf("decodeEvent(%q) = %v, %v; the map path: %v, %v", body, got, err, want, wantErr)
		case err != nil:
			if status.Code(err) != status.Code(wantErr) {
				t.Fatalf("decodeEvent(%q): %v; the map path: %v", body, err, wantErr)
			}
		case !proto.Equal(got, want):
			t.Fatalf("decodeEvent(%q) = %v; the map path: %v", body, got, want)
		}
	})
}

// Publishes as clients send them take the one-pass split, not the map.
func TestSplitEventTakesTypicalBodies(t *testing.T) {
	for body, want := range map[string]struct{ rest, payload string }{
		`{"type":"order.created","payload":{"id":42,"s":"}"}}`:        {`{"type":"order.created"}`, `{"id":42,"s":"}"}`},
		`{"payload": [1,2], "type":"a", "idempotency_key":"k"}`:       {`{"type":"a","idempotency_key":"k"}`, `[1,2]`},
		" {\n  \"type\": \"a\",\n  \"metadata\": {\"r\": \"eu\"}\n} ": {"{\"type\": \"a\",\"metadata\": {\"r\": \"eu\"}}", ``},
		`{"type":"a","payload":"text","content_type":"text/plain"}`:   {`{"type":"a","content_type":"text/plain"}`, `"text"`},
	} {
		rest, payload, _, ok := splitEvent([]byte(body))
		if !ok || string(rest) != want.rest || string(payload) != want.payload {
			t.Errorf("splitEvent(%q) = %q, %q, %v; want %q, %q", body, rest, payload, ok, want.rest, want.payload)
		}
	}
	for _, body := range []string{`{"a":1,"a":2}`, `{"p\u0061yload":1}`, `[1]`, `{"a":`} {
		if _, _, _, ok := splitEvent([]byte(body)); ok {
			t.Errorf("splitEvent(%q) took it; it is decodeEventSlow's", body)
		}
	}
}
