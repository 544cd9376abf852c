package controlplane_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
)

// tail opens TailDeliveries with key and waits until the watch is in place
// (the response headers), so nothing published afterwards is missed.
func (h *harness) tail(key string, req *hookwirev1.TailDeliveriesRequest) (hookwirev1.DeliveryService_TailDeliveriesClient, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(authed(context.Background(), key), 30*time.Second)
	h.t.Cleanup(cancel)
	stream, err := hookwirev1.NewDeliveryServiceClient(h.conn).TailDeliveries(ctx, req)
	if err != nil {
		return nil, err
	}
	if _, err := stream.Header(); err != nil {
		return nil, err
	}
	// A refused tail ends the stream before any header: the error is in
	// Recv.
	return stream, nil
}

func mustTail(t *testing.T, h *harness, req *hookwirev1.TailDeliveriesRequest) hookwirev1.DeliveryService_TailDeliveriesClient {
	t.Helper()
	s, err := h.tail(adminKey, req)
	if err != nil {
		t.Fatalf("tail: %v", err)
	}
	return s
}

func recvTail(t *testing.T, s hookwirev1.DeliveryService_TailDeliveriesClient) *hookwirev1.TailDeliveriesResponse {
	t.Helper()
	it, err := s.Recv()
	if err != nil {
		t.Fatalf("tail recv: %v", err)
	}
	return it
}

func TestTailDeliveriesLive(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	all := mustTail(t, h.harness, &hookwirev1.TailDeliveriesRequest{Tenant: "acme"})
	failed := mustTail(t, h.harness, &hookwirev1.TailDeliveriesRequest{Tenant: "acme", Result: hookwirev1.TailResult_TAIL_RESULT_FAILED})

	pub := h.publish("order.created", `{"id":1}`)
	created := recvTail(t, all)
	if created.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_CREATED || created.GetEventId() != pub.GetId() ||
		created.GetSubscriptionId() != sub.GetId() || created.GetEventType() != "order.created" ||
		created.GetDeliveryStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING || !strings.HasPrefix(created.GetDeliveryId(), "dlv_") {
		t.Fatalf("first item %v, want the created delivery", created)
	}

	// First attempt fails: a retry is scheduled.
	a := h.next()
	if a.GetDeliveryId() != created.GetDeliveryId() {
		t.Fatalf("assigned %s, tail said %s", a.GetDeliveryId(), created.GetDeliveryId())
	}
	r := outcome(a, transportv1.Outcome_OUTCOME_FAILED, 0)
	r.Result.Error = "HTTP 500 from target"
	h.agent.report(t, r)
	for _, s := range []hookwirev1.DeliveryService_TailDeliveriesClient{all, failed} {
		it := recvTail(t, s)
		if it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT || it.GetDeliveryId() != a.GetDeliveryId() ||
			it.GetAttempt() != 1 || it.GetOutcome() != transportv1.Outcome_OUTCOME_FAILED || it.GetStatusCode() != 500 ||
			it.GetAgentId() != "agent-1" || it.GetError() != "HTTP 500 from target" || it.GetEventId() != pub.GetId() ||
			it.GetDeliveryStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING || it.GetNextAttemptTime() == nil {
			t.Fatalf("after a failed attempt: %v", it)
		}
	}

	// The retry succeeds: the item says the delivery succeeded. The
	// failed-only tail does not see it.
	h.advance(5 * time.Second)
	a = h.next()
	h.agent.report(t, ok(a))
	it := recvTail(t, all)
	if it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT || it.GetAttempt() != 2 || it.GetStatusCode() != 200 ||
		it.GetDeliveryStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED || it.GetNextAttemptTime() != nil {
		t.Fatalf("after the successful retry: %v", it)
	}

	// An operator cancel shows as CANCELLED, and the operator retry that
	// follows as REQUEUED.
	pub = h.publish("order.paid", `{"id":2}`)
	created = recvTail(t, all)
	h.next() // leased; never reported
	dc := hookwirev1.NewDeliveryServiceClient(h.conn)
	if _, err := dc.CancelDelivery(h.ctx(), &hookwirev1.CancelDeliveryRequest{Tenant: "acme", Id: created.GetDeliveryId()}); err != nil {
		t.Fatal(err)
	}
	if it = recvTail(t, all); it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_CANCELLED || it.GetDeliveryId() != created.GetDeliveryId() ||
		it.GetError() != "cancelled by an operator" || it.GetDeliveryStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED {
		t.Fatalf("after cancel: %v", it)
	}
	if _, err := dc.RetryDelivery(h.ctx(), &hookwirev1.RetryDeliveryRequest{Tenant: "acme", Id: created.GetDeliveryId()}); err != nil {
		t.Fatal(err)
	}
	if it = recvTail(t, all); it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_REQUEUED || it.GetEventId() != pub.GetId() {
		t.Fatalf("after retry: %v", it)
	}
	// A resend creates a new delivery of the same event.
	if _, err := dc.ResendEvent(h.ctx(), &hookwirev1.ResendEventRequest{Tenant: "acme", EventId: pub.GetId(), SubscriptionId: sub.GetId()}); err != nil {
		t.Fatal(err)
	}
	if it = recvTail(t, all); it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_CREATED || it.GetEventId() != pub.GetId() || it.GetDeliveryId() == created.GetDeliveryId() {
		t.Fatalf("after resend: %v", it)
	}
}

