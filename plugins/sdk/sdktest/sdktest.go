package sdktest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

// Defaults for Options.
const (
	DefaultConcurrency = 50
	DefaultMaxDuration = 10 * time.Second
)

// shortTimeout is the attempt timeout of the unresponsive-target checks.
const shortTimeout = 300 * time.Millisecond

// Options tell Run how to exercise a transport.
type Options struct {
	// Target returns a fresh receiver the test controls: a valid target
	// configuration pointing at it and a way to see what arrived.
	// Required. It is called once per check that delivers; register any
	// cleanup with t.Cleanup.
	Target func(t *testing.T) Receiver
	// InvalidConfig is a target configuration the transport must refuse:
	// Validate must report problems and Deliver must return REJECTED.
	// Optional.
	InvalidConfig *structpb.Struct
	// Unresponsive returns the configuration of a target that accepts a
	// delivery but never answers (a server that reads the request and
	// hangs), to check that timeouts and cancellation end the attempt.
	// Optional; leave it nil for transports that cannot hang.
	Unresponsive func(t *testing.T) *structpb.Struct
	// Concurrency is how many deliveries the concurrency check runs at
	// once. Default DefaultConcurrency.
	Concurrency int
	// MaxDuration bounds every attempt against a working receiver, and how
	// much longer than its timeout an attempt against an unresponsive one
	// may take. Default DefaultMaxDuration.
	MaxDuration time.Duration
}

// Receiver is a target the test controls.
type Receiver struct {
	// Config is a valid target configuration that delivers to the receiver.
	Config *structpb.Struct
	// Arrived returns the deliveries that reached the receiver so far, in
	// any order, once at least n have arrived; it returns an error if ctx
	// ends first.
	Arrived func(ctx context.Context, n int) ([]Delivery, error)
}

// Delivery is what one delivery looked like when it reached the receiver.
type Delivery struct {
	// Body is the payload exactly as received.
	Body []byte
	// Headers are the headers (or message attributes) as received. Names
	// are compared case-insensitively.
	Headers map[string]string
	// ContentType is the content type the receiver saw; leave it empty if
	// the transport does not carry one.
	ContentType string
}

// header returns the value of the header name, compared case-insensitively.
func (d Delivery) header(name string) (string, bool) {
	for k, v := range d.Headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// Recorder collects deliveries reported by a receiver's callback and
// implements Receiver.Arrived. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	got     []Delivery
	changed chan struct{} // closed and replaced on every Add
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{changed: make(chan struct{})}
}

// Add records one delivery that arrived.
func (r *Recorder) Add(d Delivery) {
	r.mu.Lock()
	r.got = append(r.got, d)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Arrived returns everything recorded once at least n deliveries have
// arrived, or an error saying how many did if ctx ends first.
func (r *Recorder) Arrived(ctx context.Context, n int) ([]Delivery, error) {
	for {
		r.mu.Lock()
		if len(r.got) >= n {
			out := append([]Delivery(nil), r.got...)
			r.mu.Unlock()
			return out, nil
		}
		have, changed := len(r.got), r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d deliveries arrived before %w", have, n, ctx.Err())
		}
	}
}

