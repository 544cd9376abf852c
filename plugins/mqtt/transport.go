package mqtttransport

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/internal/brokerkit"
	"github.com/hookwire/hookwire/plugins/internal/connpool"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const (
	// Name is the transport name used in subscription targets.
	Name = "mqtt"
	// defaultContentType applies when the request has none (as for http).
	defaultContentType = "application/json"
	// dialTimeout bounds connecting (TCP, TLS, CONNECT/CONNACK).
	dialTimeout = 10 * time.Second
	// keepAlive is the MQTT keep-alive interval asked for, in seconds.
	keepAlive = 30
	// packetTimeout is paho's own bound on waiting for an acknowledgement;
	// the attempt's context is always shorter, so it decides.
	packetTimeout = 10 * time.Minute
)

var (
	outcomeThrottled = transportv1.Outcome_OUTCOME_THROTTLED
	outcomeConnError = transportv1.Outcome_OUTCOME_CONNECTION_ERROR
	outcomeFailed    = transportv1.Outcome_OUTCOME_FAILED
	outcomeRejected  = transportv1.Outcome_OUTCOME_REJECTED
)

// Transport is the mqtt transport. Create it with New and Close it when
// done; it is safe for concurrent use and keeps one MQTT 5 connection per
// distinct url.
type Transport struct {
	pool    *connpool.Pool[*conn]
	version string
}

var _ sdk.Transport = (*Transport)(nil)

// errConnectionLost ends a publish whose connection has gone.
var errConnectionLost = errors.New("the connection to the broker was lost")

// conn is one pooled MQTT 5 connection and what its broker allows.
type conn struct {
	c         *paho.Client
	lost      context.Context // canceled once the client has stopped
	maxPacket uint32          // 0: no limit announced
	maxQoS    byte
	retainOK  bool
}

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

// New returns an mqtt transport with an empty connection pool.
func New(opts ...Option) *Transport {
	guard := brokerkit.Dialer(Name, opts)
	return &Transport{
		version: brokerkit.Version(),
		pool: connpool.New(connpool.Config[*conn]{
			Dial: func(ctx context.Context, url string) (*conn, error) { return dial(ctx, guard, url) },
			Alive: func(c *conn) bool {
				select {
				case <-c.c.Done():
					return false
				default:
					return true
				}
			},
			Close: func(c *conn) {
				_ = c.c.Disconnect(&paho.Disconnect{ReasonCode: 0}) // waits for the client to stop
			},
			DialTimeout: dialTimeout,
		}),
	}
}

// Close disconnects every pooled connection. Deliveries after Close fail
// with CONNECTION_ERROR.
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

// Validate checks an mqtt target configuration.
func (t *Transport) Validate(_ context.Context, config *structpb.Struct) ([]string, error) {
	_, problems := parseConfig(config)
	return problems, nil
}

// Deliver publishes the body at QoS 1 or 2, waits for the broker's
// acknowledgement and classifies it. See the package documentation.
func (t *Transport) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	tgt, problems := parseConfig(req.GetConfig())
	if len(problems) > 0 {
		return brokerkit.Rejected(Name, problems)
	}
	pub, problem := publish(tgt, req)
	if problem != "" {
		return brokerkit.Result(outcomeRejected, "%s", problem)
	}
	ctx, cancel, timeout := brokerkit.AttemptContext(ctx, req)
	defer cancel()
	where := "MQTT broker " + brokerkit.Redact(tgt.url, false)

	start := time.Now()
	c, err := t.pool.Get(ctx, tgt.url)
	if err != nil {
		return brokerkit.WithLatency(classifyConnect(ctx, err, timeout, where), start)
	}
	res := c.publish(ctx, pub, timeout, fmt.Sprintf("publish to topic %q on %s", tgt.topic, where))
	if res.GetOutcome() == outcomeConnError {
		t.pool.Evict(tgt.url, c)
	}
	return brokerkit.WithLatency(res, start)
}

