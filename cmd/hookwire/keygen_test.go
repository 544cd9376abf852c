package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane"
)

func TestMasterKeyFlags(t *testing.T) {
	t.Setenv(controlplane.MasterKeyEnv, "")
	var f masterKeyFlags
	if _, _, err := f.load(); err == nil || !strings.Contains(err.Error(), "hookwire keygen --out") {
		t.Fatalf("no master key: %v", err)
	}
	dir := t.TempDir()
	cur, prev := filepath.Join(dir, "new.key"), filepath.Join(dir, "old.key")
	for _, p := range []string{cur, prev} {
		cmd := newKeygenCmd()
		cmd.SetArgs([]string{"--out", p})
		cmd.SetOut(&strings.Builder{})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
	}
	f = masterKeyFlags{file: cur, previous: []string{prev}}
	k, previous, err := f.load()
	if err != nil || k == nil || len(previous) != 1 || previous[0].ID() == k.ID() {
		t.Fatalf("load: %v, %v, %v", k, previous, err)
	}
	t.Setenv(controlplane.MasterKeyEnv, "bm90IGEga2V5")
	if _, _, err := (&masterKeyFlags{}).load(); err == nil || strings.Contains(err.Error(), "bm90IGEga2V5") {
		t.Fatalf("bad env key: %v (must not echo the key)", err)
	}
}

func TestDevMasterKeyIsCreatedOnceWithMode0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := devMasterKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, devMasterKeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("master.key: %v, %v", info, err)
	}
	k2, err := devMasterKey(dir)
	if err != nil || k2.ID() != k1.ID() {
		t.Fatalf("second run: %v, %v (want the same key)", k2, err)
	}
}
