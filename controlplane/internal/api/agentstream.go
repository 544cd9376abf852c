package api

// AgentService: the agents' assignment stream. The caller is admitted
// here (the admin key, or a join token: agents.go); the stream itself is
// the dispatcher's (dispatch.Dispatcher.Serve), so it is served only while
// this server leads.

import (
	"context"
	"errors"

	"github.com/hookwire/hookwire/controlplane/internal/dispatch"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// agentService implements AgentService.
type agentService struct {
	hookwirev1.UnimplementedAgentServiceServer
	*Services
}

func (s *agentService) Connect(stream hookwirev1.AgentService_ConnectServer) error {
	ctx, err := connectAdmission(stream.Context())
	if err != nil {
		return err
	}
	// A join token that expires ends the sessions it admitted at that
	// moment, as revoking it does; the agent's reconnect is then refused.
	var expired error
	if p := principalFrom(ctx); p != nil && p.joinToken.GetExpireTime() != nil {
		t := p.joinToken
		expired = errJoinTokenExpired(t)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, t.GetExpireTime().AsTime().Sub(s.cfg.Now()), expired)
		defer cancel()
	}
	d, err := s.leading()
	if err != nil {
		return err
	}
	err = d.Serve(&admittedStream{AgentService_ConnectServer: stream, ctx: ctx})
	if expired != nil && errors.Is(context.Cause(ctx), expired) {
		return expired
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// connectAdmission checks the caller of AgentService.Connect (admin key or
// join token) and says how it was admitted.
func connectAdmission(ctx context.Context) (context.Context, error) {
	p := principalFrom(ctx)
	if p != nil && p.joinToken != nil {
		return dispatch.WithAdmission(ctx, dispatch.Admission{JoinToken: p.joinToken.GetId(), RequiredLabels: p.joinToken.GetLabels()}), nil
	}
	if err := requireAdmin(ctx); err != nil {
		if status.Code(err) == codes.PermissionDenied {
			return nil, status.Error(codes.Unauthenticated, "agents connect with the admin key or a join token (hwj_...); this API key is neither")
		}
		return nil, err
	}
	return ctx, nil
}

// admittedStream carries the admission in its context.
type admittedStream struct {
	hookwirev1.AgentService_ConnectServer
	ctx context.Context
}

func (s *admittedStream) Context() context.Context { return s.ctx }
