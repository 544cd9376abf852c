package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/hookwire/hookwire/controlplane/internal/api"
	"github.com/hookwire/hookwire/controlplane/internal/tracing"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// restMetadata lists the request headers the gateway passes on itself
// (beyond grpc-gateway's defaults), with their metadata keys.
var restMetadata = []struct{ header, key string }{
	{"Content-Type", api.MetadataContentType},
	{"Idempotency-Key", api.MetadataIdempotencyKey},
	// W3C trace context: a publish span continues the caller's trace.
	{"Traceparent", tracing.HeaderTraceparent},
	{"Tracestate", tracing.HeaderTracestate},
}

// newGateway returns the REST handler. Every call goes to conn, the
// server's in-process channel (see inproc), so REST calls pass the same
// interceptors as gRPC calls.
func newGateway(ctx context.Context, conn grpc.ClientConnInterface, bodyLimit int64) (http.Handler, error) {
	rs, err := loadRoutes()
	if err != nil {
		return nil, err
	}
	mux := runtime.NewServeMux(
		runtime.WithRoutingErrorHandler(rs.routingErrors),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, restMarshaler()),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithMetadata(func(_ context.Context, r *http.Request) metadata.MD {
			md := metadata.MD{}
			for _, h := range restMetadata {
				if v := r.Header.Get(h.header); v != "" {
					md.Set(h.key, v)
				}
			}
			return md
		}),
		runtime.WithErrorHandler(errorHandler),
	)
	for _, err := range []error{
		hookwirev1.RegisterTenantServiceHandlerClient(ctx, mux, hookwirev1.NewTenantServiceClient(conn)),
		hookwirev1.RegisterApiKeyServiceHandlerClient(ctx, mux, hookwirev1.NewApiKeyServiceClient(conn)),
		hookwirev1.RegisterSubscriptionServiceHandlerClient(ctx, mux, hookwirev1.NewSubscriptionServiceClient(conn)),
		hookwirev1.RegisterEventServiceHandlerClient(ctx, mux, hookwirev1.NewEventServiceClient(conn)),
		hookwirev1.RegisterDeliveryServiceHandlerClient(ctx, mux, hookwirev1.NewDeliveryServiceClient(conn)),
		hookwirev1.RegisterAgentAdminServiceHandlerClient(ctx, mux, hookwirev1.NewAgentAdminServiceClient(conn)),
		hookwirev1.RegisterAuditServiceHandlerClient(ctx, mux, hookwirev1.NewAuditServiceClient(conn)),
		hookwirev1.RegisterStatsServiceHandlerClient(ctx, mux, hookwirev1.NewStatsServiceClient(conn)),
		hookwirev1.RegisterClusterServiceHandlerClient(ctx, mux, hookwirev1.NewClusterServiceClient(conn)),
		hookwirev1.RegisterEventTypeServiceHandlerClient(ctx, mux, hookwirev1.NewEventTypeServiceClient(conn)),
		hookwirev1.RegisterPortalServiceHandlerClient(ctx, mux, hookwirev1.NewPortalServiceClient(conn)),
	} {
		if err != nil {
			return nil, fmt.Errorf("register REST gateway: %w", err)
		}
	}
	return withAPIDocs(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkHeaders(r.Header); err != nil {
			_, m := runtime.MarshalerForRequest(mux, r)
			runtime.HTTPError(r.Context(), mux, m, w, r, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, bodyLimit)
		if r.Method == http.MethodGet && isStream(r.URL.Path) && wantsEventStream(r) {
			// The gateway writes streams as JSON lines (its marshaler is
			// picked by Accept, so ask it for JSON); sseWriter makes them
			// events.
			r.Header.Set("Accept", "application/json")
			w = &sseWriter{ResponseWriter: w}
		}
		mux.ServeHTTP(w, r)
	})), nil
}

// checkHeaders refuses what the gRPC client would refuse to send of the
// headers in restMetadata: values must be printable ASCII. (grpc-gateway
// drops other headers that break this rule; dropping Idempotency-Key would
// turn a retried publish into a second event.)
func checkHeaders(h http.Header) error {
	for _, m := range restMetadata {
		v := h.Get(m.header)
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return status.Errorf(codes.InvalidArgument, "header %s: the value must be printable ASCII (byte 0x%02x at offset %d is not)", m.header, v[i], i)
			}
		}
	}
	return nil
}

