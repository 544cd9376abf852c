package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/hookwire/hookwire/internal/hclogslog"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/hookwire/hookwire/plugins/sdk"
)

// Spec says how to run one transport plugin.
type Spec struct {
	// Name is the transport name; the plugin must describe itself with it.
	Name string
	// Command is the executable and its arguments, e.g.
	// []string{os.Executable(), "plugin", "http"} for a built-in.
	Command []string
	// SHA256 optionally pins the executable (hex). A binary whose checksum
	// differs is refused, at start and at every restart.
	SHA256 string
	// Env holds extra environment variables ("KEY=VALUE") for the plugin
	// process. The plugin inherits the agent's environment; a variable set
	// here wins over the agent's variable of the same name.
	Env []string
}

// Restart backoff defaults (see WithRestartBackoff).
const (
	DefaultRestartMin = 100 * time.Millisecond
	DefaultRestartMax = 5 * time.Second
)

// Option tunes a Host.
type Option func(*options)

type options struct {
	minBackoff   time.Duration
	maxBackoff   time.Duration
	startTimeout time.Duration
}

// WithRestartBackoff sets how a crashed plugin is restarted. A plugin that
// had been running for longer than max is restarted at once (a single
// crash should cost no more than the process start). One that crashes
// again sooner (a crash loop), or whose restart fails, waits min before
// the next try, doubling each time up to max. Defaults: 100ms and 5s.
func WithRestartBackoff(min, max time.Duration) Option {
	return func(o *options) {
		o.minBackoff = min
		o.maxBackoff = max
	}
}

// WithStartTimeout bounds how long a plugin may take to start and describe
// itself. Default: 30s.
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) { o.startTimeout = d }
}

// Host runs transport plugins for an agent. Create it with New, start
// plugins with Start, and stop everything with Close.
type Host struct {
	logger *slog.Logger
	opts   options

	ctx    context.Context // ends at Close; bounds supervisors and restarts
	cancel context.CancelFunc
	wg     sync.WaitGroup // supervisors

	mu        sync.Mutex
	instances map[string]*instance
	closed    bool
	// changed is closed (and replaced) whenever a plugin goes down or
	// comes back; see Unavailable.
	changed chan struct{}

	restarts atomic.Uint64
}

// Restarts counts plugin processes that exited unexpectedly and were
// restarted (or are being restarted).
func (h *Host) Restarts() uint64 { return h.restarts.Load() }

// New returns a Host that logs to logger. go-plugin's and the plugins' own
// hclog output is relayed at warn level and above; whatever a plugin writes
// to os.Stderr after sdk.Serve is relayed as warn records, one per line.
func New(logger *slog.Logger, opts ...Option) *Host {
	o := options{minBackoff: DefaultRestartMin, maxBackoff: DefaultRestartMax, startTimeout: 30 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.minBackoff <= 0 {
		o.minBackoff = time.Millisecond
	}
	o.maxBackoff = max(o.maxBackoff, o.minBackoff)
	ctx, cancel := context.WithCancel(context.Background())
	return &Host{
		logger:    logger,
		opts:      o,
		ctx:       ctx,
		cancel:    cancel,
		instances: make(map[string]*instance),
		changed:   make(chan struct{}),
	}
}

// Start launches every plugin in specs, checks that each describes itself
// with its spec's name and speaks a common API version, and from then on
// keeps them running. ctx bounds the start only; the plugins run until
// Close. If any plugin fails to start, the ones this call launched are
// stopped and the error says which plugin failed and why.
func (h *Host) Start(ctx context.Context, specs []Spec) error {
	h.mu.Lock()
	closed := h.closed
	existing := make(map[string]bool, len(h.instances))
	for name := range h.instances {
		existing[name] = true
	}
	h.mu.Unlock()
	if closed {
		return errors.New("start transport plugins: host is closed")
	}

	checksums := make([][]byte, len(specs))
	for i, s := range specs {
		sum, err := checkSpec(s, existing)
		if err != nil {
			return err
		}
		existing[s.Name] = true
		checksums[i] = sum
	}

	started := make([]*instance, 0, len(specs))
	for i, s := range specs {
		in := &instance{host: h, spec: s, checksum: checksums[i]}
		r, err := in.launch(ctx)
		if err != nil {
			for _, in := range started {
				in.stop(in.cur.Load())
			}
			return fmt.Errorf("start transport plugin %q: %w", s.Name, err)
		}
		in.setRunning(r)
		started = append(started, in)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		for _, in := range started {
			in.stop(in.cur.Load())
		}
		return errors.New("start transport plugins: host was closed while starting")
	}
	for _, in := range started {
		h.instances[in.spec.Name] = in
		h.wg.Add(1)
		go in.supervise(in.cur.Load())
		h.logger.Info("transport plugin started", "plugin", in.spec.Name, "version", in.Info().Version, "command", in.spec.Command[0])
	}
	return nil
}

func checkSpec(s Spec, existing map[string]bool) ([]byte, error) {
	if s.Name == "" {
		return nil, fmt.Errorf("transport plugin spec with command %q has no name", s.Command)
	}
	if existing[s.Name] {
		return nil, fmt.Errorf("transport plugin %q is configured twice", s.Name)
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return nil, fmt.Errorf("transport plugin %q has no command to run", s.Name)
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("transport plugin %q: environment entry %q is not KEY=VALUE", s.Name, kv)
		}
	}
	if s.SHA256 == "" {
		return nil, nil
	}
	sum, err := decodePin(s.SHA256)
	if err != nil {
		return nil, fmt.Errorf("transport plugin %q: sha256 %w", s.Name, err)
	}
	return sum, nil
}

