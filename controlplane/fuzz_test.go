package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane/internal/api"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// restRequest is the request message of a public RPC and the part of it
// the REST gateway fills from the body.
type restRequest struct {
	msg  protoreflect.MessageType
	body string // "*", a field name, or "" (no body: path and query only)
	path string // URL template, e.g. /v1/tenants/{tenant}/events
	verb string // HTTP method of path ("" when the RPC has no REST route)
	rpc  string // the RPC's full name
}

// restRequests returns the request message of every RPC of every
// hookwire.v1 service except the agent stream (not served over REST),
// keyed by the message's full name.
func restRequests(t testing.TB) map[string]restRequest {
	out := map[string]restRequest{}
	protoregistry.GlobalFiles.RangeFilesByPackage("hookwire.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			if sd.FullName() == "hookwire.v1.AgentService" {
				continue
			}
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
				if err != nil {
					t.Fatalf("%s: %v", md.Input().FullName(), err)
				}
				rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
				path, verb := httpRoute(rule)
				out[string(md.Input().FullName())] = restRequest{msg: mt, body: rule.GetBody(), path: path, verb: verb, rpc: string(md.FullName())}
			}
		}
		return true
	})
	return out
}

// httpRoute is the URL template and method of an RPC's REST route.
func httpRoute(rule *annotations.HttpRule) (path, verb string) {
	switch {
	case rule.GetGet() != "":
		return rule.GetGet(), http.MethodGet
	case rule.GetPost() != "":
		return rule.GetPost(), http.MethodPost
	case rule.GetPatch() != "":
		return rule.GetPatch(), http.MethodPatch
	case rule.GetPut() != "":
		return rule.GetPut(), http.MethodPut
	case rule.GetDelete() != "":
		return rule.GetDelete(), http.MethodDelete
	}
	return "", ""
}

// decodeREST decodes body into a new req the way the gateway does for its
// RPC (the whole request for body "*", else the bound field), and also
// decodes body as the whole request, which is how query-only requests'
// JSON form reads. It returns the requests that decoded.
func decodeREST(req restRequest, body []byte) []proto.Message {
	m := restMarshaler()
	var out []proto.Message
	whole := req.msg.New().Interface()
	if m.NewDecoder(bytes.NewReader(body)).Decode(whole) == nil {
		out = append(out, whole)
	}
	if req.body == "" || req.body == "*" {
		return out
	}
	bound := req.msg.New()
	fd := bound.Descriptor().Fields().ByName(protoreflect.Name(req.body))
	if fd == nil || fd.Message() == nil {
		return out
	}
	var err error
	// The gateway passes a pointer to the field; the marshaler treats the
	// event and raw-body fields specially, by their Go type.
	switch fd.Message().FullName() {
	case "hookwire.v1.Event":
		var ev *hookwirev1.Event
		if err = m.NewDecoder(bytes.NewReader(body)).Decode(&ev); err == nil && ev != nil {
			bound.Set(fd, protoreflect.ValueOfMessage(ev.ProtoReflect()))
		}
	case "google.api.HttpBody":
		var hb *httpbody.HttpBody
		if err = m.NewDecoder(bytes.NewReader(body)).Decode(&hb); err == nil && hb != nil {
			bound.Set(fd, protoreflect.ValueOfMessage(hb.ProtoReflect()))
		}
	default:
		field := bound.NewField(fd).Message()
		if err = m.NewDecoder(bytes.NewReader(body)).Decode(field.Interface()); err == nil {
			bound.Set(fd, protoreflect.ValueOfMessage(field))
		}
	}
	if err == nil {
		out = append(out, bound.Interface())
	}
	return out
}

