package api

// PortalService: portal sessions (the tokens a tenant hands to one of its
// customers for the embedded portal page), the tenant's portal settings,
// the page's start-up context and test events. What a portal token may
// call is decided in one place, portalgate.go.

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Portal token format: "hwp_" + 16-char id + "_" + 32-char secret, like
// API keys (auth.go); the id part names the session; only SHA-256 of the
// whole token is stored.
const portalTokenPrefix = "hwp_"

// PortalPathPrefix is where the REST listener serves the portal page:
// PortalPathPrefix + token.
const PortalPathPrefix = "/portal/"

// Session lifetimes.
const (
	defaultPortalTTL = time.Hour
	maxPortalTTL     = 24 * time.Hour
	minPortalTTL     = time.Minute
)

// Portal features: what a session may do beyond reading.
const (
	featureEndpointsWrite   = "endpoints.write"
	featureSecretsRotate    = "secrets.rotate"
	featureDeliveriesResend = "deliveries.resend"
	featureEventsTest       = "events.test"
)

const (
	auditPortalSessionCreate  = "portal_session.create"
	auditPortalSessionRevoke  = "portal_session.revoke"
	auditPortalSettingsUpdate = "portal_settings.update"
)

func portalSessionResource(tenant, id string) string {
	return tenantResource(tenant) + "/portal-sessions/" + id
}

// newPortalToken returns a fresh session id and token.
func newPortalToken() (id, token string, err error) { return newCredential(portalTokenPrefix) }

// portalTokenID returns the session id part of a token, or "" when the
// token is not of the portal form.
func portalTokenID(token string) string {
	id, _ := credentialID(portalTokenPrefix, token)
	return id
}

// portalGrant is what a portal principal may reach: the session's tenant,
// its subscriptions (by id or by labels) and its features.
type portalGrant struct {
	session  *hookwirev1.PortalSession
	ids      map[string]bool
	features map[string]bool
}

func newPortalGrant(sess *hookwirev1.PortalSession) *portalGrant {
	g := &portalGrant{session: sess, ids: map[string]bool{}, features: map[string]bool{}}
	for _, id := range sess.GetSubscriptionIds() {
		g.ids[id] = true
	}
	for _, f := range sess.GetFeatures() {
		g.features[f] = true
	}
	return g
}

