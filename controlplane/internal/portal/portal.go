// Package portal serves the tenant portal's page: GET /portal/<token> on
// the REST listener, and its static assets under /portal/assets/. The
// assets are embedded (no CDN, nothing downloaded at run time) and the
// page is plain HTML, CSS and a JavaScript module, with no build step.
//
// The page does nothing the REST API would not let its token do: it calls
// /v1/... with "Authorization: Bearer hwp_...", and the API's portal gate
// (package api, portalgate.go) decides. This package only answers the
// page itself, with headers that keep the token and the page safe:
// Content-Security-Policy (scripts, styles and connections to this origin
// only; frame-ancestors from the tenant's allowlist, 'none' when empty),
// Referrer-Policy no-referrer (the token is in the URL), nosniff, and
// no-store. It never logs the request path, which carries the token.
package portal

import (
	"bytes"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"github.com/hookwire/hookwire/controlplane/internal/webassets"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// PathPrefix is where the portal is served; the page is PathPrefix + token.
const PathPrefix = "/portal/"

const assetsPrefix = PathPrefix + "assets/"

//go:embed assets
var assets embed.FS

// Lookup resolves a token: its session and tenant settings, and whether
// the token may be used now (nil session: no such token).
type Lookup func(token string) (*hookwirev1.PortalSession, *hookwirev1.PortalSettings, bool, error)

// Handler serves the portal in front of next (the REST gateway), which
// gets every other request.
func Handler(lookup Lookup, logger *slog.Logger, next http.Handler) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The .html files are templates, rendered per request, not assets.
	files := webassets.MustLoad(assets, "assets", func(name string) bool { return path.Ext(name) != ".html" })
	page := template.Must(template.ParseFS(assets, "assets/index.html"))
	gone := template.Must(template.ParseFS(assets, "assets/gone.html"))
	h := &handler{lookup: lookup, log: logger, files: files, page: page, gone: gone}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, PathPrefix) {
			next.ServeHTTP(w, r)
			return
		}
		h.serve(w, r)
	})
}

type handler struct {
	lookup     Lookup
	log        *slog.Logger
	files      *webassets.Set
	page, gone *template.Template
}

// securityHeaders sets the headers of every portal response.
func securityHeaders(w http.ResponseWriter, frameAncestors []string) {
	fa := "'none'"
	if len(frameAncestors) > 0 {
		fa = strings.Join(frameAncestors, " ")
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https:; connect-src 'self'; "+
		"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors "+fa)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if len(frameAncestors) == 0 {
		h.Set("X-Frame-Options", "DENY") // for browsers without frame-ancestors
	}
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		securityHeaders(w, nil)
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if name, ok := strings.CutPrefix(r.URL.Path, assetsPrefix); ok {
		h.serveAsset(w, r, name)
		return
	}
	token := strings.TrimPrefix(r.URL.Path, PathPrefix)
	if token == "" || strings.Contains(token, "/") {
		h.serveGone(w, nil, http.StatusNotFound)
		return
	}
	sess, settings, usable, err := h.lookup(token)
	if err != nil {
		// The token stays out of the log: it is a credential.
		h.log.Warn("portal page: cannot check the token now", "err", err)
		securityHeaders(w, nil)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "the portal is unavailable right now; try again in a moment", http.StatusServiceUnavailable)
		return
	}
	if sess == nil || !usable {
		h.serveGone(w, settings, http.StatusUnauthorized)
		return
	}
	securityHeaders(w, settings.GetFrameAncestors())
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var buf bytes.Buffer
	if err := h.page.Execute(&buf, pageData(settings, sess)); err != nil {
		h.log.Error("portal page: render", "err", err)
		http.Error(w, "cannot render the portal page", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(buf.Bytes())
}

// pageData is what the page template shows before its script runs (the
// theme, so the first paint has the tenant's colours).
func pageData(ps *hookwirev1.PortalSettings, sess *hookwirev1.PortalSession) map[string]string {
	theme := "auto"
	switch ps.GetTheme() {
	case hookwirev1.PortalTheme_PORTAL_THEME_LIGHT:
		theme = "light"
	case hookwirev1.PortalTheme_PORTAL_THEME_DARK:
		theme = "dark"
	}
	title := ps.GetTitle()
	if title == "" {
		title = "Webhooks"
	}
	return map[string]string{"Theme": theme, "Primary": ps.GetPrimaryColor(), "Logo": ps.GetLogoUrl(), "Title": title, "Tenant": sess.GetTenant()}
}

func (h *handler) serveGone(w http.ResponseWriter, settings *hookwirev1.PortalSettings, code int) {
	securityHeaders(w, settings.GetFrameAncestors())
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = h.gone.Execute(w, nil)
}

func (h *handler) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	securityHeaders(w, nil)
	h.files.Serve(w, r, name)
}
