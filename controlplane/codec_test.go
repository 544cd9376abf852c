package controlplane_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookwire/hookwire/controlplane"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/hookwire/hookwire/plugins/sdk/vtcodec"
)

// connectVT opens the agent stream as the real agent does: with the
// vtproto codec, through the server's authentication.
func connectVT(h *harness, id string) hookwirev1.AgentService_ConnectClient {
	h.t.Helper()
	ctx, cancel := context.WithCancel(authed(context.Background(), adminKey))
	h.t.Cleanup(cancel)
	stream, err := hookwirev1.NewAgentServiceClient(h.conn).Connect(ctx, grpc.ForceCodecV2(vtcodec.Codec{}))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Hello{Hello: &hookwirev1.Hello{
		AgentId: id, MaxInFlight: 4, Labels: map[string]string{"région": "eu-ouest"},
		Transports: []*hookwirev1.TransportInfo{{Name: "http", Version: "1.0.0", ApiVersions: []uint32{1}}},
	}}}); err != nil {
		h.t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetWelcome() == nil {
		h.t.Fatalf("want Welcome, got %v, %v", m, err)
	}
	return stream
}

func nextAssignment(t *testing.T, stream hookwirev1.AgentService_ConnectClient) *hookwirev1.Assignment {
	t.Helper()
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		if items := m.GetAssignments().GetItems(); len(items) > 0 {
			return items[0]
		}
	}
}

// TestAgentStreamVTCodec runs an attempt over a stream that uses the
// vtproto codec on both ends: the signed assignment arrives whole, the
// result with its response headers is recorded. A result carrying text
// that is not UTF-8 is refused exactly as the standard codec refuses it,
// and nothing of it is recorded.
func TestAgentStreamVTCodec(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	h.setup("acme")
	stream := connectVT(h, "edge-vt")

	id := h.publishOne("acme", "order.created")
	a := nextAssignment(t, stream)
	req := a.GetRequest()
	if a.GetDeliveryId() != id || req.GetDeliveryId() != id || req.GetHeaders()["webhook-id"] != id ||
		req.GetHeaders()["webhook-signature"] == "" || req.GetConfig().GetFields()["url"].GetStringValue() != "http://127.0.0.1:1/hook" {
		t.Fatalf("assignment for %s arrived as %v", id, a)
	}
	headers := map[string]string{"content-type": "text/plain; charset=utf-8", "x-note": "reçu ✓"}
	if err := stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Results{Results: &hookwirev1.Results{Items: []*hookwirev1.Result{{
		LeaseId: a.GetLeaseId(), LeaseToken: a.GetLeaseToken(),
		Result: &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS, StatusCode: 202, ResponseHeaders: headers},
	}}}}}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv acks: %v", err)
		}
		if acks := m.GetResultAcks().GetItems(); len(acks) > 0 {
			if len(acks) != 1 || !acks[0].GetAccepted() {
				t.Fatalf("acks = %v, want the result accepted", acks)
			}
			break
		}
	}
	attempts, err := hookwirev1.NewDeliveryServiceClient(h.conn).ListAttempts(h.ctx(), &hookwirev1.ListAttemptsRequest{Tenant: "acme", DeliveryId: id})
	if err != nil {
		t.Fatal(err)
	}
	if got := attempts.GetAttempts(); len(got) != 1 || got[0].GetStatusCode() != 202 || got[0].GetAgentId() != "edge-vt" ||
		got[0].GetResponseHeaders()["x-note"] != "reçu ✓" {
		t.Fatalf("attempts = %v", got)
	}

	// A result whose response header is Latin-1, as a careless agent (or
	// one encoding without checks) could send it.
	id2 := h.publishOne("acme", "order.updated")
	a2 := nextAssignment(t, stream)
	if err := stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Results{Results: &hookwirev1.Results{Items: []*hookwirev1.Result{{
		LeaseId: a2.GetLeaseId(), LeaseToken: a2.GetLeaseToken(),
		Result: &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS, StatusCode: 200, ResponseHeaders: map[string]string{"x-note": "re\xe7u"}},
	}}}}}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := stream.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Internal {
			t.Fatalf("stream ended with %v, want Internal (invalid UTF-8 refused)", err)
		}
		break
	}
	d, err := hookwirev1.NewDeliveryServiceClient(h.conn).GetDelivery(h.ctx(), &hookwirev1.GetDeliveryRequest{Tenant: "acme", Id: id2})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING || d.GetAttemptCount() != 0 {
		t.Errorf("delivery after a refused result: status %v, %d attempts; want pending with none", d.GetStatus(), d.GetAttemptCount())
	}
}
