package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVersionOfReleaseBuild builds the binary the way scripts/release.sh
// does (-trimpath, -buildvcs=false, the -X values) and checks what a user
// sees: `hookwire version` (text and JSON) and `--version` name the commit,
// the server logs the same at start, and hookwire_build_info carries it.
func TestVersionOfReleaseBuild(t *testing.T) {
	const (
		ver    = "v9.8.7-test"
		commit = "0123456789abcdef0123456789abcdef01234567"
		date   = "2026-12-01T10:00:00Z"
	)
	bin := filepath.Join(t.TempDir(), "hookwire")
	pkg := "github.com/hookwire/hookwire/internal/buildinfo"
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", bin,
		"-ldflags", "-s -w -X "+pkg+".version="+ver+" -X "+pkg+".commit="+commit+" -X "+pkg+".date="+date, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	text, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hookwire " + ver + "\n", "commit:     " + commit + "\n", "build date: " + date + "\n", "go:         go1."} {
		if !strings.Contains(string(text), want) {
			t.Errorf("hookwire version lacks %q:\n%s", want, text)
		}
	}
	flag, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(flag) != string(text) {
		t.Errorf("--version differs from the version command:\n%s\nvs\n%s", flag, text)
	}
	js, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, js)
	}
	if got["version"] != ver || got["commit"] != commit || got["build_date"] != date || !strings.HasPrefix(got["go_version"], "go1.") {
		t.Errorf("version -o json = %v", got)
	}
	if out, err := exec.Command(bin, "version", "-o", "yaml").CombinedOutput(); err == nil || !strings.Contains(string(out), "use text or json") {
		t.Errorf("version -o yaml: err %v, output %s", err, out)
	}

	// The server says it at start and on its metrics listener.
	admin := freeAddr(t)
	srv := exec.Command(bin, "server", "--data-dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--admin-addr", admin, "--log-format", "json")
	srv.Env = append(os.Environ(), "HOOKWIRE_ADMIN_KEY="+e2eAdminKey, "HOOKWIRE_MASTER_KEY="+e2eMasterKey)
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stdout = io.Discard
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	sc := bufio.NewScanner(stderr)
	var serving map[string]any
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "control plane serving" {
			serving = line
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	if serving == nil || serving["version"] != ver || serving["commit"] != commit ||
		serving["build_date"] != date || !strings.HasPrefix(fmt.Sprint(serving["go_version"]), "go1.") {
		t.Errorf(`startup line "control plane serving" = %v, want version, commit, build_date and go_version`, serving)
	}
	want := `hookwire_build_info{build_date="` + date + `",commit="` + commit + `",goversion="`
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := httpGetOrZero("http://" + admin + "/metrics")
		if code == 200 {
			line := ""
			for l := range strings.SplitSeq(body, "\n") {
				if strings.HasPrefix(l, "hookwire_build_info{") {
					line = l
				}
			}
			if !strings.HasPrefix(line, want) || !strings.HasSuffix(line, `",version="`+ver+`"} 1`) {
				t.Fatalf("hookwire_build_info series = %q, want %s...version=%q} 1", line, want, ver)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics listener %s did not answer within 30s", admin)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// httpGetOrZero is GET url's status and body, or 0 while nothing answers.
func httpGetOrZero(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
