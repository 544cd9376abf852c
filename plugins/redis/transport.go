package redistransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/internal/brokerkit"
	"github.com/hookwire/hookwire/plugins/internal/connpool"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const (
	// Name is the transport name used in subscription targets.
	Name = "redis"
	// defaultContentType applies when the request has none (as for http).
	defaultContentType = "application/json"
	// dialTimeout bounds creating a client and its first round trip.
	dialTimeout = 10 * time.Second
	// bodyField and contentTypeField are the entry's fixed fields; every
	// request header (and trace context header) is one more field under
	// its own name.
	bodyField        = "body"
	contentTypeField = "content-type"
)

var (
	outcomeThrottled = transportv1.Outcome_OUTCOME_THROTTLED
	outcomeConnError = transportv1.Outcome_OUTCOME_CONNECTION_ERROR
	outcomeFailed    = transportv1.Outcome_OUTCOME_FAILED
	outcomeRejected  = transportv1.Outcome_OUTCOME_REJECTED
)

// Transport is the redis transport. Create it with New and Close it when
// done; it is safe for concurrent use and keeps one client (with its own
// small connection pool) per distinct url.
type Transport struct {
	pool    *connpool.Pool[*redis.Client]
	version string
}

var _ sdk.Transport = (*Transport)(nil)

// Option configures a Transport.
type Option = brokerkit.Option

// WithEgress sets the egress policy every connection is checked against
// (see sdk.Dialer). Without it the transport uses the agent's policy
// (sdk.AgentEgress), which outside an agent allows no loopback, private,
// link-local... address: a refused target is REJECTED with a message
// naming the --allow-cidr flag that would allow it. A unix:// url is a
// service on the agent's own host: it is allowed only where loopback is.
func WithEgress(e sdk.Egress) Option {
	return brokerkit.WithEgress(e)
}

// New returns a redis transport with no clients yet.
func New(opts ...Option) *Transport {
	d := brokerkit.Dialer(Name, opts)
	return &Transport{
		version: brokerkit.Version(),
		pool: connpool.New(connpool.Config[*redis.Client]{
			Dial: func(ctx context.Context, url string) (*redis.Client, error) { return dial(ctx, d, url) },
			// go-redis replaces broken connections inside the client.
			Alive:       func(*redis.Client) bool { return true },
			Close:       func(c *redis.Client) { _ = c.Close() },
			DialTimeout: dialTimeout,
		}),
	}
}

// Close closes every client. Deliveries after Close fail with
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

// Validate checks a redis target configuration.
func (t *Transport) Validate(_ context.Context, config *structpb.Struct) ([]string, error) {
	_, problems := parseConfig(config)
	return problems, nil
}

// Deliver appends one stream entry with XADD and classifies Redis's answer.
// See the package documentation for the entry's fields and the outcomes.
func (t *Transport) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	tgt, problems := parseConfig(req.GetConfig())
	if len(problems) > 0 {
		return brokerkit.Rejected(Name, problems)
	}
	values, problem := entry(req)
	if problem != "" {
		return brokerkit.Result(outcomeRejected, "%s", problem)
	}
	ctx, cancel, timeout := brokerkit.AttemptContext(ctx, req)
	defer cancel()
	where := "Redis " + brokerkit.Redact(tgt.url, false)

	start := time.Now()
	client, err := t.pool.Get(ctx, tgt.url)
	if err != nil {
		if errors.Is(err, connpool.ErrClosed) {
			return brokerkit.WithLatency(brokerkit.Result(outcomeConnError, "connect to %s: %v", where, err), start)
		}
		return brokerkit.WithLatency(classify(ctx, err, timeout, "connect to "+where, tgt.stream), start)
	}
	args := &redis.XAddArgs{Stream: tgt.stream, Values: values}
	if tgt.maxLen > 0 {
		args.MaxLen, args.Approx = tgt.maxLen, true
	}
	if err := client.XAdd(ctx, args).Err(); err != nil {
		return brokerkit.WithLatency(classify(ctx, err, timeout, "XADD to stream "+strconv.Quote(tgt.stream)+" on "+where, tgt.stream), start)
	}
	return brokerkit.WithLatency(brokerkit.Success(), start)
}

