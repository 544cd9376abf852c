// Package webassets serves a tree of embedded files — the console's and
// the tenant portal's pages — from memory: each with its content type, an
// ETag that browsers revalidate (the files change only with the binary),
// and a gzipped copy for clients that take it. Security headers are the
// caller's: it sets them before Serve.
package webassets

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// Set is the files of one tree, by path relative to its root.
type Set struct {
	files map[string]file
}

type file struct {
	body        []byte
	gz          []byte // body gzipped, when that is smaller
	etag        string
	contentType string
}

// contentTypes fixes the types browsers must get (with a charset for
// text), whatever the host's MIME tables say.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// Load reads every file under dir in fsys whose name keep accepts (nil:
// all of them).
func Load(fsys fs.FS, dir string, keep func(name string) bool) (*Set, error) {
	s := &Set{files: map[string]file{}}
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := strings.TrimPrefix(p, dir+"/")
		if keep != nil && !keep(name) {
			return nil
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			ct = mime.TypeByExtension(path.Ext(p))
		}
		sum := sha256.Sum256(body)
		f := file{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: ct}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if buf.Len() < len(body) {
			f.gz = buf.Bytes()
		}
		s.files[name] = f
		return nil
	})
	return s, err
}

// MustLoad is Load for embedded trees, which cannot fail but by a mistake
// in the program.
func MustLoad(fsys fs.FS, dir string, keep func(name string) bool) *Set {
	s, err := Load(fsys, dir, keep)
	if err != nil {
		panic("webassets: " + err.Error())
	}
	return s
}

// Files calls fn with each file's name and contents.
func (s *Set) Files(fn func(name string, body []byte)) {
	for name, f := range s.files {
		fn(name, f.body)
	}
}

// Size is the total size of the files, as stored and as sent to a client
// that takes gzip.
func (s *Set) Size() (raw, gzipped int) {
	for _, f := range s.files {
		raw += len(f.body)
		if f.gz != nil {
			gzipped += len(f.gz)
		} else {
			gzipped += len(f.body)
		}
	}
	return raw, gzipped
}

// Serve answers r with the file name: 405 for methods other than GET and
// HEAD, 404 when there is no such file, 304 when the client's copy is
// current, else the file (gzipped when the client takes it).
func (s *Set) Serve(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "only GET and HEAD are supported here", http.StatusMethodNotAllowed)
		return
	}
	f, ok := s.files[name]
	if !ok {
		http.Error(w, "no such file: "+name, http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	// Revalidate every time: a 304 is cheap, and a new binary's files are
	// never mixed with an old one's.
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept-Encoding")
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
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