// Run checks the transport newTransport returns against the contract of
// plugins/sdk, calling it directly (subtest "direct") and through the
// go-plugin gRPC boundary (subtest "grpc"). Each mode gets a transport of
// its own. See the package documentation for the list of checks.
func Run(t *testing.T, newTransport func() sdk.Transport, opts Options) {
	t.Helper()
	if opts.Target == nil {
		t.Fatal("sdktest.Run: Options.Target is required: return a valid configuration pointing at a receiver your test controls")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.MaxDuration <= 0 {
		opts.MaxDuration = DefaultMaxDuration
	}
	t.Run("direct", func(t *testing.T) {
		s := &suite{tr: direct{newTransport()}, opts: opts}
		s.run(t)
	})
	t.Run("grpc", func(t *testing.T) {
		s := &suite{tr: Connect(t, newTransport()), opts: opts}
		s.run(t)
	})
}

// panicked starts the error of a result whose Deliver panicked, in the
// SDK's plugin server and in direct calls alike.
const panicked = "transport plugin panicked while delivering"

// direct calls a transport the way the SDK's plugin server does: with the
// request's timeout as the context deadline, and a panic turned into a test
// failure instead of a crash.
type direct struct{ sdk.Transport }

func (d direct) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) (res *transportv1.DeliveryResult) {
	timeout := sdk.DefaultTimeout
	if t := req.GetTimeout().AsDuration(); req.GetTimeout() != nil && t > 0 {
		timeout = t
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			res = &transportv1.DeliveryResult{
				Outcome: transportv1.Outcome_OUTCOME_FAILED,
				Error:   fmt.Sprintf("%s: %v", panicked, r),
			}
		}
	}()
	return d.Transport.Deliver(ctx, req)
}

func (d direct) Validate(ctx context.Context, cfg *structpb.Struct) (problems []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("transport panicked in Validate: %v", r)
		}
	}()
	return d.Transport.Validate(ctx, cfg)
}

// Connect serves impl over go-plugin's in-process gRPC connection and
// returns the host-side client, closed when the test ends: the transport
// as an agent sees a plugin process, without the process.
func Connect(t *testing.T, impl sdk.Transport) sdk.Transport {
	t.Helper()
	gc, _ := plugin.TestPluginGRPCConn(t, false, sdk.VersionedPlugins(impl)[sdk.APIVersion])
	t.Cleanup(func() { _ = gc.Close() })
	raw, err := gc.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("dispense %s over gRPC: %v", sdk.PluginName, err)
	}
	c, ok := raw.(*sdk.Client)
	if !ok {
		t.Fatalf("dispensed %T over gRPC, want *sdk.Client", raw)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type suite struct {
	tr   sdk.Transport
	opts Options
}

func (s *suite) run(t *testing.T) {
	t.Run("Describe", s.describe)
	t.Run("Validate", s.validate)
	t.Run("Deliver", s.deliver)
	t.Run("DeliverConcurrently", s.deliverConcurrently)
	t.Run("ExpiredDeadline", s.expiredDeadline)
	if s.opts.Unresponsive != nil {
		t.Run("Timeout", s.timeout)
		t.Run("Cancel", s.cancel)
	}
	if s.opts.InvalidConfig != nil {
		t.Run("RejectsInvalidConfig", s.rejectsInvalidConfig)
	}
	t.Run("MissingConfigDoesNotPanic", s.missingConfig)
}

// validName is the rule subscriptions apply to transport names.
var validName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

func (s *suite) describe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.MaxDuration)
	defer cancel()
	info, err := s.tr.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if !validName.MatchString(info.Name) {
		t.Errorf("Describe name %q: subscriptions can only name a transport with a lower-case letter followed by up to 63 lower-case letters, digits, '-' or '_'", info.Name)
	}
	if info.Version == "" {
		t.Error("Describe returned no version: set Info.Version to the plugin's release version")
	}
	found := false
	for _, v := range info.APIVersions {
		found = found || v == sdk.APIVersion
	}
	if !found {
		t.Errorf("Describe API versions %v do not include %d: set Info.APIVersions to []uint32{sdk.APIVersion}", info.APIVersions, sdk.APIVersion)
	}
	var schema map[string]any
	if err := json.Unmarshal([]byte(info.TargetSchema), &schema); err != nil {
		t.Errorf("Describe target schema is not a JSON object (%v): %q", err, info.TargetSchema)
		return
	}
	checkConfigFields(t, info)
}

