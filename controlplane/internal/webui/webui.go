package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/secrets"
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
	static map[string]asset
}

type asset struct {
	body        []byte
	gz          []byte // body gzipped, when that is smaller
	etag        string
	contentType string
}

var loadAssets = sync.OnceValue(func() map[string]asset {
	out := map[string]asset{}
	_ = fs.WalkDir(assets, "console", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		a := asset{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: ct}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if buf.Len() < len(body) {
			a.gz = buf.Bytes()
		}
		out[strings.TrimPrefix(p, "console/")] = a
		return nil
	})
	return out
})

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
func AssetBytes() (raw, gzipped int) {
	for _, a := range loadAssets() {
		raw += len(a.body)
		if a.gz != nil {
			gzipped += len(a.gz)
		} else {
			gzipped += len(a.body)
		}
	}
	return raw, gzipped
}

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
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the console's files support only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	if name == "" {
		name = "index.html"
	}
	a, ok := c.static[name]
	if !ok {
		http.Error(w, "no console file "+name, http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	// Revalidate every time: the files change with the binary and a 304 is
	// cheap.
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept-Encoding")
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// acceptsGzip reports whether the client takes gzip (every browser does).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(name) == "gzip" && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
