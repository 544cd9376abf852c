package catalog

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Limits on what a subscription or event may carry beyond what the proto
// rules say (those bound each field; these bound the whole).
const (
	// MaxHeaderBytes bounds a subscription's custom headers, names and
	// values together.
	MaxHeaderBytes = 8 << 10
)

// reservedHeaders are the headers Hookwire or the transport sets itself: a
// subscription may not send its own. Lower case.
var reservedHeaders = []string{
	// Standard Webhooks signature and the body's framing.
	"webhook-id", "webhook-timestamp", "webhook-signature",
	"content-type", "content-length", "content-encoding", "transfer-encoding",
	// Where the request goes.
	"host",
	// Trace context, propagated by Hookwire.
	"traceparent", "tracestate",
	// Hop-by-hop headers (RFC 9110 section 7.6.1) and their relatives.
	"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
}

// InputError is a problem with a request's content that the caller must fix.
// Field is the request path of the offending field, e.g.
// `subscription.target.headers["Host"]`.
type InputError struct {
	Field   string
	Problem string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Problem }

// CheckHeaders checks a subscription's custom headers (Target.headers).
// field is the path of the map in the request.
func CheckHeaders(field string, headers map[string]string) error {
	total := 0
	for _, name := range slices.Sorted(maps.Keys(headers)) { // stable: first problem by name
		value := headers[name]
		at := fmt.Sprintf("%s[%q]", field, name)
		if name == "" {
			return &InputError{Field: at, Problem: "header name is empty and so not an HTTP token; give each header a name"}
		}
		if i, ok := tokenViolation(name); !ok {
			return &InputError{Field: at, Problem: fmt.Sprintf("header name %q is not an HTTP token: byte %d (%q) is not allowed; use letters, digits and !#$%%&'*+-.^_`|~ only", name, i, name[i:i+1])}
		}
		if slices.Contains(reservedHeaders, strings.ToLower(name)) {
			return &InputError{Field: at, Problem: fmt.Sprintf("header %q is set by Hookwire itself and cannot be overridden; remove it (reserved: %s)", name, strings.Join(reservedHeaders, ", "))}
		}
		if i, ok := controlViolation(value); !ok {
			return &InputError{Field: at, Problem: fmt.Sprintf("header %q has a control character (byte 0x%02x at offset %d) in its value; only tab is allowed, remove line breaks and NUL", name, value[i], i)}
		}
		total += len(name) + len(value)
	}
	if total > MaxHeaderBytes {
		return &InputError{Field: field, Problem: fmt.Sprintf("headers take %d bytes in all; the limit is %d bytes of names and values, send fewer or shorter headers", total, MaxHeaderBytes)}
	}
	return nil
}

// CheckMetadata checks a metadata map's values (the proto rules bound the
// keys and sizes): no control characters other than tab.
func CheckMetadata(field string, md map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(md)) {
		v := md[k]
		if i, ok := controlViolation(v); !ok {
			return &InputError{Field: fmt.Sprintf("%s[%q]", field, k), Problem: fmt.Sprintf("value has a control character (byte 0x%02x at offset %d); only tab is allowed", v[i], i)}
		}
	}
	return nil
}

// tokenViolation returns the index of the first byte of name that an RFC
// 9110 token may not contain, and false; or 0, true for a valid token.
func tokenViolation(name string) (int, bool) {
	if name == "" {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return i, false
		}
	}
	return 0, true
}

// controlViolation returns the index of the first control byte (below
// 0x20 except tab, or DEL) in v, and false; or 0, true when there is none.
// CR and LF would let a value smuggle headers; NUL truncates in C stacks.
func controlViolation(v string) (int, bool) {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return i, false
		}
	}
	return 0, true
}

// Redacted is what RedactedHeaders puts in place of a subscription's own
// header values.
const Redacted = "<redacted>"

// RedactedHeaders is headers (from RequestHeaders) as an attempt records
// them: the signature headers as they are, the subscription's own headers
// with their values replaced by Redacted (they often carry credentials),
// and content-type.
func (s *Sub) RedactedHeaders(headers map[string]string, contentType string) map[string]string {
	out := make(map[string]string, len(headers)+1)
	maps.Copy(out, headers)
	for k := range s.Headers {
		out[strings.ToLower(k)] = Redacted
	}
	if contentType != "" {
		out["content-type"] = contentType
	}
	return out
}

// RequestHeaders returns the headers of one attempt: the subscription's
// custom headers (lower-case names) and the signature headers for msgID,
// ts and body. The signature headers always win.
func (s *Sub) RequestHeaders(msgID string, ts time.Time, body []byte) map[string]string {
	sig := s.Signer.Headers(msgID, ts, body)
	if len(s.Headers) == 0 {
		return sig
	}
	out := make(map[string]string, len(s.Headers)+len(sig))
	for k, v := range s.Headers {
		out[strings.ToLower(k)] = v
	}
	maps.Copy(out, sig)
	return out
}
