package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"strings"
	"time"

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

// Key format: "hwk_" + 16-char id + "_" + 32-char secret. The id part is
// public (it names the key in listings and logs); only SHA-256 of the whole
// key is stored. The admin key fixed through HOOKWIRE_ADMIN_KEY may have any
// form and is stored under the id AdminKeyID.
const (
	keyPrefix = "hwk_"
	// AdminKeyID names the bootstrap admin key.
	AdminKeyID = "admin"
)

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Every credential Hookwire issues (API keys "hwk_", join tokens "hwj_",
// portal tokens "hwp_") is prefix + 16-char id + "_" + 32-char secret; the
// prefix and id name it, only SHA-256 of the whole string is stored.
const (
	credentialIDLen     = 16
	credentialSecretLen = 32
)

// newCredential returns a fresh credential of the given prefix: its id
// (prefix + id part) and the whole string.
func newCredential(prefix string) (id, credential string, err error) {
	b := make([]byte, (credentialIDLen+credentialSecretLen)*5/8)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	enc := keyEncoding.EncodeToString(b) // 48 chars
	id = prefix + enc[:credentialIDLen]
	return id, id + "_" + enc[credentialIDLen:], nil
}

// credentialID returns the id of a well-formed credential of the given
// prefix (prefix + id part).
func credentialID(prefix, credential string) (string, bool) {
	n := len(prefix) + credentialIDLen
	if !strings.HasPrefix(credential, prefix) || len(credential) != n+1+credentialSecretLen || credential[n] != '_' {
		return "", false
	}
	return credential[:n], true
}

// newKey returns a fresh key id and full key string.
func newKey() (id, key string, err error) { return newCredential(keyPrefix) }

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// keyID returns the id part of a key, or AdminKeyID for keys of another form.
func keyID(key string) string {
	if id, ok := credentialID(keyPrefix, key); ok {
		return id
	}
	return AdminKeyID
}

// EnsureAdminKey makes sure an admin key exists. If fixed is non-empty it
// becomes the admin key. It returns the key's value when it created a new
// one (to be printed once), or "" when one already existed or was fixed.
func EnsureAdminKey(ctx context.Context, st *store.Store, fixed string, now time.Time) (string, error) {
	if fixed != "" {
		if len(fixed) < 16 {
			return "", errors.New("HOOKWIRE_ADMIN_KEY must be at least 16 characters")
		}
		// The same key as last start changes nothing, and writing it
		// again would keep a server restarted on a full disk from coming
		// up to serve reads and recover once space is back.
		if cur, err := st.GetAPIKey(AdminKeyID); err == nil && proto.Equal(cur, adminRecord(fixed, cur.GetApiKey().GetCreateTime().AsTime())) {
			return "", nil
		}
		return "", st.PutAPIKey(ctx, adminRecord(fixed, now), nil)
	}
	if _, err := st.GetAPIKey(AdminKeyID); err == nil {
		return "", nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	_, key, err := newKey()
	if err != nil {
		return "", err
	}
	key = "hwk_admin_" + key[len(keyPrefix):]
	return key, st.PutAPIKey(ctx, adminRecord(key, now), nil)
}

func adminRecord(key string, now time.Time) *storev1.ApiKeyRecord {
	return &storev1.ApiKeyRecord{
		ApiKey: &hookwirev1.ApiKey{Id: AdminKeyID, Name: "bootstrap admin key", Scope: hookwirev1.ApiKeyScope_API_KEY_SCOPE_ADMIN, CreateTime: timestamppb.New(now)},
		Hash:   hashKey(key),
	}
}

// principal is who is calling.
type principal struct {
	keyID  string
	tenant string
	scope  hookwirev1.ApiKeyScope
	// joinToken is set when an agent authenticated with a join token.
	joinToken *hookwirev1.JoinToken
	// portal is set when the portal page authenticated with a portal
	// token: the caller is then confined by portalGate (portalgate.go).
	portal *portalGrant
}

// admin reports whether p holds an admin key. A key bound to a tenant is
// never admin, whatever its scope says: CreateApiKey refuses the admin
// scope, and this keeps a record that slipped past it inside its tenant.
func (p *principal) admin() bool {
	return p.scope == hookwirev1.ApiKeyScope_API_KEY_SCOPE_ADMIN && p.tenant == ""
}

type principalKey struct{}

// withPrincipal is ctx with p as the caller.
func withPrincipal(ctx context.Context, p *principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}

// access is what an RPC needs within a tenant.
type access int

const (
	accessRead access = iota
	accessWrite
	accessPublish
)

// authorize checks that the caller may act on tenant with the given access.
// A caller from another tenant gets NotFound, exactly as if the tenant did
// not exist, so existence does not leak.
func authorize(ctx context.Context, tenant string, a access) error {
	p := principalFrom(ctx)
	if p == nil {
		return status.Error(codes.Unauthenticated, "missing API key: send \"Authorization: Bearer <key>\"")
	}
	if p.admin() {
		return nil
	}
	if p.tenant != tenant {
		return status.Errorf(codes.NotFound, "tenant %q not found", tenant)
	}
	if p.portal != nil {
		// portalGate let the call through: it checked the method, the
		// subscriptions it touches and the session's features.
		return nil
	}
	switch p.scope {
	case hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN:
		return nil
	case hookwirev1.ApiKeyScope_API_KEY_SCOPE_PUBLISH:
		if a == accessPublish {
			return nil
		}
		return status.Error(codes.PermissionDenied, "this API key may only publish events; use a tenant-admin or read-only key")
	case hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY:
		if a == accessRead {
			return nil
		}
		return status.Error(codes.PermissionDenied, "this API key is read-only; use a tenant-admin key to make changes")
	}
	return status.Error(codes.PermissionDenied, "this API key has no scope")
}

// requireAdmin checks that the caller holds the admin key.
func requireAdmin(ctx context.Context) error {
	p := principalFrom(ctx)
	if p == nil {
		return status.Error(codes.Unauthenticated, "missing API key: send \"Authorization: Bearer <key>\"")
	}
	if !p.admin() {
		return status.Error(codes.PermissionDenied, "this call needs the admin key")
	}
	return nil
}

// authenticator resolves bearer keys to principals.
type authenticator struct {
	store *store.Store
	now   func() time.Time
}

// skipAuth lists methods anyone may call.
var skipAuth = map[string]bool{
	"/grpc.health.v1.Health/Check": true,
	"/grpc.health.v1.Health/Watch": true,
}

func (a *authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	if skipAuth[method] || strings.HasPrefix(method, "/grpc.reflection.") {
		return ctx, nil
	}
	vals := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(vals) == 0 {
		return nil, status.Error(codes.Unauthenticated, "missing API key: send \"Authorization: Bearer <key>\"")
	}
	key, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok || key == "" {
		return nil, status.Error(codes.Unauthenticated, "malformed Authorization header: expected \"Bearer <key>\"")
	}
	if strings.HasPrefix(key, joinTokenPrefix) {
		return a.authenticateJoin(ctx, method, key)
	}
	if strings.HasPrefix(key, portalTokenPrefix) {
		sess, err := a.portalSession(key)
		if err != nil {
			return nil, err
		}
		return withPrincipal(ctx, &principal{keyID: sess.GetId(), tenant: sess.GetTenant(), portal: newPortalGrant(sess)}), nil
	}
	rec, err := a.store.GetAPIKey(keyID(key))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		// The store could not answer (e.g. it is reopening after a failed
		// commit): that says nothing about the key, so the caller retries.
		return nil, status.Errorf(codes.Unavailable, "cannot check the API key now: %v; retry", err)
	}
	if err != nil || subtle.ConstantTimeCompare(rec.GetHash(), hashKey(key)) != 1 {
		return nil, status.Error(codes.Unauthenticated, "invalid API key")
	}
	k := rec.GetApiKey()
	if k.GetRevoked() {
		return nil, status.Error(codes.Unauthenticated, "API key has been revoked")
	}
	if exp := k.GetExpireTime(); exp != nil && !a.now().Before(exp.AsTime()) {
		return nil, status.Error(codes.Unauthenticated, "API key has expired")
	}
	return withPrincipal(ctx, &principal{keyID: k.GetId(), tenant: k.GetTenant(), scope: k.GetScope()}), nil
}

func (a *authenticator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }

func (a *authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
}
