package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestAgentWithoutAllowCIDRRefusesLocalBroker: the agent's egress policy
// guards every transport, not just http. An agent started without
// --allow-cidr is given a subscription that delivers to the Redis on this
// host (redis://127.0.0.1:6379): its attempt is recorded as REJECTED with
// an error naming the --allow-cidr that would allow it, and nothing reaches
// Redis.
func TestAgentWithoutAllowCIDRRefusesLocalBroker(t *testing.T) {
	srv := startServer(t, t.TempDir())
	p, out := startProc(t, []string{"HOOKWIRE_API_KEY=" + e2eAdminKey}, "agent", "--server", srv.grpcAddr, "--id", "egress-agent")
	go func() {
		for out.Scan() {
		}
	}()

	stream := "hookwire:e2e:egress-" + time.Now().Format("150405.000000000")
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants", `{"id":"acme"}`, nil); code != 200 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	sub := `{"event_types":["order.*"],"target":{"transport":"redis","config":{"url":"redis://127.0.0.1:6379/0","stream":"` + stream + `"}}}`
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants/acme/subscriptions", sub, nil); code != 200 {
		t.Fatalf("create redis subscription: HTTP %d", code)
	}
	publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":{"n":1}}`)

	var list struct {
		Deliveries []struct {
			ID           string `json:"id"`
			AttemptCount int    `json:"attempt_count"`
		} `json:"deliveries"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/deliveries", "", &list)
		if len(list.Deliveries) == 1 && list.Deliveries[0].AttemptCount > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no attempt recorded within 30s (%+v); agent stderr:\n%s", list.Deliveries, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // polling the API for a result recorded by other processes
	}
	var attempts struct {
		Attempts []struct {
			Outcome string `json:"outcome"`
			Error   string `json:"error"`
			AgentID string `json:"agent_id"`
		} `json:"attempts"`
	}
	if code := restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/deliveries/"+list.Deliveries[0].ID+"/attempts", "", &attempts); code != 200 || len(attempts.Attempts) == 0 {
		t.Fatalf("list attempts: HTTP %d, %+v", code, attempts)
	}
	a := attempts.Attempts[0]
	if a.Outcome != "OUTCOME_REJECTED" || a.AgentID != "egress-agent" ||
		!strings.Contains(a.Error, "refused to connect to 127.0.0.1") ||
		!strings.Contains(a.Error, "the redis transport does not connect to such addresses") ||
		!strings.Contains(a.Error, "--allow-cidr 127.0.0.1/32") {
		t.Errorf("attempt = %+v, want REJECTED by egress-agent with an error naming --allow-cidr 127.0.0.1/32", a)
	}

	// Nothing reached Redis (when it runs here; the refusal needs no Redis).
	if c, err := net.DialTimeout("tcp", "127.0.0.1:6379", 500*time.Millisecond); err == nil {
		_ = c.Close()
		rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
		defer rc.Close()
		if n, err := rc.Exists(context.Background(), stream).Result(); err != nil || n != 0 {
			t.Errorf("stream %s exists (%d, %v): the refused delivery reached Redis", stream, n, err)
		}
	}
}
