package controlplane_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/gen/openapi"
)

// getNoKey fetches a URL from the REST listener without a key.
func getNoKey(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestOpenAPIAndReferenceServed(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	base := "http://" + h.srv.HTTPAddr()

	for _, path := range []string{"/openapi.json", "/v1/openapi.json"} {
		resp, body := getNoKey(t, base+path)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !bytes.Equal(body, openapi.OpenAPI) {
			t.Errorf("GET %s is not the generated document gen/openapi/hookwire.openapi.json", path)
		}
		var doc struct {
			OpenAPI    string                               `json:"openapi"`
			Info       struct{ Title string }               `json:"info"`
			Paths      map[string]map[string]map[string]any `json:"paths"`
			Components struct {
				SecuritySchemes map[string]map[string]any `json:"securitySchemes"`
			} `json:"components"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("GET %s is not JSON: %v", path, err)
		}
		op := doc.Paths["/v1/tenants/{tenant}/events"]["post"]
		bearer := doc.Components.SecuritySchemes["bearerAuth"]
		if doc.OpenAPI != "3.1.0" || doc.Info.Title != "Hookwire API" || op["operationId"] != "EventService_PublishEvent" || bearer["scheme"] != "bearer" {
			t.Fatalf("GET %s: openapi %q, title %q, publish op %v, security %v", path, doc.OpenAPI, doc.Info.Title, op, doc.Components.SecuritySchemes)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" || resp.Header.Get("Cache-Control") == "" {
			t.Fatalf("GET %s: no ETag or Cache-Control: %v", path, resp.Header)
		}
		if again, _ := getNoKey(t, base+path, "If-None-Match", etag); again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: %d, want 304", path, again.StatusCode)
		}
	}

	resp, body := getNoKey(t, base+"/docs")
	page := string(body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /docs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{"<h4>EventService.PublishEvent</h4>", "<code>/hookwire.v1.EventService/PublishEvent</code>", "<code>/v1/tenants/{tenant}/events</code>"} {
		if !strings.Contains(page, want) {
			t.Errorf("/docs lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, `src="http`) {
		t.Error("/docs loads something from elsewhere")
	}

	// The API itself still needs a key, and other methods are refused.
	if resp, _ := getNoKey(t, base+"/v1/tenants"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/tenants without a key: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/openapi.json", strings.NewReader("{}"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /openapi.json: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