func TestTailDeliveriesFiltersAndAccess(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	subA := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"user.*"}})
	keys := hookwirev1.NewApiKeyServiceClient(h.conn)
	ro, err := keys.CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: "acme", Name: "viewer", Scope: hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "globex"}); err != nil {
		t.Fatal(err)
	}

	refused := []struct {
		name string
		key  string
		req  *hookwirev1.TailDeliveriesRequest
		code codes.Code
		want string
	}{
		{"unknown tenant", adminKey, &hookwirev1.TailDeliveriesRequest{Tenant: "nosuch"}, codes.NotFound, `tenant "nosuch" not found`},
		{"another tenant's key", ro.GetKey(), &hookwirev1.TailDeliveriesRequest{Tenant: "globex"}, codes.NotFound, `tenant "globex" not found`},
		{"bad subscription id", adminKey, &hookwirev1.TailDeliveriesRequest{Tenant: "acme", SubscriptionId: "nope"}, codes.InvalidArgument, "subscription_id"},
		{"subscription of another tenant", adminKey, &hookwirev1.TailDeliveriesRequest{Tenant: "globex", SubscriptionId: subA.GetId()}, codes.NotFound, "not found"},
		{"bad event type", adminKey, &hookwirev1.TailDeliveriesRequest{Tenant: "acme", EventType: "order..x"}, codes.InvalidArgument, "event_type"},
		{"unspecified outcome", adminKey, &hookwirev1.TailDeliveriesRequest{Tenant: "acme", Outcomes: []transportv1.Outcome{0}}, codes.InvalidArgument, "outcomes"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			s, err := h.tail(c.key, c.req)
			if err == nil {
				_, err = s.Recv()
			}
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.want) {
				t.Fatalf("got %v, want %s with %q", err, c.code, c.want)
			}
		})
	}

	// A read-only key of the tenant may tail; filters apply per stream.
	bySub, err := h.tail(ro.GetKey(), &hookwirev1.TailDeliveriesRequest{Tenant: "acme", SubscriptionId: subA.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	byType := mustTail(t, h.harness, &hookwirev1.TailDeliveriesRequest{Tenant: "acme", EventType: "user.*", AttemptsOnly: true})
	h.publish("user.created", `{}`)
	h.publish("order.created", `{}`)
	for range 2 {
		a := h.next()
		h.agent.report(t, ok(a))
	}
	if it := recvTail(t, bySub); it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_CREATED || it.GetEventType() != "order.created" {
		t.Fatalf("subscription tail first saw %v", it)
	}
	if it := recvTail(t, bySub); it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT || it.GetEventType() != "order.created" {
		t.Fatalf("subscription tail then saw %v", it)
	}
	if it := recvTail(t, byType); it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT || it.GetEventType() != "user.created" {
		t.Fatalf("event type tail saw %v", it)
	}
	// Each filtered stream saw exactly its items: the next thing either
	// sees is a marker published now.
	h.publish("order.marker", `{}`)
	if it := recvTail(t, bySub); it.GetEventType() != "order.marker" {
		t.Fatalf("subscription tail saw %v, want the marker", it)
	}
	h.agent.report(t, ok(h.next()))
	h.publish("user.marker", `{}`)
	h.agent.report(t, ok(h.next()))
	if it := recvTail(t, byType); it.GetEventType() != "user.marker" {
		t.Fatalf("event type tail saw %v, want the marker", it)
	}
}

func TestTailEndsOnServerShutdown(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	h.setup("acme")
	s := mustTail(t, h, &hookwirev1.TailDeliveriesRequest{Tenant: "acme"})
	closed := make(chan error, 1)
	go func() { closed <- h.srv.Close() }()
	_, err := s.Recv()
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "shutting down") {
		t.Fatalf("tail at shutdown: %v, want Unavailable", err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server Close waited on the tail")
	}
}

// restTail opens the REST tail of tenant acme (attempts only) with the
// given Accept header and returns its items' JSON as they come: each NDJSON
// line, or each Server-Sent Event's data (the event must be one "data:"
// line). The response's Content-Type is checked against wantType.
func restTail(t *testing.T, h *deliveryHarness, accept, wantType string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+h.srv.HTTPAddr()+"/v1/tenants/acme/deliveries:tail?attempts_only=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	sse := accept == "text/event-stream"
	// The gateway sends its headers with the first item, so the request
	// returns only then.
	items := make(chan string, 16)
	go func() {
		defer close(items)
		send := func(s string) bool {
			select {
			case items <- s:
				return true
			case <-ctx.Done():
				return false
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			send("error: " + err.Error())
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != wantType {
			send(fmt.Sprintf("error: HTTP %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type")))
			return
		}
		sc := bufio.NewScanner(resp.Body)
		var event []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case !sse:
				if !send(line) {
					return
				}
			case line != "":
				event = append(event, line)
			default: // an empty line ends an event
				data, found := strings.CutPrefix(strings.Join(event, "\n"), "data: ")
				event = nil
				if !found || strings.Contains(data, "\n") {
					data = "error: event is not one data line: " + data
				}
				if !send(data) {
					return
				}
			}
		}
	}()
	return items
}

