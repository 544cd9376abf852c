package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultMaxInFlight  = 64
	DefaultBackoffBase  = 100 * time.Millisecond
	DefaultBackoffMax   = 15 * time.Second
	DefaultDrainTimeout = 30 * time.Second
	DefaultFlushTimeout = 10 * time.Second

	// defaultHeartbeat is used when Welcome carries no interval.
	defaultHeartbeat = 5 * time.Second
	// handshakeTimeout bounds the wait for Welcome after Hello.
	handshakeTimeout = 15 * time.Second
	// defaultAttemptTimeout bounds an attempt whose request has no timeout
	// and whose lease has no deadline.
	defaultAttemptTimeout = 60 * time.Second
	// maxRecvMsgSize lets large assignment batches through; the control
	// plane should still keep batches well below it.
	maxRecvMsgSize = 32 << 20
	// stableStream is how long a stream must stay up before the reconnect
	// backoff starts over. A stream that the control plane accepts and then
	// ends at once (it cannot record results, say) counts as a failure, so
	// such an agent backs off instead of reconnecting in a tight loop.
	stableStream = 10 * time.Second
	// resultRetryBase and resultRetryMax bound the wait before results the
	// control plane could not record (ResultAck.retry) are sent again: half
	// jittered inside a window that doubles per consecutive refusal.
	resultRetryBase = 250 * time.Millisecond
	resultRetryMax  = 5 * time.Second
)

// TransportSource gives the agent the transports it hosts. agent/pluginhost
// implements it over plugin processes; StaticTransports over in-process
// transports. Its methods are called concurrently, and Transport on the hot
// path (once per assignment), so they must be cheap.
type TransportSource interface {
	// Transport returns the transport with this name, if hosted.
	Transport(name string) (sdk.Transport, bool)
	// Infos describes every hosted transport; it is announced in Hello.
	Infos() []sdk.Info
	// Unavailable returns the hosted transports that cannot deliver right
	// now (a plugin crashed and is being restarted), each with the reason,
	// and a channel closed at the next change. The agent tells the control
	// plane, which stops assigning work for them until they are back, and
	// hands back what it is given for them meanwhile. A source whose
	// transports are always available returns nil, nil.
	Unavailable() (down map[string]string, changed <-chan struct{})
}

// CheckedTransport is an sdk.Transport that can tell a delivery it did not
// attempt at all from a failed one. The agent prefers DeliverIfRunning
// when a transport offers it (pluginhost's transports do).
type CheckedTransport interface {
	// DeliverIfRunning is Deliver, except that when the transport cannot
	// take the request now (its plugin is not running) it returns a nil
	// result and why: the request never left the agent, so the agent hands
	// the delivery back to the control plane without counting an attempt.
	DeliverIfRunning(ctx context.Context, req *transportv1.DeliveryRequest) (*transportv1.DeliveryResult, string)
}

// Config configures an Agent. ServerAddr and Transports are required.
type Config struct {
	// ServerAddr is host:port of the control plane's gRPC listener.
	ServerAddr string
	// APIKey is sent as "authorization: Bearer <APIKey>" on the stream.
	// Empty sends no authorization header.
	APIKey string
	// AgentID identifies the agent across reconnects. Default: the hostname
	// plus a random suffix, fixed for the life of the Agent.
	AgentID string
	// Labels are matched by subscriptions' agent selectors.
	Labels map[string]string
	// MaxInFlight caps concurrent deliveries. Default 64.
	MaxInFlight int
	// Transports hosts the transports. Required.
	Transports TransportSource
	// DialOptions are appended to the agent's own (plaintext credentials,
	// a larger receive limit), so TLS credentials given here win.
	DialOptions []grpc.DialOption
	// Logger receives the agent's logs. Default slog.Default().
	Logger *slog.Logger
	// BackoffBase and BackoffMax bound the reconnect backoff: a random wait
	// inside a window that starts at BackoffBase and doubles per consecutive
	// failure up to BackoffMax. A stream that ended within 10s of being
	// accepted counts as a failure too. Defaults 100ms and 15s.
	BackoffBase, BackoffMax time.Duration
	// DrainTimeout is how long a drain waits for in-flight deliveries before
	// cancelling them. Default 30s.
	DrainTimeout time.Duration
	// FlushTimeout is how long a drain then waits for the control plane to
	// acknowledge the remaining results (reconnecting if needed). Unacked
	// results are dropped; their leases expire and the control plane retries
	// the deliveries. Default 10s.
	FlushTimeout time.Duration
	// Version is the agent's release version, announced in Hello.
	Version string
	// TracerProvider, if set (and not a no-op provider), gives each
	// attempt a "send <event type>" span around the transport call, a
	// child of the control plane's "deliver" span, and passes its context
	// to the transport. Nil: no spans, at no cost; a trace context the
	// control plane assigned is still passed to the transport as it is.
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() (Config, error) {
	if c.ServerAddr == "" {
		return c, errors.New("agent config: ServerAddr is required")
	}
	if c.Transports == nil {
		return c, errors.New("agent config: Transports is required")
	}
	if c.MaxInFlight < 0 {
		return c, fmt.Errorf("agent config: MaxInFlight %d is negative", c.MaxInFlight)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxInFlight > 1<<20 {
		return c, fmt.Errorf("agent config: MaxInFlight %d is above the limit of %d", c.MaxInFlight, 1<<20)
	}
	if c.AgentID == "" {
		id, err := defaultAgentID()
		if err != nil {
			return c, err
		}
		c.AgentID = id
	}
	c.Labels = maps.Clone(c.Labels)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.FlushTimeout <= 0 {
		c.FlushTimeout = DefaultFlushTimeout
	}
	return c, nil
}

func defaultAgentID() (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "agent"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("agent config: generate agent id: %w", err)
	}
	return host + "-" + hex.EncodeToString(b[:]), nil
}
