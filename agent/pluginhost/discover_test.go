package pluginhost_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookwire/hookwire/agent/pluginhost"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

func writeFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// pluginDir fills a directory with one entry of every kind ScanDir meets.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	elsewhere := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }

	writeFile(t, p("hookwire-transport-alpha"), 0o755)
	writeFile(t, p("hookwire-transport-beta"), 0o644)
	writeFile(t, p("hookwire-transport-open"), 0o777)
	writeFile(t, p("hookwire-transport-Bad"), 0o755)
	writeFile(t, p("hookwire-transport-"), 0o755)
	writeFile(t, p("README.md"), 0o644)
	writeFile(t, p("other-tool"), 0o755)
	target := filepath.Join(elsewhere, "gamma-1.2.3")
	writeFile(t, target, 0o755)
	if err := os.Symlink(target, p("hookwire-transport-gamma")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, "missing"), p("hookwire-transport-dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p("hookwire-transport-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p("hookwire-transport-fifo"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestScanDir(t *testing.T) {
	dir := pluginDir(t)
	sum := sha256.Sum256([]byte("#!/bin/sh\n"))
	pin := hex.EncodeToString(sum[:])
	d, err := pluginhost.ScanDir(dir, map[string]string{"alpha": " " + pin + "\n"})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}

	if len(d.Specs) != 2 {
		t.Fatalf("specs = %+v, want alpha and gamma", d.Specs)
	}
	alpha, gamma := d.Specs[0], d.Specs[1]
	if alpha.Name != "alpha" || len(alpha.Command) != 1 || alpha.Command[0] != filepath.Join(dir, "hookwire-transport-alpha") || alpha.SHA256 != pin {
		t.Errorf("alpha spec = %+v, want the file's absolute path, no arguments, the trimmed pin", alpha)
	}
	if gamma.Name != "gamma" || gamma.Command[0] != filepath.Join(dir, "hookwire-transport-gamma") || gamma.SHA256 != "" {
		t.Errorf("gamma spec = %+v, want the link's path and no pin", gamma)
	}

	wantSkipped := map[string]struct{ name, reason string }{
		"hookwire-transport-beta":     {"beta", "not executable (chmod +x"},
		"hookwire-transport-open":     {"open", "chmod o-w"},
		"hookwire-transport-Bad":      {"", `"Bad" is not a valid transport name`},
		"hookwire-transport-":         {"", `"" is not a valid transport name`},
		"README.md":                   {"", "not named hookwire-transport-<name>"},
		"other-tool":                  {"", "not named hookwire-transport-<name>"},
		"hookwire-transport-dangling": {"dangling", "cannot stat"},
		"hookwire-transport-dir":      {"dir", "directory"},
		"hookwire-transport-fifo":     {"fifo", "not a regular file"},
	}
	for _, s := range d.Skipped {
		base := filepath.Base(s.Path)
		want, ok := wantSkipped[base]
		if !ok {
			t.Errorf("unexpected skip of %s: %s", s.Path, s.Reason)
			continue
		}
		delete(wantSkipped, base)
		if s.Name != want.name || !strings.Contains(s.Reason, want.reason) {
			t.Errorf("skip %s = name %q reason %q, want name %q and a reason containing %q", base, s.Name, s.Reason, want.name, want.reason)
		}
	}
	for base := range wantSkipped {
		t.Errorf("%s was not reported as skipped", base)
	}

	// Discover is the same without the skip list.
	specs, err := pluginhost.Discover(dir, nil)
	if err != nil || len(specs) != 2 {
		t.Errorf("Discover = %+v, %v", specs, err)
	}
}

func TestScanDirRelativePath(t *testing.T) {
	dir := pluginDir(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, dir)
	if err != nil {
		t.Skipf("no relative path from %s to %s", wd, dir)
	}
	specs, err := pluginhost.Discover(rel, nil)
	if err != nil || len(specs) == 0 || !filepath.IsAbs(specs[0].Command[0]) {
		t.Fatalf("Discover(%q) = %+v, %v, want absolute commands", rel, specs, err)
	}
}

func TestScanDirErrors(t *testing.T) {
	dir := pluginDir(t)
	good := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		dir  string
		pins map[string]string
		want string
	}{
		{"missing dir", filepath.Join(dir, "nope"), nil, "read plugin directory"},
		{"not a dir", filepath.Join(dir, "README.md"), nil, "read plugin directory"},
		{"malformed pin", dir, map[string]string{"alpha": "abc"}, `pin for transport plugin "alpha": "abc" is not a hex SHA-256`},
		{"pin for a skipped plugin", dir, map[string]string{"beta": good}, `"beta" is pinned but will not run: ` + filepath.Join(dir, "hookwire-transport-beta") + " is skipped: it is not executable"},
		{"pin for a missing plugin", dir, map[string]string{"zeta": good}, `"zeta" is pinned but will not run: there is no file ` + filepath.Join(dir, "hookwire-transport-zeta")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pluginhost.ScanDir(tt.dir, tt.pins)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ScanDir = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestDiscoveredPluginRuns links the test binary into a plugin directory
// as hookwire-transport-<name>: the Host starts what Discover found, the
// pin is enforced, and Spec.Env reaches the plugin process.
func TestDiscoveredPluginRuns(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, "hookwire-transport-linked")); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)

	t.Run("pinned and started", func(t *testing.T) {
		t.Setenv("HOOKWIRE_TEST_OVERRIDDEN", "from the agent")
		t.Setenv("HOOKWIRE_TEST_INHERITED", "inherited")
		specs, err := pluginhost.Discover(dir, map[string]string{"linked": hex.EncodeToString(sum[:])})
		if err != nil || len(specs) != 1 {
			t.Fatalf("discover = %+v, %v", specs, err)
		}
		specs[0].Env = []string{"HOOKWIRE_TEST_OVERRIDDEN=from the spec"}
		h, _ := newHost(t)
		if err := h.Start(context.Background(), specs); err != nil {
			t.Fatalf("start discovered plugin: %v", err)
		}
		tr, ok := h.Transport("linked")
		if !ok {
			t.Fatal("discovered plugin not hosted")
		}
		if res, pid := echo(t, tr, "hi"); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS || pid == os.Getpid() {
			t.Fatalf("delivery = %v %q from pid %d", res.GetOutcome(), res.GetError(), pid)
		}
		for name, want := range map[string]string{"HOOKWIRE_TEST_OVERRIDDEN": "from the spec", "HOOKWIRE_TEST_INHERITED": "inherited"} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res := tr.Deliver(ctx, &transportv1.DeliveryRequest{DeliveryId: name, EventType: "env"})
			cancel()
			if got := string(res.GetResponseBody()); got != want {
				t.Errorf("plugin sees %s=%q, want %q", name, got, want)
			}
		}
	})

	t.Run("pin mismatch refused", func(t *testing.T) {
		specs, err := pluginhost.Discover(dir, map[string]string{"linked": strings.Repeat("00", 32)})
		if err != nil {
			t.Fatal(err)
		}
		h, _ := newHost(t)
		err = h.Start(context.Background(), specs)
		if err == nil || !strings.Contains(err.Error(), "does not match the pinned sha256") {
			t.Fatalf("start with a wrong pin = %v, want a refusal", err)
		}
	})

	t.Run("bad env refused", func(t *testing.T) {
		specs, err := pluginhost.Discover(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		specs[0].Env = []string{"NO_EQUALS_SIGN"}
		h, _ := newHost(t)
		if err := h.Start(context.Background(), specs); err == nil || !strings.Contains(err.Error(), "not KEY=VALUE") {
			t.Fatalf("start with a malformed env entry = %v", err)
		}
	})
}
