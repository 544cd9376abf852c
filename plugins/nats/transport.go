package natstransport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/internal/brokerkit"
	"github.com/hookwire/hookwire/plugins/internal/connpool"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const (
	// Name is the transport name used in subscription targets.
	Name = "nats"
	// defaultContentType applies when the request has none (as for http).
	defaultContentType = "application/json"
	// dialTimeout bounds connecting (TCP, TLS and the NATS handshake).
	dialTimeout = 10 * time.Second
)

var (
	outcomeThrottled = transportv1.Outcome_OUTCOME_THROTTLED
	outcomeConnError = transportv1.Outcome_OUTCOME_CONNECTION_ERROR
	outcomeFailed    = transportv1.Outcome_OUTCOME_FAILED
	outcomeRejected  = transportv1.Outcome_OUTCOME_REJECTED
	outcomeTimeout   = transportv1.Outcome_OUTCOME_TIMEOUT
)

// Transport is the nats transport. Create it with New and Close it when
// done; it is safe for concurrent use and keeps one connection per distinct
// url.
type Transport struct {
	pool    *connpool.Pool[*conn]
	version string
}

var _ sdk.Transport = (*Transport)(nil)

// conn is one pooled NATS connection.
type conn struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// Option configures a Transport.
type Option = brokerkit.Option

// WithEgress sets the egress policy every connection (reconnects included)
// is checked against (see sdk.Dialer). Without it the transport uses the
// agent's policy (sdk.AgentEgress), which outside an agent allows no
// loopback, private, link-local... address: a refused target is REJECTED
// with a message naming the --allow-cidr flag that would allow it.
func WithEgress(e sdk.Egress) Option {
	return brokerkit.WithEgress(e)
}

// New returns a nats transport with an empty connection pool.
func New(opts ...Option) *Transport {
	guard := brokerkit.Dialer(Name, opts)
	return &Transport{
		version: brokerkit.Version(),
		pool: connpool.New(connpool.Config[*conn]{
			Dial:        func(ctx context.Context, url string) (*conn, error) { return dial(ctx, guard, url) },
			Alive:       func(c *conn) bool { return !c.nc.IsClosed() },
			Close:       func(c *conn) { c.nc.Close() },
			DialTimeout: dialTimeout,
		}),
	}
}

// Close closes every pooled connection. Deliveries after Close fail with
// CONNECTION_ERROR.
func (t *Transport) Close() error {
	t.pool.Close()
	return nil
}

// configFields marks url secret: broker URLs carry user:password (or a
// token), so the control plane seals them (the schema's "writeOnly").
var configFields = sdk.MustConfigFields(targetSchema)

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

// Validate checks a nats target configuration.
func (t *Transport) Validate(_ context.Context, config *structpb.Struct) ([]string, error) {
	_, problems := parseConfig(config)
	return problems, nil
}

// Deliver publishes the body to the subject and classifies what happened.
// See the package documentation for the outcome classes.
func (t *Transport) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	tgt, problems := parseConfig(req.GetConfig())
	if len(problems) > 0 {
		return brokerkit.Rejected(Name, problems)
	}
	msg, problem := message(tgt.subject, req)
	if problem != "" {
		return brokerkit.Result(outcomeRejected, "%s", problem)
	}
	ctx, cancel, timeout := brokerkit.AttemptContext(ctx, req)
	defer cancel()
	where := "nats server " + brokerkit.Redact(tgt.url, true)

	start := time.Now()
	c, err := t.pool.Get(ctx, tgt.url)
	if err != nil {
		return brokerkit.WithLatency(classifyConnect(ctx, err, timeout, where), start)
	}
	if !c.nc.HeadersSupported() {
		return brokerkit.WithLatency(brokerkit.Result(outcomeRejected,
			"%s does not support message headers (NATS 2.2 or later is needed), so the webhook signature cannot be carried", where), start)
	}
	if st := c.nc.Status(); st != nats.CONNECTED {
		return brokerkit.WithLatency(brokerkit.Result(outcomeConnError,
			"connection to %s is %s; the broker is unreachable for now", where, strings.ToLower(st.String())), start)
	}
	var res *transportv1.DeliveryResult
	if tgt.jetstream {
		res = publishJetStream(ctx, c, msg, messageID(req), timeout, where)
	} else {
		res = publishCore(ctx, c, msg, timeout, where)
	}
	return brokerkit.WithLatency(res, start)
}

// message builds the NATS message: the body as-is, the request's headers
// under their exact names, the W3C trace context (traceparent, tracestate)
// when the request carries one, and content-type.
func message(subject string, req *transportv1.DeliveryRequest) (*nats.Msg, string) {
	h := make(nats.Header, len(req.GetHeaders())+3)
	for name, value := range req.GetHeaders() {
		if !validHeaderName(name) || strings.ContainsAny(value, "\r\n") {
			return nil, fmt.Sprintf("request header %q has a name or value that NATS headers cannot carry", name)
		}
		h[name] = []string{value}
	}
	sdk.TraceHeaders(req, h.Set) // NATS headers are case-sensitive: set as named
	ct := req.GetContentType()
	if ct == "" {
		ct = defaultContentType
	}
	if strings.ContainsAny(ct, "\r\n") {
		return nil, "the content type contains a line break, which NATS headers cannot carry"
	}
	h["content-type"] = []string{ct}
	return &nats.Msg{Subject: subject, Data: req.GetBody(), Header: h}, ""
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c == ':' || c == 0x7f {
			return false
		}
	}
	return true
}