// checkConfigFields checks that Info.ConfigFields agrees with the target
// schema: every field is a property of it, listed once, and every property
// the schema marks "writeOnly" (a secret) is a secret field, so the
// control plane seals it.
func checkConfigFields(t *testing.T, info sdk.Info) {
	t.Helper()
	fromSchema, err := sdk.ConfigFieldsFromSchema(info.TargetSchema)
	if err != nil {
		t.Errorf("Describe target schema: %v", err)
		return
	}
	inSchema := map[string]sdk.ConfigField{}
	for _, f := range fromSchema {
		inSchema[f.Name] = f
	}
	seen := map[string]bool{}
	for _, f := range info.ConfigFields {
		if seen[f.Name] {
			t.Errorf("Describe lists config field %q twice", f.Name)
		}
		seen[f.Name] = true
		if _, ok := inSchema[f.Name]; !ok && len(inSchema) > 0 {
			t.Errorf("Describe config field %q is not a property of the target schema; describe the same fields in both (sdk.ConfigFieldsFromSchema derives one from the other)", f.Name)
		}
	}
	for _, f := range fromSchema {
		if !f.Secret {
			continue
		}
		declared := false
		for _, c := range info.ConfigFields {
			declared = declared || (c.Name == f.Name && c.Secret)
		}
		if !declared {
			t.Errorf("target schema marks %q writeOnly (a secret) but Info.ConfigFields does not mark it secret, so the control plane would store and show it in clear; set ConfigFields: sdk.MustConfigFields(schema)", f.Name)
		}
	}
}

func (s *suite) validate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.MaxDuration)
	defer cancel()
	rcv := s.opts.Target(t)
	problems, err := s.tr.Validate(ctx, rcv.Config)
	if err != nil {
		t.Errorf("Validate(valid config) returned an error; report problems instead, and errors only when validation itself failed: %v", err)
	}
	if len(problems) > 0 {
		t.Errorf("Validate(valid config %v) = %q, want no problems", rcv.Config, problems)
	}
	if s.opts.InvalidConfig != nil {
		problems, err := s.tr.Validate(ctx, s.opts.InvalidConfig)
		if err != nil {
			t.Errorf("Validate(invalid config) returned an error; return the problems instead: %v", err)
		}
		if len(problems) == 0 {
			t.Errorf("Validate(invalid config %v) reported no problems", s.opts.InvalidConfig)
		}
		for i, p := range problems {
			if strings.TrimSpace(p) == "" {
				t.Errorf("Validate(invalid config) problem %d is empty; each problem should tell the user what to fix", i)
			}
		}
	}
	for _, cfg := range []*structpb.Struct{nil, {}} {
		if _, err := s.tr.Validate(ctx, cfg); err != nil {
			t.Errorf("Validate(%v) returned an error; report missing fields as problems: %v", cfg, err)
		}
	}
}

// body is a JSON document that any re-encoding would change: spacing,
// escapes, key order, number formatting and a trailing newline.
func body(id string) []byte {
	return []byte(`{"zeta": 1.50, "id":"` + id + `",  "text": "h\u00e9llo \"wörld\" ☃ <&>", "list":[ 1,2 ],"n":1e3}` + "\n")
}

