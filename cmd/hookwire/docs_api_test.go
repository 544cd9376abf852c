package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsAPIUpToDate fails when docs/API.md differs from what
// `hookwire docs api` prints, so the API reference cannot drift from the
// protos.
func TestDocsAPIUpToDate(t *testing.T) {
	cmd := exec.Command(hookwireBin, "docs", "api")
	cmd.Env = append(cleanEnv(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("hookwire docs api: %v\n%s", err, stderr.String())
	}
	const fix = "run `go run ./cmd/hookwire docs api > /tmp/api.md && mv /tmp/api.md docs/API.md`"
	want, err := os.ReadFile(filepath.Join("..", "..", "docs", "API.md"))
	if err != nil {
		t.Fatalf("%v; %s", err, fix)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		first := 0
		for first < len(gl) && first < len(wl) && gl[first] == wl[first] {
			first++
		}
		var g, w string
		if first < len(gl) {
			g = gl[first]
		}
		if first < len(wl) {
			w = wl[first]
		}
		t.Fatalf("docs/API.md is out of date (first difference at line %d:\n  generated: %q\n  file:      %q)\n%s", first+1, g, w, fix)
	}
	for _, s := range []string{
		"| POST | `/v1/tenants/{tenant}/events` | [EventService.PublishEvent](#eventservicepublishevent) |",
		"- gRPC: `/hookwire.v1.AgentService/Connect`",
		"### Subscription\n",
	} {
		if !bytes.Contains(got, []byte(s)) {
			t.Errorf("reference lacks %q", s)
		}
	}
}