// messageID is the JetStream de-duplication id: the webhook-id, which is
// stable across retries of one delivery.
func messageID(req *transportv1.DeliveryRequest) string {
	if id := req.GetHeaders()["webhook-id"]; id != "" {
		return id
	}
	return req.GetDeliveryId()
}

// publishCore publishes and confirms with a round trip (PING/PONG) that the
// server has received the message. A publish the server refuses for lack of
// permission is reported by the server before the PONG.
func publishCore(ctx context.Context, c *conn, msg *nats.Msg, timeout time.Duration, where string) *transportv1.DeliveryResult {
	before := c.nc.LastError()
	if err := c.nc.PublishMsg(msg); err != nil {
		return classifyPublish(ctx, err, timeout, where)
	}
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return classifyPublish(ctx, err, timeout, where)
	}
	if after := c.nc.LastError(); after != nil && after != before && publishDenied(after, msg.Subject) {
		return brokerkit.Result(outcomeRejected, "%s refused the publish to %q: %v", where, msg.Subject, after)
	}
	return brokerkit.Success()
}

// publishDenied reports whether err is the server's permissions violation
// for publishing to subject.
func publishDenied(err error, subject string) bool {
	return errors.Is(err, nats.ErrPermissionViolation) &&
		strings.Contains(strings.ToLower(err.Error()), strings.ToLower(`publish to "`+subject+`"`))
}

// publishJetStream publishes through JetStream and waits for the stream's
// acknowledgement. A duplicate (the same webhook-id within the stream's
// duplicate window) was stored by an earlier attempt: that is a success.
func publishJetStream(ctx context.Context, c *conn, msg *nats.Msg, id string, timeout time.Duration, where string) *transportv1.DeliveryResult {
	opts := []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	_, err := c.js.PublishMsg(ctx, msg, opts...)
	if err == nil {
		return brokerkit.Success()
	}
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		return noStreamAnswered(ctx, c, msg.Subject, err, timeout, where)
	}
	return classifyPublish(ctx, err, timeout, where)
}

// noStreamAnswered tells a subject no stream captures (the configuration
// must change) from a stream that exists but did not answer (unavailable,
// electing a leader: back-pressure).
func noStreamAnswered(ctx context.Context, c *conn, subject string, pubErr error, timeout time.Duration, where string) *transportv1.DeliveryResult {
	stream, err := c.js.StreamNameBySubject(ctx, subject)
	switch {
	case err == nil:
		return brokerkit.Result(outcomeThrottled,
			"JetStream stream %q on %s captures subject %q but did not answer the publish (unavailable or electing a leader): %v", stream, where, subject, pubErr)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return brokerkit.Result(outcomeRejected,
			"no JetStream stream on %s captures subject %q; create a stream whose subjects include it, or set jetstream to false for a core publish", where, subject)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return brokerkit.Result(outcomeRejected,
			"JetStream is not enabled on %s for this account; enable it or set jetstream to false", where)
	case ctx.Err() != nil:
		return brokerkit.Unanswered(ctx, err, timeout, "publish to "+where)
	default:
		return brokerkit.Result(outcomeThrottled,
			"no JetStream stream on %s answered the publish to %q, and looking the stream up failed: %v", where, subject, err)
	}
}

// classifyPublish maps a publish or acknowledgement error to an outcome.
func classifyPublish(ctx context.Context, err error, timeout time.Duration, where string) *transportv1.DeliveryResult {
	what := "publish to " + where
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr):
		return classifyAPIError(apiErr, where)
	case errors.Is(err, nats.ErrMaxPayload):
		return brokerkit.Result(outcomeRejected, "%s: the message is larger than the server's max_payload: %v", what, err)
	case errors.Is(err, nats.ErrNoResponders):
		return brokerkit.Result(outcomeThrottled, "%s: no responders: %v", what, err)
	case errors.Is(err, nats.ErrPermissionViolation), errors.Is(err, nats.ErrAuthorization):
		return brokerkit.Result(outcomeRejected, "%s: %v", what, err)
	case errors.Is(err, nats.ErrTimeout):
		return brokerkit.Result(outcomeTimeout, "%s: no answer before the attempt's deadline (timeout %v): %v", what, timeout, err)
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrStaleConnection), errors.Is(err, nats.ErrDisconnected):
		return brokerkit.Result(outcomeConnError, "%s: the connection broke: %v", what, err)
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), isNetError(err):
		return brokerkit.Unanswered(ctx, err, timeout, what)
	default:
		return brokerkit.Result(outcomeFailed, "%s: %v", what, err)
	}
}

