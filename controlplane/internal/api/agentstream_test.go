package api

import (
	"context"
	"testing"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
)

// connectStream is an agent's stream as the server sees it; the
// admission checks never read or write it.
type connectStream struct {
	hookwirev1.AgentService_ConnectServer
	ctx context.Context
}

func (c *connectStream) Context() context.Context { return c.ctx }

func TestAgentServiceConnectAdmission(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	connect := func(ctx context.Context) error { return s.agents.Connect(&connectStream{ctx: ctx}) }

	wantCode(t, connect(t.Context()), codes.Unauthenticated, "missing API key")
	// A tenant's key, even its admin key, is not an agent's.
	wantCode(t, connect(asTenant(t.Context(), "acme", scopeTenantAdmin)), codes.Unauthenticated,
		"agents connect with the admin key or a join token")

	// The admin key and a join token are admitted; the stream is the
	// dispatcher's, which only the leader runs.
	wantCode(t, connect(asAdmin(t.Context())), codes.Unavailable, "not the cluster leader")
	tok, err := s.agentAdmin.CreateJoinToken(asAdmin(t.Context()), &hookwirev1.CreateJoinTokenRequest{Name: "edge"})
	if err != nil {
		t.Fatal(err)
	}
	joined, err := s.auth.authenticateJoin(t.Context(), connectMethod, tok.GetToken())
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, connect(joined), codes.Unavailable, "not the cluster leader")
}
