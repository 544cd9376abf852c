package webui

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// cookieAAD binds a sealed session to its use: a value sealed for anything
// else under the master key does not open as a session.
var cookieAAD = []byte("hookwire console session v1")

// session is what the cookie holds.
type session struct {
	Key    string `json:"k"`
	Tenant string `json:"t,omitempty"` // "" for the admin key
	Scope  string `json:"s"`
	Expiry int64  `json:"e"` // unix seconds
}

// whoami is what the console learns about its key (never the key).
type whoami struct {
	Tenant     string `json:"tenant,omitempty"`
	Scope      string `json:"scope"`
	Admin      bool   `json:"admin"`
	ExpireTime string `json:"expire_time"`
}

func (s *session) whoami() whoami {
	return whoami{Tenant: s.Tenant, Scope: s.Scope, Admin: s.Tenant == "", ExpireTime: time.Unix(s.Expiry, 0).UTC().Format(time.RFC3339)}
}

// maxSessionBody bounds the sign-in request.
const maxSessionBody = 8 << 10

func (c *Console) session(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodPost && r.Method != http.MethodDelete {
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, codes.Unimplemented, "/console/session supports GET (who am I), POST (sign in) and DELETE (sign out)")
		return
	}
	if err := checkSameOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, codes.PermissionDenied, err.Error())
		return
	}
	switch r.Method {
	case http.MethodGet:
		s, err := c.openCookie(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, codes.Unauthenticated, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, s.whoami())
	case http.MethodDelete:
		c.clearCookie(w)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		c.signIn(w, r)
	}
}

// checkSameOrigin refuses session calls that are not the console's own:
// they must carry the console header (which a cross-site page cannot add
// without a preflight), and an Origin, when the browser sends one, must be
// this server.
func checkSameOrigin(r *http.Request) error {
	if r.Header.Get(HeaderName) != "1" {
		return fmt.Errorf("session calls must carry the header %s: 1 (the console sends it)", HeaderName)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("origin %q is not this server (%s)", o, r.Host)
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return errors.New("cross-site requests may not use the console session")
	}
	return nil
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if mt := strings.TrimSpace(strings.SplitN(r.Header.Get("Content-Type"), ";", 2)[0]); mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, codes.InvalidArgument, "sign in with a JSON body {\"key\": \"...\", \"tenant\": \"...\"} and Content-Type: application/json")
		return
	}
	var req struct {
		Key    string `json:"key"`
		Tenant string `json:"tenant"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSessionBody+1))
	if err != nil || len(body) > maxSessionBody {
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, "the sign-in body must be a JSON object under 8 KiB")
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, "the sign-in body is not JSON {\"key\": \"...\", \"tenant\": \"...\"}: "+err.Error())
		return
	}
	req.Key, req.Tenant = strings.TrimSpace(req.Key), strings.TrimSpace(req.Tenant)
	if req.Key == "" {
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, "key: enter an API key")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	s, err := c.check(ctx, req.Key, req.Tenant)
	if err != nil {
		st := status.Convert(err)
		writeError(w, runtime.HTTPStatusFromCode(st.Code()), st.Code(), st.Message())
		return
	}
	s.Expiry = c.cfg.Now().Add(c.cfg.SessionTTL).Unix()
	if err := c.setCookie(w, s); err != nil {
		writeError(w, http.StatusInternalServerError, codes.Internal, "seal the session: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.whoami())
}

// check asks the API who the key is (GetCaller: its tenant and scope). An
// admin key may open the console on any tenant (tenant, if given, must
// exist); a tenant key opens on its own tenant (a different tenant given
// is refused as not found). A publish-only key cannot read anything, so
// it cannot use the console.
func (c *Console) check(ctx context.Context, key, tenant string) (*session, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	who, err := hookwirev1.NewApiKeyServiceClient(c.cfg.Conn).GetCaller(ctx, &hookwirev1.GetCallerRequest{})
	if err != nil {
		return nil, err
	}
	switch who.GetScope() {
	case hookwirev1.ApiKeyScope_API_KEY_SCOPE_ADMIN:
		if tenant != "" {
			// The tenant field only picks where the console opens.
			if _, err := hookwirev1.NewTenantServiceClient(c.cfg.Conn).GetTenant(ctx, &hookwirev1.GetTenantRequest{Id: tenant}); err != nil {
				return nil, err
			}
		}
		return &session{Key: key, Scope: who.GetScope().String()}, nil
	case hookwirev1.ApiKeyScope_API_KEY_SCOPE_PUBLISH:
		return nil, status.Error(codes.PermissionDenied, "this key may only publish events; sign in with a read-only, tenant-admin or admin key")
	}
	if tenant != "" && tenant != who.GetTenant() {
		return nil, status.Errorf(codes.NotFound, "tenant %q not found for this key: check the tenant id, or leave it empty", tenant)
	}
	return &session{Key: key, Tenant: who.GetTenant(), Scope: who.GetScope().String()}, nil
}

func (c *Console) setCookie(w http.ResponseWriter, s *session) error {
	plain, err := json.Marshal(s)
	if err != nil {
		return err
	}
	sealed, err := c.cfg.Keyring().Seal(plain, cookieAAD)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    base64.RawURLEncoding.EncodeToString(sealed),
		Path:     "/",
		MaxAge:   int(c.cfg.SessionTTL / time.Second),
		HttpOnly: true,
		Secure:   c.cfg.Secure,
		SameSite: http.SameSiteStrictMode,
	})
	return nil
}

func (c *Console) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.cfg.Secure, SameSite: http.SameSiteStrictMode})
}

// openCookie returns the request's session, or why there is none.
func (c *Console) openCookie(r *http.Request) (*session, error) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return nil, errors.New("not signed in")
	}
	sealed, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return nil, errors.New("the session cookie is damaged: sign in again")
	}
	plain, err := c.cfg.Keyring().Open(sealed, cookieAAD)
	if err != nil {
		return nil, errors.New("the session cannot be read (the server's master key changed?): sign in again")
	}
	var s session
	if err := json.Unmarshal(plain, &s); err != nil || s.Key == "" {
		return nil, errors.New("the session cookie is damaged: sign in again")
	}
	if !c.cfg.Now().Before(time.Unix(s.Expiry, 0)) {
		return nil, errors.New("the session has expired: sign in again")
	}
	return &s, nil
}

// writeError answers in the API's error shape {code, message, details}.
func writeError(w http.ResponseWriter, httpCode int, code codes.Code, msg string) {
	writeJSON(w, httpCode, map[string]any{"code": int(code), "message": msg, "details": []any{}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