// covers reports whether sub is in the session's scope.
func (g *portalGrant) covers(sub *hookwirev1.Subscription) bool {
	if sub.GetTenant() != g.session.GetTenant() {
		return false
	}
	if len(g.ids) > 0 {
		return g.ids[sub.GetId()]
	}
	for k, v := range g.session.GetLabels() {
		if got, ok := sub.GetMetadata()[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// can reports whether the session has feature.
func (g *portalGrant) can(feature string) bool { return g.features[feature] }

// LookupPortalSession resolves a portal token for the page handler. It
// returns the session and its tenant's portal settings, and whether the
// token may be used now; a token that names no session gives nil, nil,
// false. A revoked or expired session comes back unusable, so the page
// can still honour its tenant's frame-ancestors while it says so.
func (s *Services) LookupPortalSession(token string) (*hookwirev1.PortalSession, *hookwirev1.PortalSettings, bool, error) {
	sess, err := findPortalSession(s.cfg.Store, token)
	if sess == nil || err != nil {
		return nil, nil, false, err
	}
	ps, err := s.portalSettings(sess.GetTenant())
	if err != nil {
		return nil, nil, false, err
	}
	usable := !sess.GetRevoked() && s.cfg.Now().Before(sess.GetExpireTime().AsTime())
	return sess, ps, usable, nil
}

// findPortalSession returns the session a portal token names, or nil when
// the token is malformed, unknown or does not match; err only when the
// store cannot answer.
func findPortalSession(st *store.Store, token string) (*hookwirev1.PortalSession, error) {
	id := portalTokenID(token)
	if id == "" {
		return nil, nil
	}
	rec, err := st.GetPortalSession(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(rec.GetHash(), hashKey(token)) != 1 {
		return nil, nil
	}
	return rec.GetSession(), nil
}

// portalSession checks a portal token against the store.
func (a *authenticator) portalSession(token string) (*hookwirev1.PortalSession, error) {
	sess, err := findPortalSession(a.store, token)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "cannot check the portal token now: %v; retry", err)
	}
	if sess == nil {
		return nil, status.Error(codes.Unauthenticated, "invalid portal token")
	}
	if sess.GetRevoked() {
		return nil, status.Error(codes.Unauthenticated, "this portal session has been revoked; ask for a new link")
	}
	if !a.now().Before(sess.GetExpireTime().AsTime()) {
		return nil, status.Error(codes.Unauthenticated, "this portal session has expired; ask for a new link")
	}
	return sess, nil
}

// portalService implements PortalService.
type portalService struct {
	hookwirev1.UnimplementedPortalServiceServer
	*Services
	limit *keyLimiter // session creation, per tenant
}

func newPortalService(s *Services) *portalService {
	perSecond, burst := s.cfg.PortalSessionRate, s.cfg.PortalSessionBurst
	if perSecond <= 0 {
		perSecond = 5
	}
	if burst <= 0 {
		burst = 50
	}
	return &portalService{Services: s, limit: newKeyLimiter(perSecond, burst, s.cfg.Now)}
}

func (s *portalService) CreatePortalSession(ctx context.Context, req *hookwirev1.CreatePortalSessionRequest) (*hookwirev1.PortalSession, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	if _, err := s.cfg.Store.GetTenant(req.GetTenant()); err != nil {
		return nil, storeError(err, "tenant "+quote(req.GetTenant()))
	}
	if d := s.limit.wait(req.GetTenant()); d > 0 {
		secs := int(math.Ceil(d.Seconds()))
		_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", strconv.Itoa(secs)))
		return nil, status.Errorf(codes.ResourceExhausted, "tenant %q is creating portal sessions faster than %g per second (burst %d); retry in %ds", req.GetTenant(), float64(s.limit.limit), s.limit.burst, secs)
	}
	if len(req.GetSubscriptionIds()) > 0 && len(req.GetLabels()) > 0 {
		return nil, status.Error(codes.InvalidArgument, "give subscription_ids or labels, not both")
	}
	for _, id := range req.GetSubscriptionIds() {
		if _, err := s.cfg.Store.GetSubscription(req.GetTenant(), id); err != nil {
			return nil, storeError(err, "subscription "+quote(id))
		}
	}
	ttl := defaultPortalTTL
	if d := req.GetTtl(); d != nil {
		ttl = d.AsDuration()
		if ttl < minPortalTTL || ttl > maxPortalTTL {
			return nil, status.Errorf(codes.InvalidArgument, "ttl %s is out of range: give between %s and %s (default %s)", ttl, minPortalTTL, maxPortalTTL, defaultPortalTTL)
		}
	}
	id, token, err := newPortalToken()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "generate portal token: %v", err)
	}
	now := s.cfg.Now()
	features := slices.Clone(req.GetFeatures())
	slices.Sort(features)
	sess := &hookwirev1.PortalSession{Id: id, Tenant: req.GetTenant(), SubscriptionIds: req.GetSubscriptionIds(), Labels: req.GetLabels(),
		Features: features, CreateTime: timestamppb.New(now), ExpireTime: timestamppb.New(now.Add(ttl)), Customer: req.GetCustomer(),
		AllEvents: req.GetAllEvents()}
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditPortalSessionCreate, resource: portalSessionResource(req.GetTenant(), id), after: sess})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.PutPortalSession(ctx, &storev1.PortalSessionRecord{Session: sess, Hash: hashKey(token)}, audit); err != nil {
		return nil, storeError(err, "portal session")
	}
	out := clone(sess)
	out.Token = token
	out.Url = strings.TrimSuffix(s.cfg.PortalURL, "/") + PortalPathPrefix + token
	return out, nil
}

func (s *portalService) ListPortalSessions(ctx context.Context, req *hookwirev1.ListPortalSessionsRequest) (*hookwirev1.ListPortalSessionsResponse, error) {
	if err := s.authorizeListing(ctx, req.GetTenant()); err != nil {
		return nil, err
	}
	list, err := s.cfg.Store.ListPortalSessions(req.GetTenant())
	if err != nil {
		return nil, storeError(err, "portal sessions")
	}
	now := s.cfg.Now()
	resp := &hookwirev1.ListPortalSessionsResponse{PortalSessions: []*hookwirev1.PortalSession{}}
	for _, sess := range list {
		if now.Before(sess.GetExpireTime().AsTime()) {
			resp.PortalSessions = append(resp.PortalSessions, sess)
		}
	}
	slices.SortFunc(resp.PortalSessions, func(a, b *hookwirev1.PortalSession) int {
		return b.GetCreateTime().AsTime().Compare(a.GetCreateTime().AsTime())
	})
	return resp, nil
}