// FuzzRESTDecode feeds arbitrary bodies to the REST decoding of every public
// request message, then to the checks the server runs before any handler
// (protovalidate rules and semantic checks). Nothing may panic; a decode
// error must be InvalidArgument-worthy (never a crash), and a validation
// error must be InvalidArgument. name picks the message by full name; other
// names pick one by length, so mutated names still reach every message.
// Seeds: testdata/fuzz/FuzzRESTDecode/, one valid body per message.
func FuzzRESTDecode(f *testing.F) {
	reqs := restRequests(f)
	names := make([]string, 0, len(reqs))
	for n := range reqs {
		names = append(names, n)
	}
	slices.Sort(names)
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		req, ok := reqs[name]
		if !ok {
			req = reqs[names[len(name)%len(names)]]
		}
		for _, msg := range decodeREST(req, body) {
			err := api.ValidateRequest(msg)
			if err != nil && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("%s: validation answered %v, want nil or InvalidArgument", req.msg.Descriptor().FullName(), err)
			}
			// What decoded must also encode (responses echo requests).
			if _, err := restMarshaler().Marshal(msg); err != nil {
				t.Fatalf("%s: decoded request does not encode: %v", req.msg.Descriptor().FullName(), err)
			}
		}
	})
}

// TestRESTDecodeSeeds checks the committed seed corpus: every public request
// message has a seed named after it, and each seed is a valid request, so
// the fuzzer starts from bodies the server accepts.
func TestRESTDecodeSeeds(t *testing.T) {
	reqs := restRequests(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzRESTDecode")
	for name, req := range reqs {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("no seed for %s: add %s/%s (a valid REST body for it)", name, dir, name)
			continue
		}
		seedName, body, err := parseCorpusFile(data)
		if err != nil {
			t.Errorf("seed %s: %v", name, err)
			continue
		}
		if seedName != name {
			t.Errorf("seed file %s names message %q", name, seedName)
			continue
		}
		decoded := decodeREST(req, body)
		if len(decoded) == 0 {
			t.Errorf("seed %s: body %s does not decode", name, body)
			continue
		}
		// The seed must be accepted in the shape the gateway uses, with
		// the URL's path parameters filled in as the gateway does.
		msg := decoded[len(decoded)-1]
		fillPathParams(msg.ProtoReflect(), req.path)
		if raw, ok := msg.(*hookwirev1.PublishRawEventRequest); ok {
			raw.Type = "invoice.rendered" // a query parameter over REST
		}
		if err := api.ValidateRequest(msg); err != nil {
			t.Errorf("seed %s: %v", name, err)
		}
	}
}

// fillPathParams sets each string field named in the URL template (e.g.
// {tenant}, {subscription.id}) to a non-empty value.
func fillPathParams(m protoreflect.Message, template string) {
	for rest := template; ; {
		i := strings.IndexByte(rest, '{')
		j := strings.IndexByte(rest, '}')
		if i < 0 || j < i {
			return
		}
		name, _, _ := strings.Cut(rest[i+1:j], "=")
		rest = rest[j+1:]
		msg := m
		parts := strings.Split(name, ".")
		for k, part := range parts {
			fd := msg.Descriptor().Fields().ByName(protoreflect.Name(part))
			if fd == nil {
				break
			}
			if k < len(parts)-1 {
				msg = msg.Mutable(fd).Message()
				continue
			}
			if fd.Kind() == protoreflect.StringKind {
				msg.Set(fd, protoreflect.ValueOfString("seed"))
			}
		}
	}
}

// parseCorpusFile reads a "go test fuzz v1" file of (string, []byte).
func parseCorpusFile(data []byte) (string, []byte, error) {
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 || lines[0] != "go test fuzz v1" {
		return "", nil, errors.New(`want 3 lines: "go test fuzz v1", string("..."), []byte("...")`)
	}
	name, err := unquoteCall(lines[1], "string(")
	if err != nil {
		return "", nil, err
	}
	body, err := unquoteCall(lines[2], "[]byte(")
	return name, []byte(body), err
}

func unquoteCall(line, prefix string) (string, error) {
	inner, ok := strings.CutPrefix(line, prefix)
	if !ok || !strings.HasSuffix(inner, ")") {
		return "", fmt.Errorf("line %q: want %s\"...\")", line, prefix)
	}
	return strconv.Unquote(strings.TrimSuffix(inner, ")"))
}
