package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

// instance is one configured plugin: the stable sdk.Transport the agent
// holds, and the supervisor of whichever process currently serves it.
type instance struct {
	host     *Host
	spec     Spec
	checksum []byte

	cur atomic.Pointer[running] // nil while the plugin is down

	mu      sync.Mutex
	info    sdk.Info
	downErr string // why the plugin is down, for immediate results
}

// running is one live plugin process.
type running struct {
	client    *plugin.Client
	transport *sdk.Client
	info      sdk.Info
	started   time.Time
}

var _ sdk.Transport = (*instance)(nil)

// Describe returns what the plugin reported at its latest start; it does
// not need the process to be up.
func (in *instance) Describe(context.Context) (sdk.Info, error) {
	return in.Info(), nil
}

func (in *instance) Info() sdk.Info {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.info
}

// Validate asks the running plugin; it fails while the plugin is down.
func (in *instance) Validate(ctx context.Context, config *structpb.Struct) ([]string, error) {
	r := in.cur.Load()
	if r == nil {
		return nil, fmt.Errorf("validate with transport plugin %q: %s", in.spec.Name, in.downReason())
	}
	problems, err := r.transport.Validate(ctx, config)
	if err != nil {
		return nil, fmt.Errorf("validate with transport plugin %q: %w", in.spec.Name, err)
	}
	return problems, nil
}

// Deliver forwards to the running plugin, or fails at once, retryably, when
// it is down.
func (in *instance) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	res, notAttempted := in.DeliverIfRunning(ctx, req)
	if res == nil {
		return &transportv1.DeliveryResult{
			Outcome: transportv1.Outcome_OUTCOME_CONNECTION_ERROR,
			Error:   notAttempted,
		}
	}
	return res
}

// DeliverIfRunning forwards to the running plugin. When no plugin process
// can take the request (it crashed and is being restarted, or the host is
// closed) it returns a nil result and why: the request never left the
// agent, so it is not an attempt. A delivery that was inside the plugin
// when it died still gets a result (OUTCOME_CONNECTION_ERROR): it may have
// reached the target.
func (in *instance) DeliverIfRunning(ctx context.Context, req *transportv1.DeliveryRequest) (*transportv1.DeliveryResult, string) {
	r := in.cur.Load()
	if r == nil {
		return nil, fmt.Sprintf("transport plugin %q %s", in.spec.Name, in.downReason())
	}
	select {
	case <-r.transport.Done():
		// The process is gone; the supervisor has not marked it down yet.
		return nil, fmt.Sprintf("transport plugin %q is not running: it exited or crashed and is being restarted", in.spec.Name)
	default:
	}
	return r.transport.Deliver(ctx, req), ""
}

func (in *instance) downReason() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.downErr == "" {
		return "is not running"
	}
	return "is not running: " + in.downErr
}

func (in *instance) setRunning(r *running) {
	in.mu.Lock()
	in.info = r.info
	in.downErr = ""
	in.mu.Unlock()
	in.cur.Store(r)
	in.host.notify()
}

func (in *instance) setDown(reason string) {
	in.mu.Lock()
	in.downErr = reason
	in.mu.Unlock()
	in.cur.Store(nil)
	in.host.notify()
}

// launch starts one plugin process and checks who it is.
func (in *instance) launch(ctx context.Context) (*running, error) {
	cfg := in.host.clientConfig(in.spec, in.checksum)
	client := plugin.NewClient(cfg)
	fail := func(err error) (*running, error) {
		client.Kill()
		return nil, err
	}

	proto, err := client.Client()
	if err != nil {
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return fail(fmt.Errorf("binary %s does not match the pinned sha256 %s; refusing to run it (update the pin if the binary was replaced on purpose)",
				cfg.Cmd.Path, in.spec.SHA256))
		}
		return fail(fmt.Errorf("launch %s: %w", cfg.Cmd.Path, err))
	}
	raw, err := proto.Dispense(sdk.PluginName)
	if err != nil {
		return fail(fmt.Errorf("dispense %q from %s: %w", sdk.PluginName, cfg.Cmd.Path, err))
	}
	t, ok := raw.(*sdk.Client)
	if !ok {
		return fail(fmt.Errorf("dispense %q from %s: got %T, want *sdk.Client", sdk.PluginName, cfg.Cmd.Path, raw))
	}

	dctx, cancel := context.WithTimeout(ctx, in.host.opts.startTimeout)
	info, err := t.Describe(dctx)
	cancel()
	if err != nil {
		_ = t.Close()
		return fail(err)
	}
	if info.Name != in.spec.Name {
		_ = t.Close()
		return fail(fmt.Errorf("%s describes itself as transport %q, but it is configured as %q; fix the plugin's name or command",
			cfg.Cmd.Path, info.Name, in.spec.Name))
	}
	if v := uint32(client.NegotiatedVersion()); len(info.APIVersions) > 0 && !slices.Contains(info.APIVersions, v) {
		_ = t.Close()
		return fail(fmt.Errorf("%s negotiated transport API version %d but implements %v; rebuild it with a matching SDK",
			cfg.Cmd.Path, v, info.APIVersions))
	}
	return &running{client: client, transport: t, info: info, started: time.Now()}, nil
}

// stop ends a running process (if any) and waits for go-plugin's goroutines.
func (in *instance) stop(r *running) {
	if r == nil {
		return
	}
	_ = r.transport.Close()
	r.client.Kill()
}

// supervise watches the running process and restarts it when it exits,
// until the host closes. It owns r and every process it starts.
//
// A plugin that had run stably (longer than the maximum backoff) is
// restarted at once: a single crash costs only the process start. One that
// keeps crashing soon after starting, or whose restart fails, waits the
// minimum backoff, doubling up to the maximum, so a crash loop costs little.
func (in *instance) supervise(r *running) {
	h := in.host
	defer h.wg.Done()
	var delay time.Duration // before the next restart; 0: at once
	for {
		select {
		case <-h.ctx.Done():
			in.setDown("the agent is shutting down")
			in.stop(r)
			return
		case <-r.transport.Done():
		}

		uptime := time.Since(r.started)
		in.setDown("it exited or crashed and is being restarted")
		in.stop(r)
		if uptime > h.opts.maxBackoff {
			delay = 0 // it had been stable: restart at once
		}
		h.restarts.Add(1)
		h.logger.Warn("transport plugin exited unexpectedly; restarting",
			"plugin", in.spec.Name, "uptime", uptime.Round(time.Millisecond), "restart_in", delay)

		for {
			if delay > 0 && !sleep(h.ctx, delay) {
				return
			}
			delay = min(max(delay*2, h.opts.minBackoff), h.opts.maxBackoff)
			nr, err := in.launch(h.ctx)
			if err == nil {
				r = nr
				in.setRunning(nr)
				h.logger.Info("transport plugin restarted", "plugin", in.spec.Name, "version", nr.info.Version)
				break
			}
			if h.ctx.Err() != nil {
				in.setDown("the agent is shutting down")
				return
			}
			in.setDown("restarting it failed: " + err.Error())
			h.logger.Warn("transport plugin restart failed", "plugin", in.spec.Name, "error", err, "retry_in", delay)
		}
	}
}

// sleep waits d or until ctx ends; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
