package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

// serveEnv makes a re-executed test binary call sdk.Serve (see
// TestServeRefusesMalformedEgressPolicy).
const serveEnv = "HOOKWIRE_SDK_TEST_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) != "" {
		sdk.Serve(&fakeTransport{deliver: echo})
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// fakeTransport lets each test decide what Deliver does.
type fakeTransport struct {
	deliver func(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult
}

func (f *fakeTransport) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "fake", Version: "1.2.3", TargetSchema: `{"type":"object"}`, ConfigFields: []sdk.ConfigField{
		{Name: "url", Type: "string", Required: true, Description: "where"},
		{Name: "token", Type: "string", Secret: true},
	}}, nil
}

func (f *fakeTransport) Validate(_ context.Context, cfg *structpb.Struct) ([]string, error) {
	if _, ok := cfg.GetFields()["url"]; !ok {
		return []string{"url is required"}, nil
	}
	return nil, nil
}

func (f *fakeTransport) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	return f.deliver(ctx, req)
}

func echo(_ context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	return &transportv1.DeliveryResult{
		Outcome:      transportv1.Outcome_OUTCOME_SUCCESS,
		ResponseBody: []byte(req.GetDeliveryId()),
	}
}

// connect serves impl through the real go-plugin gRPC machinery on a local
// socket and returns the host-side client.
func connect(t testing.TB, impl sdk.Transport) (*sdk.Client, *plugin.GRPCServer) {
	t.Helper()
	gc, gs := plugin.TestPluginGRPCConn(t, false, sdk.VersionedPlugins(impl)[sdk.APIVersion])
	// Close asks the server to stop through go-plugin's controller (calling
	// gs.Stop as well would race inside go-plugin).
	t.Cleanup(func() { _ = gc.Close() })
	raw, err := gc.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("dispense %s: %v", sdk.PluginName, err)
	}
	c, ok := raw.(*sdk.Client)
	if !ok {
		t.Fatalf("dispensed %T, want *sdk.Client", raw)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, gs
}

func request(id string) *transportv1.DeliveryRequest {
	return &transportv1.DeliveryRequest{
		DeliveryId: id,
		Body:       []byte(`{"n":1}`),
		Timeout:    durationpb.New(30 * time.Second),
	}
}

func TestDescribeAndValidate(t *testing.T) {
	c, _ := connect(t, &fakeTransport{deliver: echo})
	ctx := context.Background()

	info, err := c.Describe(ctx)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if info.Name != "fake" || info.Version != "1.2.3" || info.TargetSchema != `{"type":"object"}` {
		t.Errorf("describe = %+v", info)
	}
	if got := info.SecretFields(); !slices.Equal(got, []string{"token"}) || len(info.ConfigFields) != 2 || !info.ConfigFields[0].Required || info.ConfigFields[0].Description != "where" {
		t.Errorf("config fields over the plugin protocol = %+v (secret %v), want url (required, described) and token (secret)", info.ConfigFields, got)
	}
	if len(info.APIVersions) != 1 || info.APIVersions[0] != sdk.APIVersion {
		t.Errorf("api versions = %v, want [%d] (the default when the plugin lists none)", info.APIVersions, sdk.APIVersion)
	}

	problems, err := c.Validate(ctx, &structpb.Struct{})
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if len(problems) != 1 || problems[0] != "url is required" {
		t.Errorf("problems = %q", problems)
	}
	good, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1/"})
	if problems, err := c.Validate(ctx, good); err != nil || problems != nil {
		t.Errorf("validate good config = %q, %v", problems, err)
	}
}

// TestDeliverPipelinedOutOfOrder keeps many deliveries in flight on the one
// stream and finishes them newest first: each caller must get its own result
// while the older ones are still pending.
func TestDeliverPipelinedOutOfOrder(t *testing.T) {
	const n = 200
	gates := make(map[string]chan struct{}, n)
	for i := range n {
		gates[fmt.Sprint(i)] = make(chan struct{})
	}
	arrived := make(chan string, n)
	c, _ := connect(t, &fakeTransport{deliver: func(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		arrived <- req.GetDeliveryId()
		select {
		case <-gates[req.GetDeliveryId()]:
		case <-ctx.Done():
			return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_TIMEOUT}
		}
		return echo(ctx, req)
	}})

	results := make([]chan *transportv1.DeliveryResult, n)
	for i := range n {
		results[i] = make(chan *transportv1.DeliveryResult, 1)
		go func() { results[i] <- c.Deliver(context.Background(), request(fmt.Sprint(i))) }()
	}
	for range n {
		<-arrived // every delivery is running in the plugin at the same time
	}
	for i := n - 1; i >= 0; i-- {
		close(gates[fmt.Sprint(i)])
		res := <-results[i]
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS || string(res.GetResponseBody()) != fmt.Sprint(i) {
			t.Fatalf("delivery %d got %v %q, want SUCCESS with its own id", i, res.GetOutcome(), res.GetResponseBody())
		}
	}
}

