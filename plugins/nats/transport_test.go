package natstransport_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/builtin"
	"github.com/hookwire/hookwire/plugins/internal/brokertest"
	natstransport "github.com/hookwire/hookwire/plugins/nats"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const (
	natsAddr    = "127.0.0.1:4222"
	natsURL     = "nats://" + natsAddr
	natsService = "NATS with JetStream"
)

func TestMain(m *testing.M) {
	brokertest.ServePluginIfAsked(builtin.Serve)
	goleak.VerifyTestMain(m)
}

// newTransport returns a transport that may reach the local broker, as
// under an agent started with --allow-cidr 127.0.0.1/32.
func newTransport(t *testing.T) *natstransport.Transport {
	t.Helper()
	return newTransportWith(t, brokertest.Loopback())
}

func newTransportWith(t *testing.T, egress sdk.Egress) *natstransport.Transport {
	t.Helper()
	tr := natstransport.New(natstransport.WithEgress(egress))
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

var signature = map[string]string{
	"webhook-id":        "msg_2LxNats",
	"webhook-timestamp": "1700000000",
	"webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= v1,second",
}

func request(t *testing.T, fields map[string]any, body []byte) *transportv1.DeliveryRequest {
	return &transportv1.DeliveryRequest{
		Config:      brokertest.Config(t, fields),
		Body:        body,
		ContentType: "application/vnd.test+octets",
		Headers:     signature,
		DeliveryId:  signature["webhook-id"],
		Timeout:     durationpb.New(5 * time.Second),
	}
}

// consumer is a separate connection that reads what the transport sent.
func consumer(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("consumer connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func checkMessage(t *testing.T, data []byte, h nats.Header, body []byte) {
	t.Helper()
	if !bytes.Equal(data, body) {
		t.Errorf("body differs: got %d bytes, want %d bytes exactly as sent", len(data), len(body))
	}
	for name, v := range signature {
		if got := h.Values(name); len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %q, want exactly %q", name, got, v)
		}
	}
	if got := h.Get("content-type"); got != "application/vnd.test+octets" {
		t.Errorf("content-type header = %q", got)
	}
}

func TestValidate(t *testing.T) {
	tr := newTransport(t)
	cases := []struct {
		name   string
		fields map[string]any
		want   []string
	}{
		{"valid core", map[string]any{"url": natsURL, "subject": "a.b"}, nil},
		{"valid jetstream cluster", map[string]any{"url": "nats://u:p@h1:4222, tls://h2:4222", "subject": "a", "jetstream": true}, nil},
		{"missing both", map[string]any{}, []string{
			`url is required, e.g. "nats://127.0.0.1:4222"`,
			`subject is required, e.g. "webhooks.orders"`,
		}},
		{"unknown field", map[string]any{"url": natsURL, "subject": "a", "stream": "X"}, []string{
			`unknown field "stream": the nats transport accepts only url, subject and jetstream`,
		}},
		{"wrong types", map[string]any{"url": 4222, "subject": true, "jetstream": "yes"}, []string{
			"url must be a string, not a number",
			"subject must be a string, not a boolean",
			"jetstream must be true or false, not a string",
		}},
		{"empty url", map[string]any{"url": "", "subject": "a"}, []string{
			`url is empty; set it to the NATS server, e.g. "nats://127.0.0.1:4222"`,
		}},
		{"http url", map[string]any{"url": "http://h:4222", "subject": "a"}, []string{
			"url http://h:4222 must use nats://, tls://, ws:// or wss://, not http://",
		}},
		{"no scheme hides token", map[string]any{"url": "nats://secrettoken@h, h2:4222", "subject": "a"}, []string{
			"url h2:4222 must use nats://, tls://, ws:// or wss://, not h2://",
		}},
		{"password redacted", map[string]any{"url": "nats://u:hunter2@/x", "subject": "a"}, []string{
			"url nats://u:xxxxx@/x has no host",
		}},
		{"wildcard", map[string]any{"url": natsURL, "subject": "orders.*"}, []string{
			`subject "orders.*" contains the wildcard "*"; a publish needs a concrete subject`,
		}},
		{"tail wildcard", map[string]any{"url": natsURL, "subject": "orders.>"}, []string{
			`subject "orders.>" contains the wildcard ">"; a publish needs a concrete subject`,
		}},
		{"empty token", map[string]any{"url": natsURL, "subject": "orders..created"}, []string{
			`subject "orders..created" has an empty token (a leading, trailing or doubled dot)`,
		}},
		{"whitespace", map[string]any{"url": natsURL, "subject": "orders created"}, []string{
			`subject "orders created" contains whitespace, which NATS subjects cannot hold`,
		}},
		{"empty subject", map[string]any{"url": natsURL, "subject": ""}, []string{
			`subject is empty; set it to the subject to publish to, e.g. "webhooks.orders"`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tr.Validate(context.Background(), brokertest.Config(t, tc.fields))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	info, err := newTransport(t).Describe(context.Background())
	if err != nil || info.Name != "nats" || !strings.Contains(info.TargetSchema, `"additionalProperties": false`) {
		t.Fatalf("describe = %+v, %v", info, err)
	}
}

func TestDeliverInvalidConfigIsRejected(t *testing.T) {
	tr := newTransport(t)
	for _, req := range []*transportv1.DeliveryRequest{
		{},
		{Config: brokertest.Config(t, map[string]any{"url": "nats://h", "subject": "a.>"})},
		{Config: brokertest.Config(t, map[string]any{"url": natsURL, "subject": "a"}), Headers: map[string]string{"bad name": "x"}},
		{Config: brokertest.Config(t, map[string]any{"url": natsURL, "subject": "a"}), Headers: map[string]string{"x-a": "line\r\nbreak"}},
	} {
		res := tr.Deliver(context.Background(), req)
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_REJECTED || res.GetError() == "" {
			t.Errorf("Deliver(%v) = %v %q, want REJECTED with a reason", req, res.GetOutcome(), res.GetError())
		}
	}
}

func TestDeliverClosedPortIsConnectionError(t *testing.T) {
	res := newTransport(t).Deliver(context.Background(),
		request(t, map[string]any{"url": "nats://" + brokertest.ClosedAddr(t), "subject": "a"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_CONNECTION_ERROR, "connect to nats server")
}

func TestDeliverSilentServerTimesOut(t *testing.T) {
	tr := newTransport(t)
	req := request(t, map[string]any{"url": "nats://" + brokertest.SilentAddr(t), "subject": "a"}, []byte("{}"))
	req.Timeout = durationpb.New(200 * time.Millisecond)
	res := tr.Deliver(context.Background(), req)
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_TIMEOUT, "timeout 200ms")
	if res.GetLatency().AsDuration() > 2*time.Second {
		t.Errorf("latency %v: the attempt outlived its timeout", res.GetLatency().AsDuration())
	}
}

func TestCorePublishCarriesBodyAndHeaders(t *testing.T) {
	brokertest.Require(t, natsService, natsAddr)
	subject := "hookwire.test." + brokertest.UniqueName("core")
	nc := consumer(t)
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the subscription is live before publishing
		t.Fatal(err)
	}

	body := brokertest.RandomBody(4096)
	res := newTransport(t).Deliver(context.Background(), request(t, map[string]any{"url": natsURL, "subject": subject}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	if res.GetLatency() == nil {
		t.Error("no latency reported")
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	checkMessage(t, msg.Data, msg.Header, body)
}

func TestDefaultContentType(t *testing.T) {
	brokertest.Require(t, natsService, natsAddr)
	subject := "hookwire.test." + brokertest.UniqueName("ct")
	nc := consumer(t)
	sub, _ := nc.SubscribeSync(subject)
	_ = nc.Flush()
	req := request(t, map[string]any{"url": natsURL, "subject": subject}, []byte(`{}`))
	req.ContentType = ""
	brokertest.WantOutcome(t, newTransport(t).Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("content-type"); got != "application/json" {
		t.Errorf("content-type = %q, want application/json", got)
	}
}

// TestConcurrentDeliveriesShareOneConnection counts the TCP connections a
// burst of deliveries opens, through a proxy.
func TestConcurrentDeliveriesShareOneConnection(t *testing.T) {
	brokertest.Require(t, natsService, natsAddr)
	proxy := brokertest.NewProxy(t, natsAddr)
	tr := newTransport(t)
	subject := "hookwire.test." + brokertest.UniqueName("pool")
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := tr.Deliver(context.Background(), request(t, map[string]any{"url": "nats://" + proxy.Addr(), "subject": subject}, []byte("{}")))
			if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
				t.Errorf("outcome = %v (%s)", res.GetOutcome(), res.GetError())
			}
		}()
	}
	wg.Wait()
	if n := proxy.Connections(); n != 1 {
		t.Errorf("20 deliveries opened %d connections, want 1", n)
	}
}

func TestCorePublishLargerThanMaxPayloadIsRejected(t *testing.T) {
	brokertest.Require(t, natsService, natsAddr)
	nc := consumer(t)
	body := make([]byte, nc.MaxPayload()+1)
	res := newTransport(t).Deliver(context.Background(), request(t, map[string]any{"url": natsURL, "subject": "hookwire.test.big"}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "max_payload")
}

// stream creates a JetStream stream capturing one unique subject and
// deletes it when the test ends.
func stream(t *testing.T, cfg jetstream.StreamConfig) (jetstream.Stream, string) {
	t.Helper()
	js, err := jetstream.New(consumer(t))
	if err != nil {
		t.Fatal(err)
	}
	name := strings.ReplaceAll(brokertest.UniqueName("HOOKWIRE_TEST"), "-", "_")
	subject := "hookwire.js." + strings.ToLower(name)
	cfg.Name, cfg.Subjects, cfg.Storage = name, []string{subject}, jetstream.MemoryStorage
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Errorf("delete stream %s: %v", name, err)
		}
	})
	return s, subject
}

func TestJetStreamPublishIsStoredOnceAndReadBack(t *testing.T) {
	brokertest.Require(t, natsService, natsAddr)
	s, subject := stream(t, jetstream.StreamConfig{})
	tr := newTransport(t)
	body := brokertest.RandomBody(2048)
	req := request(t, map[string]any{"url": natsURL, "subject": subject, "jetstream": true}, body)

	brokertest.WantOutcome(t, tr.Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")
	// A retry of the same delivery (same webhook-id) is a duplicate: acknowledged, not stored twice.
	brokertest.WantOutcome(t, tr.Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages after a delivery and its retry, want 1", info.State.Msgs)
	}
	msg, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	checkMessage(t, msg.Data, msg.Header, body)
	if got := msg.Header.Get(jetstream.MsgIDHeader); got != signature["webhook-id"] {
		t.Errorf("Nats-Msg-Id = %q, want the webhook-id", got)
	}
}

func TestJetStreamWithoutStreamIsRejected(t *testing.T) {
	brokertest.Require(t, natsService, natsAddr)
	subject := "hookwire.nostream." + brokertest.UniqueName("x")
	res := newTransport(t).Deliver(context.Background(), request(t, map[string]any{"url": natsURL, "subject": subject, "jetstream": true}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "no JetStream stream")
}

func TestJetStreamFullStreamIsThrottled(t *testing.T) {
	brokertest.Require(t, natsService, natsAddr)
	_, subject := stream(t, jetstream.StreamConfig{MaxMsgs: 1, Discard: jetstream.DiscardNew})
	tr := newTransport(t)
	first := request(t, map[string]any{"url": natsURL, "subject": subject, "jetstream": true}, []byte("1"))
	brokertest.WantOutcome(t, tr.Deliver(context.Background(), first), transportv1.Outcome_OUTCOME_SUCCESS, "")
	second := request(t, map[string]any{"url": natsURL, "subject": subject, "jetstream": true}, []byte("2"))
	second.Headers = map[string]string{"webhook-id": "msg_other"}
	brokertest.WantOutcome(t, tr.Deliver(context.Background(), second), transportv1.Outcome_OUTCOME_THROTTLED, "maximum messages exceeded")
}

func TestJetStreamMessageTooLargeIsRejected(t *testing.T) {
	brokertest.Require(t, natsService, natsAddr)
	_, subject := stream(t, jetstream.StreamConfig{MaxMsgSize: 16})
	res := newTransport(t).Deliver(context.Background(),
		request(t, map[string]any{"url": natsURL, "subject": subject, "jetstream": true}, make([]byte, 64)))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "too large")
}

// TestAuthAndPermissions runs a dedicated nats-server with users and
// publish permissions, which the shared local server does not have.
func TestAuthAndPermissions(t *testing.T) {
	port := brokertest.FreePort(t)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`
listen: 127.0.0.1:%d
authorization {
  users = [
    {user: writer, password: s3cret, permissions: {publish: {allow: ["allowed.>"]}, subscribe: {allow: ["_INBOX.>", "allowed.>"]}}}
  ]
}
`, port)), 0o600); err != nil {
		t.Fatal(err)
	}
	brokertest.StartServer(t, "Server is ready", "nats-server", "-c", conf)
	tr := newTransport(t)
	good := fmt.Sprintf("nats://writer:s3cret@127.0.0.1:%d", port)

	res := tr.Deliver(context.Background(), request(t, map[string]any{
		"url": fmt.Sprintf("nats://writer:wrong@127.0.0.1:%d", port), "subject": "allowed.x"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "refused the credentials")
	if strings.Contains(res.GetError(), "wrong") {
		t.Errorf("error leaks the password: %s", res.GetError())
	}

	res = tr.Deliver(context.Background(), request(t, map[string]any{"url": good, "subject": "denied.x"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, `refused the publish to "denied.x"`)

	// The same connection still delivers where it may.
	res = tr.Deliver(context.Background(), request(t, map[string]any{"url": good, "subject": "allowed.x"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
}

// TestThroughPluginProcess serves the registered built-in "nats" as a real
// plugin subprocess and delivers through the go-plugin gRPC boundary.
func TestThroughPluginProcess(t *testing.T) {
	brokertest.Require(t, natsService, natsAddr)
	client := brokertest.StartPlugin(t, natstransport.Name, brokertest.Loopback())
	info, err := client.Describe(context.Background())
	if err != nil || info.Name != natstransport.Name || info.APIVersions[0] != sdk.APIVersion {
		t.Fatalf("describe through the plugin = %+v, %v", info, err)
	}
	problems, err := client.Validate(context.Background(), brokertest.Config(t, map[string]any{"subject": "a"}))
	if err != nil || len(problems) != 1 {
		t.Fatalf("validate through the plugin = %q, %v", problems, err)
	}

	s, subject := stream(t, jetstream.StreamConfig{})
	body := brokertest.RandomBody(1000)
	res := client.Deliver(context.Background(), request(t, map[string]any{"url": natsURL, "subject": subject, "jetstream": true}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	checkMessage(t, msg.Data, msg.Header, body)
}

// W3C trace context as the agent sets it when tracing is on.
const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate  = "hookwire=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

// checkTrace fails unless h carries exactly the wanted trace headers ("":
// none at all).
func checkTrace(t *testing.T, h nats.Header, wantParent, wantState string) {
	t.Helper()
	for name, want := range map[string]string{"traceparent": wantParent, "tracestate": wantState} {
		got := h.Values(name)
		switch {
		case want == "" && len(got) != 0:
			t.Errorf("header %s = %q, want no such header on a request without trace context", name, got)
		case want != "" && (len(got) != 1 || got[0] != want):
			t.Errorf("header %s = %q, want exactly %q", name, got, want)
		}
	}
}

func TestTraceContextTravelsAsHeaders(t *testing.T) {
	brokertest.Require(t, natsService, natsAddr)
	tr := newTransport(t)
	cases := []struct {
		name          string
		parent, state string
	}{
		{"traced", traceparent, tracestate},
		{"traceparent only", traceparent, ""},
		{"not traced", "", ""},
	}
	for _, tc := range cases {
		t.Run("core/"+tc.name, func(t *testing.T) {
			subject := "hookwire.test." + brokertest.UniqueName("trace")
			nc := consumer(t)
			sub, err := nc.SubscribeSync(subject)
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			req := request(t, map[string]any{"url": natsURL, "subject": subject}, []byte(`{}`))
			req.Traceparent, req.Tracestate = tc.parent, tc.state
			brokertest.WantOutcome(t, tr.Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")
			msg, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("consumer: %v", err)
			}
			checkMessage(t, msg.Data, msg.Header, []byte(`{}`))
			checkTrace(t, msg.Header, tc.parent, tc.state)
		})
		t.Run("jetstream/"+tc.name, func(t *testing.T) {
			s, subject := stream(t, jetstream.StreamConfig{})
			req := request(t, map[string]any{"url": natsURL, "subject": subject, "jetstream": true}, []byte(`{}`))
			req.Traceparent, req.Tracestate = tc.parent, tc.state
			brokertest.WantOutcome(t, tr.Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			msg, err := s.GetMsg(ctx, 1)
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			checkTrace(t, msg.Header, tc.parent, tc.state)
		})
	}
}

// TestEgressGuard: under an agent started without --allow-cidr the
// transport may not reach the local NATS server (REJECTED, naming the flag
// that would allow it, nothing published), neither in-process nor as a
// plugin process, which gets the policy from the agent's environment; with
// --allow-cidr 127.0.0.1/32 it delivers.
func TestEgressGuard(t *testing.T) {
	brokertest.Require(t, natsService, natsAddr)
	subject := "hookwire.test." + brokertest.UniqueName("egress")
	nc := consumer(t)
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the subscription is live before publishing
		t.Fatal(err)
	}
	refused := request(t, map[string]any{"url": natsURL, "subject": subject}, []byte("refused"))
	brokertest.WantEgressRefused(t, newTransportWith(t, sdk.Egress{}).Deliver(context.Background(), refused), natstransport.Name)
	brokertest.WantEgressRefused(t, brokertest.StartPlugin(t, natstransport.Name, sdk.Egress{}).Deliver(context.Background(), refused), natstransport.Name)

	allowed := request(t, map[string]any{"url": natsURL, "subject": subject}, []byte("allowed"))
	brokertest.WantOutcome(t, newTransportWith(t, brokertest.Loopback()).Deliver(context.Background(), allowed), transportv1.Outcome_OUTCOME_SUCCESS, "")
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(msg.Data) != "allowed" {
		t.Fatalf("first message on %s = %v, %v; want the allowed delivery only", subject, msg, err)
	}
}

// TestEgressGuardWithServerList: in a url listing several servers, one the
// egress policy refuses is never used. When every server is refused the
// attempt is REJECTED; when another one merely failed it is a
// CONNECTION_ERROR (that server may come back) that still says why the
// refused one is not used.
func TestEgressGuardWithServerList(t *testing.T) {
	tr := newTransportWith(t, brokertest.Loopback()) // 127.0.0.1 only
	allRefused := request(t, map[string]any{"url": "nats://127.0.0.2:4222,nats://127.0.0.3:4222", "subject": "s"}, []byte("{}"))
	brokertest.WantOutcome(t, tr.Deliver(context.Background(), allRefused), transportv1.Outcome_OUTCOME_REJECTED, "start the agent with --allow-cidr 127.0.0.")

	oneDown := request(t, map[string]any{"url": "nats://127.0.0.2:4222,nats://" + brokertest.ClosedAddr(t), "subject": "s"}, []byte("{}"))
	res := tr.Deliver(context.Background(), oneDown)
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_CONNECTION_ERROR, "another server in url will not be used: refused to connect to 127.0.0.2")
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_CONNECTION_ERROR, "--allow-cidr 127.0.0.2/32")
}
