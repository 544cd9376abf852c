package httptransport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/internal/brokerkit"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const (
	// Name is the transport name used in subscription targets.
	Name = "http"
	// DefaultTimeout bounds an attempt whose request carries no timeout.
	DefaultTimeout = 30 * time.Second
	// MaxResponseBody is how much of a response body is kept as the excerpt.
	MaxResponseBody = 64 << 10
	// maxDrain is how much more of a response body is read and discarded so
	// the connection can be reused; anything longer closes the connection.
	maxDrain = 256 << 10
	// maxRetryAfter caps Retry-After so absurd values cannot overflow.
	maxRetryAfter = 365 * 24 * time.Hour
	// defaultContentType applies when the request has none.
	defaultContentType = "application/json"
)

// Transport is the http transport. Create it with New; it is safe for
// concurrent use and shares one connection pool across all deliveries.
type Transport struct {
	client            *http.Client
	allowInsecureHTTP bool
	version           string
	userAgent         []string // one shared, never-modified header value
	now               func() time.Time
}

var _ sdk.Transport = (*Transport)(nil)

// Option configures a Transport.
type Option func(*settings)

// settings collects the options before New builds the Transport.
type settings struct {
	version  string
	now      func() time.Time
	rt       http.RoundTripper
	policy   Policy
	resolver Resolver
	// connect replaces the dialer's final connect step (tests only).
	connect func(ctx context.Context, network, address string) (net.Conn, error)
}

// WithVersion sets the version reported by Describe and sent in the
// User-Agent header (Hookwire/<version>). The default is this build's
// version (internal/buildinfo).
func WithVersion(v string) Option {
	return func(s *settings) { s.version = v }
}

// WithClock replaces time.Now, which is used for latency and to turn an
// HTTP-date Retry-After into a delay.
func WithClock(now func() time.Time) Option {
	return func(s *settings) { s.now = now }
}

// WithPolicy sets the egress policy. Without it the transport uses the
// zero Policy: https:// targets only, and none of the DeniedRanges.
func WithPolicy(p Policy) Option {
	return func(s *settings) { s.policy = p }
}

// WithResolver replaces the DNS resolver (net.DefaultResolver) the
// transport's guarded dialer uses to find the addresses it checks and then
// connects to.
func WithResolver(r Resolver) Option {
	return func(s *settings) { s.resolver = r }
}

// WithRoundTripper replaces the transport's own connection pool. The
// replacement does its own dialing, so the address checks of the Policy
// do not apply to it (the https-only rule still does): give it a dialer
// that enforces an egress policy of its own.
func WithRoundTripper(rt http.RoundTripper) Option {
	return func(s *settings) { s.rt = rt }
}

// New returns an http transport with its own tuned connection pool, whose
// dialer enforces the policy (WithPolicy).
func New(opts ...Option) *Transport {
	s := settings{version: brokerkit.Version(), now: time.Now}
	for _, o := range opts {
		o(&s)
	}
	rt := s.rt
	if rt == nil {
		rt = newPool(sdk.NewDialer(Name, s.policy.Egress(), sdk.WithResolver(s.resolver), sdk.WithConnect(s.connect)))
	}
	return &Transport{
		client: &http.Client{
			Transport: rt,
			// A redirect is an answer, not an instruction: following it would
			// send a signed payload to a URL nobody configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		allowInsecureHTTP: s.policy.AllowInsecureHTTP,
		version:           s.version,
		userAgent:         []string{"Hookwire/" + s.version},
		now:               s.now,
	}
}

// newPool is the shared http.Transport, sized for many concurrent
// deliveries (the SDK runs up to sdk.MaxConcurrentDeliveries at once).
//
// It ignores HTTP_PROXY and HTTPS_PROXY: through a proxy the dialer would
// only see the proxy's address, and the policy could not check the target.
func newPool(d *sdk.Dialer) *http.Transport {
	return &http.Transport{
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           8192,
		MaxIdleConnsPerHost:    sdk.MaxConcurrentDeliveries,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// Keep the response exactly as sent: the excerpt and headers are
		// for humans debugging their endpoint.
		DisableCompression: true,
	}
}

// CloseIdleConnections closes pooled connections that are not in use.
func (t *Transport) CloseIdleConnections() {
	t.client.CloseIdleConnections()
}

// Describe reports the transport's name, version and target schema.
func (t *Transport) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:         Name,
		Version:      t.version,
		APIVersions:  []uint32{sdk.APIVersion},
		TargetSchema: targetSchema,
		ConfigFields: configFields,
	}, nil
}