// restMarshaler is how the gateway reads request bodies and writes
// responses (also used by the REST decoding fuzz test).
func restMarshaler() *eventMarshaler {
	return &eventMarshaler{JSONPb: &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// outgoingHeader passes retry-after (set with rate-limit errors) as the
// standard Retry-After header; other response metadata keeps the gateway's
// Grpc-Metadata- prefix.
func outgoingHeader(key string) (string, bool) {
	if key == "retry-after" {
		return "Retry-After", true
	}
	return runtime.MetadataHeaderPrefix + key, true
}

// errorHandler is the default one, except that an oversized payload is
// 413 Request Entity Too Large rather than 400, and 401/403 carry the
// WWW-Authenticate challenge of RFC 6750.
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	err = withoutGRPCPrefix(err)
	if tooLarge(err) {
		w = &statusOverride{ResponseWriter: w, code: http.StatusRequestEntityTooLarge}
	}
	if c := bearerChallenge(err, r.Header.Get("Authorization") != ""); c != "" {
		// Set when the header goes out: the default handler puts the
		// bare status message in WWW-Authenticate for Unauthenticated.
		w = &challengeWriter{ResponseWriter: w, challenge: c}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// grpcPrefix is what a gRPC status error's Error() puts before its
// message; the gateway wraps errors from request decoding that way.
var grpcPrefix = regexp.MustCompile(`rpc error: code = \w+ desc = `)

// withoutGRPCPrefix removes gRPC's "rpc error: code = ... desc = " from a
// status message: REST clients get the code as the HTTP status and in the
// body's code field, and the message only.
func withoutGRPCPrefix(err error) error {
	st, ok := status.FromError(err)
	if !ok || !strings.Contains(st.Message(), "rpc error: code = ") {
		return err
	}
	p := st.Proto()
	p.Message = grpcPrefix.ReplaceAllString(p.Message, "")
	return status.FromProto(p).Err()
}

type challengeWriter struct {
	http.ResponseWriter
	challenge string
}

func (c *challengeWriter) WriteHeader(code int) {
	c.Header().Set("WWW-Authenticate", c.challenge)
	c.ResponseWriter.WriteHeader(code)
}

// bearerChallenge is the WWW-Authenticate value for an authentication or
// authorisation failure (RFC 6750 section 3): no error code when no
// credentials were sent, invalid_token for a key that is not accepted,
// insufficient_scope for one that may not do this. "" for other errors.
func bearerChallenge(err error, sentCredentials bool) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	code := ""
	switch {
	case st.Code() == codes.Unauthenticated && sentCredentials:
		code = "invalid_token"
	case st.Code() == codes.Unauthenticated:
	case st.Code() == codes.PermissionDenied:
		code = "insufficient_scope"
	default:
		return ""
	}
	c := `Bearer realm="hookwire"`
	if code != "" {
		// The description is a quoted-string without quotes or
		// backslashes, in visible ASCII (RFC 6750 section 3).
		desc := strings.Map(func(r rune) rune {
			if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
				return '\''
			}
			return r
		}, st.Message())
		c += `, error="` + code + `", error_description="` + desc + `"`
	}
	return c
}

func tooLarge(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	if strings.HasPrefix(st.Message(), bodyTooLarge) {
		return true // from bodyError, re-wrapped by the gateway without details
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == api.ReasonPayloadTooLarge {
			return true
		}
	}
	return false
}

type statusOverride struct {
	http.ResponseWriter
	code int
}

func (s *statusOverride) WriteHeader(int) { s.ResponseWriter.WriteHeader(s.code) }

// eventMarshaler is JSON, except where an event payload travels: there the
// "payload" member is any JSON value, kept as the exact bytes sent (not
// base64 bytes, and not re-encoded, so numbers and key order survive), and
// a raw publish takes the request body as it is.
type eventMarshaler struct {
	*runtime.JSONPb
}

func (m *eventMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		switch target := v.(type) {
		case **httpbody.HttpBody:
			data, err := io.ReadAll(r)
			if err != nil {
				return bodyError(err)
			}
			*target = &httpbody.HttpBody{Data: data}
			return nil
		case **hookwirev1.Event:
			data, err := io.ReadAll(r)
			if err != nil {
				return bodyError(err)
			}
			ev, err := decodeEvent(data)
			if err != nil {
				return err
			}
			*target = ev
			return nil
		case *hookwirev1.PublishEventsRequest:
			data, err := io.ReadAll(r)
			if err != nil {
				return bodyError(err)
			}
			return decodeBatch(data, target)
		}
		// Read the body first, so one over the limit is 413 (bodyError)
		// on every path, not the JSON decoder's read error as 400.
		data, err := io.ReadAll(r)
		if err != nil {
			return bodyError(err)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return io.EOF // no body: the gateway's own handling
		}
		err = m.JSONPb.Unmarshal(data, v)
		if _, isSub := v.(**hookwirev1.Subscription); isSub && err != nil && hasMember(data, "update_mask", "updateMask") {
			return status.Error(codes.InvalidArgument, `update_mask is not part of the body, which is the subscription itself: pass it as the query parameter, e.g. PATCH .../subscriptions/{id}?update_mask=description,target.config.url (without one, the fields present in the body are updated)`)
		}
		return err
	})
}

// hasMember reports whether data is a JSON object with one of the names
// as a member.
func hasMember(data []byte, names ...string) bool {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return false
	}
	for _, n := range names {
		if _, ok := obj[n]; ok {
			return true
		}
	}
	return false
}