// awaitRESTAttempt publishes until an attempt comes through the REST tail
// (events published before the watch is in place are not shown) and
// checks the item.
func awaitRESTAttempt(t *testing.T, h *deliveryHarness, items <-chan string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		h.publish("order.created", `{}`)
		h.agent.report(t, ok(h.next()))
		select {
		case item, open := <-items:
			if !open {
				t.Fatal("REST tail ended")
			}
			if strings.HasPrefix(item, "error: ") {
				t.Fatalf("REST tail: %s", item)
			}
			var frame struct{ Result json.RawMessage }
			if err := json.Unmarshal([]byte(item), &frame); err != nil {
				t.Fatalf("item %q: %v", item, err)
			}
			var it hookwirev1.TailDeliveriesResponse
			if err := protojson.Unmarshal(frame.Result, &it); err != nil {
				t.Fatalf("result %s: %v", frame.Result, err)
			}
			if it.GetKind() == hookwirev1.TailEventKind_TAIL_EVENT_KIND_HEARTBEAT {
				continue // an idle stream's keep-alive (a slow machine)
			}
			if it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT || it.GetStatusCode() != 200 || !strings.Contains(item, `"TAIL_EVENT_KIND_ATTEMPT"`) {
				t.Fatalf("REST tail item %s", item)
			}
			return
		case <-deadline:
			t.Fatal("no attempt on the REST tail within 30s")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestTailOverREST(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	awaitRESTAttempt(t, h, restTail(t, h, "", "application/json"))
}

func TestTailHeartbeatWhenIdle(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{AdminAddr: "127.0.0.1:0"})
	h.setup("acme")
	opened := time.Now()
	s := mustTail(t, h, &hookwirev1.TailDeliveriesRequest{Tenant: "acme", HeartbeatInterval: durationpb.New(time.Second)})
	if n := scrape(t, h.srv.AdminAddr())("hookwire_tail_watchers"); n != 1 {
		t.Fatalf("hookwire_tail_watchers = %v with one tail open", n)
	}
	// Nothing is published: a heartbeat comes after the interval (the
	// stream's 30s deadline bounds the wait), then another.
	for i := range 2 {
		it := recvTail(t, s)
		if it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_HEARTBEAT || it.GetTime() == nil || it.GetDeliveryId() != "" || it.GetEventType() != "" {
			t.Fatalf("item %d on an idle tail: %v, want a HEARTBEAT", i, it)
		}
	}
	// Two intervals of 1s, less what the client gained by seeing the
	// headers after the server's timer started.
	if took := time.Since(opened); took < 1900*time.Millisecond {
		t.Fatalf("two heartbeats within %s: the interval is not honoured", took)
	}
}

func TestTailHeartbeatIntervalBounds(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	h.setup("acme")
	for _, d := range []time.Duration{500 * time.Millisecond, -time.Second, 5*time.Minute + time.Second} {
		s, err := h.tail(adminKey, &hookwirev1.TailDeliveriesRequest{Tenant: "acme", HeartbeatInterval: durationpb.New(d)})
		if err == nil {
			_, err = s.Recv()
		}
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "heartbeat_interval: must be 0 (the default, 15s) or from 1s to 5m") {
			t.Fatalf("heartbeat_interval %s: %v, want InvalidArgument naming the bounds", d, err)
		}
	}
	// 0 is the default; 5m is allowed.
	for _, d := range []time.Duration{0, 5 * time.Minute} {
		if _, err := h.tail(adminKey, &hookwirev1.TailDeliveriesRequest{Tenant: "acme", HeartbeatInterval: durationpb.New(d)}); err != nil {
			t.Fatalf("heartbeat_interval %s refused: %v", d, err)
		}
	}
}

