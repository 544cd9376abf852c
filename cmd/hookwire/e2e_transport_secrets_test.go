package main

import (
	"bytes"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestBrokerCredentialsAreSealedEndToEnd: an amqp subscription whose URL
// carries the broker's user:password (a secret config field the amqp
// transport declares) is delivered by a real agent to the RabbitMQ on this
// host, while the credentials appear in no REST response, no audit record,
// no server or agent log line and no file of the server's data directory.
func TestBrokerCredentialsAreSealedEndToEnd(t *testing.T) {
	const addr = "127.0.0.1:5672"
	if c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("RabbitMQ is not reachable at %s (%v)", addr, err)
		}
		t.Skipf("RabbitMQ is not reachable at %s (%v); start it to run this test", addr, err)
	} else {
		_ = c.Close()
	}
	const brokerURL = "amqp://guest:guest@" + addr + "/"
	const credentials = "guest:guest@"
	conn, err := amqp.Dial(brokerURL)
	if err != nil {
		t.Fatalf("test connection to RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("hookwire-e2e-secrets-"+time.Now().Format("150405.000000000"), false, true, false, false, nil)
	if err != nil {
		t.Fatalf("declare queue: %v", err)
	}
	defer func() { _, _ = ch.QueueDelete(q.Name, false, false, false) }()

	dir := t.TempDir()
	srv := startServer(t, dir)
	agent, out := startProc(t, []string{"HOOKWIRE_API_KEY=" + e2eAdminKey}, "agent", "--server", srv.grpcAddr, "--id", "broker-agent", "--allow-cidr", "127.0.0.1/32")
	go func() {
		for out.Scan() {
		}
	}()
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants", `{"id":"acme"}`, nil); code != 200 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	var created struct {
		ID     string `json:"id"`
		Target struct {
			Config map[string]any `json:"config"`
		} `json:"target"`
	}
	sub := `{"event_types":["order.*"],"target":{"transport":"amqp","config":{"url":"` + brokerURL + `","routing_key":"` + q.Name + `"}}}`
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants/acme/subscriptions", sub, &created); code != 200 {
		t.Fatalf("create amqp subscription: HTTP %d", code)
	}
	if created.Target.Config["url"] != "<redacted>" || created.Target.Config["routing_key"] != q.Name {
		t.Fatalf("create response config %v, want the url redacted and routing_key as given", created.Target.Config)
	}
	publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":{"n":1}}`)

	// The agent delivers with the real URL: the message reaches the queue.
	for deadline := time.Now().Add(30 * time.Second); ; {
		d, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatalf("get from %s: %v", q.Name, err)
		}
		if ok {
			if !strings.Contains(string(d.Body), `"n":1`) {
				t.Fatalf("message body %s, want the published payload", d.Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message in %s within 30s; agent stderr:\n%s", q.Name, agent.stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // polling a queue another process fills
	}

	var shown []byte
	for _, path := range []string{
		"/v1/tenants/acme/subscriptions/" + created.ID, "/v1/tenants/acme/subscriptions",
		"/v1/tenants/acme/audit-events", "/v1/tenants/-/audit-events",
		"/v1/tenants/acme/deliveries",
	} {
		code, body := restRaw(t, srv.httpAddr, "GET", path, "")
		if code != 200 {
			t.Fatalf("GET %s: HTTP %d %s", path, code, body)
		}
		shown = append(shown, body...)
	}
	if !bytes.Contains(shown, []byte("subscription.create")) {
		t.Fatalf("the audit log shows no subscription.create: %s", shown)
	}
	if bytes.Contains(shown, []byte(credentials)) {
		t.Errorf("the broker credentials are in a REST response or audit record")
	}
	agent.kill(syscall.SIGTERM)
	srv.kill(syscall.SIGTERM)
	for name, log := range map[string]string{"server": srv.stderr.String(), "agent": agent.stderr.String()} {
		if strings.Contains(log, credentials) {
			t.Errorf("the broker credentials are in the %s log", name)
		}
	}
	if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if bytes.Contains(b, []byte(credentials)) {
			t.Errorf("the broker credentials are in %s", path)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
