package amqptransport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/internal/brokerkit"
	"github.com/hookwire/hookwire/plugins/internal/connpool"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const (
	// Name is the transport name used in subscription targets.
	Name = "amqp"
	// defaultContentType applies when the request has none (as for http).
	defaultContentType = "application/json"
	// dialTimeout bounds connecting (TCP, TLS and the AMQP handshake).
	dialTimeout = 10 * time.Second
	// heartbeat lets both sides notice a dead connection.
	heartbeat = 10 * time.Second
	// maxChannels bounds the channels one connection opens; each publish
	// holds one channel exclusively until its confirm arrives, so a
	// returned message or a channel error is attributed to exactly one
	// delivery.
	maxChannels = 256
)

var (
	outcomeThrottled = transportv1.Outcome_OUTCOME_THROTTLED
	outcomeConnError = transportv1.Outcome_OUTCOME_CONNECTION_ERROR
	outcomeFailed    = transportv1.Outcome_OUTCOME_FAILED
	outcomeRejected  = transportv1.Outcome_OUTCOME_REJECTED
)

// Transport is the amqp transport. Create it with New and Close it when
// done; it is safe for concurrent use and keeps one connection per distinct
// url.
type Transport struct {
	pool    *connpool.Pool[*conn]
	version string
}

var _ sdk.Transport = (*Transport)(nil)

// Option configures a Transport.
type Option = brokerkit.Option

// WithEgress sets the egress policy every connection is checked against
// (see sdk.Dialer). Without it the transport uses the agent's policy
// (sdk.AgentEgress), which outside an agent allows no loopback, private,
// link-local... address: a refused target is REJECTED with a message
// naming the --allow-cidr flag that would allow it.
func WithEgress(e sdk.Egress) Option {
	return brokerkit.WithEgress(e)
}