// publish builds the PUBLISH packet: the body as-is, the content type in
// the MQTT 5 Content Type property, and as user properties sorted by name
// the request's headers and the W3C trace context (traceparent,
// tracestate; when the request carries one).
func publish(tgt target, req *transportv1.DeliveryRequest) (*paho.Publish, string) {
	ct := req.GetContentType()
	if ct == "" {
		ct = defaultContentType
	}
	user := make(paho.UserProperties, 0, len(req.GetHeaders())+2)
	for name, value := range req.GetHeaders() {
		if !utf8.ValidString(name) || !utf8.ValidString(value) || strings.ContainsRune(name+value, 0) {
			return nil, fmt.Sprintf("request header %q is not valid UTF-8 without NUL, which MQTT user properties require", name)
		}
		user = append(user, paho.UserProperty{Key: name, Value: value})
	}
	// Printable ASCII only (sdk.TraceHeaders checks); it replaces a request
	// header of the same name, as in the http transport.
	sdk.TraceHeaders(req, func(name, value string) {
		user = slices.DeleteFunc(user, func(p paho.UserProperty) bool { return p.Key == name })
		user = append(user, paho.UserProperty{Key: name, Value: value})
	})
	slices.SortFunc(user, func(a, b paho.UserProperty) int { return strings.Compare(a.Key, b.Key) })
	return &paho.Publish{
		QoS:     tgt.qos,
		Retain:  tgt.retain,
		Topic:   tgt.topic,
		Payload: req.GetBody(),
		Properties: &paho.PublishProperties{
			ContentType: ct,
			User:        user,
		},
	}, ""
}

// packetSize is an upper bound of the PUBLISH packet's size on the wire.
func packetSize(p *paho.Publish) int {
	n := 5 + 2 + len(p.Topic) + 2 + 4 // fixed header, topic, packet id, property length
	n += 3 + len(p.Properties.ContentType)
	for _, u := range p.Properties.User {
		n += 5 + len(u.Key) + len(u.Value)
	}
	return n + len(p.Payload)
}

func (c *conn) publish(ctx context.Context, p *paho.Publish, timeout time.Duration, what string) *transportv1.DeliveryResult {
	if size := packetSize(p); c.maxPacket > 0 && size > int(c.maxPacket) {
		return brokerkit.Result(outcomeRejected, "%s: the message needs about %d bytes but the broker accepts packets of at most %d", what, size, c.maxPacket)
	}
	if p.QoS > c.maxQoS {
		return brokerkit.Result(outcomeRejected, "%s: the broker supports QoS up to %d; set qos to %d", what, c.maxQoS, c.maxQoS)
	}
	if p.Retain && !c.retainOK {
		return brokerkit.Result(outcomeRejected, "%s: the broker does not support retained messages; set retain to false", what)
	}
	// paho keeps an unacknowledged QoS 1/2 publish in its session when the
	// connection drops, and would wait for the deadline: stop waiting as
	// soon as the client stops.
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(c.lost, func() { cancel(errConnectionLost) })
	defer stop()
	resp, err := c.c.Publish(pctx, p)
	if resp != nil && resp.ReasonCode >= 0x80 {
		return classifyReason(resp.ReasonCode, reasonString(resp), what)
	}
	if err == nil {
		return brokerkit.Success()
	}
	switch {
	case errors.Is(err, paho.ErrInvalidArguments):
		return brokerkit.Result(outcomeRejected, "%s: %v", what, err)
	case ctx.Err() == nil && errors.Is(context.Cause(pctx), errConnectionLost):
		return brokerkit.Result(outcomeConnError, "%s: %v before it acknowledged the message", what, errConnectionLost)
	case ctx.Err() != nil:
		return brokerkit.Unanswered(ctx, err, timeout, what+": waiting for the broker's acknowledgement")
	default:
		// Written but the connection ended before the acknowledgement, or
		// the write itself failed.
		return brokerkit.Result(outcomeConnError, "%s: the connection broke: %v", what, err)
	}
}

func reasonString(r *paho.PublishResponse) string {
	if r.Properties != nil {
		return r.Properties.ReasonString
	}
	return ""
}