// configFields has no secret: credentials belong in the subscription's
// target headers, which the control plane seals (see the schema).
var configFields = sdk.MustConfigFields(targetSchema)

// Validate checks an http target configuration. It does not apply the
// egress Policy (see the package documentation): an http:// URL is valid
// here even when this transport would refuse to deliver to it.
func (t *Transport) Validate(_ context.Context, config *structpb.Struct) ([]string, error) {
	_, problems := parseConfig(config)
	return problems, nil
}

// Deliver POSTs the request and classifies what happened. See the package
// documentation for the outcome classes.
func (t *Transport) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	tgt, problems := parseConfig(req.GetConfig())
	if len(problems) > 0 {
		return rejected("invalid http target configuration: " + strings.Join(problems, "; "))
	}
	if tgt.insecure && !t.allowInsecureHTTP {
		return rejected(fmt.Sprintf("url %q uses plain http, but this agent delivers only to https:// targets; "+
			"change the subscription's url to https://, or start the agent with --allow-insecure-http", tgt.url))
	}
	for name, value := range req.GetHeaders() {
		if !validHeaderName(name) || !validHeaderValue(value) {
			return rejected(fmt.Sprintf("request header %q has an invalid name or value; it cannot be sent over HTTP", name))
		}
	}

	timeout := DefaultTimeout
	if d := req.GetTimeout(); d != nil {
		if v := d.AsDuration(); v > 0 {
			timeout = v
		}
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > timeout {
		// Under the SDK the context already ends at the request's timeout;
		// a second timer per delivery is only needed when called directly.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, tgt.url, bytes.NewReader(req.GetBody()))
	if err != nil {
		return rejected(fmt.Sprintf("build request for %s: %v", tgt.url, err))
	}
	h := hreq.Header
	h["User-Agent"] = t.userAgent
	for _, kv := range tgt.headers {
		h[kv[0]] = []string{kv[1]}
	}
	for name, value := range req.GetHeaders() {
		h[canonicalRequestHeader(name)] = []string{value}
	}
	sdk.TraceHeaders(req, h.Set) // W3C traceparent/tracestate, when tracing
	if ct := req.GetContentType(); ct != "" {
		h["Content-Type"] = []string{ct}
	} else if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = []string{defaultContentType}
	}

	start := t.now()
	resp, err := t.client.Do(hreq)
	if err != nil {
		var denied *DeniedAddressError
		if errors.As(err, &denied) {
			res := rejected(denied.Error())
			res.Latency = durationpb.New(t.now().Sub(start))
			return res
		}
		res := classifyError(ctx, err, timeout)
		res.Latency = durationpb.New(t.now().Sub(start))
		return res
	}
	excerpt, readErr := readExcerpt(resp.Body)
	_ = resp.Body.Close()
	latency := t.now().Sub(start)

	res := &transportv1.DeliveryResult{
		StatusCode:      int32(resp.StatusCode),
		ResponseHeaders: lowerHeaders(resp.Header),
		ResponseBody:    excerpt,
		Latency:         durationpb.New(latency),
	}
	if v := resp.Header.Get("Retry-After"); v != "" {
		if d, ok := parseRetryAfter(v, t.now()); ok {
			res.RetryAfter = durationpb.New(d)
		}
	}
	res.Outcome, res.Error = classifyStatus(resp)
	if readErr != nil && res.Outcome != transportv1.Outcome_OUTCOME_SUCCESS {
		res.Error += "; reading the response body failed: " + readErr.Error()
	}
	return res
}

func rejected(msg string) *transportv1.DeliveryResult {
	return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_REJECTED, Error: msg}
}

