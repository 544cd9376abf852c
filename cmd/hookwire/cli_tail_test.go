package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// waitStderr waits until a subprocess has written want to stderr.
func waitStderr(t *testing.T, p *proc, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not on stderr within %s; stderr:\n%s", want, within, p.stderr.String())
		}
		select {
		case <-p.done:
			t.Fatalf("exited (%v) before writing %q; stderr:\n%s", p.err, want, p.stderr.String())
		case <-tick.C:
		}
	}
}

type tailLine struct {
	Kind           string `json:"kind"`
	DeliveryID     string `json:"delivery_id"`
	EventID        string `json:"event_id"`
	EventType      string `json:"event_type"`
	SubscriptionID string `json:"subscription_id"`
	DeliveryStatus string `json:"delivery_status"`
	Attempt        int    `json:"attempt"`
	StatusCode     int    `json:"status_code"`
	Outcome        string `json:"outcome"`
	AgentID        string `json:"agent_id"`
	Latency        string `json:"latency"`
}

func TestCLITailLive(t *testing.T) {
	sk := newSink(t)
	srv := startServer(t, t.TempDir())
	startAgent(t, srv.grpcAddr, "agent-tail")
	subID, _ := createSubscription(t, srv.httpAddr, "acme", sk.url)
	env := []string{"HOOKWIRE_API_KEY=" + e2eAdminKey, "HOOKWIRE_CONFIG=" + t.TempDir() + "/config.yaml",
		"HOOKWIRE_CONTEXT=", "HOOKWIRE_ADDR=" + srv.grpcAddr, "HOOKWIRE_TENANT=acme", "NO_COLOR="}
	jsonTail, jsonOut := startProc(t, env, "tail", "-o", "json")
	humanTail, humanOut := startProc(t, env, "tail", "-o", "table", "--attempts-only", "--event-type", "order.*")
	waitStderr(t, jsonTail, "Tailing deliveries of tenant acme", 30*time.Second)
	waitStderr(t, humanTail, "Tailing deliveries of tenant acme", 30*time.Second)

	evID := publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":{"id":1}}`)
	var created, attempt tailLine
	for _, l := range []*tailLine{&created, &attempt} {
		line := nextLine(t, jsonOut, jsonTail, 30*time.Second)
		if err := json.Unmarshal([]byte(line), l); err != nil {
			t.Fatalf("tail printed %q: %v", line, err)
		}
	}
	if created.Kind != "TAIL_EVENT_KIND_CREATED" || created.EventID != evID || created.SubscriptionID != subID || created.EventType != "order.created" {
		t.Fatalf("first line %+v, want the created delivery", created)
	}
	if attempt.Kind != "TAIL_EVENT_KIND_ATTEMPT" || attempt.DeliveryID != created.DeliveryID || attempt.Attempt != 1 ||
		attempt.StatusCode != 204 || attempt.Outcome != "OUTCOME_SUCCESS" || attempt.DeliveryStatus != "DELIVERY_STATUS_SUCCEEDED" ||
		attempt.AgentID != "agent-tail" || attempt.Latency == "" {
		t.Fatalf("second line %+v, want the successful attempt", attempt)
	}
	sk.await(1, 30*time.Second)
	if _, ok := sk.all()[created.DeliveryID]; !ok {
		t.Fatalf("the sink did not receive webhook-id %s", created.DeliveryID)
	}

	line := nextLine(t, humanOut, humanTail, 30*time.Second)
	for _, want := range []string{"succeeded", "order.created", created.DeliveryID, subID, "#1", "204", "success", "agent-tail"} {
		if !strings.Contains(line, want) {
			t.Errorf("human line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "\x1b[") {
		t.Errorf("colour codes in output that is not a terminal: %q", line)
	}

	// Ctrl-C is the normal way to stop: exit 0.
	for _, p := range []*proc{jsonTail, humanTail} {
		p.kill(syscall.SIGINT)
		if p.err != nil {
			t.Fatalf("tail exited with %v after SIGINT; stderr:\n%s", p.err, p.stderr.String())
		}
	}

	h := newHW(t, srv.grpcAddr)
	h.fail(exitNotFound, `tenant "nosuch" not found`, "tail", "--tenant", "nosuch")
	h.fail(exitNotFound, "not found", "tail", "--tenant", "acme", "--subscription", "sub_01J00000000000000000000000")
	h.fail(exitInvalid, "subscription_id", "tail", "--tenant", "acme", "--subscription", "nope")
	h.fail(exitUsage, `--status "bogus"`, "tail", "--tenant", "acme", "--status", "bogus")
	h.fail(exitUsage, `--outcome "meh"`, "tail", "--tenant", "acme", "--outcome", "timeout,meh")
	h.fail(exitUsage, `--output "yaml"`, "tail", "--tenant", "acme", "-o", "yaml")
	h.fail(exitUsage, "add -o json", "tail", "--tenant", "acme", "-o", "table", "--heartbeats")
	h.fail(exitUsage, "--heartbeat-interval 500ms: use 1s to 5m", "tail", "--tenant", "acme", "--heartbeat-interval", "500ms")
	h.fail(exitUsage, "no tenant", "tail")
	badKey := newHW(t, srv.grpcAddr).with("HOOKWIRE_API_KEY=wrong-key-0123456789")
	badKey.fail(exitAuth, "invalid API key", "tail", "--tenant", "acme")
	down := newHW(t, "127.0.0.1:1").with("HOOKWIRE_API_KEY=" + e2eAdminKey)
	down.fail(exitUnavailable, "cannot connect", "tail", "--tenant", "acme")
}

func TestTailLines(t *testing.T) {
	at := time.Date(2025, 3, 4, 15, 4, 5, 123e6, time.UTC)
	attempt := &hookwirev1.TailDeliveriesResponse{
		Kind: hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT, Time: timestamppb.New(at), DeliveryId: "dlv_1", EventType: "order.created",
		SubscriptionId: "sub_1", DeliveryStatus: hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING, Attempt: 2, StatusCode: 503,
		Outcome: transportv1.Outcome_OUTCOME_THROTTLED, Latency: durationpb.New(31 * time.Millisecond), AgentId: "a1",
		NextAttemptTime: timestamppb.New(at.Add(5 * time.Minute)), Error: "HTTP 503\nService Unavailable",
	}
	plain := (&tailPrinter{human: true}).line(attempt, time.UTC)
	want := "15:04:05.123  retrying    order.created             dlv_1  sub_1  #2   503  throttled            31ms  a1  next in 5m  HTTP 503 Service Unavailable"
	if plain != want {
		t.Fatalf("line\n%q\nwant\n%q", plain, want)
	}
	coloured := (&tailPrinter{human: true, color: true}).line(attempt, time.UTC)
	if !strings.Contains(coloured, ansiYellow+"retrying  "+ansiReset) {
		t.Fatalf("retrying is not yellow: %q", coloured)
	}
	cases := []struct {
		kind   hookwirev1.TailEventKind
		status hookwirev1.DeliveryStatus
		label  string
		color  string
	}{
		{hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT, hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, "succeeded", ansiGreen},
		{hookwirev1.TailEventKind_TAIL_EVENT_KIND_ATTEMPT, hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD, "dead", ansiRed},
		{hookwirev1.TailEventKind_TAIL_EVENT_KIND_CANCELLED, hookwirev1.DeliveryStatus_DELIVERY_STATUS_CANCELLED, "cancelled", ansiRed},
		{hookwirev1.TailEventKind_TAIL_EVENT_KIND_CREATED, hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING, "created", ansiCyan},
		{hookwirev1.TailEventKind_TAIL_EVENT_KIND_REQUEUED, hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING, "requeued", ansiCyan},
	}
	for _, c := range cases {
		label, color := tailLabel(&hookwirev1.TailDeliveriesResponse{Kind: c.kind, DeliveryStatus: c.status})
		if label != c.label || color != c.color {
			t.Errorf("%s/%s: %q %q, want %q %q", c.kind, c.status, label, color, c.label, c.color)
		}
	}
	dropped := (&tailPrinter{human: true}).line(&hookwirev1.TailDeliveriesResponse{Kind: hookwirev1.TailEventKind_TAIL_EVENT_KIND_DROPPED, Time: timestamppb.New(at), Dropped: 42}, time.UTC)
	if !strings.Contains(dropped, "dropped") || !strings.Contains(dropped, "42 items not shown") {
		t.Fatalf("dropped line %q", dropped)
	}
}

func TestTailRequestFromFlags(t *testing.T) {
	req, err := tailRequest("acme", tailOptions{status: "Retrying", outcomes: []string{"connection-error", " timeout"}, attemptsOnly: true, eventType: "order.*"})
	if err != nil {
		t.Fatal(err)
	}
	if req.GetResult() != hookwirev1.TailResult_TAIL_RESULT_RETRYING || len(req.GetOutcomes()) != 2 ||
		req.GetOutcomes()[0] != transportv1.Outcome_OUTCOME_CONNECTION_ERROR || req.GetOutcomes()[1] != transportv1.Outcome_OUTCOME_TIMEOUT ||
		!req.GetAttemptsOnly() || req.GetEventType() != "order.*" || req.GetTenant() != "acme" {
		t.Fatalf("request %v", req)
	}
	if req.GetHeartbeatInterval() != nil {
		t.Fatalf("heartbeat_interval %v set without the flag", req.GetHeartbeatInterval())
	}
	if req, err = tailRequest("acme", tailOptions{heartbeatInterval: 10 * time.Second}); err != nil || req.GetHeartbeatInterval().AsDuration() != 10*time.Second {
		t.Fatalf("--heartbeat-interval 10s: %v %v", req, err)
	}
	for _, o := range []tailOptions{{status: "unspecified"}, {status: "pending"}, {outcomes: []string{"unspecified"}},
		{heartbeatInterval: time.Millisecond}, {heartbeatInterval: -time.Second}, {heartbeatInterval: 6 * time.Minute}} {
		if _, err := tailRequest("acme", o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestCLITailReconnects(t *testing.T) {
	addr := freeAddr(t)
	dir := t.TempDir()
	srv := startServerAt(t, dir, addr, "127.0.0.1:0")
	createSubscription(t, srv.httpAddr, "acme", "http://127.0.0.1:1/hook")
	env := []string{"HOOKWIRE_API_KEY=" + e2eAdminKey, "HOOKWIRE_CONFIG=" + t.TempDir() + "/config.yaml",
		"HOOKWIRE_CONTEXT=", "HOOKWIRE_ADDR=" + addr, "HOOKWIRE_TENANT=acme"}
	tail, out := startProc(t, env, "tail")
	once, _ := startProc(t, env, "tail", "--no-reconnect")
	waitStderr(t, tail, "Tailing deliveries of tenant acme", 30*time.Second)
	waitStderr(t, once, "Tailing deliveries of tenant acme", 30*time.Second)

	// The server shuts down: tail waits for it, tail --no-reconnect exits 6.
	srv.kill(syscall.SIGTERM)
	waitStderr(t, tail, "Connection lost", 30*time.Second)
	select {
	case <-once.done:
	case <-time.After(30 * time.Second):
		t.Fatal("tail --no-reconnect did not exit when the server stopped")
	}
	var ee *exec.ExitError
	if !errors.As(once.err, &ee) || ee.ExitCode() != exitUnavailable || !strings.Contains(once.stderr.String(), "shutting down") {
		t.Fatalf("tail --no-reconnect: %v, want exit %d; stderr:\n%s", once.err, exitUnavailable, once.stderr.String())
	}

	srv = startServerAt(t, dir, addr, "127.0.0.1:0")
	waitStderr(t, tail, "Reconnected", 60*time.Second)
	evID := publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":{}}`)
	var it tailLine
	line := nextLine(t, out, tail, 30*time.Second)
	if err := json.Unmarshal([]byte(line), &it); err != nil || it.Kind != "TAIL_EVENT_KIND_CREATED" || it.EventID != evID {
		t.Fatalf("after reconnecting tail printed %q (%v)", line, err)
	}
}

func TestTailHeartbeatsPrintedOnlyWhenAsked(t *testing.T) {
	beat := &hookwirev1.TailDeliveriesResponse{Kind: hookwirev1.TailEventKind_TAIL_EVENT_KIND_HEARTBEAT, Time: timestamppb.New(time.Unix(1700000000, 0))}
	created := &hookwirev1.TailDeliveriesResponse{Kind: hookwirev1.TailEventKind_TAIL_EVENT_KIND_CREATED, Time: timestamppb.New(time.Unix(1700000000, 0)), DeliveryId: "dlv_1"}
	for _, c := range []struct {
		name              string
		human, heartbeats bool
		want              string // the heartbeat's line; "" for none
	}{
		{"table", true, false, ""},
		{"json", false, false, ""},
		{"json --heartbeats", false, true, `"kind":"TAIL_EVENT_KIND_HEARTBEAT"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			p := &tailPrinter{w: &out, human: c.human, heartbeats: c.heartbeats}
			for _, it := range []*hookwirev1.TailDeliveriesResponse{beat, created} {
				if err := p.print(it); err != nil {
					t.Fatal(err)
				}
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if c.want == "" {
				if len(lines) != 1 || !strings.Contains(lines[0], "dlv_1") {
					t.Fatalf("printed %q, want only the created delivery", out.String())
				}
				return
			}
			if len(lines) != 2 || !strings.Contains(lines[0], c.want) || !strings.Contains(lines[1], "dlv_1") {
				t.Fatalf("printed %q, want the heartbeat (%s) then the delivery", out.String(), c.want)
			}
		})
	}
}

func TestCLITailHeartbeats(t *testing.T) {
	srv := startServer(t, t.TempDir())
	createSubscription(t, srv.httpAddr, "acme", "http://127.0.0.1:1/hook")
	env := []string{"HOOKWIRE_API_KEY=" + e2eAdminKey, "HOOKWIRE_CONFIG=" + t.TempDir() + "/config.yaml",
		"HOOKWIRE_CONTEXT=", "HOOKWIRE_ADDR=" + srv.grpcAddr, "HOOKWIRE_TENANT=acme"}
	beats, beatsOut := startProc(t, env, "tail", "-o", "json", "--heartbeats", "--heartbeat-interval", "1s")
	quiet, quietOut := startProc(t, env, "tail", "-o", "json", "--heartbeat-interval", "1s")
	waitStderr(t, quiet, "Tailing deliveries of tenant acme", 30*time.Second)
	waitStderr(t, beats, "Tailing deliveries of tenant acme", 30*time.Second)
	// Three heartbeats on the first tail from now: the quiet one, already
	// established, has had at least two of its own meanwhile.
	for range 3 {
		var it tailLine
		if line := nextLine(t, beatsOut, beats, 30*time.Second); json.Unmarshal([]byte(line), &it) != nil || it.Kind != "TAIL_EVENT_KIND_HEARTBEAT" {
			t.Fatalf("tail --heartbeats on an idle stream printed %q", line)
		}
	}
	evID := publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":{}}`)
	var it tailLine
	if line := nextLine(t, quietOut, quiet, 30*time.Second); json.Unmarshal([]byte(line), &it) != nil || it.Kind != "TAIL_EVENT_KIND_CREATED" || it.EventID != evID {
		t.Fatalf("tail without --heartbeats first printed %q, want the created delivery", line)
	}
}
