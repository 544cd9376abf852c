package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestDocsConfigUpToDate fails when docs/CONFIG.md differs from what
// `hookwire docs config` prints, so the reference cannot drift.
func TestDocsConfigUpToDate(t *testing.T) {
	cmd := exec.Command(hookwireBin, "docs", "config")
	cmd.Env = append(cleanEnv(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("hookwire docs config: %v\n%s", err, stderr.String())
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "docs", "CONFIG.md"))
	if err != nil {
		t.Fatalf("%v; run `go run ./cmd/hookwire docs config > docs/CONFIG.md`", err)
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
		t.Fatalf("docs/CONFIG.md is out of date (first difference at line %d:\n  generated: %q\n  file:      %q)\nrun `go run ./cmd/hookwire docs config > docs/CONFIG.md`", first+1, g, w)
	}
	for _, s := range []string{"### hookwire subscriptions recover", "`--since`", "### hookwire server", "`--master-key-file`", "`HOOKWIRE_MASTER_KEY`"} {
		if !bytes.Contains(got, []byte(s)) {
			t.Errorf("reference lacks %s", s)
		}
	}
	if bytes.Contains(got, []byte("### hookwire docs")) || bytes.Contains(got, []byte("### hookwire plugin ")) {
		t.Errorf("reference shows hidden commands")
	}
}

// TestDocsEnvVarsListed checks that envVars names every HOOKWIRE_* variable
// the binary's sources mention, and nothing else.
func TestDocsEnvVarsListed(t *testing.T) {
	re := regexp.MustCompile(`"(HOOKWIRE_[A-Z_]+)"`)
	used := map[string]bool{}
	for _, pattern := range []string{"*.go", "../../controlplane/*.go"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range re.FindAllSubmatch(data, -1) {
				used[string(m[1])] = true
			}
		}
	}
	listed := map[string]bool{}
	for _, e := range envVars {
		listed[e.name] = true
	}
	var missing, extra []string
	for v := range used {
		if !listed[v] {
			missing = append(missing, v)
		}
	}
	for v := range listed {
		if strings.HasPrefix(v, "HOOKWIRE_") && !used[v] {
			extra = append(extra, v)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("envVars in docs.go: missing %v, not read anywhere %v", missing, extra)
	}
}