// bodyTooLarge starts the message of a request body over the limit.
const bodyTooLarge = "request body is larger than"

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		st := status.Newf(codes.InvalidArgument, bodyTooLarge+" %d bytes", mbe.Limit)
		st, _ = st.WithDetails(&errdetails.ErrorInfo{Reason: api.ReasonPayloadTooLarge, Domain: api.ErrorDomain})
		return st.Err()
	}
	return status.Errorf(codes.InvalidArgument, "read request body: %v", err)
}

var eventUnmarshal = protojson.UnmarshalOptions{}

// decodeEvent reads {"type": ..., "payload": <JSON>, ...}: the payload
// member is kept as the bytes sent, the other members are the event in
// protojson. A JSON object goes through splitEvent, one pass over its
// members (every REST publish comes here); what it leaves aside (not an
// object, a key with an escape, a key named twice) goes through
// decodeEventSlow, which decodes the same way and says what is wrong.
func decodeEvent(data []byte) (*hookwirev1.Event, error) {
	rest, payload, hasPayload, ok := splitEvent(data)
	if !ok {
		return decodeEventSlow(data)
	}
	ev := &hookwirev1.Event{}
	if err := eventUnmarshal.Unmarshal(rest, ev); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid event: %v", err)
	}
	if hasPayload {
		ev.Payload = bytes.TrimSpace(payload)
	}
	return ev, nil
}

// splitEvent returns a JSON object without its "payload" member, and that
// member's value. ok is false, and the caller must decode data another way,
// when data is not a valid JSON object, or a key has an escape (it would
// have to be unescaped to compare), or a key is named twice (which one
// counts is decodeEventSlow's rule: the last).
func splitEvent(data []byte) (rest, payload []byte, hasPayload, ok bool) {
	if !json.Valid(data) {
		return nil, nil, false, false
	}
	i := skipJSONSpace(data, 0)
	if data[i] != '{' {
		return nil, nil, false, false
	}
	rest = append(make([]byte, 0, len(data)), '{')
	var keys [][]byte
	for i = skipJSONSpace(data, i+1); data[i] != '}'; {
		start := i
		end, escaped := endOfJSONString(data, i)
		if escaped {
			return nil, nil, false, false
		}
		key := data[start+1 : end-1]
		for _, k := range keys {
			if bytes.Equal(k, key) {
				return nil, nil, false, false
			}
		}
		keys = append(keys, key)
		i = skipJSONSpace(data, skipJSONSpace(data, end)+1) // past the colon
		valueStart := i
		i = endOfJSONValue(data, i)
		if string(key) == "payload" {
			payload, hasPayload = data[valueStart:i], true
		} else {
			if len(rest) > 1 {
				rest = append(rest, ',')
			}
			rest = append(rest, data[start:i]...)
		}
		if i = skipJSONSpace(data, i); data[i] == ',' {
			i = skipJSONSpace(data, i+1)
		}
	}
	return append(rest, '}'), payload, hasPayload, true
}

// The three helpers below read JSON that json.Valid accepted, from the
// first byte of what they skip; each returns the index just past it.

func skipJSONSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

func endOfJSONString(data []byte, i int) (end int, escaped bool) {
	for i++; data[i] != '"'; i++ {
		if data[i] == '\\' {
			escaped = true
			i++
		}
	}
	return i + 1, escaped
}

func endOfJSONValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		end, _ := endOfJSONString(data, i)
		return end
	case '{', '[':
		depth := 0
		for {
			switch data[i] {
			case '"':
				i, _ = endOfJSONString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // a number, true, false or null
		for i < len(data) && !strings.ContainsRune(",}] \t\n\r", rune(data[i])) {
			i++
		}
		return i
	}
}

// decodeEventSlow decodes as decodeEvent does, through a map of the
// object's members.
func decodeEventSlow(data []byte) (*hookwirev1.Event, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "request body must be a JSON object like {\"type\":\"order.created\",\"payload\":{...}}: %v", err)
	}
	payload, hasPayload := fields["payload"]
	delete(fields, "payload")
	rest, err := json.Marshal(fields)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	ev := &hookwirev1.Event{}
	if err := eventUnmarshal.Unmarshal(rest, ev); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid event: %v", err)
	}
	if hasPayload {
		ev.Payload = bytes.TrimSpace(payload)
	}
	return ev, nil
}

func decodeBatch(data []byte, req *hookwirev1.PublishEventsRequest) error {
	var body struct {
		Tenant string            `json:"tenant"`
		Events []json.RawMessage `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return status.Errorf(codes.InvalidArgument, "request body must be {\"events\":[{\"type\":...,\"payload\":...}, ...]}: %v", err)
	}
	req.Events = make([]*hookwirev1.Event, len(body.Events))
	for i, raw := range body.Events {
		ev, err := decodeEvent(raw)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "events[%d]: %s", i, status.Convert(err).Message())
		}
		req.Events[i] = ev
	}
	return nil
}
