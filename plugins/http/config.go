package httptransport

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/plugins/internal/brokerkit"
)

// targetSchema documents the target configuration (JSON Schema).
const targetSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Hookwire http target",
  "type": "object",
  "properties": {
    "url": {
      "type": "string",
      "format": "uri",
      "description": "Absolute https URL the webhook is POSTed to (http only where the agent allows plain http). Redirects are not followed. Internal addresses (loopback, private, link-local...) are refused unless the agent allows them."
    },
    "headers": {
      "type": "object",
      "description": "Extra request headers, stored and shown in clear. They cannot replace the signature headers (webhook-id, webhook-timestamp, webhook-signature), content-type, trace context or connection-level headers, and cannot carry credentials (Authorization, Proxy-Authorization, Cookie): put those in the subscription's target headers, which are encrypted at rest.",
      "additionalProperties": {"type": "string"}
    }
  },
  "required": ["url"],
  "additionalProperties": false
}`

// reservedHeaders cannot be set through the configuration: the signature
// headers and content type come from the control plane, and the rest would
// break HTTP framing.
var reservedHeaders = []string{
	"webhook-id", "webhook-timestamp", "webhook-signature", "content-type",
	"content-length", "transfer-encoding", "host", "connection", "keep-alive",
	"proxy-connection", "te", "trailer", "upgrade", "traceparent", "tracestate",
}

// credentialHeaders may not be set in the target configuration, which the
// control plane stores and shows as it is: the subscription's target
// headers are encrypted at rest and never shown again.
var credentialHeaders = []string{"authorization", "proxy-authorization", "cookie"}

// target is a parsed, valid configuration.
type target struct {
	url      string
	insecure bool        // plain http://
	headers  [][2]string // canonical name, value
}

// parseConfig checks a target configuration. It returns every problem found,
// each a sentence the user can act on; the target is only usable when there
// are none.
func parseConfig(cfg *structpb.Struct) (target, []string) {
	var t target
	var problems []string
	fields := cfg.GetFields()

	for name := range fields {
		if name != "url" && name != "headers" {
			problems = append(problems, fmt.Sprintf("unknown field %q: the http transport accepts only url and headers", name))
		}
	}
	slices.Sort(problems) // map order is random; keep messages stable

	raw, ok := fields["url"]
	switch {
	case !ok:
		problems = append(problems, `url is required, e.g. "https://example.com/webhooks"`)
	default:
		s, isString := raw.GetKind().(*structpb.Value_StringValue)
		if !isString {
			problems = append(problems, fmt.Sprintf("url must be a string, not %s", brokerkit.KindName(raw)))
			break
		}
		if p := checkURL(s.StringValue); p != "" {
			problems = append(problems, p)
		} else {
			t.url = s.StringValue
			t.insecure = strings.HasPrefix(strings.ToLower(s.StringValue), "http:")
		}
	}

	if raw, ok := fields["headers"]; ok {
		obj, isObject := raw.GetKind().(*structpb.Value_StructValue)
		if !isObject {
			problems = append(problems, fmt.Sprintf("headers must be an object of header names to string values, not %s", brokerkit.KindName(raw)))
		} else {
			names := make([]string, 0, len(obj.StructValue.GetFields()))
			for name := range obj.StructValue.GetFields() {
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				v := obj.StructValue.GetFields()[name]
				if p := checkHeader(name, v); p != "" {
					problems = append(problems, p)
					continue
				}
				t.headers = append(t.headers, [2]string{canonicalHeader(name), v.GetStringValue()})
			}
		}
	}
	return t, problems
}

func checkURL(raw string) string {
	if raw == "" {
		return `url is empty; set it to the endpoint that receives the webhooks, e.g. "https://example.com/webhooks"`
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("url %q is not a valid URL: %v", raw, unwrapURLError(err))
	}
	if u.Scheme == "" {
		return fmt.Sprintf("url %q must be absolute, starting with https:// or http://", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("url %q must use http or https", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Sprintf("url %q has no host", raw)
	}
	return ""
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func checkHeader(name string, v *structpb.Value) string {
	if !validHeaderName(name) {
		return fmt.Sprintf("header name %q is not a valid HTTP header name (letters, digits and !#$%%&'*+-.^_`|~ only)", name)
	}
	if slices.Contains(reservedHeaders, strings.ToLower(name)) {
		return fmt.Sprintf("header %q cannot be set in the target configuration: Hookwire sets it itself", name)
	}
	if slices.Contains(credentialHeaders, strings.ToLower(name)) {
		return fmt.Sprintf("header %q carries credentials, and the target configuration is stored and shown in clear: set it as a subscription target header instead (REST/gRPC target.headers, CLI --header %s=...), which is encrypted at rest and never shown again", name, name)
	}
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok {
		return fmt.Sprintf("header %q must have a string value, not %s", name, brokerkit.KindName(v))
	}
	if !validHeaderValue(s.StringValue) {
		return fmt.Sprintf("header %q has a value with a line break or control character; remove it", name)
	}
	return ""
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue refuses CR, LF and other control characters except tab,
// which would let a value smuggle extra headers or break the request.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