func (s *portalService) RevokePortalSession(ctx context.Context, req *hookwirev1.RevokePortalSessionRequest) (*hookwirev1.PortalSession, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	rec, err := s.cfg.Store.GetPortalSession(req.GetId())
	if err == nil && rec.GetSession().GetTenant() != req.GetTenant() {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, storeError(err, "portal session "+quote(req.GetId()))
	}
	before := rec.GetSession()
	after := clone(before)
	after.Revoked = true
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditPortalSessionRevoke, resource: portalSessionResource(req.GetTenant(), req.GetId()), before: before, after: after})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.RevokePortalSession(ctx, req.GetTenant(), req.GetId(), audit); err != nil {
		return nil, storeError(err, "portal session "+quote(req.GetId()))
	}
	return after, nil
}

// portalSettings returns a tenant's settings, or the defaults.
func (s *Services) portalSettings(tenant string) (*hookwirev1.PortalSettings, error) {
	ps, err := s.cfg.Store.GetPortalSettings(tenant)
	if errors.Is(err, store.ErrNotFound) {
		return &hookwirev1.PortalSettings{Tenant: tenant}, nil
	}
	if err != nil {
		return nil, storeError(err, "portal settings")
	}
	return ps, nil
}

func (s *portalService) GetPortalSettings(ctx context.Context, req *hookwirev1.GetPortalSettingsRequest) (*hookwirev1.PortalSettings, error) {
	if err := s.authorizeListing(ctx, req.GetTenant()); err != nil {
		return nil, err
	}
	return s.portalSettings(req.GetTenant())
}

func (s *portalService) UpdatePortalSettings(ctx context.Context, req *hookwirev1.UpdatePortalSettingsRequest) (*hookwirev1.PortalSettings, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	before, err := s.portalSettings(req.GetTenant())
	if err != nil {
		return nil, err
	}
	in := req.GetSettings()
	after := &hookwirev1.PortalSettings{Tenant: req.GetTenant(), PrimaryColor: strings.ToLower(in.GetPrimaryColor()),
		Theme: in.GetTheme(), Title: in.GetTitle(), UpdateTime: timestamppb.New(s.cfg.Now())}
	for i, o := range in.GetFrameAncestors() {
		norm, err := checkFrameAncestor(o)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "settings.frame_ancestors[%d]: %v", i, err)
		}
		after.FrameAncestors = append(after.FrameAncestors, norm)
	}
	if in.GetLogoUrl() != "" {
		if err := checkLogoURL(in.GetLogoUrl()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "settings.logo_url: %v", err)
		}
		after.LogoUrl = in.GetLogoUrl()
	}
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditPortalSettingsUpdate, resource: tenantResource(req.GetTenant()) + "/portal-settings", before: before, after: after})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.PutPortalSettings(ctx, after, audit); err != nil {
		return nil, storeError(err, "tenant "+quote(req.GetTenant()))
	}
	return after, nil
}

var originHost = regexp.MustCompile(`^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

// checkFrameAncestor checks one origin allowed to frame the portal and
// returns it as it goes into the Content-Security-Policy header.
func checkFrameAncestor(origin string) (string, error) {
	const want = `give an origin such as "https://app.example.com" (or "https://app.example.com:8443", "https://*.example.com"; "http://localhost:3000" for development)`
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("%q is not an origin: %s", origin, want)
	}
	host, port := u.Hostname(), u.Port()
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", origin, port)
		}
	}
	local := host == "localhost" || host == "127.0.0.1" || host == "::1"
	switch u.Scheme {
	case "https":
	case "http":
		if !local {
			return "", fmt.Errorf("%q: plain http is allowed only for localhost; %s", origin, want)
		}
	default:
		return "", fmt.Errorf("%q: scheme %q is not https; %s", origin, u.Scheme, want)
	}
	if host != "::1" && !originHost.MatchString(host) {
		return "", fmt.Errorf("%q: host %q is not a lower-case DNS name or IP address; %s", origin, host, want)
	}
	if strings.HasPrefix(host, "*.") && strings.Count(host, ".") < 2 {
		return "", fmt.Errorf("%q: a wildcard must stand for a subdomain of a registrable name (\"https://*.example.com\"), not of a top-level domain", origin)
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
		return "", fmt.Errorf("%q: give a host name, not an IP address", origin)
	}
	out := u.Scheme + "://" + u.Host
	return out, nil
}

// checkLogoURL checks the logo's URL: https, no credentials, nothing the
// page would have to escape.
func checkLogoURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not an https URL without credentials, e.g. \"https://cdn.example.com/logo.svg\"", raw)
	}
	if strings.ContainsAny(raw, " \"'<>\\`") {
		return fmt.Errorf("%q contains characters a URL may not carry unescaped", raw)
	}
	return nil
}