func TestTailHeartbeatOverREST(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	h.setup("acme")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+h.srv.HTTPAddr()+"/v1/tenants/acme/deliveries:tail?heartbeat_interval=1s", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	// The gateway answers with its first line: on an idle tail, the
	// heartbeat.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() {
		t.Fatalf("no line: %v", sc.Err())
	}
	var frame struct{ Result json.RawMessage }
	if err := json.Unmarshal(sc.Bytes(), &frame); err != nil {
		t.Fatalf("line %q: %v", sc.Text(), err)
	}
	var it hookwirev1.TailDeliveriesResponse
	if err := protojson.Unmarshal(frame.Result, &it); err != nil {
		t.Fatalf("result %s: %v", frame.Result, err)
	}
	if it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_HEARTBEAT || it.GetTime() == nil || !strings.Contains(sc.Text(), `"TAIL_EVENT_KIND_HEARTBEAT"`) {
		t.Fatalf("REST line %s, want a heartbeat", sc.Text())
	}
	// A bad interval is a 400 naming the bounds.
	body, code, _ := h.restFull("GET", "/v1/tenants/acme/deliveries:tail?heartbeat_interval=10m", "")
	if code != http.StatusBadRequest || !strings.Contains(string(body), "from 1s to 5m") {
		t.Fatalf("heartbeat_interval=10m: HTTP %d %s", code, body)
	}
}

// TestTailDroppedCounted tails without reading while thousands of
// deliveries are created: the watch's buffer fills, items are dropped and
// counted in /metrics, and the client, once it reads, is told as many.
func TestTailDroppedCounted(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{AdminAddr: "127.0.0.1:0", NoSync: true})
	h.setup("acme")
	// Fixed 64 KiB flow-control windows (no BDP growth): a client that
	// does not read stops the server's sends soon.
	conn, err := grpc.NewClient(h.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(authed(context.Background(), adminKey), 60*time.Second)
	defer cancel()
	s, err := hookwirev1.NewDeliveryServiceClient(conn).TailDeliveries(ctx, &hookwirev1.TailDeliveriesRequest{Tenant: "acme", HeartbeatInterval: durationpb.New(5 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatal(err)
	}
	metric := func(series string) float64 { return scrape(t, h.srv.AdminAddr())(series) }
	if n := metric("hookwire_tail_dropped_total"); n != 0 {
		t.Fatalf("hookwire_tail_dropped_total = %v before anything was published", n)
	}
	batch := &hookwirev1.PublishEventsRequest{Tenant: "acme"}
	for range 1000 {
		batch.Events = append(batch.Events, &hookwirev1.Event{Type: "order.created", Payload: []byte(`{}`)})
	}
	published := 0
	for metric("hookwire_tail_dropped_total") == 0 {
		if published >= 20 {
			t.Fatalf("nothing dropped after %d events published to a tail that does not read", published*1000)
		}
		if _, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvents(h.ctx(), batch); err != nil {
			t.Fatal(err)
		}
		published++
	}
	// Read everything: the DROPPED items add up to the counter. (Items of
	// the last publish may still be on their way: read until they agree.)
	var told int64
	seen := 0
	for told == 0 || float64(told) != metric("hookwire_tail_dropped_total") {
		it := recvTail(t, s)
		seen++
		if it.GetKind() == hookwirev1.TailEventKind_TAIL_EVENT_KIND_DROPPED {
			told += it.GetDropped()
		}
	}
	if int(told) >= published*1000 || seen == 0 {
		t.Fatalf("told %d dropped of %d published, %d items read", told, published*1000, seen)
	}
	cancel()
	// The server notices the client leaving; the gauge goes back to 0.
	deadline := time.Now().Add(10 * time.Second)
	for metric("hookwire_tail_watchers") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("hookwire_tail_watchers still counts a tail the client cancelled")
		}
		runtime.Gosched()
	}
}

// A browser's EventSource asks for text/event-stream: the tail then comes
// as Server-Sent Events, one "data: {JSON}" event per item, the same JSON
// as the NDJSON lines.
func TestTailOverServerSentEvents(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	awaitRESTAttempt(t, h, restTail(t, h, "text/event-stream", "text/event-stream"))
}
