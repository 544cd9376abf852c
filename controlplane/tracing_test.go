package controlplane_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/agent"
	"github.com/hookwire/hookwire/controlplane"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	httptransport "github.com/hookwire/hookwire/plugins/http"
	"github.com/hookwire/hookwire/plugins/sdk/sdktest"
)

// hit is one request the tracing test's target received.
type hit struct {
	webhookID, traceparent string
}

// traceTarget is an HTTP target on 127.0.0.1 that fails its first request
// (so one delivery is retried through the store) and records the
// traceparent of every request.
type traceTarget struct {
	mu   sync.Mutex
	hits []hit
	more chan struct{}
}

func (tt *traceTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tt.mu.Lock()
	tt.hits = append(tt.hits, hit{r.Header.Get("webhook-id"), r.Header.Get("traceparent")})
	first := len(tt.hits) == 1
	tt.mu.Unlock()
	select {
	case tt.more <- struct{}{}:
	default:
	}
	if first {
		http.Error(w, "try again", http.StatusInternalServerError)
	}
}

func (tt *traceTarget) await(t *testing.T, n int) []hit {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		tt.mu.Lock()
		got := append([]hit(nil), tt.hits...)
		tt.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-tt.more:
		case <-deadline:
			t.Fatalf("target got %d requests, want %d", len(got), n)
		}
	}
}

// startTracedAgent runs a real agent whose http transport is served over
// go-plugin's gRPC machinery, so the trace context crosses the transport
// protocol as it does with a plugin process.
func startTracedAgent(t *testing.T, addr string, tp trace.TracerProvider) {
	t.Helper()
	impl := httptransport.New(httptransport.WithPolicy(httptransport.DevPolicy()))
	t.Cleanup(impl.CloseIdleConnections)
	src, err := agent.StaticTransports(context.Background(), sdktest.Connect(t, impl))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{ServerAddr: addr, APIKey: adminKey, AgentID: "traced", Transports: src, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("agent: %v", err)
		}
	})
}

// parseTraceparent splits a version-00 traceparent into its trace id and
// parent (span) id.
func parseTraceparent(t *testing.T, v string) (trace.TraceID, trace.SpanID) {
	t.Helper()
	parts := strings.Split(v, "-")
	if len(parts) != 4 || parts[0] != "00" {
		t.Fatalf("malformed traceparent %q", v)
	}
	tid, err := trace.TraceIDFromHex(parts[1])
	if err != nil {
		t.Fatalf("traceparent %q: %v", v, err)
	}
	sid, err := trace.SpanIDFromHex(parts[2])
	if err != nil {
		t.Fatalf("traceparent %q: %v", v, err)
	}
	return tid, sid
}