// classifyAPIError maps a JetStream API error (the stream's answer).
func classifyAPIError(e *jetstream.APIError, where string) *transportv1.DeliveryResult {
	switch {
	case e.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return brokerkit.Result(outcomeRejected, "JetStream on %s refused the message as too large for the stream: %v", where, e)
	case e.ErrorCode == jetstream.JSErrCodeStreamNotFound, e.Code == 404:
		return brokerkit.Result(outcomeRejected, "JetStream on %s has no stream for the subject: %v", where, e)
	case e.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabled, e.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabledForAccount:
		return brokerkit.Result(outcomeRejected, "JetStream is not enabled on %s: %v", where, e)
	case e.Code == 503 || e.Code == 429:
		return brokerkit.Result(outcomeThrottled, "JetStream on %s cannot take the message now: %v", where, e)
	case e.Code == 400 || e.Code == 403:
		return brokerkit.Result(outcomeRejected, "JetStream on %s refused the message: %v", where, e)
	default:
		return brokerkit.Result(outcomeFailed, "JetStream on %s failed to store the message: %v", where, e)
	}
}

// classifyConnect maps a failure to obtain a connection.
func classifyConnect(ctx context.Context, err error, timeout time.Duration, where string) *transportv1.DeliveryResult {
	what := "connect to " + where
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return brokerkit.Result(outcomeRejected, "%s: the server refused the credentials in url: %v", what, err)
	case errors.Is(err, connpool.ErrClosed):
		return brokerkit.Result(outcomeConnError, "%s: %v", what, err)
	default:
		return brokerkit.Unanswered(ctx, err, timeout, what)
	}
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// dial connects to url (one server or a comma-separated list). ctx bounds
// the initial connection, handshake included: it is abandoned when ctx
// ends. Once connected, nats.go reconnects by itself; while it does,
// deliveries fail fast with CONNECTION_ERROR instead of being buffered.
func dial(ctx context.Context, guard *sdk.Dialer, url string) (*conn, error) {
	d := &dialer{ctx: ctx, guard: guard}
	nc, err := nats.Connect(url,
		nats.Name("hookwire"),
		nats.SetCustomDialer(d),
		// The guard resolves names itself, so it checks (and names in a
		// refusal) the host as written, every address it resolves to.
		nats.SkipHostLookup(),
		nats.Timeout(dialTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectBufSize(-1),
		nats.NoCallbacksAfterClientClose(),
		// The default handler prints to stderr for every async error;
		// publish errors are classified per delivery instead.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	)
	d.connected()
	if err != nil {
		return nil, d.withRefusal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("set up JetStream: %w", err)
	}
	return &conn{nc: nc, js: js}, nil
}

// dialer connects through the egress guard, and makes the initial
// connection honour the pool's dial context (the TCP dial and, by closing
// the socket when ctx ends, the handshake). After that, reconnects use
// plain timeouts.
type dialer struct {
	guard   *sdk.Dialer
	mu      sync.Mutex
	refused *sdk.DeniedAddressError // the first server the guard refused
	failed  error                   // the last other failed dial
	ctx     context.Context         // nil once connected
	stops   []func() bool
}

func (d *dialer) Dial(network, address string) (net.Conn, error) {
	d.mu.Lock()
	ctx := d.ctx
	d.mu.Unlock()
	if ctx == nil {
		return d.guard.Dial(network, address)
	}
	c, err := d.guard.DialContext(ctx, network, address)
	if err != nil {
		var denied *sdk.DeniedAddressError
		d.mu.Lock()
		switch {
		case !errors.As(err, &denied):
			d.failed = err
		case d.refused == nil:
			d.refused = denied
		}
		d.mu.Unlock()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	d.mu.Lock()
	d.stops = append(d.stops, stop)
	d.mu.Unlock()
	return c, nil
}

// withRefusal gives the error of an initial connection that failed when
// the guard refused some of a url list's servers. nats.go reports only the
// last server's error ("no servers" when that was a refused connection).
// When every server was refused, the guard's refusal is the error (the
// attempt is REJECTED); when others failed for other reasons, the attempt
// stays a CONNECTION_ERROR, as they may come back, and the message also
// says why the refused one will never be used.
func (d *dialer) withRefusal(err error) error {
	d.mu.Lock()
	refused, failed := d.refused, d.failed
	d.mu.Unlock()
	if refused == nil {
		return err
	}
	var denied *sdk.DeniedAddressError
	if errors.As(err, &denied) {
		if failed == nil {
			return err // every server dialled was refused
		}
		err = failed
	}
	return fmt.Errorf("%w; another server in url will not be used: %v", err, refused)
}

// connected detaches the initial connection from the dial context.
func (d *dialer) connected() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ctx = nil
	for _, stop := range d.stops {
		stop()
	}
	d.stops = nil
}