// decodePin decodes a hex SHA-256 checksum (surrounding space ignored).
func decodePin(pin string) ([]byte, error) {
	sum, err := hex.DecodeString(strings.TrimSpace(pin))
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("%q is not a hex SHA-256 checksum (64 hex digits, as printed by sha256sum)", pin)
	}
	return sum, nil
}

// Transport returns the named plugin's transport. The value stays valid for
// the Host's life, across plugin restarts: while the plugin is down its
// Deliver returns OUTCOME_CONNECTION_ERROR immediately, and its
// DeliverIfRunning returns no result and says why, so that the caller can
// hand the delivery back instead of counting an attempt that never left
// the agent.
func (h *Host) Transport(name string) (sdk.Transport, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	in, ok := h.instances[name]
	if !ok {
		return nil, false
	}
	return in, true
}

// Unavailable returns the started plugins that cannot deliver now (they
// crashed and are being restarted, or the Host is closed), each with the
// reason, and a channel that is closed at the next change of any plugin's
// availability. The map is nil when every plugin is running.
func (h *Host) Unavailable() (map[string]string, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var down map[string]string
	for name, in := range h.instances {
		if in.cur.Load() != nil {
			continue
		}
		if down == nil {
			down = make(map[string]string)
		}
		down[name] = fmt.Sprintf("transport plugin %q %s", name, in.downReason())
	}
	return down, h.changed
}

// notify wakes the callers of Unavailable waiting for a change.
func (h *Host) notify() {
	h.mu.Lock()
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

// Infos describes every started plugin, sorted by name, as of its latest
// (re)start.
func (h *Host) Infos() []sdk.Info {
	h.mu.Lock()
	infos := make([]sdk.Info, 0, len(h.instances))
	for _, in := range h.instances {
		infos = append(infos, in.Info())
	}
	h.mu.Unlock()
	slices.SortFunc(infos, func(a, b sdk.Info) int { return strings.Compare(a.Name, b.Name) })
	return infos
}

// Close stops every plugin process and every goroutine of the Host, and
// waits for them. Deliveries still in flight return
// OUTCOME_CONNECTION_ERROR. Close is idempotent.
func (h *Host) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

// clientConfig is the go-plugin configuration for one launch.
func (h *Host) clientConfig(s Spec, checksum []byte) *plugin.ClientConfig {
	cmd := exec.Command(s.Command[0], s.Command[1:]...)
	// go-plugin would append the agent's environment after cmd.Env, and the
	// last value of a variable wins; so the agent's environment goes first
	// here and go-plugin is told not to add it again.
	cmd.Env = append(os.Environ(), s.Env...)
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.VersionedPlugins(nil),
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Managed:          true,
		StartTimeout:     h.opts.startTimeout,
		Logger:           hclogslog.New(h.logger.With("plugin", s.Name), "", hclogslog.Options{NameKey: "logger", Level: hclog.Warn}),
		SyncStderr:       &stderrLogger{logger: h.logger.With("plugin", s.Name)},
	}
	if checksum != nil {
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: checksum, Hash: sha256.New()}
	}
	return cfg
}
