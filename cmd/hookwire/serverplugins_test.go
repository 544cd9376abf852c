package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestServerLearnsPluginSecretFields: `hookwire server --plugin-dir` runs
// each third-party plugin's Describe once and seals the config fields it
// marks secret; the built-ins' are known without it.
func TestServerLearnsPluginSecretFields(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hookwire-transport-vault")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/transport-vault").CombinedOutput(); err != nil {
		t.Fatalf("build the test plugin: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	fields, err := serverPluginFlags{dir: dir, pins: []string{"vault=" + hex.EncodeToString(sum[:])}}.secretConfigFields(context.Background(), log)
	if err != nil {
		t.Fatal(err)
	}
	for transport, want := range map[string][]string{"vault": {"token"}, "amqp": {"url"}, "http": nil, "unknown": nil} {
		if got := fields(transport); !slices.Equal(got, want) {
			t.Errorf("secret fields of %q = %v, want %v", transport, got, want)
		}
	}

	// Without --plugin-dir: the built-ins only.
	builtins, err := serverPluginFlags{}.secretConfigFields(context.Background(), log)
	if err != nil {
		t.Fatal(err)
	}
	if got := builtins("vault"); got != nil || !slices.Equal(builtins("redis"), []string{"url"}) {
		t.Errorf("without --plugin-dir: vault %v, redis %v", got, builtins("redis"))
	}

	// A pin that does not match refuses to start, naming the plugin.
	_, err = serverPluginFlags{dir: dir, pins: []string{"vault=" + strings.Repeat("0", 64)}}.secretConfigFields(context.Background(), log)
	if err == nil || !strings.Contains(err.Error(), "vault") {
		t.Errorf("mismatched pin: %v, want an error naming the plugin", err)
	}
	if _, err := (serverPluginFlags{pins: []string{"vault=" + hex.EncodeToString(sum[:])}}).secretConfigFields(context.Background(), log); err == nil || !strings.Contains(err.Error(), "--plugin-dir") {
		t.Errorf("a pin without --plugin-dir: %v, want an error naming --plugin-dir", err)
	}
}
