package amqptransport_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	amqptransport "github.com/hookwire/hookwire/plugins/amqp"
	"github.com/hookwire/hookwire/plugins/builtin"
	"github.com/hookwire/hookwire/plugins/internal/brokertest"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const (
	amqpAddr    = "127.0.0.1:5672"
	amqpURL     = "amqp://guest:guest@" + amqpAddr + "/"
	amqpService = "RabbitMQ"
)

func TestMain(m *testing.M) {
	brokertest.ServePluginIfAsked(builtin.Serve)
	goleak.VerifyTestMain(m)
}

// newTransport returns a transport that may reach the local broker, as
// under an agent started with --allow-cidr 127.0.0.1/32.
func newTransport(t *testing.T) *amqptransport.Transport {
	t.Helper()
	return newTransportWith(t, brokertest.Loopback())
}

func newTransportWith(t *testing.T, egress sdk.Egress) *amqptransport.Transport {
	t.Helper()
	tr := amqptransport.New(amqptransport.WithEgress(egress))
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

var signature = map[string]string{
	"webhook-id":        "msg_2LxAmqp",
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
		EventType:   "order.created",
		Timeout:     durationpb.New(5 * time.Second),
	}
}

// broker is the test's own connection, for declaring and reading back.
func broker(t *testing.T) *amqp.Channel {
	t.Helper()
	brokertest.Require(t, amqpService, amqpAddr)
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("test connection: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// queue declares a unique queue, deleted when the test ends.
func queue(t *testing.T, ch *amqp.Channel, args amqp.Table) string {
	t.Helper()
	q, err := ch.QueueDeclare(brokertest.UniqueName("hookwire-test"), false, false, false, false, args)
	if err != nil {
		t.Fatalf("declare queue: %v", err)
	}
	t.Cleanup(func() { _, _ = ch.QueueDelete(q.Name, false, false, false) })
	return q.Name
}

func get(t *testing.T, ch *amqp.Channel, q string) amqp.Delivery {
	t.Helper()
	d, ok, err := ch.Get(q, true)
	if err != nil || !ok {
		t.Fatalf("get from %s: ok=%v err=%v; the confirmed message is not in the queue", q, ok, err)
	}
	return d
}

func checkDelivery(t *testing.T, d amqp.Delivery, body []byte) {
	t.Helper()
	if !bytes.Equal(d.Body, body) {
		t.Errorf("body differs: got %d bytes, want %d bytes exactly as sent", len(d.Body), len(body))
	}
	for name, v := range signature {
		if got, _ := d.Headers[name].(string); got != v {
			t.Errorf("header %s = %#v, want %q", name, d.Headers[name], v)
		}
	}
	if d.ContentType != "application/vnd.test+octets" || d.MessageId != signature["webhook-id"] ||
		d.Type != "order.created" || d.DeliveryMode != amqp.Persistent || d.AppId != "hookwire" {
		t.Errorf("properties: content_type=%q message_id=%q type=%q delivery_mode=%d app_id=%q",
			d.ContentType, d.MessageId, d.Type, d.DeliveryMode, d.AppId)
	}
}

func TestValidate(t *testing.T) {
	tr := newTransport(t)
	cases := []struct {
		name   string
		fields map[string]any
		want   []string
	}{
		{"default exchange", map[string]any{"url": amqpURL, "routing_key": "q"}, nil},
		{"named exchange", map[string]any{"url": "amqps://u:p@h/vh", "exchange": "events", "routing_key": "", "mandatory": false}, nil},
		{"missing url", map[string]any{"exchange": "x"}, []string{`url is required, e.g. "amqp://guest:guest@127.0.0.1:5672/"`}},
		{"unknown field", map[string]any{"url": amqpURL, "routing_key": "q", "queue": "q"}, []string{
			`unknown field "queue": the amqp transport accepts only url, exchange, routing_key and mandatory`,
		}},
		{"nothing to route to", map[string]any{"url": amqpURL}, []string{
			"routing_key is required when exchange is empty (the default exchange delivers to the queue the routing key names): set routing_key to the queue name, or set exchange",
		}},
		{"wrong types", map[string]any{"url": amqpURL, "exchange": 1, "routing_key": []any{"a"}, "mandatory": "yes"}, []string{
			"exchange must be a string, not a number",
			"routing_key must be a string, not a list",
			"mandatory must be true or false, not a string",
		}},
		{"http url hides password", map[string]any{"url": "http://u:hunter2@h/", "routing_key": "q"}, []string{
			"url http://u:xxxxx@h/ must start with amqp:// or amqps://",
		}},
		{"bad port", map[string]any{"url": "amqp://u:hunter2@h:notaport/", "routing_key": "q"}, []string{
			`url is not a valid URL (invalid port ":notaport" after host); write it as amqp://user:password@host:5672/vhost, percent-encoding special characters in the password`,
		}},
		{"bad vhost escape", map[string]any{"url": "amqp://h/%zz", "routing_key": "q"}, []string{
			`url is not a valid URL (invalid URL escape "%zz"); write it as amqp://user:password@host:5672/vhost, percent-encoding special characters in the password`,
		}},
		{"long exchange", map[string]any{"url": amqpURL, "exchange": strings.Repeat("x", 256)}, []string{
			"exchange is 256 bytes long; AMQP allows at most 255",
		}},
		{"control character", map[string]any{"url": amqpURL, "routing_key": "a\nb"}, []string{
			`routing_key "a\nb" contains a control character`,
		}},
		{"empty url", map[string]any{"url": "", "routing_key": "q"}, []string{
			`url is empty; set it to the broker, e.g. "amqp://guest:guest@127.0.0.1:5672/"`,
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

func TestDeliverInvalidConfigIsRejected(t *testing.T) {
	tr := newTransport(t)
	for _, req := range []*transportv1.DeliveryRequest{
		{},
		{Config: brokertest.Config(t, map[string]any{"url": "amqp://h/"})},
	} {
		res := tr.Deliver(context.Background(), req)
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_REJECTED || res.GetError() == "" {
			t.Errorf("Deliver(%v) = %v %q, want REJECTED with a reason", req, res.GetOutcome(), res.GetError())
		}
	}
}

func TestDeliverClosedPortIsConnectionError(t *testing.T) {
	res := newTransport(t).Deliver(context.Background(),
		request(t, map[string]any{"url": "amqp://guest:guest@" + brokertest.ClosedAddr(t) + "/", "routing_key": "q"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_CONNECTION_ERROR, "connect to AMQP broker amqp://guest:xxxxx@")
}

func TestDeliverSilentServerTimesOut(t *testing.T) {
	req := request(t, map[string]any{"url": "amqp://" + brokertest.SilentAddr(t) + "/", "routing_key": "q"}, []byte("{}"))
	req.Timeout = durationpb.New(200 * time.Millisecond)
	res := newTransport(t).Deliver(context.Background(), req)
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_TIMEOUT, "timeout 200ms")
}

func TestPublishToQueueThroughDefaultExchange(t *testing.T) {
	ch := broker(t)
	q := queue(t, ch, nil)
	body := brokertest.RandomBody(4096)
	res := newTransport(t).Deliver(context.Background(), request(t, map[string]any{"url": amqpURL, "routing_key": q}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	checkDelivery(t, get(t, ch, q), body)
}

func TestPublishThroughNamedExchange(t *testing.T) {
	ch := broker(t)
	q := queue(t, ch, nil)
	ex := brokertest.UniqueName("hookwire-test-ex")
	if err := ch.ExchangeDeclare(ex, amqp.ExchangeTopic, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.ExchangeDelete(ex, false, false) })
	if err := ch.QueueBind(q, "order.*", ex, false, nil); err != nil {
		t.Fatal(err)
	}
	tr := newTransport(t)
	body := brokertest.RandomBody(100)
	res := tr.Deliver(context.Background(), request(t, map[string]any{"url": amqpURL, "exchange": ex, "routing_key": "order.created"}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	checkDelivery(t, get(t, ch, q), body)

	// No binding matches: returned as unroutable, REJECTED; or accepted
	// and dropped when mandatory is false.
	res = tr.Deliver(context.Background(), request(t, map[string]any{"url": amqpURL, "exchange": ex, "routing_key": "invoice.paid"}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "unroutable")
	res = tr.Deliver(context.Background(), request(t, map[string]any{"url": amqpURL, "exchange": ex, "routing_key": "invoice.paid", "mandatory": false}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	// The channel that carried the returned message is reused cleanly.
	res = tr.Deliver(context.Background(), request(t, map[string]any{"url": amqpURL, "exchange": ex, "routing_key": "order.paid"}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	get(t, ch, q)
}

func TestMissingExchangeIsRejectedAndConnectionSurvives(t *testing.T) {
	ch := broker(t)
	q := queue(t, ch, nil)
	tr := newTransport(t)
	res := tr.Deliver(context.Background(), request(t, map[string]any{"url": amqpURL, "exchange": "hookwire-no-such-exchange", "routing_key": "x"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "no exchange 'hookwire-no-such-exchange'")
	res = tr.Deliver(context.Background(), request(t, map[string]any{"url": amqpURL, "routing_key": q}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
}

func TestNackIsThrottled(t *testing.T) {
	ch := broker(t)
	q := queue(t, ch, amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	res := newTransport(t).Deliver(context.Background(), request(t, map[string]any{"url": amqpURL, "routing_key": q}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_THROTTLED, "nacked")
}

func TestWrongPasswordIsRejected(t *testing.T) {
	brokertest.Require(t, amqpService, amqpAddr)
	res := newTransport(t).Deliver(context.Background(), request(t, map[string]any{"url": "amqp://guest:wrong@" + amqpAddr + "/", "routing_key": "q"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "credentials")
	if strings.Contains(res.GetError(), "wrong") {
		t.Errorf("error leaks the password: %s", res.GetError())
	}
}

func TestConcurrentDeliveriesShareOneConnection(t *testing.T) {
	ch := broker(t)
	q := queue(t, ch, nil)
	proxy := brokertest.NewProxy(t, amqpAddr)
	tr := newTransport(t)
	url := "amqp://guest:guest@" + proxy.Addr() + "/"
	const n = 30
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := tr.Deliver(context.Background(), request(t, map[string]any{"url": url, "routing_key": q}, []byte("{}")))
			if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
				t.Errorf("outcome = %v (%s)", res.GetOutcome(), res.GetError())
			}
		}()
	}
	wg.Wait()
	if c := proxy.Connections(); c != 1 {
		t.Errorf("%d deliveries opened %d connections, want 1", n, c)
	}
	qi, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil || qi.Messages != n {
		t.Errorf("queue holds %d messages (%v), want %d", qi.Messages, err, n)
	}
}

// TestReconnectsAfterConnectionBreaks cuts the pooled connection: the next
// delivery either finds the dead connection (CONNECTION_ERROR, and it is
// dropped) or already dials a new one; the one after must succeed.
func TestReconnectsAfterConnectionBreaks(t *testing.T) {
	ch := broker(t)
	q := queue(t, ch, nil)
	proxy := brokertest.NewProxy(t, amqpAddr)
	tr := newTransport(t)
	req := request(t, map[string]any{"url": "amqp://guest:guest@" + proxy.Addr() + "/", "routing_key": q}, []byte("{}"))
	brokertest.WantOutcome(t, tr.Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")
	proxy.Cut()
	res := tr.Deliver(context.Background(), req)
	if res.GetOutcome() == transportv1.Outcome_OUTCOME_CONNECTION_ERROR {
		res = tr.Deliver(context.Background(), req)
	}
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
}

func TestThroughPluginProcess(t *testing.T) {
	ch := broker(t)
	q := queue(t, ch, nil)
	client := brokertest.StartPlugin(t, amqptransport.Name, brokertest.Loopback())
	body := brokertest.RandomBody(1000)
	res := client.Deliver(context.Background(), request(t, map[string]any{"url": amqpURL, "routing_key": q}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	checkDelivery(t, get(t, ch, q), body)
	problems, err := client.Validate(context.Background(), brokertest.Config(t, map[string]any{"url": amqpURL}))
	if err != nil || len(problems) != 1 {
		t.Fatalf("validate through the plugin = %q, %v", problems, err)
	}
}

// W3C trace context as the agent sets it when tracing is on.
const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate  = "hookwire=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

// checkTrace fails unless the header table carries exactly the wanted
// trace headers as strings ("": no such header at all).
func checkTrace(t *testing.T, headers amqp.Table, wantParent, wantState string) {
	t.Helper()
	for name, want := range map[string]string{"traceparent": wantParent, "tracestate": wantState} {
		got, present := headers[name]
		switch {
		case want == "" && present:
			t.Errorf("header %s = %#v, want no such header on a request without trace context", name, got)
		case want != "" && got != want:
			t.Errorf("header %s = %#v, want the string %q", name, got, want)
		}
	}
}

func TestTraceContextTravelsInHeaderTable(t *testing.T) {
	ch := broker(t)
	tr := newTransport(t)
	deliver := func(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		return tr.Deliver(ctx, req)
	}
	cases := []struct {
		name          string
		parent, state string
		plugin        bool // through a real plugin process
	}{
		{"traced", traceparent, tracestate, false},
		{"traceparent only", traceparent, "", false},
		{"not traced", "", "", false},
		{"traced through plugin process", traceparent, tracestate, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := queue(t, ch, nil)
			req := request(t, map[string]any{"url": amqpURL, "routing_key": q}, []byte(`{}`))
			req.Traceparent, req.Tracestate = tc.parent, tc.state
			send := deliver
			if tc.plugin {
				send = brokertest.StartPlugin(t, amqptransport.Name, brokertest.Loopback()).Deliver
			}
			brokertest.WantOutcome(t, send(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")
			d := get(t, ch, q)
			checkDelivery(t, d, []byte(`{}`))
			checkTrace(t, d.Headers, tc.parent, tc.state)
		})
	}
}

// TestEgressGuard: under an agent started without --allow-cidr the
// transport may not reach the local RabbitMQ (REJECTED, naming the flag
// that would allow it, nothing queued), neither in-process nor as a plugin
// process, which gets the policy from the agent's environment; with
// --allow-cidr 127.0.0.1/32 it delivers.
func TestEgressGuard(t *testing.T) {
	ch := broker(t)
	q := queue(t, ch, nil)
	refused := request(t, map[string]any{"url": amqpURL, "routing_key": q}, []byte("refused"))
	brokertest.WantEgressRefused(t, newTransportWith(t, sdk.Egress{}).Deliver(context.Background(), refused), amqptransport.Name)
	brokertest.WantEgressRefused(t, brokertest.StartPlugin(t, amqptransport.Name, sdk.Egress{}).Deliver(context.Background(), refused), amqptransport.Name)

	allowed := request(t, map[string]any{"url": amqpURL, "routing_key": q}, []byte("allowed"))
	brokertest.WantOutcome(t, newTransportWith(t, brokertest.Loopback()).Deliver(context.Background(), allowed), transportv1.Outcome_OUTCOME_SUCCESS, "")
	if d := get(t, ch, q); string(d.Body) != "allowed" || d.MessageCount != 0 {
		t.Fatalf("queue holds %q and %d more, want the allowed delivery only", d.Body, d.MessageCount)
	}
}