// request returns a signed delivery request for cfg, the way the control
// plane prepares one.
func request(cfg *structpb.Struct, id string, timeout time.Duration) *transportv1.DeliveryRequest {
	b := body(id)
	ts := "1700000000"
	mac := hmac.New(sha256.New, []byte("sdktest-signing-key"))
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(b)
	return &transportv1.DeliveryRequest{
		Config:      cfg,
		Body:        b,
		ContentType: "application/json",
		Headers: map[string]string{
			"webhook-id":        id,
			"webhook-timestamp": ts,
			"webhook-signature": "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		},
		Timeout:    durationpb.New(timeout),
		DeliveryId: id,
		EventType:  "sdktest.delivered",
	}
}

// checkResult fails the test for results the host cannot classify.
func checkResult(t *testing.T, what string, res *transportv1.DeliveryResult) {
	t.Helper()
	if res == nil {
		t.Errorf("%s: Deliver returned a nil result; every attempt needs an outcome", what)
		return
	}
	if res.GetOutcome() == transportv1.Outcome_OUTCOME_UNSPECIFIED {
		t.Errorf("%s: outcome is OUTCOME_UNSPECIFIED (error %q); classify every attempt as SUCCESS, GONE, THROTTLED, TIMEOUT, CONNECTION_ERROR, FAILED or REJECTED", what, res.GetError())
	}
	if strings.Contains(res.GetError(), panicked) {
		t.Errorf("%s: Deliver panicked: %s", what, res.GetError())
	}
}

func (s *suite) deliverOne(t *testing.T, ctx context.Context, what string, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	t.Helper()
	res := s.tr.Deliver(ctx, req)
	checkResult(t, what, res)
	return res
}

func (s *suite) deliver(t *testing.T) {
	rcv := s.opts.Target(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.opts.MaxDuration)
	defer cancel()
	req := request(rcv.Config, "msg_sdktest_single", s.opts.MaxDuration)
	res := s.deliverOne(t, ctx, "valid delivery", req)
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("Deliver(valid request) = %v %q, want SUCCESS", res.GetOutcome(), res.GetError())
	}
	if res.GetError() != "" {
		t.Errorf("a SUCCESS result carries an error %q", res.GetError())
	}
	got, err := rcv.Arrived(ctx, 1)
	if err != nil {
		t.Fatalf("after SUCCESS, the delivery did not reach the receiver: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("one delivery arrived %d times", len(got))
	}
	checkArrived(t, req, got[0])
}

// checkArrived compares what the receiver saw with the request.
func checkArrived(t *testing.T, req *transportv1.DeliveryRequest, d Delivery) {
	t.Helper()
	if !bytes.Equal(d.Body, req.GetBody()) {
		t.Errorf("delivery %s: body arrived as %q, want byte-for-byte %q", req.GetDeliveryId(), d.Body, req.GetBody())
	}
	for name, want := range req.GetHeaders() {
		got, ok := d.header(name)
		if !ok {
			t.Errorf("delivery %s: header %s is missing at the receiver; it carries the control plane's signature", req.GetDeliveryId(), name)
		} else if got != want {
			t.Errorf("delivery %s: header %s arrived as %q, want %q exactly", req.GetDeliveryId(), name, got, want)
		}
	}
	if d.ContentType != "" && d.ContentType != req.GetContentType() {
		t.Errorf("delivery %s: content type arrived as %q, want %q", req.GetDeliveryId(), d.ContentType, req.GetContentType())
	}
}

func (s *suite) deliverConcurrently(t *testing.T) {
	rcv := s.opts.Target(t)
	n := s.opts.Concurrency
	ctx, cancel := context.WithTimeout(context.Background(), 3*s.opts.MaxDuration)
	defer cancel()

	reqs := make(map[string]*transportv1.DeliveryRequest, n)
	results := make([]*transportv1.DeliveryResult, n)
	var wg sync.WaitGroup
	for i := range n {
		req := request(rcv.Config, fmt.Sprintf("msg_sdktest_%03d", i), s.opts.MaxDuration)
		reqs[req.GetDeliveryId()] = req
		wg.Go(func() { results[i] = s.tr.Deliver(ctx, req) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("%d concurrent deliveries did not all return within %v", n, 3*s.opts.MaxDuration)
	}
	for i, res := range results {
		checkResult(t, fmt.Sprintf("concurrent delivery %d", i), res)
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
			t.Errorf("concurrent delivery %d = %v %q, want SUCCESS", i, res.GetOutcome(), res.GetError())
		}
	}
	if t.Failed() {
		return
	}

	got, err := rcv.Arrived(ctx, n)
	if err != nil {
		t.Fatalf("after %d concurrent SUCCESS results: %v", n, err)
	}
	seen := make(map[string]int, n)
	for _, d := range got {
		id, _ := d.header("webhook-id")
		req, ok := reqs[id]
		if !ok {
			t.Errorf("a delivery arrived with webhook-id %q, which was never sent", id)
			continue
		}
		seen[id]++
		checkArrived(t, req, d)
	}
	for id := range reqs {
		if seen[id] != 1 {
			t.Errorf("delivery %s arrived %d times, want once", id, seen[id])
		}
	}
}

func (s *suite) expiredDeadline(t *testing.T) {
	rcv := s.opts.Target(t)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	req := request(rcv.Config, "msg_sdktest_expired", time.Millisecond)
	start := time.Now()
	res := s.deliverOne(t, ctx, "delivery past its deadline", req)
	if took := time.Since(start); took > s.opts.MaxDuration {
		t.Errorf("a delivery whose deadline had passed took %v to return", took)
	}
	if res.GetOutcome() == transportv1.Outcome_OUTCOME_SUCCESS {
		t.Errorf("a delivery whose deadline had passed was reported as SUCCESS; check ctx.Err() before delivering (the host would count it as a timeout and retry, making a duplicate)")
	}
}

// failing reports whether an outcome is a failure the host retries or
// records, as opposed to success or no outcome at all.
func failing(o transportv1.Outcome) bool {
	return o != transportv1.Outcome_OUTCOME_SUCCESS && o != transportv1.Outcome_OUTCOME_UNSPECIFIED
}

func (s *suite) timeout(t *testing.T) {
	cfg := s.opts.Unresponsive(t)
	req := request(cfg, "msg_sdktest_timeout", shortTimeout)
	start := time.Now()
	res := s.awaitDeliver(t, context.Background(), req, shortTimeout+s.opts.MaxDuration)
	took := time.Since(start)
	checkResult(t, "delivery to an unresponsive target", res)
	if !failing(res.GetOutcome()) {
		t.Errorf("delivery to an unresponsive target = %v %q, want TIMEOUT or another failure", res.GetOutcome(), res.GetError())
	}
	if took > shortTimeout+s.opts.MaxDuration {
		t.Errorf("a delivery with timeout %v took %v", shortTimeout, took)
	}
}

func (s *suite) cancel(t *testing.T) {
	cfg := s.opts.Unresponsive(t)
	// The attempt's own timeout is far away: only the cancellation can end
	// it within the bound.
	req := request(cfg, "msg_sdktest_cancel", 3*s.opts.MaxDuration)
	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(shortTimeout, cancel)
	defer timer.Stop()
	defer cancel()
	res := s.awaitDeliver(t, ctx, req, shortTimeout+s.opts.MaxDuration)
	checkResult(t, "cancelled delivery", res)
	if !failing(res.GetOutcome()) {
		t.Errorf("a delivery cancelled before the target answered = %v %q, want a failure outcome", res.GetOutcome(), res.GetError())
	}
}

// awaitDeliver runs Deliver and fails the test if it has not returned
// within bound (it is left to finish on its own).
func (s *suite) awaitDeliver(t *testing.T, ctx context.Context, req *transportv1.DeliveryRequest, bound time.Duration) *transportv1.DeliveryResult {
	t.Helper()
	done := make(chan *transportv1.DeliveryResult, 1)
	go func() { done <- s.tr.Deliver(ctx, req) }()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case res := <-done:
		return res
	case <-timer.C:
		t.Fatalf("Deliver(%s) hung: no result within %v; honour ctx's deadline and cancellation", req.GetDeliveryId(), bound)
		return nil
	}
}

func (s *suite) rejectsInvalidConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.MaxDuration)
	defer cancel()
	res := s.deliverOne(t, ctx, "delivery with the invalid config", request(s.opts.InvalidConfig, "msg_sdktest_invalid", s.opts.MaxDuration))
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_REJECTED {
		t.Errorf("Deliver(invalid config) = %v %q, want REJECTED (re-check the configuration in Deliver)", res.GetOutcome(), res.GetError())
	}
	if res.GetError() == "" {
		t.Error("Deliver(invalid config) gave no error message; say what is wrong with the configuration")
	}
}

func (s *suite) missingConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.MaxDuration)
	defer cancel()
	for _, cfg := range []*structpb.Struct{nil, {}} {
		s.deliverOne(t, ctx, fmt.Sprintf("delivery with config %v", cfg), request(cfg, "msg_sdktest_noconfig", s.opts.MaxDuration))
	}
}