// classifyReason maps a PUBACK/PUBREC reason code of 0x80 or more.
func classifyReason(code byte, reason, what string) *transportv1.DeliveryResult {
	detail := fmt.Sprintf("reason code 0x%02X", code)
	if reason != "" {
		detail += ": " + reason
	}
	switch code {
	case 0x87:
		return brokerkit.Result(outcomeRejected, "%s: not authorized (%s); allow this user to publish to the topic", what, detail)
	case 0x90:
		return brokerkit.Result(outcomeRejected, "%s: the broker refused the topic name (%s)", what, detail)
	case 0x99:
		return brokerkit.Result(outcomeRejected, "%s: the broker refused the payload format (%s)", what, detail)
	case 0x97:
		return brokerkit.Result(outcomeThrottled, "%s: quota exceeded (%s)", what, detail)
	default:
		return brokerkit.Result(outcomeFailed, "%s: the broker refused the message (%s)", what, detail)
	}
}

// connackError is a CONNACK with a failure reason code.
type connackError struct {
	code   byte
	reason string
}

func (e *connackError) Error() string {
	s := fmt.Sprintf("the broker refused the connection (CONNACK reason code 0x%02X)", e.code)
	if e.reason != "" {
		s += ": " + e.reason
	}
	return s
}

// classifyConnect maps a failure to obtain a connection.
func classifyConnect(ctx context.Context, err error, timeout time.Duration, where string) *transportv1.DeliveryResult {
	what := "connect to " + where
	var ce *connackError
	switch {
	case errors.As(err, &ce):
		switch ce.code {
		case 0x84:
			return brokerkit.Result(outcomeRejected, "%s: %v; it does not speak MQTT 5, which Hookwire needs to carry the signature headers as user properties", what, err)
		case 0x86, 0x87, 0x8C:
			return brokerkit.Result(outcomeRejected, "%s: %v; check the user name and password in url, and that this user may connect", what, err)
		case 0x85, 0x8A:
			return brokerkit.Result(outcomeRejected, "%s: %v", what, err)
		case 0x89, 0x97, 0x9F:
			return brokerkit.Result(outcomeThrottled, "%s: %v", what, err)
		case 0x88:
			return brokerkit.Result(outcomeConnError, "%s: %v", what, err)
		default:
			return brokerkit.Result(outcomeFailed, "%s: %v", what, err)
		}
	case errors.Is(err, connpool.ErrClosed):
		return brokerkit.Result(outcomeConnError, "%s: %v", what, err)
	default:
		return brokerkit.Unanswered(ctx, err, timeout, what)
	}
}

// dial opens an MQTT 5 connection with a clean session (nothing is kept
// on the broker after it closes) and a fresh client id.
func dial(ctx context.Context, guard *sdk.Dialer, rawURL string) (*conn, error) {
	ep, err := parseEndpoint(rawURL)
	if err != nil {
		return nil, err
	}
	nc, err := guard.DialContext(ctx, "tcp", ep.addr) // the egress guard
	if err != nil {
		return nil, err
	}
	if ep.tls {
		tc := tls.Client(nc, &tls.Config{ServerName: ep.host, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	client := paho.NewClient(paho.ClientConfig{
		Conn:          packets.NewThreadSafeConn(nc),
		PacketTimeout: packetTimeout,
	})
	cp := &paho.Connect{
		ClientID:     clientID(),
		CleanStart:   true,
		KeepAlive:    keepAlive,
		Username:     ep.username,
		UsernameFlag: ep.hasUser,
		Password:     []byte(ep.password),
		PasswordFlag: ep.hasPass,
	}
	ca, err := client.Connect(ctx, cp) // closes nc on failure
	if err != nil {
		if ca != nil && ca.ReasonCode >= 0x80 {
			ce := &connackError{code: ca.ReasonCode}
			if ca.Properties != nil {
				ce.reason = ca.Properties.ReasonString
			}
			return nil, ce
		}
		return nil, err
	}
	lost, markLost := context.WithCancel(context.Background())
	go func() {
		<-client.Done()
		markLost()
	}()
	c := &conn{c: client, lost: lost, maxQoS: 2, retainOK: true}
	if p := ca.Properties; p != nil {
		if p.MaximumPacketSize != nil {
			c.maxPacket = *p.MaximumPacketSize
		}
		if p.MaximumQoS != nil {
			c.maxQoS = *p.MaximumQoS
		}
		c.retainOK = p.RetainAvailable
	}
	return c, nil
}

func clientID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "hookwire-" + strings.ToLower(hex.EncodeToString(b[:]))
}
