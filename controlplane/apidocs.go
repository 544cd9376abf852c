package controlplane

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// apiDocs are built on first request: nothing to pay at start-up.
var apiDocs = sync.OnceValues(func() (map[string]apiDoc, error) {
	spec, err := openAPIDocument()
	if err != nil {
		return nil, err
	}
	ref, err := apiref.Load()
	if err != nil {
		return nil, err
	}
	var page bytes.Buffer
	if err := ref.WriteHTML(&page); err != nil {
		return nil, fmt.Errorf("render the API reference: %w", err)
	}
	js := newAPIDoc(spec, "application/json")
	return map[string]apiDoc{
		"/openapi.json":    js,
		"/v1/openapi.json": js,
		"/docs":            newAPIDoc(page.Bytes(), "text/html; charset=utf-8"),
	}, nil
})

// openAPIDocument is the generated Swagger 2.0 document with a proper
// title and the bearer-key security scheme every call needs.
func openAPIDocument() ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(openapi.Swagger, &doc); err != nil {
		return nil, fmt.Errorf("read the embedded OpenAPI document: %w", err)
	}
	doc["info"] = map[string]any{
		"title":       "Hookwire API",
		"version":     "v1",
		"description": apiref.Intro,
	}
	doc["securityDefinitions"] = map[string]any{
		"bearer": map[string]any{
			"type": "apiKey", "in": "header", "name": "Authorization",
			"description": "Authorization: Bearer <key> (the admin key, a tenant key, or for agents a join token).",
		},
	}
	doc["security"] = []any{map[string]any{"bearer": []any{}}}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// withAPIDocs serves GET /openapi.json (also /v1/openapi.json) and GET
// /docs, without a key, in front of the REST gateway. Clients revalidate
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