// classifyStatus maps an HTTP answer to an outcome and, for failures, a
// sentence saying what the target answered.
func classifyStatus(resp *http.Response) (transportv1.Outcome, string) {
	code := resp.StatusCode
	answered := fmt.Sprintf("target answered %d %s", code, http.StatusText(code))
	switch {
	case code >= 200 && code < 300:
		return transportv1.Outcome_OUTCOME_SUCCESS, ""
	case code == http.StatusGone:
		return transportv1.Outcome_OUTCOME_GONE, answered + ": it no longer accepts these webhooks"
	case code == http.StatusTooManyRequests, code == http.StatusBadGateway,
		code == http.StatusServiceUnavailable, code == http.StatusGatewayTimeout:
		return transportv1.Outcome_OUTCOME_THROTTLED, answered
	case code >= 300 && code < 400:
		loc := resp.Header.Get("Location")
		return transportv1.Outcome_OUTCOME_FAILED, fmt.Sprintf(
			"%s redirecting to %q; redirects are not followed, so set the subscription's url to the final address", answered, loc)
	default:
		return transportv1.Outcome_OUTCOME_FAILED, answered
	}
}

// classifyError maps a failed round trip (no response at all) to TIMEOUT or
// CONNECTION_ERROR.
func classifyError(ctx context.Context, err error, timeout time.Duration) *transportv1.DeliveryResult {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &transportv1.DeliveryResult{
			Outcome: transportv1.Outcome_OUTCOME_TIMEOUT,
			Error:   fmt.Sprintf("no response before the attempt's deadline (timeout %v): %v", timeout, err),
		}
	case errors.Is(ctx.Err(), context.Canceled):
		return &transportv1.DeliveryResult{
			Outcome: transportv1.Outcome_OUTCOME_CONNECTION_ERROR,
			Error:   "delivery canceled before the target answered: " + err.Error(),
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &transportv1.DeliveryResult{
			Outcome: transportv1.Outcome_OUTCOME_TIMEOUT,
			Error:   err.Error(),
		}
	}
	return &transportv1.DeliveryResult{
		Outcome: transportv1.Outcome_OUTCOME_CONNECTION_ERROR,
		Error:   err.Error(),
	}
}

var excerptPool = sync.Pool{New: func() any {
	b := make([]byte, MaxResponseBody)
	return &b
}}

// readExcerpt reads at most MaxResponseBody bytes, then discards up to
// maxDrain more so the connection can go back to the pool. The returned
// slice is exactly as long as what was read (nil for an empty body).
func readExcerpt(body io.Reader) ([]byte, error) {
	bufp := excerptPool.Get().(*[]byte)
	defer excerptPool.Put(bufp)
	n, err := io.ReadFull(body, *bufp)
	switch {
	case err == nil:
		// The excerpt is full; drain a bounded amount more.
		_, _ = io.CopyN(io.Discard, body, maxDrain)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		err = nil
	}
	var out []byte
	if n > 0 {
		out = bytes.Clone((*bufp)[:n])
	}
	return out, err
}

// lowerHeaders keeps the first value of each header under its lower-case
// name.
func lowerHeaders(h http.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string]string, len(h))
	for name, values := range h {
		if len(values) > 0 {
			// Header values may carry any byte (obs-text); protobuf strings
			// must be UTF-8, or the whole result would fail to encode.
			out[strings.ToValidUTF8(strings.ToLower(name), "\uFFFD")] = strings.ToValidUTF8(values[0], "\uFFFD")
		}
	}
	return out
}

// parseRetryAfter reads a Retry-After value: delta-seconds or an HTTP-date
// (a date in the past means "now"). Values beyond maxRetryAfter are capped;
// anything else is ignored.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		if secs > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		d := at.Sub(now)
		return min(max(d, 0), maxRetryAfter), true
	}
	return 0, false
}

// canonicalRequestHeader is http.CanonicalHeaderKey without its allocation
// for the headers every delivery carries (the control plane sends them in
// lower case).
func canonicalRequestHeader(name string) string {
	switch name {
	case "webhook-id":
		return "Webhook-Id"
	case "webhook-timestamp":
		return "Webhook-Timestamp"
	case "webhook-signature":
		return "Webhook-Signature"
	}
	return http.CanonicalHeaderKey(name)
}

// canonicalHeader is http.CanonicalHeaderKey; named here so config.go reads
// without importing net/http.
func canonicalHeader(name string) string { return http.CanonicalHeaderKey(name) }
