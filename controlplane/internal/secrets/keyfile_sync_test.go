package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerateKeyFileFailsWhenItsDirectoryCannotBeSynced: a key file whose
// directory entry may not be durable is an error (the name could vanish
// in a crash, taking the only key to the stored secrets with it), and no
// file is left to make a retry fail with "already exists".
func TestGenerateKeyFileFailsWhenItsDirectoryCannotBeSynced(t *testing.T) {
	orig := syncDir
	t.Cleanup(func() { syncDir = orig })
	eio := errors.New("input/output error")
	var synced string
	syncDir = func(dir string) error { synced = dir; return eio }

	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")
	k, err := GenerateKeyFile(path)
	if !errors.Is(err, eio) || k != nil {
		t.Fatalf("GenerateKeyFile = %v, %v; want the directory sync's error", k, err)
	}
	if !strings.Contains(err.Error(), "sync its directory") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not say which file and what failed", err)
	}
	if synced != dir {
		t.Errorf("synced %q, want the key file's directory %q", synced, dir)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("key file left behind after the failure: %v", err)
	}
	syncDir = orig
	if _, err := GenerateKeyFile(path); err != nil {
		t.Fatalf("retry after the failure: %v", err)
	}
}