func (s *portalService) GetPortalContext(ctx context.Context, _ *hookwirev1.GetPortalContextRequest) (*hookwirev1.PortalContext, error) {
	p := principalFrom(ctx)
	if p == nil {
		return nil, status.Error(codes.Unauthenticated, "missing portal token: send \"Authorization: Bearer hwp_...\"")
	}
	if p.portal == nil {
		return nil, status.Error(codes.PermissionDenied, "GetPortalContext is for portal tokens (hwp_...); API keys manage the portal with PortalService's other calls")
	}
	tenant := p.portal.session.GetTenant()
	t, err := s.cfg.Store.GetTenant(tenant)
	if err != nil {
		return nil, storeError(err, "tenant "+quote(tenant))
	}
	ps, err := s.portalSettings(tenant)
	if err != nil {
		return nil, err
	}
	types, err := s.cfg.Store.ListEventTypes(tenant)
	if err != nil {
		return nil, storeError(err, "event types")
	}
	out := &hookwirev1.PortalContext{Session: p.portal.session, TenantName: t.GetDisplayName(), Settings: ps, EventTypes: []*hookwirev1.EventType{}}
	if out.TenantName == "" {
		out.TenantName = tenant
	}
	for _, et := range types {
		if !et.GetDeprecated() {
			out.EventTypes = append(out.EventTypes, et)
		}
	}
	return out, nil
}

// testEventMetadata marks the events SendTestEvent publishes.
const testEventMetadata = "hookwire-test"

func (s *portalService) SendTestEvent(ctx context.Context, req *hookwirev1.SendTestEventRequest) (*hookwirev1.SendTestEventResponse, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	sub, err := s.deliveries.tenantSub(req.GetTenant(), req.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	et, err := s.cfg.Store.GetEventType(req.GetTenant(), req.GetEventType())
	switch {
	case errors.Is(err, store.ErrNotFound) && principalFrom(ctx).portal == nil:
		// An operator's key may test any type, listed or not (the console
		// test-sends the subscription's own types).
		if err := reservedType("event_type", req.GetEventType()); err != nil {
			return nil, err
		}
		et = &hookwirev1.EventType{Name: req.GetEventType()}
	case errors.Is(err, store.ErrNotFound):
		return nil, status.Errorf(codes.NotFound, "event type %s is not in the tenant's event catalog; pick one of ListEventTypes (or add it with CreateEventType)", quote(req.GetEventType()))
	case err != nil:
		return nil, storeError(err, "event type")
	}
	payload := req.GetPayload()
	if payload == "" {
		payload = et.GetExamplePayload()
	}
	if payload == "" {
		payload = "{}"
	}
	if !json.Valid([]byte(payload)) {
		return nil, status.Error(codes.InvalidArgument, "payload is not valid JSON; send a JSON document or leave it empty for the type's example")
	}
	resp, err := s.events.publishRouted(ctx, req.GetTenant(), []*hookwirev1.Event{{
		Type: et.GetName(), Payload: []byte(payload), ContentType: defaultContentType, Metadata: map[string]string{testEventMetadata: "true"},
	}}, sub)
	if err != nil {
		return nil, err
	}
	out := &hookwirev1.SendTestEventResponse{EventId: resp[0].GetId()}
	if eid, err := ids.Parse(ids.Event, resp[0].GetId()); err == nil {
		if dels, err := s.cfg.Store.EventDeliveries(req.GetTenant(), eid); err == nil && len(dels) > 0 {
			out.Delivery = proto.Clone(dels[0]).(*hookwirev1.Delivery)
		}
	}
	return out, nil
}
