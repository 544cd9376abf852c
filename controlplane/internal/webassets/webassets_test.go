package webassets

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestServe(t *testing.T) {
	big := strings.Repeat("console.log('hookwire');\n", 40)
	s := MustLoad(fstest.MapFS{
		"root/app.js":      {Data: []byte(big)},
		"root/index.html":  {Data: []byte("<!doctype html><title>x</title>")},
		"root/skip.tmpl":   {Data: []byte("{{.}}")},
		"elsewhere/x.css":  {Data: []byte("p{}")},
		"root/sub/tiny.js": {Data: []byte("1")},
	}, "root", func(name string) bool { return !strings.HasSuffix(name, ".tmpl") })

	get := func(method, name string, headers ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/x", nil)
		for i := 0; i+1 < len(headers); i += 2 {
			r.Header.Set(headers[i], headers[i+1])
		}
		w := httptest.NewRecorder()
		s.Serve(w, r, name)
		return w
	}

	w := get("GET", "app.js", "Accept-Encoding", "gzip, br")
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || w.Header().Get("Content-Encoding") != "gzip" || w.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET app.js with gzip: %d %v", w.Code, w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(zr); string(body) != big {
		t.Fatalf("gzipped body does not unpack to the file")
	}
	etag := w.Header().Get("ETag")

	if w := get("GET", "app.js"); w.Code != 200 || w.Header().Get("Content-Encoding") != "" || w.Body.String() != big {
		t.Fatalf("GET without gzip: %d %v", w.Code, w.Header())
	}
	if w := get("GET", "app.js", "Accept-Encoding", "gzip;q=0"); w.Header().Get("Content-Encoding") != "" {
		t.Fatalf("gzip;q=0 still got gzip")
	}
	if w := get("GET", "app.js", "If-None-Match", etag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("revalidation with the ETag: %d", w.Code)
	}
	if w := get("HEAD", "index.html"); w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" || w.Header().Get("Content-Length") == "" {
		t.Fatalf("HEAD: %d %v %q", w.Code, w.Header(), w.Body.String())
	}
	if w := get("GET", "sub/tiny.js", "Accept-Encoding", "gzip"); w.Code != 200 || w.Header().Get("Content-Encoding") != "" || w.Body.String() != "1" {
		t.Fatalf("a file gzip would not shrink is sent as it is: %d %v", w.Code, w.Header())
	}
	for _, name := range []string{"skip.tmpl", "x.css", "nope.js"} {
		if w := get("GET", name); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", name, w.Code)
		}
	}
	if w := get("POST", "app.js"); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d %v", w.Code, w.Header())
	}
	if raw, gz := s.Size(); raw != len(big)+len("<!doctype html><title>x</title>")+1 || gz >= raw {
		t.Fatalf("Size = %d, %d", raw, gz)
	}
}
