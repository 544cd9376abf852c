package controlplane

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/apiref"
	"github.com/hookwire/hookwire/gen/openapi"
)

// WriteAPIReference writes the Markdown API reference (docs/API.md) built
// from the protos' comments and HTTP bindings.
func WriteAPIReference(w io.Writer) error {
	ref, err := apiref.Load()
	if err != nil {
		return err
	}
	return ref.WriteMarkdown(w)
}

// apiDoc is one document served as it is, with its ETag.
type apiDoc struct {
	body        []byte
	etag        string
	contentType string
}

func newAPIDoc(body []byte, contentType string) apiDoc {
	sum := sha256.Sum256(body)
	return apiDoc{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: contentType}
}

// apiDocs are built on first request: nothing to pay at start-up. The
// OpenAPI document is served as generated (scripts/generate.sh), so what
// `redocly lint` checks in CI is what clients get.
var apiDocs = sync.OnceValues(func() (map[string]apiDoc, error) {
	ref, err := apiref.Load()
	if err != nil {
		return nil, err
	}
	var page bytes.Buffer
	if err := ref.WriteHTML(&page); err != nil {
		return nil, fmt.Errorf("render the API reference: %w", err)
	}
	js := newAPIDoc(openapi.OpenAPI, "application/json")
	return map[string]apiDoc{
		"/openapi.json":    js,
		"/v1/openapi.json": js,
		"/docs":            newAPIDoc(page.Bytes(), "text/html; charset=utf-8"),
	}, nil
})

// withAPIDocs serves GET /openapi.json (the OpenAPI 3.1 document; also
// /v1/openapi.json, kept for clients that use it) and GET /docs, without a key, in front of the REST gateway. Clients revalidate
// with If-None-Match; the documents change only with the binary.
func withAPIDocs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/openapi.json", "/v1/openapi.json", "/docs":
		default:
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, r.URL.Path+" supports only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		docs, err := apiDocs()
		if err != nil {
			http.Error(w, "API documents unavailable: "+err.Error(), http.StatusInternalServerError)
			return
		}
		doc := docs[r.URL.Path]
		h := w.Header()
		h.Set("Content-Type", doc.contentType)
		h.Set("ETag", doc.etag)
		h.Set("Cache-Control", "public, no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/docs" {
			// Inline style only; nothing may be loaded from elsewhere.
			h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(doc.body))
	})
}