// entry lists the stream entry's fields in a fixed order: body (the bytes
// as-is), content-type, then the request's headers and the W3C trace
// context (traceparent, tracestate; when the request carries one), sorted
// by name.
func entry(req *transportv1.DeliveryRequest) ([]any, string) {
	ct := req.GetContentType()
	if ct == "" {
		ct = defaultContentType
	}
	headers := make([][2]string, 0, len(req.GetHeaders())+2)
	for name, value := range req.GetHeaders() {
		if name == bodyField || name == contentTypeField {
			return nil, "request header " + strconv.Quote(name) + " would overwrite the entry's own field of that name"
		}
		headers = append(headers, [2]string{name, value})
	}
	// It replaces a request header of the same name, as in the http transport.
	sdk.TraceHeaders(req, func(name, value string) {
		headers = slices.DeleteFunc(headers, func(h [2]string) bool { return h[0] == name })
		headers = append(headers, [2]string{name, value})
	})
	slices.SortFunc(headers, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	values := make([]any, 0, 4+2*len(headers))
	values = append(values, bodyField, req.GetBody(), contentTypeField, ct)
	for _, h := range headers {
		values = append(values, h[0], h[1])
	}
	return values, ""
}

// dial creates a client for url and checks it with PING, so a refused
// connection or credentials are reported now and not cached. Every
// connection the client makes goes through d, the egress guard.
func dial(ctx context.Context, d *sdk.Dialer, url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opts.Dialer = guardedDialer(d, opts.TLSConfig)
	opts.ClientName = "hookwire"
	// The attempt's deadline bounds every command, dials included.
	opts.ContextTimeoutEnabled = true
	// One retry on a broken pooled connection. XADD is not idempotent, so
	// a retry after a lost reply can append twice; receivers de-duplicate
	// by webhook-id, as they must for any at-least-once delivery.
	opts.MaxRetries = 1
	// A refused dial fails the attempt at once (CONNECTION_ERROR, retried
	// by the control plane) instead of retrying inside it.
	opts.DialerRetries = 1
	client := redis.NewClient(opts)
	// go-redis does not abandon a read when ctx ends, only at deadlines:
	// closing the client makes a PING to a silent server return now.
	stop := context.AfterFunc(ctx, func() { _ = client.Close() })
	err = client.Ping(ctx).Err()
	if !stop() {
		return nil, fmt.Errorf("connect: %w (%v)", ctx.Err(), err)
	}
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return client, nil
}

// classify maps an error from Redis or from reaching it.
func classify(ctx context.Context, err error, timeout time.Duration, what, stream string) *transportv1.DeliveryResult {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return brokerkit.Unanswered(ctx, err, timeout, what)
	}
	switch {
	case redis.IsOOMError(err), redis.HasErrorPrefix(err, "BUSY"), redis.IsLoadingError(err),
		redis.IsTryAgainError(err), redis.IsClusterDownError(err), redis.IsMasterDownError(err),
		redis.IsMaxClientsError(err), redis.IsNoReplicasError(err):
		return brokerkit.Result(outcomeThrottled, "%s: Redis cannot take it now: %v", what, err)
	case redis.IsAuthError(err):
		return brokerkit.Result(outcomeRejected, "%s: Redis refused the credentials in url: %v", what, err)
	case redis.IsPermissionError(err):
		return brokerkit.Result(outcomeRejected, "%s: the user may not run XADD on this key: %v", what, err)
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return brokerkit.Result(outcomeRejected, "%s: key %s exists and is not a stream; choose another stream key", what, strconv.Quote(stream))
	case redis.IsReadOnlyError(err):
		return brokerkit.Result(outcomeRejected, "%s: url points at a read-only replica; point it at the primary: %v", what, err)
	case isMoved(err):
		return brokerkit.Result(outcomeRejected, "%s: url points at a Redis Cluster node that does not own the key; Redis Cluster is not supported: %v", what, err)
	default:
		return brokerkit.Result(outcomeFailed, "%s: %v", what, err)
	}
}

func isMoved(err error) bool {
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	return moved || ask
}

// guardedDialer connects through d and, for rediss:// urls, does the TLS
// handshake go-redis does itself when it dials (a custom dialer replaces
// that too).
func guardedDialer(d *sdk.Dialer, tlsConfig *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil || tlsConfig == nil {
			return nc, err
		}
		tc := tls.Client(nc, tlsConfig.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		return tc, nil
	}
}
