package redistransport_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/builtin"
	"github.com/hookwire/hookwire/plugins/internal/brokertest"
	redistransport "github.com/hookwire/hookwire/plugins/redis"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const (
	redisAddr    = "127.0.0.1:6379"
	redisURL     = "redis://" + redisAddr + "/0"
	redisService = "Redis"
)

func TestMain(m *testing.M) {
	brokertest.ServePluginIfAsked(builtin.Serve)
	goleak.VerifyTestMain(m)
}

// newTransport returns a transport that may reach the local Redis, as under
// an agent started with --allow-cidr 127.0.0.1/32.
func newTransport(t *testing.T) *redistransport.Transport {
	t.Helper()
	return newTransportWith(t, brokertest.Loopback())
}

func newTransportWith(t *testing.T, egress sdk.Egress) *redistransport.Transport {
	t.Helper()
	tr := redistransport.New(redistransport.WithEgress(egress))
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

var signature = map[string]string{
	"webhook-id":        "msg_2LxRedis",
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

// store is the test's own client, for reading back and cleaning up.
func store(t *testing.T) *redis.Client {
	t.Helper()
	brokertest.Require(t, redisService, redisAddr)
	c := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// streamKey returns a unique key, deleted when the test ends.
func streamKey(t *testing.T, c *redis.Client) string {
	t.Helper()
	key := "hookwire:test:" + brokertest.UniqueName("stream")
	t.Cleanup(func() { c.Del(context.Background(), key) })
	return key
}

func readAll(t *testing.T, c *redis.Client, key string) []redis.XMessage {
	t.Helper()
	msgs, err := c.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", key, err)
	}
	return msgs
}

func checkEntry(t *testing.T, m redis.XMessage, body []byte) {
	t.Helper()
	if got, _ := m.Values["body"].(string); !bytes.Equal([]byte(got), body) {
		t.Errorf("body differs: got %d bytes, want %d bytes exactly as sent", len(got), len(body))
	}
	if got := m.Values["content-type"]; got != "application/vnd.test+octets" {
		t.Errorf("content-type = %#v", got)
	}
	for name, v := range signature {
		if got := m.Values[name]; got != v {
			t.Errorf("field %s = %#v, want %q", name, got, v)
		}
	}
	if len(m.Values) != 2+len(signature) {
		t.Errorf("entry has fields %v, want body, content-type and the signature headers only", m.Values)
	}
}

func TestValidate(t *testing.T) {
	tr := newTransport(t)
	cases := []struct {
		name   string
		fields map[string]any
		want   []string
	}{
		{"valid", map[string]any{"url": redisURL, "stream": "s"}, nil},
		{"valid tls with maxlen", map[string]any{"url": "rediss://u:p@h:6380/2", "stream": "s", "maxlen": 1000}, nil},
		{"valid unix", map[string]any{"url": "unix:///run/redis.sock", "stream": "s"}, nil},
		{"missing", map[string]any{}, []string{
			`url is required, e.g. "redis://127.0.0.1:6379/0"`,
			`stream is required, e.g. "webhooks:orders"`,
		}},
		{"unknown field", map[string]any{"url": redisURL, "stream": "s", "key": "k"}, []string{
			`unknown field "key": the redis transport accepts only url, stream and maxlen`,
		}},
		{"maxlen zero", map[string]any{"url": redisURL, "stream": "s", "maxlen": 0}, []string{
			"maxlen must be between 1 and 9007199254740992, not 0",
		}},
		{"maxlen fraction", map[string]any{"url": redisURL, "stream": "s", "maxlen": 1.5}, []string{
			"maxlen must be a whole number, not 1.5",
		}},
		{"maxlen string", map[string]any{"url": redisURL, "stream": "s", "maxlen": "10"}, []string{
			"maxlen must be a number, not a string",
		}},
		{"empty stream", map[string]any{"url": redisURL, "stream": ""}, []string{
			`stream is empty; set it to the key of the stream to append to, e.g. "webhooks:orders"`,
		}},
		{"http url hides password", map[string]any{"url": "http://u:hunter2@h", "stream": "s"}, []string{
			"url http://u:xxxxx@h must start with redis://, rediss:// or unix://",
		}},
		{"bad db", map[string]any{"url": "redis://:hunter2@h/notadb", "stream": "s"}, []string{
			`url redis://:xxxxx@h/notadb is not a valid Redis URL (redis: invalid database number: "notadb"); write it as redis://user:password@host:6379/0`,
		}},
		{"unparsable", map[string]any{"url": "redis://h:port", "stream": "s"}, []string{
			`url is not a valid URL (invalid port ":port" after host); write it as redis://user:password@host:6379/0, percent-encoding special characters in the password`,
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
		{Config: brokertest.Config(t, map[string]any{"url": redisURL, "stream": ""})},
		{Config: brokertest.Config(t, map[string]any{"url": redisURL, "stream": "s"}), Headers: map[string]string{"body": "x"}},
	} {
		res := tr.Deliver(context.Background(), req)
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_REJECTED || res.GetError() == "" {
			t.Errorf("Deliver(%v) = %v %q, want REJECTED with a reason", req, res.GetOutcome(), res.GetError())
		}
	}
}

func TestDeliverClosedPortIsConnectionError(t *testing.T) {
	res := newTransport(t).Deliver(context.Background(),
		request(t, map[string]any{"url": "redis://:secret@" + brokertest.ClosedAddr(t), "stream": "s"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_CONNECTION_ERROR, "connect to Redis redis://:xxxxx@")
}

func TestDeliverSilentServerTimesOut(t *testing.T) {
	req := request(t, map[string]any{"url": "redis://" + brokertest.SilentAddr(t), "stream": "s"}, []byte("{}"))
	req.Timeout = durationpb.New(200 * time.Millisecond)
	brokertest.WantOutcome(t, newTransport(t).Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_TIMEOUT, "timeout 200ms")
}

func TestXAddCarriesBodyAndHeaders(t *testing.T) {
	c := store(t)
	key := streamKey(t, c)
	tr := newTransport(t)
	body := brokertest.RandomBody(4096)
	res := tr.Deliver(context.Background(), request(t, map[string]any{"url": redisURL, "stream": key}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	msgs := readAll(t, c, key)
	if len(msgs) != 1 {
		t.Fatalf("stream has %d entries, want 1", len(msgs))
	}
	checkEntry(t, msgs[0], body)
}

func TestMaxLenTrimsTheStream(t *testing.T) {
	c := store(t)
	key := streamKey(t, c)
	tr := newTransport(t)
	// Approximate trimming removes whole macro nodes (100 entries by
	// default), so write enough for it to act.
	for i := range 400 {
		res := tr.Deliver(context.Background(), request(t, map[string]any{"url": redisURL, "stream": key, "maxlen": 10}, []byte(fmt.Sprint(i))))
		brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	}
	n, err := c.XLen(context.Background(), key).Result()
	if err != nil || n >= 400 || n < 10 {
		t.Errorf("XLEN = %d (%v) after 400 deliveries with maxlen 10, want trimmed to at least 10 and well under 400", n, err)
	}
}

func TestWrongTypeKeyIsRejected(t *testing.T) {
	c := store(t)
	key := streamKey(t, c)
	if err := c.Set(context.Background(), key, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	res := newTransport(t).Deliver(context.Background(), request(t, map[string]any{"url": redisURL, "stream": key}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "is not a stream")
}

func TestConcurrentDeliveriesReuseConnections(t *testing.T) {
	c := store(t)
	key := streamKey(t, c)
	proxy := brokertest.NewProxy(t, redisAddr)
	tr := newTransport(t)
	url := "redis://" + proxy.Addr()
	var wg sync.WaitGroup
	for round := range 3 {
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := tr.Deliver(context.Background(), request(t, map[string]any{"url": url, "stream": key}, []byte("{}")))
				if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
					t.Errorf("round %d: outcome = %v (%s)", round, res.GetOutcome(), res.GetError())
				}
			}()
		}
		wg.Wait()
	}
	// 24 deliveries in rounds of 8: the client's pool keeps at most 8
	// connections (plus the first PING's), never one per delivery.
	if n := proxy.Connections(); n > 9 {
		t.Errorf("24 deliveries opened %d connections, want them reused (at most 9)", n)
	}
	if n, _ := c.XLen(context.Background(), key).Result(); n != 24 {
		t.Errorf("stream has %d entries, want 24", n)
	}
}

func TestReconnectsAfterConnectionBreaks(t *testing.T) {
	c := store(t)
	key := streamKey(t, c)
	proxy := brokertest.NewProxy(t, redisAddr)
	tr := newTransport(t)
	req := request(t, map[string]any{"url": "redis://" + proxy.Addr(), "stream": key}, []byte("{}"))
	brokertest.WantOutcome(t, tr.Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")
	proxy.Cut()
	res := tr.Deliver(context.Background(), req)
	if res.GetOutcome() == transportv1.Outcome_OUTCOME_CONNECTION_ERROR {
		res = tr.Deliver(context.Background(), req)
	}
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
}

// TestAuthAndOutOfMemory runs a dedicated redis-server with a password and
// a memory limit it is already over, which the shared server does not have.
func TestAuthAndOutOfMemory(t *testing.T) {
	port := brokertest.FreePort(t)
	brokertest.StartServer(t, "Ready to accept connections", "redis-server",
		"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--requirepass", "s3cret", "--maxmemory", "1", "--maxmemory-policy", "noeviction")
	tr := newTransport(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	res := tr.Deliver(context.Background(), request(t, map[string]any{"url": "redis://:wrong@" + addr, "stream": "s"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "refused the credentials")
	if strings.Contains(res.GetError(), "wrong") {
		t.Errorf("error leaks the password: %s", res.GetError())
	}
	res = tr.Deliver(context.Background(), request(t, map[string]any{"url": "redis://" + addr, "stream": "s"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "NOAUTH")

	res = tr.Deliver(context.Background(), request(t, map[string]any{"url": "redis://:s3cret@" + addr, "stream": "s"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_THROTTLED, "OOM")
}

func TestThroughPluginProcess(t *testing.T) {
	c := store(t)
	key := streamKey(t, c)
	client := brokertest.StartPlugin(t, redistransport.Name, brokertest.Loopback())
	body := brokertest.RandomBody(1000)
	res := client.Deliver(context.Background(), request(t, map[string]any{"url": redisURL, "stream": key}, body))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	msgs := readAll(t, c, key)
	if len(msgs) != 1 {
		t.Fatalf("stream has %d entries, want 1", len(msgs))
	}
	checkEntry(t, msgs[0], body)
}

// W3C trace context as the agent sets it when tracing is on.
const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate  = "hookwire=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

// rawFields reads the stream's only entry as Redis stores it: field names
// and values in their order.
func rawFields(t *testing.T, c *redis.Client, key string) (names, values []string) {
	t.Helper()
	reply, err := c.Do(context.Background(), "XRANGE", key, "-", "+").Slice()
	if err != nil || len(reply) != 1 {
		t.Fatalf("XRANGE %s = %v entries, %v; want 1", key, len(reply), err)
	}
	entry, ok := reply[0].([]any)
	if !ok || len(entry) != 2 {
		t.Fatalf("XRANGE entry = %#v", reply[0])
	}
	kv, ok := entry[1].([]any)
	if !ok {
		t.Fatalf("XRANGE fields = %#v", entry[1])
	}
	for i := 0; i+1 < len(kv); i += 2 {
		names = append(names, fmt.Sprint(kv[i]))
		values = append(values, fmt.Sprint(kv[i+1]))
	}
	return names, values
}

func TestTraceContextTravelsAsFields(t *testing.T) {
	c := store(t)
	tr := newTransport(t)
	cases := []struct {
		name          string
		parent, state string
		wantNames     []string
	}{
		{"traced", traceparent, tracestate,
			[]string{"body", "content-type", "traceparent", "tracestate", "webhook-id", "webhook-signature", "webhook-timestamp"}},
		{"traceparent only", traceparent, "",
			[]string{"body", "content-type", "traceparent", "webhook-id", "webhook-signature", "webhook-timestamp"}},
		{"not traced", "", "",
			[]string{"body", "content-type", "webhook-id", "webhook-signature", "webhook-timestamp"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := streamKey(t, c)
			req := request(t, map[string]any{"url": redisURL, "stream": key}, []byte(`{}`))
			req.Traceparent, req.Tracestate = tc.parent, tc.state
			brokertest.WantOutcome(t, tr.Deliver(context.Background(), req), transportv1.Outcome_OUTCOME_SUCCESS, "")
			names, values := rawFields(t, c, key)
			if strings.Join(names, ",") != strings.Join(tc.wantNames, ",") {
				t.Fatalf("entry fields in order %q, want %q", names, tc.wantNames)
			}
			want := map[string]string{"traceparent": tc.parent, "tracestate": tc.state}
			for i, name := range names {
				if w, isTrace := want[name]; isTrace && values[i] != w {
					t.Errorf("field %s = %q, want exactly %q", name, values[i], w)
				}
				if w, isSig := signature[name]; isSig && values[i] != w {
					t.Errorf("field %s = %q, want exactly %q", name, values[i], w)
				}
			}
		})
	}
}

// TestEgressGuard: a transport under an agent started without --allow-cidr
// may not reach the local Redis (REJECTED, naming the flag that would
// allow it, and nothing appended); with --allow-cidr 127.0.0.1/32 it
// delivers. The plugin process gets the policy from the agent's
// environment, as every plugin does.
func TestEgressGuard(t *testing.T) {
	c := store(t)
	key := streamKey(t, c)
	req := request(t, map[string]any{"url": redisURL, "stream": key}, []byte("{}"))
	for name, tr := range map[string]interface {
		Deliver(context.Context, *transportv1.DeliveryRequest) *transportv1.DeliveryResult
	}{
		"direct":         newTransportWith(t, sdk.Egress{}),
		"plugin process": brokertest.StartPlugin(t, redistransport.Name, sdk.Egress{}),
	} {
		res := tr.Deliver(context.Background(), req)
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_REJECTED ||
			!strings.Contains(res.GetError(), "refused to connect to 127.0.0.1: it is in 127.0.0.0/8 (loopback); the redis transport does not connect") ||
			!strings.Contains(res.GetError(), "--allow-cidr 127.0.0.1/32") {
			t.Errorf("%s: delivery without an allow-list = %v %q, want REJECTED naming --allow-cidr 127.0.0.1/32", name, res.GetOutcome(), res.GetError())
		}
	}
	if n := c.Exists(context.Background(), key).Val(); n != 0 {
		t.Fatalf("stream %s exists after refused deliveries", key)
	}

	unix := request(t, map[string]any{"url": "unix:///run/redis.sock", "stream": key}, []byte("{}"))
	brokertest.WantOutcome(t, newTransportWith(t, sdk.Egress{}).Deliver(context.Background(), unix),
		transportv1.Outcome_OUTCOME_REJECTED, `unix-domain socket "/run/redis.sock"`)

	res := newTransportWith(t, brokertest.Loopback()).Deliver(context.Background(), req)
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_SUCCESS, "")
	if msgs := readAll(t, c, key); len(msgs) != 1 {
		t.Fatalf("stream has %d entries after the allowed delivery, want 1", len(msgs))
	}
}

// TestRedissHandshakesTLSThroughTheGuard: the guarded dialer replaces
// go-redis's own, which also did TLS; a rediss:// url must still get a TLS
// handshake (here refused: the test server's certificate is not trusted).
func TestRedissHandshakesTLSThroughTheGuard(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")
	res := newTransport(t).Deliver(context.Background(), request(t, map[string]any{"url": "rediss://" + addr, "stream": "s"}, []byte("{}")))
	brokertest.WantOutcome(t, res, transportv1.Outcome_OUTCOME_CONNECTION_ERROR, "TLS handshake: tls: failed to verify certificate")
}