// TestDeliverConcurrencyIsBounded sends more deliveries than the plugin may
// run at once: the plugin must never run more than MaxConcurrentDeliveries,
// and the rest must wait (not fail) and complete once slots free up.
func TestDeliverConcurrencyIsBounded(t *testing.T) {
	const n = sdk.MaxConcurrentDeliveries + 100
	var running, peak atomic.Int64
	release := make(chan struct{})
	c, _ := connect(t, &fakeTransport{deliver: func(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		now := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		<-release
		return echo(ctx, req)
	}})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range n {
		wg.Go(func() {
			if res := c.Deliver(context.Background(), request(fmt.Sprint(i))); res.GetOutcome() == transportv1.Outcome_OUTCOME_SUCCESS {
				ok.Add(1)
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for running.Load() < sdk.MaxConcurrentDeliveries {
		if time.Now().After(deadline) {
			t.Fatalf("only %d deliveries running after 20s, want %d", running.Load(), sdk.MaxConcurrentDeliveries)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := peak.Load(); got != sdk.MaxConcurrentDeliveries {
		t.Errorf("peak concurrency in the plugin = %d, want %d", got, sdk.MaxConcurrentDeliveries)
	}
	if got := ok.Load(); got != n {
		t.Errorf("%d of %d deliveries succeeded", got, n)
	}
}

func TestDeliverCancelledCallReturnsAndStreamKeepsWorking(t *testing.T) {
	release := make(chan struct{})
	lateDone := make(chan struct{})
	started := make(chan struct{})
	c, _ := connect(t, &fakeTransport{deliver: func(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		if req.GetDeliveryId() == "slow" {
			defer close(lateDone)
			close(started)
			<-release
		}
		return echo(ctx, req)
	}})

	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan *transportv1.DeliveryResult, 1)
	go func() { got <- c.Deliver(ctx, request("slow")) }()
	<-started
	cancel()
	res := <-got
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR || !strings.Contains(res.GetError(), "canceled") {
		t.Errorf("cancelled delivery = %v %q, want CONNECTION_ERROR mentioning cancellation", res.GetOutcome(), res.GetError())
	}

	// The plugin finishes the abandoned delivery later; its result must be
	// dropped, not handed to someone else.
	close(release)
	<-lateDone
	for i := range 20 {
		id := fmt.Sprint("next-", i)
		res := c.Deliver(context.Background(), request(id))
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS || string(res.GetResponseBody()) != id {
			t.Fatalf("delivery after a cancelled one = %v %q, want SUCCESS %q", res.GetOutcome(), res.GetResponseBody(), id)
		}
	}
}

func TestDeliverDeadlineReachesPluginAndTimesOut(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c, _ := connect(t, &fakeTransport{deliver: func(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		dl, ok := ctx.Deadline()
		if req.GetDeliveryId() == "report" {
			return &transportv1.DeliveryResult{
				Outcome:    transportv1.Outcome_OUTCOME_SUCCESS,
				Error:      fmt.Sprint(ok),
				RetryAfter: durationpb.New(time.Until(dl)),
			}
		}
		<-release // ignores ctx: only the host-side deadline can end the call
		return echo(ctx, req)
	}})

	req := request("report")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	res := c.Deliver(ctx, req)
	cancel()
	if res.GetError() != "true" || res.GetRetryAfter().AsDuration() > 2*time.Second {
		t.Errorf("plugin saw deadline %v (set: %s), want at most 2s", res.GetRetryAfter().AsDuration(), res.GetError())
	}
	if req.GetTimeout().AsDuration() != 30*time.Second {
		t.Errorf("caller's request was modified: timeout %v", req.GetTimeout().AsDuration())
	}

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	res = c.Deliver(ctx, request("stuck"))
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_TIMEOUT {
		t.Errorf("stuck delivery = %v %q, want TIMEOUT", res.GetOutcome(), res.GetError())
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("stuck delivery returned after %v, want about 50ms", elapsed)
	}
}

func TestDeliverPanicBecomesFailedResult(t *testing.T) {
	c, _ := connect(t, &fakeTransport{deliver: func(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		switch req.GetDeliveryId() {
		case "panic":
			panic("boom")
		case "nil":
			return nil
		}
		return echo(ctx, req)
	}})
	ctx := context.Background()
	if res := c.Deliver(ctx, request("panic")); res.GetOutcome() != transportv1.Outcome_OUTCOME_FAILED || !strings.Contains(res.GetError(), "panicked") {
		t.Errorf("panicking delivery = %v %q, want FAILED mentioning the panic", res.GetOutcome(), res.GetError())
	}
	if res := c.Deliver(ctx, request("nil")); res.GetOutcome() != transportv1.Outcome_OUTCOME_FAILED {
		t.Errorf("nil result = %v, want FAILED", res.GetOutcome())
	}
	if res := c.Deliver(ctx, request("ok")); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Errorf("delivery after a panic = %v %q, want SUCCESS", res.GetOutcome(), res.GetError())
	}
}

// TestServerStopFailsPendingDeliveries simulates the plugin going away under
// load: every pending call must come back at once as a retryable connection
// error, and later calls must fail immediately rather than hang.
func TestServerStopFailsPendingDeliveries(t *testing.T) {
	const n = 50
	arrived := make(chan struct{}, n)
	c, gs := connect(t, &fakeTransport{deliver: func(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		arrived <- struct{}{}
		<-ctx.Done()
		return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_TIMEOUT}
	}})
	results := make(chan *transportv1.DeliveryResult, n)
	for i := range n {
		go func() { results <- c.Deliver(context.Background(), request(fmt.Sprint(i))) }()
	}
	for range n {
		<-arrived
	}
	gs.Stop()
	for range n {
		res := <-results
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR || !strings.Contains(res.GetError(), "exited or crashed") {
			t.Fatalf("pending delivery = %v %q, want CONNECTION_ERROR saying the plugin exited or crashed", res.GetOutcome(), res.GetError())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res := c.Deliver(ctx, request("after")); res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR {
		t.Errorf("delivery after the plugin stopped = %v %q, want CONNECTION_ERROR", res.GetOutcome(), res.GetError())
	}
}

// TestClientContextEndFailsPending is what happens when go-plugin notices the
// plugin process exited: it cancels the client's context.
func TestClientContextEndFailsPending(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	fake := &fakeTransport{deliver: func(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return echo(ctx, req)
	}}
	conn, srv := plugin.TestGRPCConn(t, func(s *grpc.Server) {
		transportv1.RegisterTransportServiceServer(s, sdk.NewServer(fake))
	})
	t.Cleanup(func() {
		close(release)
		_ = conn.Close()
		srv.Stop()
	})
	pluginAlive, pluginExited := context.WithCancel(context.Background())
	c := sdk.NewClient(pluginAlive, conn)
	t.Cleanup(func() { _ = c.Close() })

	got := make(chan *transportv1.DeliveryResult, 1)
	go func() { got <- c.Deliver(context.Background(), request("x")) }()
	<-arrived
	pluginExited()
	res := <-got
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR || !strings.Contains(res.GetError(), "exited") {
		t.Errorf("pending delivery = %v %q, want CONNECTION_ERROR saying the plugin exited", res.GetOutcome(), res.GetError())
	}
	<-c.Done()
	if res := c.Deliver(context.Background(), request("y")); res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR || !strings.Contains(res.GetError(), "not running") {
		t.Errorf("delivery after exit = %v %q, want immediate CONNECTION_ERROR saying the plugin is not running", res.GetOutcome(), res.GetError())
	}
}

// breakingServer fails its first Deliver stream after receiving `breakAfter`
// requests, then behaves; it counts streams so the test can see that the
// client pipelines on one stream and re-opens exactly one after a break.
type breakingServer struct {
	transportv1.UnimplementedTransportServiceServer
	breakAfter int
	streams    atomic.Int32
}

func (s *breakingServer) Deliver(stream grpc.BidiStreamingServer[transportv1.DeliverRequest, transportv1.DeliverResponse]) error {
	if s.streams.Add(1) == 1 {
		for range s.breakAfter {
			if _, err := stream.Recv(); err != nil {
				return err
			}
		}
		return status.Error(codes.Internal, "stream torn down")
	}
	for {
		in, err := stream.Recv()
		if err != nil {
			return nil
		}
		if err := stream.Send(&transportv1.DeliverResponse{
			RequestId: in.GetRequestId(),
			Result:    echo(stream.Context(), in.GetRequest()),
		}); err != nil {
			return err
		}
	}
}

func TestBrokenStreamFailsPendingAndReopens(t *testing.T) {
	const n = 20
	srv := &breakingServer{breakAfter: n}
	conn, gs := plugin.TestGRPCConn(t, func(s *grpc.Server) { transportv1.RegisterTransportServiceServer(s, srv) })
	t.Cleanup(func() {
		_ = conn.Close()
		gs.Stop()
	})
	c := sdk.NewClient(context.Background(), conn)
	t.Cleanup(func() { _ = c.Close() })

	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range n {
		wg.Go(func() {
			res := c.Deliver(context.Background(), request(fmt.Sprint(i)))
			if res.GetOutcome() == transportv1.Outcome_OUTCOME_CONNECTION_ERROR && strings.Contains(res.GetError(), "stream torn down") {
				failed.Add(1)
			} else {
				t.Errorf("delivery on a broken stream = %v %q, want CONNECTION_ERROR with the cause", res.GetOutcome(), res.GetError())
			}
		})
	}
	wg.Wait()
	if got := srv.streams.Load(); got != 1 {
		t.Errorf("%d concurrent deliveries used %d streams, want 1", n, got)
	}

	res := c.Deliver(context.Background(), request("again"))
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS || string(res.GetResponseBody()) != "again" {
		t.Fatalf("delivery after the stream broke = %v %q, want SUCCESS on a new stream", res.GetOutcome(), res.GetError())
	}
	if got := srv.streams.Load(); got != 2 {
		t.Errorf("streams after re-open = %d, want 2", got)
	}
}

func TestClientAfterClose(t *testing.T) {
	c, _ := connect(t, &fakeTransport{deliver: echo})
	if res := c.Deliver(context.Background(), request("a")); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("delivery = %v %q", res.GetOutcome(), res.GetError())
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if res := c.Deliver(context.Background(), request("b")); res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR {
		t.Errorf("delivery after Close = %v, want CONNECTION_ERROR", res.GetOutcome())
	}
}

func TestServeConfig(t *testing.T) {
	cfg := sdk.ServeConfig(&fakeTransport{deliver: echo})
	if cfg.MagicCookieKey != "HOOKWIRE_PLUGIN" || cfg.MagicCookieValue == "" || cfg.ProtocolVersion != 1 {
		t.Errorf("handshake = %+v", cfg.HandshakeConfig)
	}
	set, ok := cfg.VersionedPlugins[sdk.APIVersion]
	if !ok {
		t.Fatalf("no plugin set for API version %d", sdk.APIVersion)
	}
	p, ok := set[sdk.PluginName].(*sdk.TransportPlugin)
	if !ok || p.Impl == nil {
		t.Fatalf("plugin set %v has no transport implementation under %q", set, sdk.PluginName)
	}
	if err := (&sdk.TransportPlugin{}).GRPCServer(nil, grpc.NewServer()); err == nil {
		t.Error("serving a nil transport succeeded, want an error")
	}
}

// BenchmarkDeliverParallel measures round trips through the real adapters
// and a local socket with a transport that answers at once.
func BenchmarkDeliverParallel(b *testing.B) {
	c, _ := connect(b, &fakeTransport{deliver: func(context.Context, *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS, StatusCode: 200}
	}})
	req := request("bench")
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	var failures atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if res := c.Deliver(ctx, req); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
				failures.Add(1)
			}
		}
	})
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d deliveries failed", f)
	}
}

