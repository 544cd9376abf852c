package api

import (
	"strings"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestAgentAdminJoinTokens(t *testing.T) {
	s := newTestServices(t)
	admin := asAdmin(t.Context())
	tok, err := s.agentAdmin.CreateJoinToken(admin, &hookwirev1.CreateJoinTokenRequest{Name: "edge", Labels: map[string]string{"region": "eu"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.GetToken(), tok.GetId()+"_") {
		t.Fatalf("token %q does not start with its id %q", tok.GetToken(), tok.GetId())
	}
	ev := lastAudit(t, s, auditJoinTokenCreate)
	if ev.GetResource() != "join-tokens/"+tok.GetId() || strings.Contains(ev.String(), tok.GetToken()) {
		t.Errorf("create audit record %v: want it on the token, without the token's value", ev)
	}
	// A join token admits agents, and nothing else.
	_, err = s.auth.authenticateJoin(t.Context(), "/hookwire.v1.TenantService/ListTenants", tok.GetToken())
	wantCode(t, err, codes.Unauthenticated, "join tokens only authenticate agents")

	list, err := s.agentAdmin.ListJoinTokens(admin, &hookwirev1.ListJoinTokensRequest{})
	if err != nil || len(list.GetJoinTokens()) != 1 || list.GetJoinTokens()[0].GetToken() != "" {
		t.Fatalf("ListJoinTokens = %v, %v; want the one token without its value", list, err)
	}

	revoked, err := s.agentAdmin.RevokeJoinToken(admin, &hookwirev1.RevokeJoinTokenRequest{Id: tok.GetId()})
	if err != nil || !revoked.GetRevoked() {
		t.Fatalf("revoke: %v, %v", revoked, err)
	}
	lastAudit(t, s, auditJoinTokenRevoke)
	_, err = s.auth.authenticateJoin(t.Context(), connectMethod, tok.GetToken())
	wantCode(t, err, codes.Unauthenticated, "has been revoked")
	_, err = s.agentAdmin.RevokeJoinToken(admin, &hookwirev1.RevokeJoinTokenRequest{Id: "hwj_missing"})
	wantCode(t, err, codes.NotFound, `join token "hwj_missing" not found`)
}

func TestAgentAdminRefusals(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	admin := asAdmin(t.Context())
	_, err := s.agentAdmin.CreateJoinToken(admin, &hookwirev1.CreateJoinTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(-time.Second))})
	wantCode(t, err, codes.InvalidArgument, "expire_time is in the past")
	_, err = s.agentAdmin.CreateJoinToken(admin, &hookwirev1.CreateJoinTokenRequest{Labels: map[string]string{"region": "eu west"}})
	wantCode(t, err, codes.InvalidArgument, `"region"="eu west" is not a valid label`)
	_, err = s.agentAdmin.CreateJoinToken(asTenant(t.Context(), "acme", scopeTenantAdmin), &hookwirev1.CreateJoinTokenRequest{})
	wantCode(t, err, codes.PermissionDenied, "needs the admin key")

	// Agents are the leader's to list and drain.
	_, err = s.agentAdmin.ListAgents(admin, &hookwirev1.ListAgentsRequest{})
	wantCode(t, err, codes.Unavailable, "not the cluster leader")
	_, err = s.agentAdmin.DrainAgent(admin, &hookwirev1.DrainAgentRequest{Id: "agent-1"})
	wantCode(t, err, codes.Unavailable, "not the cluster leader")
	if n := len(auditRecords(t, s)); n != 1 {
		t.Errorf("%d audit records; want only the tenant's create", n)
	}
}