func attr(s tracetest.SpanStub, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// TestTraceLinksPublishDeliveryAgentAndTarget publishes over REST and over
// gRPC with an incoming traceparent and follows each event's trace: the
// publish span continues the caller's trace, every attempt's "deliver"
// span (also the retry, which the dispatcher reloads from the store) is a
// child of the publish span, the agent's "send" span is a child of the
// attempt's, and the target receives a traceparent in the same trace whose
// parent is the agent's span.
func TestTraceLinksPublishDeliveryAgentAndTarget(t *testing.T) {
	exp := &signallingExporter{InMemoryExporter: tracetest.NewInMemoryExporter(), exported: make(chan struct{}, 1)}
	cpTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	agentTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() {
		_ = cpTP.Shutdown(context.Background())
		_ = agentTP.Shutdown(context.Background())
	})

	target := &traceTarget{more: make(chan struct{}, 1)}
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)

	h := start(t, t.TempDir(), controlplane.Config{TracerProvider: cpTP, NoSync: true})
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := structpb.NewStruct(map[string]any{"url": srv.URL + "/hook"})
	if _, err := h.subscribeWith("acme", &hookwirev1.Subscription{
		Target: &hookwirev1.Target{Transport: "http", Config: cfg},
		// Retry at once, so the failed first attempt comes back through
		// the store (the pump) rather than from memory.
		RetryPolicy: &hookwirev1.RetryPolicy{Policy: &hookwirev1.RetryPolicy_Schedule{
			Schedule: &hookwirev1.RetrySchedule{Delays: []*durationpb.Duration{durationpb.New(0), durationpb.New(0)}}}},
	}); err != nil {
		t.Fatal(err)
	}
	startTracedAgent(t, h.srv.GRPCAddr(), agentTP)

	// Over REST: the gateway passes the traceparent header on. The
	// target fails this event's first attempt.
	const restParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	body, code := h.restRaw("POST", "/v1/tenants/acme/events", `{"type":"order.created","payload":{"n":1}}`,
		map[string]string{"traceparent": restParent, "tracestate": "vendor=abc"})
	if code != http.StatusOK {
		t.Fatalf("REST publish: %d %s", code, body)
	}
	var restEvent struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &restEvent); err != nil {
		t.Fatal(err)
	}
	target.await(t, 2)

	// Over gRPC: traceparent in the request metadata.
	const grpcParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := metadata.AppendToOutgoingContext(h.ctx(), "traceparent", grpcParent)
	grpcEvent, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(ctx, &hookwirev1.PublishEventRequest{
		Tenant: "acme", Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(`{"n":2}`)}})
	if err != nil {
		t.Fatal(err)
	}
	hits := target.await(t, 3)

	// Deliver spans end when the control plane has recorded the result,
	// which is after the target answered: wait for all of them.
	var spans tracetest.SpanStubs
	deadline := time.After(15 * time.Second)
	for {
		spans = exp.GetSpans()
		n := 0
		for _, s := range spans {
			if s.Name == "deliver order.created" {
				n++
			}
		}
		if n == 3 {
			break
		}
		select {
		case <-exp.exported:
		case <-deadline:
			t.Fatalf("%d deliver spans ended, want 3; spans: %v", n, spanNames(spans))
		}
	}

	for _, tc := range []struct {
		name, incoming, eventID string
		attempts                int
	}{
		{"REST", restParent, restEvent.ID, 2},
		{"gRPC", grpcParent, grpcEvent.GetId(), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			traceID, callerSpan := parseTraceparent(t, tc.incoming)
			var publish *tracetest.SpanStub
			var delivers, sends []tracetest.SpanStub
			for i, s := range spans {
				if s.SpanContext.TraceID() != traceID {
					continue
				}
				switch s.Name {
				case "hookwire.v1.EventService/PublishEvent":
					if publish != nil {
						t.Fatalf("two publish spans in trace %s", traceID)
					}
					publish = &spans[i]
				case "deliver order.created":
					delivers = append(delivers, s)
				case "send order.created":
					sends = append(sends, s)
				}
			}
			if publish == nil {
				t.Fatalf("no publish span continues the incoming trace %s; spans: %v", traceID, spanNames(spans))
			}
			if publish.Parent.SpanID() != callerSpan || !publish.Parent.IsRemote() || publish.SpanKind != trace.SpanKindServer {
				t.Errorf("publish span parent %s remote=%v kind %v, want the caller's %s, remote, server",
					publish.Parent.SpanID(), publish.Parent.IsRemote(), publish.SpanKind, callerSpan)
			}
			if got := attr(*publish, "hookwire.event.id").AsString(); got != tc.eventID {
				t.Errorf("publish span event id %q, want %q", got, tc.eventID)
			}
			if len(delivers) != tc.attempts || len(sends) != tc.attempts {
				t.Fatalf("%d deliver and %d send spans, want %d of each", len(delivers), len(sends), tc.attempts)
			}
			deliverIDs := map[trace.SpanID]tracetest.SpanStub{}
			attempts := map[int64]bool{}
			for _, d := range delivers {
				if d.Parent.SpanID() != publish.SpanContext.SpanID() {
					t.Errorf("deliver span (attempt %d) parent %s, want the publish span %s",
						attr(d, "hookwire.attempt").AsInt64(), d.Parent.SpanID(), publish.SpanContext.SpanID())
				}
				deliverIDs[d.SpanContext.SpanID()] = d
				attempts[attr(d, "hookwire.attempt").AsInt64()] = true
				if attr(d, "hookwire.agent.id").AsString() != "traced" {
					t.Errorf("deliver span agent %q, want traced", attr(d, "hookwire.agent.id").AsString())
				}
			}
			for n := 1; n <= tc.attempts; n++ {
				if !attempts[int64(n)] {
					t.Errorf("no deliver span for attempt %d (have %v)", n, attempts)
				}
			}
			sendIDs := map[trace.SpanID]bool{}
			for _, s := range sends {
				d, ok := deliverIDs[s.Parent.SpanID()]
				if !ok {
					t.Errorf("send span parent %s is not a deliver span of this trace", s.Parent.SpanID())
					continue
				}
				if s.SpanKind != trace.SpanKindClient || !s.Parent.IsRemote() {
					t.Errorf("send span kind %v remote parent=%v, want client with a remote parent", s.SpanKind, s.Parent.IsRemote())
				}
				if (d.Status.Code == otelcodes.Error) != (s.Status.Code == otelcodes.Error) {
					t.Errorf("deliver status %v but send status %v for the same attempt", d.Status, s.Status)
				}
				sendIDs[s.SpanContext.SpanID()] = true
			}
			if tc.attempts == 2 {
				failed := 0
				for _, d := range delivers {
					if d.Status.Code == otelcodes.Error && attr(d, "hookwire.outcome").AsString() == "failed" {
						failed++
					}
				}
				if failed != 1 {
					t.Errorf("%d failed deliver spans, want the first attempt's", failed)
				}
			}

			seen := 0
			for _, hit := range hits {
				if hit.traceparent == "" {
					t.Fatalf("target got no traceparent (hits %v)", hits)
				}
				tid, parent := parseTraceparent(t, hit.traceparent)
				if tid != traceID {
					continue
				}
				seen++
				if !sendIDs[parent] {
					t.Errorf("target's traceparent %q names parent %s, not one of the agent's send spans", hit.traceparent, parent)
				}
			}
			if seen != tc.attempts {
				t.Errorf("target saw %d requests in trace %s, want %d (hits %v)", seen, traceID, tc.attempts, hits)
			}
		})
	}
}

// signallingExporter is the in-memory exporter, also telling a channel
// whenever spans were exported, so the test can wait for them.
type signallingExporter struct {
	*tracetest.InMemoryExporter
	exported chan struct{}
}

func (e *signallingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.InMemoryExporter.ExportSpans(ctx, spans)
	select {
	case e.exported <- struct{}{}:
	default:
	}
	return err
}

func spanNames(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name + "/" + s.SpanContext.TraceID().String()
	}
	return out
}