// TestServeRefusesMalformedEgressPolicy: a plugin given an egress policy it
// cannot read refuses to start, saying why, instead of guarding the wrong
// networks.
func TestServeRefusesMalformedEgressPolicy(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Bounded: a Serve that ignored the policy would serve until killed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), serveEnv+"=1", sdk.EgressEnv+"=intranet",
		sdk.Handshake.MagicCookieKey+"="+sdk.Handshake.MagicCookieValue)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 ||
		!strings.Contains(string(out), sdk.EgressEnv) || !strings.Contains(string(out), `"intranet"`) {
		t.Errorf("Serve with %s=intranet = %v, output %q; want exit status 1 naming the variable and the value", sdk.EgressEnv, err, out)
	}
}

func TestConfigFieldsFromSchema(t *testing.T) {
	fields, err := sdk.ConfigFieldsFromSchema(`{"type":"object","properties":{
		"url":{"type":"string","writeOnly":true,"description":"broker"},
		"topic":{"type":"string"},
		"qos":{"type":"integer"}},"required":["url"]}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []sdk.ConfigField{
		{Name: "qos", Type: "integer"},
		{Name: "topic", Type: "string"},
		{Name: "url", Type: "string", Secret: true, Required: true, Description: "broker"},
	}
	if !slices.Equal(fields, want) {
		t.Errorf("fields = %+v, want %+v", fields, want)
	}
	if _, err := sdk.ConfigFieldsFromSchema("{not json"); err == nil {
		t.Error("a schema that is not JSON gave no error")
	}
}
