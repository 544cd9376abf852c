package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var devAdminLine = regexp.MustCompile(`^\s+admin\s+http://(\S+)\s`)

// `hookwire dev` keeps its keys and database out of the user's
// repository (a .gitignore of "*" in its data directory) and shows where
// its metrics and health endpoints are.
func TestDevBannerAndGitignore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".hookwire-dev")
	_, out := startProc(t, nil, "dev", "--data-dir", dir,
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	var admin string
	var banner []string
	for admin == "" && out.Scan() {
		banner = append(banner, out.Text())
		if m := devAdminLine.FindStringSubmatch(out.Text()); m != nil {
			admin = m[1]
		}
	}
	if admin == "" {
		t.Fatalf("no admin line in the banner:\n%s", strings.Join(banner, "\n"))
	}
	go func() { _, _ = io.Copy(io.Discard, readerOf(out)) }()
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /readyz at the banner's admin address: %d", resp.StatusCode)
	}
	b, err := os.ReadFile(filepath.Join(dir, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\n"+string(b), "\n*\n") {
		t.Fatalf(".gitignore does not ignore everything:\n%s", b)
	}
}
