package webui

import (
	"embed"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	"github.com/hookwire/hookwire/controlplane/internal/webassets"
	"google.golang.org/grpc"
)

//go:embed console
var assets embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// HeaderName is the header the console's own requests carry; only with it
// does the session cookie count as credentials (see the package comment).
const HeaderName = "X-Hookwire-Console"

// CookieName is the session cookie.
const CookieName = "hw_console"

// DefaultSessionTTL is how long a sign-in lasts.
const DefaultSessionTTL = 8 * time.Hour

// CSP is the console's Content-Security-Policy.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Config is what the console needs from the server.
type Config struct {
	// Conn reaches the API in process (the REST gateway's connection); the
	// sign-in checks the key with it.
	Conn grpc.ClientConnInterface
	// Keyring returns the master keyring that seals session cookies (the
	// current one: it changes when the master key is reloaded).
	Keyring func() *secrets.Keyring
	// Secure marks the cookie Secure (the REST listener serves TLS).
	Secure bool
	// SessionTTL is how long a sign-in lasts (default DefaultSessionTTL).
	SessionTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Console serves the console and its session.
type Console struct {
	cfg    Config
	static *webassets.Set
}

var loadAssets = sync.OnceValue(func() *webassets.Set { return webassets.MustLoad(assets, "console", nil) })

// New returns the console for cfg.
func New(cfg Config) *Console {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Console{cfg: cfg, static: loadAssets()}
}

// AssetBytes is the total size of the embedded assets (the whole
// console), as stored and as sent gzipped, for documentation and tests.
func AssetBytes() (raw, gzipped int) { return loadAssets().Size() }

// Wrap serves /console/ and lets the console's REST calls through to next
// with the session's key.
func (c *Console) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/console":
			securityHeaders(w.Header())
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		case p == Prefix+"session":
			securityHeaders(w.Header())
			c.session(w, r)
		case strings.HasPrefix(p, Prefix):
			securityHeaders(w.Header())
			c.serveAsset(w, r, strings.TrimPrefix(p, Prefix))
		default:
			c.authorize(r)
			next.ServeHTTP(w, r)
		}
	})
}

// authorize adds the session's key to a console API call.
func (c *Console) authorize(r *http.Request) {
	if r.Header.Get(HeaderName) != "1" || r.Header.Get("Authorization") != "" {
		return
	}
	s, err := c.openCookie(r)
	if err != nil {
		return // unauthenticated: the API says so
	}
	r.Header.Set("Authorization", "Bearer "+s.Key)
}

// securityHeaders are set on every console response.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func (c *Console) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	if name == "" {
		name = "index.html"
	}
	c.static.Serve(w, r, name)
}
