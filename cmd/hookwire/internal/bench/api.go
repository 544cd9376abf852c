package bench

import (
	"bytes"
	"context"
	"fmt"
	"github.com/hookwire/hookwire/internal/multiaddr"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// bearer attaches the API key to every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// dial opens a client connection that reconnects quickly (the chaos
// scenario restarts the control plane under it).
func dial(addr, key string) (*grpc.ClientConn, error) {
	return dialBackoff(addr, key, 50*time.Millisecond, 250*time.Millisecond)
}

func dialBackoff(addr, key string, base, maxDelay time.Duration) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: base, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxDelay},
			MinConnectTimeout: 2 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
	}
	if key != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(key)))
	}
	// addr may list several servers of one cluster (a,b,c).
	target, multi, err := multiaddr.Dial(addr)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(target, append(multi, opts...)...)
}

// API is a client of one control plane: gRPC (a few connections, used
// round robin, so one HTTP/2 connection does not cap the load) and REST
// (to one server, or round robin over several).
type API struct {
	conns     []*grpc.ClientConn
	next      atomic.Uint32
	restBases []string
	nextREST  atomic.Uint32
	key       string
	rest      *http.Client
}

// newAPI dials grpcAddr; REST calls go to the restBases in turn.
func newAPI(grpcAddr string, restBases []string, key string, nconn int) (*API, error) {
	a := &API{restBases: restBases, key: key}
	for range max(nconn, 1) {
		c, err := dial(grpcAddr, key)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.conns = append(a.conns, c)
	}
	a.rest = &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 30 * time.Second}}
	return a, nil
}

// hasREST reports whether REST calls have somewhere to go (a remote
// deployment needs --rest-url).
func (a *API) hasREST() bool { return len(a.restBases) > 0 && a.restBases[0] != "" }

func (a *API) Close() {
	for _, c := range a.conns {
		_ = c.Close()
	}
	if a.rest != nil {
		a.rest.CloseIdleConnections()
	}
}

func (a *API) conn() *grpc.ClientConn {
	return a.conns[int(a.next.Add(1))%len(a.conns)]
}

func (a *API) events() hookwirev1.EventServiceClient {
	return hookwirev1.NewEventServiceClient(a.conn())
}
func (a *API) subs() hookwirev1.SubscriptionServiceClient {
	return hookwirev1.NewSubscriptionServiceClient(a.conns[0])
}
func (a *API) deliveries() hookwirev1.DeliveryServiceClient {
	return hookwirev1.NewDeliveryServiceClient(a.conns[0])
}

func (a *API) createTenant(ctx context.Context, id string) error {
	_, err := hookwirev1.NewTenantServiceClient(a.conns[0]).CreateTenant(ctx, &hookwirev1.CreateTenantRequest{Id: id})
	if status.Code(err) == codes.AlreadyExists {
		return nil
	}
	return err
}

// subSpec is a subscription to create.
type subSpec struct {
	eventTypes  []string
	filter      string // CEL filter, "" for none
	url         string
	timeout     time.Duration   // 0: the control plane's default
	retryDelays []time.Duration // nil: the default schedule
}

func (a *API) createSub(ctx context.Context, tenant string, s subSpec) (string, error) {
	cfg, err := structpb.NewStruct(map[string]any{"url": s.url})
	if err != nil {
		return "", err
	}
	t := &hookwirev1.Target{Transport: "http", Config: cfg}
	if s.timeout > 0 {
		t.Timeout = durationpb.New(s.timeout)
	}
	in := &hookwirev1.Subscription{EventTypes: s.eventTypes, Filter: s.filter, Target: t, Description: "hookwire bench"}
	if s.retryDelays != nil {
		ds := make([]*durationpb.Duration, len(s.retryDelays))
		for i, d := range s.retryDelays {
			ds[i] = durationpb.New(d)
		}
		in.RetryPolicy = &hookwirev1.RetryPolicy{Policy: &hookwirev1.RetryPolicy_Schedule{Schedule: &hookwirev1.RetrySchedule{Delays: ds}}}
	}
	sub, err := hookwirev1.NewSubscriptionServiceClient(a.conn()).CreateSubscription(ctx, &hookwirev1.CreateSubscriptionRequest{Tenant: tenant, Subscription: in})
	if err != nil {
		return "", fmt.Errorf("create subscription: %w", err)
	}
	return sub.GetId(), nil
}

func (a *API) pause(ctx context.Context, tenant, id string) error {
	_, err := a.subs().PauseSubscription(ctx, &hookwirev1.PauseSubscriptionRequest{Tenant: tenant, Id: id})
	return err
}

func (a *API) resume(ctx context.Context, tenant, id string) error {
	_, err := a.subs().ResumeSubscription(ctx, &hookwirev1.ResumeSubscriptionRequest{Tenant: tenant, Id: id})
	return err
}

// pendingCount counts pending deliveries of a tenant, up to limit.
func (a *API) pendingCount(ctx context.Context, tenant string, limit int) (int, error) {
	n, token := 0, ""
	for n < limit {
		resp, err := a.deliveries().ListDeliveries(ctx, &hookwirev1.ListDeliveriesRequest{
			Tenant: tenant, Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING, PageSize: 1000, PageToken: token,
		})
		if err != nil {
			return n, err
		}
		n += len(resp.GetDeliveries())
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	return n, nil
}

// publishREST publishes one JSON event through the REST gateway, with an
// Idempotency-Key header unless idemKey is empty.
func (a *API) publishREST(ctx context.Context, tenant, eventType, idemKey string, payload []byte) error {
	body := make([]byte, 0, len(payload)+64)
	body = append(body, `{"type":`...)
	body = strconv.AppendQuote(body, eventType)
	body = append(body, `,"payload":`...)
	body = append(body, payload...)
	body = append(body, '}')
	base := a.restBases[int(a.nextREST.Add(1))%len(a.restBases)]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/tenants/"+tenant+"/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := a.rest.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("REST publish: HTTP %d: %.200s", resp.StatusCode, b)
	}
	return nil
}

// awaitServing polls the gRPC health service until it answers SERVING.
func awaitServing(ctx context.Context, addr string, within time.Duration) (time.Duration, error) {
	start := time.Now()
	// Redial every few milliseconds so the answer is not late by a backoff.
	conn, err := dialBackoff(addr, "", 2*time.Millisecond, 5*time.Millisecond)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := start.Add(within)
	for {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return time.Since(start), nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("gRPC health of %s not SERVING within %s (last: %v)", addr, within, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// errCode names an error for the error tallies.
func errCode(err error) string {
	if s, ok := status.FromError(err); ok {
		return "grpc " + s.Code().String()
	}
	if err == context.DeadlineExceeded {
		return "deadline exceeded"
	}
	return "error"
}
