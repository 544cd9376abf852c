package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `hookwire server` takes its flags from HOOKWIRE_SERVER_<FLAG> and from a
// --config file too (command line > environment > file), and refuses a
// file key that is no flag.
func TestServerConfigFromEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "from-env")
	cfg := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(cfg, []byte("grpc-addr: 127.0.0.1:0\nhttp-addr: 127.0.0.1:0\ndata-dir: "+filepath.Join(dir, "from-file")+"\nretention: 48h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, out := startProc(t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY=" + e2eMasterKey,
		"HOOKWIRE_SERVER_DATA_DIR=" + dataDir, "HOOKWIRE_SERVER_CONFIG=" + cfg}, "server")
	started := false
	for out.Scan() {
		if addrLine.MatchString(out.Text()) {
			started = true
			break
		}
	}
	if !started {
		t.Fatalf("server did not start: %s", p.stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, readerOf(out)) }()
	if _, err := os.Stat(filepath.Join(dataDir, "hookwire.db")); err != nil {
		t.Fatalf("the environment's data dir (over the file's) is not used: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "from-file")); err == nil {
		t.Fatal("the file's data-dir was used although HOOKWIRE_SERVER_DATA_DIR is set")
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("grpc-addr: 127.0.0.1:0\nbogus-flag: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q, _ := startProc(t, []string{"HOOKWIRE_MASTER_KEY=" + e2eMasterKey}, "server", "--config", bad, "--data-dir", filepath.Join(dir, "bad"))
	select {
	case <-q.done:
	case <-time.After(30 * time.Second):
		t.Fatal("server with an unknown config key did not exit")
	}
	if q.err == nil || !strings.Contains(q.stderr.String(), "unknown key(s) bogus-flag") {
		t.Fatalf("exit %v, stderr %q: want a failure naming bogus-flag", q.err, q.stderr.String())
	}
}
