package catalog

import (
	"bufio"
	"errors"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/signing"
)

func TestCheckHeaders(t *testing.T) {
	for _, tc := range []struct {
		headers map[string]string
		want    string // "" = accepted
	}{
		{map[string]string{"X-Team": "billing", "Authorization": "Bearer x\ty"}, ""},
		{map[string]string{"x~odd!#$%&'*+.^_`|": "v"}, ""},
		{map[string]string{"": "v"}, "not an HTTP token"},
		{map[string]string{"X(A)": "v"}, `byte 1 ("(")`},
		{map[string]string{"X-\u00e9": "v"}, "not an HTTP token"},
		{map[string]string{"X-A": "a\rb"}, "byte 0x0d at offset 1"},
		{map[string]string{"X-A": "a\nb"}, "byte 0x0a"},
		{map[string]string{"X-A": "\x00"}, "byte 0x00"},
		{map[string]string{"X-A": "\x1b[31m"}, "byte 0x1b"},
		{map[string]string{"Webhook-Signature": "v1,x"}, "set by Hookwire itself"},
		{map[string]string{"TRACESTATE": "a=b"}, "set by Hookwire itself"},
		{map[string]string{"Keep-Alive": "1"}, "set by Hookwire itself"},
		{map[string]string{"a": strings.Repeat("v", MaxHeaderBytes)}, "the limit is 8192 bytes"},
	} {
		err := CheckHeaders("h", tc.headers)
		var ie *InputError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v, want accepted", tc.headers, err)
		case tc.want != "" && (!errors.As(err, &ie) || !strings.Contains(ie.Problem, tc.want)):
			t.Errorf("%q: %v, want an InputError containing %q", tc.headers, err, tc.want)
		}
	}
}

func TestRequestHeadersKeepSignatureHeaders(t *testing.T) {
	signer, err := signing.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	// A record stored before the checks existed could carry a reserved
	// name; the signature headers must still win.
	s := &Sub{Signer: signer, Headers: map[string]string{"X-Team": "a", "Webhook-Id": "forged"}}
	h := s.RequestHeaders("msg_1", time.Unix(1700000000, 0), []byte(`{}`))
	if h["x-team"] != "a" || h["webhook-id"] != "msg_1" || h["webhook-signature"] == "" || len(h) != 4 {
		t.Fatalf("headers = %v", h)
	}
}

// FuzzCheckHeaders: whatever CheckHeaders accepts goes onto the HTTP/1.1
// wire as exactly the one header it names, with its value: no header can be
// smuggled, split or renamed, and no reserved header is set.
func FuzzCheckHeaders(f *testing.F) {
	f.Add("X-Team", "billing")
	f.Add("X-A", "a\r\nWebhook-Signature: v1,forged")
	f.Add("Host", "internal")
	f.Add("X A", "v")
	f.Add("x-tab", "a\tb")
	f.Add("content-LENGTH", "0")
	f.Add("", "v") // an empty name once panicked CheckHeaders
	f.Fuzz(func(t *testing.T, name, value string) {
		if CheckHeaders("h", map[string]string{name: value}) != nil {
			return
		}
		for _, r := range reservedHeaders {
			if strings.EqualFold(name, r) {
				t.Fatalf("reserved header %q accepted", name)
			}
		}
		wire := name + ": " + value + "\r\n\r\n"
		got, err := textproto.NewReader(bufio.NewReader(strings.NewReader(wire))).ReadMIMEHeader()
		if err != nil {
			t.Fatalf("accepted header %q: %q does not parse: %v", name, value, err)
		}
		want := textproto.CanonicalMIMEHeaderKey(name)
		if len(got) != 1 || len(got[want]) != 1 || got[want][0] != strings.Trim(value, " \t") {
			t.Fatalf("accepted header %q: %q reads back as %v", name, value, got)
		}
	})
}

// eventType is the proto rule for Event.type.
var eventType = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// FuzzEventTypePattern: compiling and matching any pattern against any
// type never panics; a valid type matches itself, and "*" matches every
// valid type except operational ones.
func FuzzEventTypePattern(f *testing.F) {
	f.Add("order.*", "order.created")
	f.Add("*", "hookwire.delivery.exhausted")
	f.Add("hookwire.*", "hookwire.circuit.opened")
	f.Add("*.created", "order.line.created")
	f.Add("a.*.c", "a.b.b.c")
	f.Add("..*", ".")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, pattern, typ string) {
		_ = CompilePattern(pattern).Match(typ)
		if !eventType.MatchString(typ) {
			return
		}
		if !CompilePattern(typ).Match(typ) {
			t.Fatalf("type %q does not match itself", typ)
		}
		if got := CompilePattern("*").Match(typ); got == strings.HasPrefix(typ, OperationalPrefix) {
			t.Fatalf(`"*" matching %q = %v`, typ, got)
		}
	})
}