// New returns an amqp transport with an empty connection pool.
func New(opts ...Option) *Transport {
	guard := brokerkit.Dialer(Name, opts)
	return &Transport{
		version: brokerkit.Version(),
		pool: connpool.New(connpool.Config[*conn]{
			Dial:        func(ctx context.Context, url string) (*conn, error) { return dial(ctx, guard, url) },
			Alive:       func(c *conn) bool { return !c.c.IsClosed() },
			Close:       (*conn).close,
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

// Validate checks an amqp target configuration.
func (t *Transport) Validate(_ context.Context, config *structpb.Struct) ([]string, error) {
	_, problems := parseConfig(config)
	return problems, nil
}

// Deliver publishes the body with publisher confirms and classifies what
// happened. See the package documentation for the outcome classes.
func (t *Transport) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	tgt, problems := parseConfig(req.GetConfig())
	if len(problems) > 0 {
		return brokerkit.Rejected(Name, problems)
	}
	ctx, cancel, timeout := brokerkit.AttemptContext(ctx, req)
	defer cancel()
	where := "AMQP broker " + brokerkit.Redact(tgt.url, false)

	start := time.Now()
	c, err := t.pool.Get(ctx, tgt.url)
	if err != nil {
		return brokerkit.WithLatency(classifyConnect(ctx, err, timeout, where), start)
	}
	res := c.publish(ctx, tgt, publishing(req), timeout, where)
	if res.GetOutcome() == outcomeConnError {
		// The library may not have noticed yet; make sure the next
		// delivery dials afresh.
		t.pool.Evict(tgt.url, c)
	}
	return brokerkit.WithLatency(res, start)
}

// publishing is the message: the body as-is, the request's headers and
// the W3C trace context (traceparent, tracestate; when the request carries
// one) in the header table, and the standard properties.
func publishing(req *transportv1.DeliveryRequest) amqp.Publishing {
	headers := make(amqp.Table, len(req.GetHeaders())+2)
	for name, value := range req.GetHeaders() {
		headers[name] = value
	}
	sdk.TraceHeaders(req, func(name, value string) { headers[name] = value })
	ct := req.GetContentType()
	if ct == "" {
		ct = defaultContentType
	}
	id := req.GetHeaders()["webhook-id"]
	if id == "" {
		id = req.GetDeliveryId()
	}
	return amqp.Publishing{
		Headers:      headers,
		ContentType:  ct,
		DeliveryMode: amqp.Persistent,
		MessageId:    id,
		Type:         req.GetEventType(),
		AppId:        "hookwire",
		Body:         req.GetBody(),
	}
}

// conn is one pooled AMQP connection with its idle confirm-mode channels.
type conn struct {
	c       *amqp.Connection
	blocked atomic.Pointer[string] // reason while the broker blocks publishers
	watched chan struct{}          // closed when the watcher has exited
	slots   chan struct{}          // one token per open channel

	mu   sync.Mutex
	idle []*channel
	bg   sync.WaitGroup // background channel closes
}

// channel is a confirm-mode channel used by one publish at a time.
type channel struct {
	ch      *amqp.Channel
	returns chan amqp.Return
	closes  chan *amqp.Error
}

func dial(ctx context.Context, guard *sdk.Dialer, url string) (*conn, error) {
	var stops []func() bool
	var mu sync.Mutex
	cfg := amqp.Config{
		Heartbeat:  heartbeat,
		Locale:     "en_US",
		Properties: amqp.Table{"connection_name": "hookwire", "product": "hookwire"},
		Dial: func(network, addr string) (net.Conn, error) {
			nc, err := guard.DialContext(ctx, network, addr) // the egress guard
			if err != nil {
				return nil, err
			}
			// Bound the TLS and AMQP handshake (the library clears the
			// deadline once connected) and abandon it if ctx ends.
			deadline, ok := ctx.Deadline()
			if !ok {
				deadline = time.Now().Add(dialTimeout)
			}
			_ = nc.SetDeadline(deadline)
			stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
			mu.Lock()
			stops = append(stops, stop)
			mu.Unlock()
			return nc, nil
		},
	}
	ac, err := amqp.DialConfig(url, cfg)
	mu.Lock()
	for _, stop := range stops {
		stop()
	}
	mu.Unlock()
	if err != nil {
		return nil, err
	}
	c := &conn{c: ac, watched: make(chan struct{}), slots: make(chan struct{}, maxChannels)}
	blocks := ac.NotifyBlocked(make(chan amqp.Blocking, 4))
	go c.watch(blocks)
	return c, nil
}

// watch tracks connection.blocked / unblocked (RabbitMQ's resource alarms)
// until the connection closes.
func (c *conn) watch(blocks <-chan amqp.Blocking) {
	defer close(c.watched)
	for b := range blocks {
		if b.Active {
			reason := b.Reason
			c.blocked.Store(&reason)
		} else {
			c.blocked.Store(nil)
		}
	}
}

func (c *conn) close() {
	_ = c.c.Close()
	<-c.watched
	c.bg.Wait()
}

// acquire takes an idle channel or opens one, waiting for a free slot.
func (c *conn) acquire(ctx context.Context) (*channel, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	for len(c.idle) > 0 {
		ch := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if !ch.ch.IsClosed() {
			c.mu.Unlock()
			return ch, nil
		}
	}
	c.mu.Unlock()

	ach, err := c.c.Channel()
	if err != nil {
		<-c.slots
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ach.Confirm(false); err != nil {
		_ = ach.Close()
		<-c.slots
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	return &channel{
		ch:      ach,
		returns: ach.NotifyReturn(make(chan amqp.Return, 1)),
		closes:  ach.NotifyClose(make(chan *amqp.Error, 1)),
	}, nil
}

// release returns a healthy channel to the idle list.
func (c *conn) release(ch *channel) {
	c.mu.Lock()
	c.idle = append(c.idle, ch)
	c.mu.Unlock()
	<-c.slots
}

// discard closes a channel that may hold an unconfirmed publish or has
// failed, without holding up the delivery.
func (c *conn) discard(ch *channel) {
	<-c.slots
	if ch.ch.IsClosed() {
		return
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		_ = ch.ch.Close()
	}()
}

// publish sends one message on an exclusive channel and waits for the
// broker's confirm, a return (mandatory and unroutable), or the channel's
// closure (e.g. the exchange does not exist).
func (c *conn) publish(ctx context.Context, tgt target, msg amqp.Publishing, timeout time.Duration, where string) *transportv1.DeliveryResult {
	if reason := c.blocked.Load(); reason != nil {
		return brokerkit.Result(outcomeThrottled, "%s is blocking publishers (resource alarm: %s)", where, *reason)
	}
	what := fmt.Sprintf("publish to exchange %q with routing key %q on %s", tgt.exchange, tgt.routingKey, where)
	ch, err := c.acquire(ctx)
	if err != nil {
		return c.classify(ctx, err, timeout, what)
	}
	dc, err := ch.ch.PublishWithDeferredConfirmWithContext(ctx, tgt.exchange, tgt.routingKey, tgt.mandatory, false, msg)
	if err != nil {
		c.discard(ch)
		return c.classify(ctx, err, timeout, what)
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		c.discard(ch)
		return brokerkit.Unanswered(ctx, ctx.Err(), timeout, what+": waiting for the broker's confirm")
	}
	if !dc.Acked() {
		if ch.ch.IsClosed() {
			var reason *amqp.Error
			select {
			case reason = <-ch.closes:
			default:
			}
			c.discard(ch)
			return c.classifyClose(reason, what)
		}
		c.release(ch)
		return brokerkit.Result(outcomeThrottled, "%s: the broker nacked the message (it could not take responsibility for it, e.g. a queue at its length limit with overflow reject-publish)", what)
	}
	select {
	case r := <-ch.returns:
		c.release(ch)
		return brokerkit.Result(outcomeRejected,
			"%s: the broker returned the message as unroutable (%d %s): no queue is bound for this routing key; bind one, or set mandatory to false to let the broker drop such messages",
			what, r.ReplyCode, r.ReplyText)
	default:
	}
	c.release(ch)
	return brokerkit.Success()
}

// classify maps an error from opening a channel or publishing.
func (c *conn) classify(ctx context.Context, err error, timeout time.Duration, what string) *transportv1.DeliveryResult {
	var ae *amqp.Error
	switch {
	case ctx.Err() != nil:
		return brokerkit.Unanswered(ctx, err, timeout, what)
	case errors.As(err, &ae) && ae != amqp.ErrClosed:
		return c.classifyClose(ae, what)
	case c.c.IsClosed(), errors.Is(err, amqp.ErrClosed):
		return brokerkit.Result(outcomeConnError, "%s: the connection is closed: %v", what, err)
	case errors.Is(err, amqp.ErrChannelMax):
		return brokerkit.Result(outcomeThrottled, "%s: the connection has no free channel: %v", what, err)
	default:
		return brokerkit.Unanswered(ctx, err, timeout, what)
	}
}

// classifyClose maps the reason a channel (or the connection) was closed.
func (c *conn) classifyClose(e *amqp.Error, what string) *transportv1.DeliveryResult {
	if e == nil || !e.Server || c.c.IsClosed() {
		if e == nil {
			return brokerkit.Result(outcomeConnError, "%s: the channel closed before the broker confirmed", what)
		}
		if !e.Server {
			return brokerkit.Result(outcomeConnError, "%s: the connection broke: %v", what, e)
		}
	}
	switch e.Code {
	case amqp.NotFound:
		return brokerkit.Result(outcomeRejected, "%s: %s; Hookwire does not declare exchanges, so declare it (or fix the exchange name)", what, e.Reason)
	case amqp.AccessRefused:
		return brokerkit.Result(outcomeRejected, "%s: access refused (%s); grant the user write permission on the exchange", what, e.Reason)
	case amqp.PreconditionFailed, amqp.ContentTooLarge:
		return brokerkit.Result(outcomeRejected, "%s: the broker refused the message (%d %s)", what, e.Code, e.Reason)
	case amqp.NotAllowed, amqp.NotImplemented, amqp.ResourceLocked:
		return brokerkit.Result(outcomeRejected, "%s: the broker refused the publish (%d %s)", what, e.Code, e.Reason)
	case amqp.ResourceError:
		return brokerkit.Result(outcomeThrottled, "%s: the broker is out of resources (%d %s)", what, e.Code, e.Reason)
	case amqp.ConnectionForced, amqp.InternalError, amqp.FrameError, amqp.SyntaxError,
		amqp.CommandInvalid, amqp.ChannelError, amqp.UnexpectedFrame:
		return brokerkit.Result(outcomeConnError, "%s: the broker closed the connection (%d %s)", what, e.Code, e.Reason)
	default:
		return brokerkit.Result(outcomeFailed, "%s: the broker closed the channel (%d %s)", what, e.Code, e.Reason)
	}
}

// classifyConnect maps a failure to obtain a connection.
func classifyConnect(ctx context.Context, err error, timeout time.Duration, where string) *transportv1.DeliveryResult {
	what := "connect to " + where
	var ae *amqp.Error
	switch {
	case errors.Is(err, amqp.ErrCredentials), errors.Is(err, amqp.ErrSASL):
		return brokerkit.Result(outcomeRejected, "%s: the broker refused the credentials in url: %v", what, err)
	case errors.Is(err, amqp.ErrVhost):
		return brokerkit.Result(outcomeRejected, "%s: the user may not use the vhost in url (or it does not exist): %v", what, err)
	case errors.As(err, &ae) && (ae.Code == amqp.AccessRefused || ae.Code == amqp.NotAllowed):
		return brokerkit.Result(outcomeRejected, "%s: the broker refused the connection (%d %s)", what, ae.Code, ae.Reason)
	case errors.Is(err, connpool.ErrClosed):
		return brokerkit.Result(outcomeConnError, "%s: %v", what, err)
	default:
		return brokerkit.Unanswered(ctx, err, timeout, what)
	}
}
