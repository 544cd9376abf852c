package mqtttransport_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/builtin"
	"github.com/hookwire/hookwire/plugins/internal/brokertest"
	mqtttransport "github.com/hookwire/hookwire/plugins/mqtt"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const (
	mqttAddr    = "127.0.0.1:1883"
	mqttURL     = "mqtt://" + mqttAddr
	mqttService = "Mosquitto (MQTT 5)"
)

func TestMain(m *testing.M) {
	brokertest.ServePluginIfAsked(builtin.Serve)
	goleak.VerifyTestMain(m)
}

// newTransport returns a transport that may reach the local broker, as
// under an agent started with --allow-cidr 127.0.0.1/32.
func newTransport(t *testing.T) *mqtttransport.Transport {
	t.Helper()
	return newTransportWith(t, brokertest.Loopback())
}

func newTransportWith(t *testing.T, egress sdk.Egress) *mqtttransport.Transport {
	t.Helper()
	tr := mqtttransport.New(mqtttransport.WithEgress(egress))
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

var signature = map[string]string{
	"webhook-id":        "msg_2LxMqtt",
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

// subscriber is the test's own MQTT 5 client; received messages arrive on
// the returned channel.
func subscriber(t *testing.T, topic string) <-chan *paho.Publish {
	t.Helper()
	brokertest.Require(t, mqttService, mqttAddr)
	nc, err := net.DialTimeout("tcp", mqttAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *paho.Publish, 16)
	c := paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(nc),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case got <- pr.Packet:
			default:
			}
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: brokertest.UniqueName("hookwire-test-sub"), CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatalf("subscriber connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	return got
}

func receive(t *testing.T, got <-chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case p := <-got:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("the subscriber received nothing within 5s")
		return nil
	}
}

func checkMessage(t *testing.T, p *paho.Publish, body []byte) {
	t.Helper()
	if !bytes.Equal(p.Payload, body) {
		t.Errorf("payload differs: got %d bytes, want %d bytes exactly as sent", len(p.Payload), len(body))
	}
	if p.Properties == nil {
		t.Fatal("no MQTT 5 properties on the message")
	}
	if p.Properties.ContentType != "application/vnd.test+octets" {
		t.Errorf("content type = %q", p.Properties.ContentType)
	}
	for name, v := range signature {
		if got := p.Properties.User.GetAll(name); len(got) != 1 || got[0] != v {
			t.Errorf("user property %s = %q, want exactly %q", name, got, v)
		}
	}
}

func TestValidate(t *testing.T) {
	tr := newTransport(t)
	cases := []struct {
		name   string
		fields map[string]any
		want   []string
	}{
		{"valid", map[string]any{"url": mqttURL, "topic": "a/b"}, nil},
		{"valid tls qos2 retain", map[string]any{"url": "mqtts://u:p@h", "topic": "a", "qos": 2, "retain": true}, nil},
		{"missing", map[string]any{}, []string{
			`url is required, e.g. "mqtt://127.0.0.1:1883"`,
			`topic is required, e.g. "webhooks/orders"`,
		}},
		{"unknown field", map[string]any{"url": mqttURL, "topic": "a", "client_id": "x"}, []string{
			`unknown field "client_id": the mqtt transport accepts only url, topic, qos and retain`,
		}},
		{"qos 0", map[string]any{"url": mqttURL, "topic": "a", "qos": 0}, []string{
			"qos 0 is not supported: the broker never acknowledges a QoS 0 message, so a delivery could not be confirmed; use 1 or 2",
		}},
		{"qos 3", map[string]any{"url": mqttURL, "topic": "a", "qos": 3}, []string{"qos must be 1 or 2, not 3"}},
		{"qos string", map[string]any{"url": mqttURL, "topic": "a", "qos": "1"}, []string{"qos must be a number, not a string"}},
		{"retain string", map[string]any{"url": mqttURL, "topic": "a", "retain": "no"}, []string{"retain must be true or false, not a string"}},
		{"wildcards", map[string]any{"url": mqttURL, "topic": "a/+/c"}, []string{
			`topic "a/+/c" contains a wildcard (+ or #); a publish needs a concrete topic`,
		}},
		{"system topic", map[string]any{"url": mqttURL, "topic": "$SYS/x"}, []string{
			`topic "$SYS/x" starts with $, which is reserved for the broker's own topics`,
		}},
		{"empty topic", map[string]any{"url": mqttURL, "topic": ""}, []string{
			`topic is empty; set it to the topic to publish to, e.g. "webhooks/orders"`,
		}},
		{"http url hides password", map[string]any{"url": "http://u:hunter2@h", "topic": "a"}, []string{
			"url http://u:xxxxx@h must use mqtt:// or mqtts:// (also tcp://, ssl://, tls://), not http://",
		}},
		{"no scheme", map[string]any{"url": "127.0.0.1:1883", "topic": "a"}, []string{
			"url 127.0.0.1:1883 has no scheme; write it as mqtt://host:1883 or mqtts://host:8883",
		}},
		{"path", map[string]any{"url": "mqtt://h/topic", "topic": "a"}, []string{
			"url mqtt://h/topic has a path (/topic); the topic goes in the topic field",
		}},
		{"no host", map[string]any{"url": "mqtt://:1883", "topic": "a"}, []string{"url mqtt://:1883 has no host"}},
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
		{Config: brokertest.Config(t, map[string]any{"url": mqttURL, "topic": "#"})},
		{Config: brokertest.Config(t, map[string]any{"url": mqttURL, "topic": "a"}), Headers: map[string]string{"x": "\xff"}},
	} {
		res := tr.Deliver(context.Background(), req)
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_REJECTED || res.GetError() == "" {
			t.Errorf("Deliver(%v) = %v %q, want REJECTED with a reason", req, res.GetOutcome(), res.GetError())
		}
	}
}

func TestDeliverClosedPortIsConnectionError(t *testing.T) {
	res := newTransport(t).Deliver(context.Background(),
		request(t, map[string]any{"url": "mqtt://u:secret@" + brokertest.ClosedAddr(t), "topic": "a"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_CONNECTION_ERROR, "connect to MQTT broker mqtt://u:xxxxx@")
}

func TestDeliverSilentServerTimesOut(t *testing.T) {
	req := request(t, map[string]any{"url": "mqtt://" + brokertest.SilentAddr(t), "topic": "a"}, []byte("{}"))
	req.Timeout = durationpb.New(200 * time.Millisecond)
	brokertest.WantOutcome(t, newTransport(t).Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_TIMEOUT, "timeout 200ms")
}

func TestPublishCarriesBodyAndUserProperties(t *testing.T) {
	for _, qos := range []int{1, 2} {
		t.Run(fmt.Sprint("qos", qos), func(t *testing.T) {
			topic := "hookwire/test/" + brokertest.UniqueName("pub")
			got := subscriber(t, topic)
			body := brokertest.RandomBody(4096)
			res := newTransport(t).Deliver(context.Background(), request(t, map[string]any{"url": mqttURL, "topic": topic, "qos": qos}, body))
			brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
			checkMessage(t, receive(t, got), body)
		})
	}
}

func TestRetainedMessage(t *testing.T) {
	brokertest.Require(t, mqttService, mqttAddr)
	topic := "hookwire/test/" + brokertest.UniqueName("retain")
	tr := newTransport(t)
	body := brokertest.RandomBody(64)
	res := tr.Deliver(context.Background(), request(t, map[string]any{"url": mqttURL, "topic": topic, "retain": true}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	t.Cleanup(func() { // an empty retained message clears it
		clear := request(t, map[string]any{"url": mqttURL, "topic": topic, "retain": true}, nil)
		if res := tr.Deliver(context.Background(), clear); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
			t.Errorf("clear retained message: %v (%s)", res.GetOutcome(), res.GetError())
		}
	})
	// Subscribing after the publish still gets it, because it was retained.
	p := receive(t, subscriber(t, topic))
	checkMessage(t, p, body)
	if !p.Retain {
		t.Error("the message did not arrive as retained")
	}
}

func TestConcurrentDeliveriesShareOneConnection(t *testing.T) {
	brokertest.Require(t, mqttService, mqttAddr)
	proxy := brokertest.NewProxy(t, mqttAddr)
	tr := newTransport(t)
	topic := "hookwire/test/" + brokertest.UniqueName("pool")
	var wg sync.WaitGroup
	for range 40 { // more than Mosquitto's default receive maximum (20)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := tr.Deliver(context.Background(), request(t, map[string]any{"url": "mqtt://" + proxy.Addr(), "topic": topic}, []byte("{}")))
			if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
				t.Errorf("outcome = %v (%s)", res.GetOutcome(), res.GetError())
			}
		}()
	}
	wg.Wait()
	if n := proxy.Connections(); n != 1 {
		t.Errorf("40 deliveries opened %d connections, want 1", n)
	}
}

func TestReconnectsAfterConnectionBreaks(t *testing.T) {
	brokertest.Require(t, mqttService, mqttAddr)
	proxy := brokertest.NewProxy(t, mqttAddr)
	tr := newTransport(t)
	req := request(t, map[string]any{"url": "mqtt://" + proxy.Addr(), "topic": "hookwire/test/reconnect"}, []byte("{}"))
	brokertest.WantOutcome(t, tr.Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")
	proxy.Cut()
	res := tr.Deliver(context.Background(), req)
	if res.GetOutcome() == transportv1.Outcome_OUTCOME_CONNECTION_ERROR {
		res = tr.Deliver(context.Background(), req)
	}
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
}

// TestAuthAndACL runs a dedicated Mosquitto with a password file and an
// ACL, which the shared broker does not have.
func TestAuthAndACL(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	if out, err := exec.Command(brokertest.RequireBinary(t, "mosquitto_passwd"), "-c", "-b", passwd, "writer", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	acl := filepath.Join(dir, "acl")
	conf := filepath.Join(dir, "mosquitto.conf")
	port := brokertest.FreePort(t)
	if err := os.WriteFile(acl, []byte("user writer\ntopic write allowed/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(
		"listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\nlog_dest stderr\npersistence false\n",
		port, passwd, acl)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Mosquitto started as root drops to its own user, which must be able
	// to read the files.
	for _, p := range []string{filepath.Dir(dir), dir, passwd, acl, conf} {
		mode := os.FileMode(0o644)
		if p == dir || p == filepath.Dir(dir) {
			mode = 0o755
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.StartServer(t, "running", "mosquitto", "-c", conf)
	tr := newTransport(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	res := tr.Deliver(context.Background(), request(t, map[string]any{"url": "mqtt://writer:wrong@" + addr, "topic": "allowed/x"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "check the user name and password in url")
	if strings.Contains(res.GetError(), "wrong") {
		t.Errorf("error leaks the password: %s", res.GetError())
	}
	good := "mqtt://writer:s3cret@" + addr
	res = tr.Deliver(context.Background(), request(t, map[string]any{"url": good, "topic": "denied/x"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "not authorized")
	res = tr.Deliver(context.Background(), request(t, map[string]any{"url": good, "topic": "allowed/x"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
}

func TestThroughPluginProcess(t *testing.T) {
	topic := "hookwire/test/" + brokertest.UniqueName("plugin")
	got := subscriber(t, topic)
	client := brokertest.StartPlugin(t, mqtttransport.Name, brokertest.Loopback())
	body := brokertest.RandomBody(1000)
	res := client.Deliver(context.Background(), request(t, map[string]any{"url": mqttURL, "topic": topic}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	checkMessage(t, receive(t, got), body)
}

// W3C trace context as the agent sets it when tracing is on.
const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate  = "hookwire=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

func TestTraceContextTravelsAsUserProperties(t *testing.T) {
	brokertest.Require(t, mqttService, mqttAddr)
	tr := newTransport(t)
	cases := []struct {
		name          string
		parent, state string
		wantKeys      []string // every user property, in order
	}{
		{"traced", traceparent, tracestate,
			[]string{"traceparent", "tracestate", "webhook-id", "webhook-signature", "webhook-timestamp"}},
		{"traceparent only", traceparent, "",
			[]string{"traceparent", "webhook-id", "webhook-signature", "webhook-timestamp"}},
		{"not traced", "", "",
			[]string{"webhook-id", "webhook-signature", "webhook-timestamp"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := "hookwire/test/" + brokertest.UniqueName("trace")
			got := subscriber(t, topic)
			req := request(t, map[string]any{"url": mqttURL, "topic": topic}, []byte(`{}`))
			req.Traceparent, req.Tracestate = tc.parent, tc.state
			brokertest.WantOutcome(t, tr.Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")
			p := receive(t, got)
			checkMessage(t, p, []byte(`{}`))
			for name, want := range map[string]string{"traceparent": tc.parent, "tracestate": tc.state} {
				vals := p.Properties.User.GetAll(name)
				switch {
				case want == "" && len(vals) != 0:
					t.Errorf("user property %s = %q, want none on a request without trace context", name, vals)
				case want != "" && (len(vals) != 1 || vals[0] != want):
					t.Errorf("user property %s = %q, want exactly %q", name, vals, want)
				}
			}
			var keys []string
			for _, u := range p.Properties.User {
				keys = append(keys, u.Key)
			}
			if strings.Join(keys, ",") != strings.Join(tc.wantKeys, ",") {
				t.Errorf("user properties in order %q, want %q", keys, tc.wantKeys)
			}
		})
	}
}

// TestTraceContextReplacesSameNamedHeader: a request header that happens to
// be called traceparent does not travel twice next to the attempt's own.
func TestTraceContextReplacesSameNamedHeader(t *testing.T) {
	topic := "hookwire/test/" + brokertest.UniqueName("trace-dup")
	got := subscriber(t, topic)
	req := request(t, map[string]any{"url": mqttURL, "topic": topic}, []byte(`{}`))
	req.Headers = map[string]string{"webhook-id": "msg_dup", "traceparent": "00-stale"}
	req.Traceparent = traceparent
	brokertest.WantOutcome(t, newTransport(t).Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")
	p := receive(t, got)
	if vals := p.Properties.User.GetAll("traceparent"); len(vals) != 1 || vals[0] != traceparent {
		t.Errorf("user property traceparent = %q, want exactly the attempt's %q", vals, traceparent)
	}
}

// TestEgressGuard: under an agent started without --allow-cidr the
// transport may not reach the local Mosquitto (REJECTED, naming the flag
// that would allow it, nothing published), neither in-process nor as a
// plugin process, which gets the policy from the agent's environment; with
// --allow-cidr 127.0.0.1/32 it delivers.
func TestEgressGuard(t *testing.T) {
	topic := "hookwire/test/" + brokertest.UniqueName("egress")
	got := subscriber(t, topic)
	refused := request(t, map[string]any{"url": mqttURL, "topic": topic}, []byte("refused"))
	brokertest.WantEgressRefused(t, newTransportWith(t, sdk.Egress{}).Deliver(context.Background(), refused), mqtttransport.Name)
	brokertest.WantEgressRefused(t, brokertest.StartPlugin(t, mqtttransport.Name, sdk.Egress{}).Deliver(context.Background(), refused), mqtttransport.Name)

	allowed := request(t, map[string]any{"url": mqttURL, "topic": topic}, []byte("allowed"))
	brokertest.WantOutcome(t, newTransportWith(t, brokertest.Loopback()).Deliver(context.Background(), allowed), transportv1.Outcome_OUTCOME_SUCCESS, "")
	if p := receive(t, got); string(p.Payload) != "allowed" {
		t.Fatalf("first message on %s = %q, want the allowed delivery only", topic, p.Payload)
	}
}
