package main

// Real-process tests of the store under faults: a full disk (a small
// tmpfs, when running as root) and damaged or missing store files.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookwire/hookwire/internal/tmpfs/tmpfstest"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// startServerArgs starts `hookwire server` on dir with extra flags.
func startServerArgs(t *testing.T, dir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"server", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, extra...)
	p, out := startProc(t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY=" + e2eMasterKey}, args...)
	for out.Scan() {
		if m := addrLine.FindStringSubmatch(out.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, readerOf(out)) }()
			return &server{proc: p, grpcAddr: m[1], httpAddr: m[2]}
		}
	}
	t.Fatalf("server exited before printing its addresses: %s", p.stderr.String())
	return nil
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func metricValue(t *testing.T, adminAddr, name string) float64 {
	t.Helper()
	_, body := httpGet(t, "http://"+adminAddr+"/metrics")
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("metric %s not exported", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func grpcHealth(t *testing.T, grpcAddr string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("gRPC health check: %v", err)
	}
	return resp.GetStatus()
}

// runBinary runs the binary to completion (bounded) and returns its exit
// code, stdout and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hookwireBin, args...)
	cmd.Env = append(os.Environ(), "HOOKWIRE_ADMIN_KEY="+e2eAdminKey, "HOOKWIRE_MASTER_KEY="+e2eMasterKey)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("hookwire %s did not finish within 60s; stderr:\n%s", strings.Join(args, " "), stderr.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// storeRecords runs `hookwire store check` and returns the record count
// of a bucket from its report.
func storeRecords(t *testing.T, dir, bucket string) int {
	t.Helper()
	code, out, errOut := runBinary(t, "store", "check", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("store check exited %d:\n%s%s", code, out, errOut)
	}
	m := regexp.MustCompile(`\b` + bucket + ` (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("store check report has no %s count:\n%s", bucket, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestDiskFullStoreRecoversWithoutRestart fills a small tmpfs under the
// data directory until publishes fail, then frees space: the server must
// say what is wrong while it cannot write (503 with the reason, readiness
// 503, gRPC health NOT_SERVING, hookwire_store_writable 0) and take writes
// again by itself, with every acknowledged event in the file. Before the
// fix every write failed until a restart and /healthz said ok throughout.
func TestDiskFullStoreRecoversWithoutRestart(t *testing.T) {
	mnt := tmpfstest.Mount(t, 40<<20) // skips when not root
	dir := filepath.Join(mnt, "data")
	adminAddr := freeAddr(t)
	srv := startServerArgs(t, dir, "--admin-addr", adminAddr)
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants", `{"id":"acme"}`, nil); code != 200 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	if code, body := restRaw(t, srv.httpAddr, "POST", "/v1/tenants/acme/subscriptions",
		`{"event_types":["*"],"target":{"transport":"http","config":{"url":"http://127.0.0.1:1/unused"}}}`); code != 200 {
		t.Fatalf("create subscription: HTTP %d %s", code, body)
	}
	if code, body := httpGet(t, "http://"+adminAddr+"/readyz"); code != 200 || !strings.Contains(body, "ready") {
		t.Fatalf("/readyz before: %d %q", code, body)
	}

	filler := tmpfstest.Fill(t, mnt, 2<<20)

	pad := strings.Repeat("x", 2000)
	publish := func(i int) (int, string) {
		return restRaw(t, srv.httpAddr, "POST", "/v1/tenants/acme/events", fmt.Sprintf(`{"type":"order.created","payload":{"n":%d,"pad":%q}}`, i, pad))
	}
	acked := 0
	var code int
	var body string
	for i := 0; i < 5000; i++ {
		if code, body = publish(i); code != 200 {
			break
		}
		acked++
	}
	t.Logf("acknowledged %d publishes of 2 KB before the disk was full; then HTTP %d %s", acked, code, body)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "the store cannot accept writes") || !strings.Contains(body, "no space left on device") {
		t.Fatalf("publish on a full disk: HTTP %d %s; want 503 saying the store cannot write and why", code, body)
	}
	if code, body := httpGet(t, "http://"+adminAddr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no space left on device") {
		t.Errorf("/readyz on a full disk: %d %q, want 503 with the reason", code, body)
	}
	if code, _ := httpGet(t, "http://"+adminAddr+"/healthz"); code != 200 {
		t.Errorf("/healthz (liveness) on a full disk: %d, want 200", code)
	}
	if s := grpcHealth(t, srv.grpcAddr); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health on a full disk: %v, want NOT_SERVING", s)
	}
	if v := metricValue(t, adminAddr, "hookwire_store_writable"); v != 0 {
		t.Errorf("hookwire_store_writable on a full disk = %v, want 0", v)
	}
	// The store refuses writes while the disk is under its reserve, before
	// they enter the raft log: no write that was accepted failed to apply.
	if v := metricValue(t, adminAddr, "hookwire_store_commit_failures_total"); v != 0 {
		t.Errorf("hookwire_store_commit_failures_total = %v, want 0 (writes refused before they were accepted)", v)
	}
	started := time.Now()
	if code, _ := publish(-1); code != http.StatusServiceUnavailable {
		t.Errorf("publish while the store cannot write: HTTP %d, want 503", code)
	} else if took := time.Since(started); took > 2*time.Second {
		t.Errorf("a refused publish took %v; it must fail fast", took)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if code, _ := httpGet(t, "http://"+adminAddr+"/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still not 200 30s after space came back; server log:\n%s", srv.stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling another process's readiness
	}
	t.Logf("ready again %v after the filler was removed", time.Since(freed).Round(time.Millisecond))
	for i := range 20 {
		if code, body := publish(10000 + i); code != 200 {
			t.Fatalf("publish after space came back: HTTP %d %s", code, body)
		}
	}
	if s := grpcHealth(t, srv.grpcAddr); s != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health after recovery: %v, want SERVING", s)
	}
	if v := metricValue(t, adminAddr, "hookwire_store_writable"); v != 1 {
		t.Errorf("hookwire_store_writable after recovery = %v, want 1", v)
	}
	srv.kill(syscall.SIGTERM)
	if got := storeRecords(t, dir, "events"); got != acked+20 {
		t.Fatalf("the store holds %d events, want the %d acknowledged", got, acked+20)
	}
}

// damagedStoreBase writes a store through a real server: a tenant, a
// subscription and 300 events whose payloads carry "MARK-%04d"; it
// returns the data directory, the server stopped.
func damagedStoreBase(t *testing.T) (dir string, eventIDs []string) {
	t.Helper()
	dir = t.TempDir()
	srv := startServer(t, dir)
	createSubscription(t, srv.httpAddr, "acme", "http://127.0.0.1:1/unused")
	for i := range 300 {
		eventIDs = append(eventIDs, publishREST(t, srv.httpAddr, "acme", fmt.Sprintf(`{"type":"order.created","payload":{"mark":"MARK-%04d","pad":%q}}`, i, strings.Repeat("y", 300))))
	}
	srv.kill(syscall.SIGTERM)
	return dir, eventIDs
}

// copyWholeDataDir copies a data directory, raft log included.
func copyWholeDataDir(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
	return to
}

// copyDataDir copies the store's files, without the raft log, to a new
// directory: a data directory that lost its log (a missing or empty
// database file is then not rebuilt from it).
func copyDataDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	for _, name := range []string{"hookwire.db", "hookwire.store-id"} {
		data, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// TestDamagedOrMissingStoreFileIsRefusedWithOneLine: `hookwire server` on
// a truncated file (today: SIGBUS and a 181-line goroutine dump), a damaged
// page (a bbolt assertion panic), an empty or a missing file in a
// directory that held a store (today: a new empty store) exits non-zero
// with one line saying what is wrong; `hookwire store check` reports the
// same and exits 1.
func TestDamagedOrMissingStoreFileIsRefusedWithOneLine(t *testing.T) {
	base, _ := damagedStoreBase(t)
	if code, out, errOut := runBinary(t, "store", "check", "--data-dir", base); code != 0 || !strings.Contains(out, "OK: no problems found") {
		t.Fatalf("store check of the healthy store: exit %d\n%s%s", code, out, errOut)
	}
	eventsRoot := func(path string) int64 {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var root int64
		_ = db.View(func(tx *bolt.Tx) error { root = int64(tx.Bucket([]byte("events")).Root()); return nil })
		return root
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, db string)
		want   string // in the server's error and the check's report
	}{
		{"truncated", func(t *testing.T, db string) {
			info, _ := os.Stat(db)
			if err := os.Truncate(db, info.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "cut short"},
		{"damaged page", func(t *testing.T, db string) {
			root := eventsRoot(db)
			f, err := os.OpenFile(db, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(bytes.Repeat([]byte{0x5a}, 64), root*4096); err != nil {
				t.Fatal(err)
			}
		}, "identifies itself as page"},
		{"empty with marker", func(t *testing.T, db string) {
			if err := os.Truncate(db, 0); err != nil {
				t.Fatal(err)
			}
		}, "is empty (0 bytes)"},
		{"missing with marker", func(t *testing.T, db string) {
			if err := os.Remove(db); err != nil {
				t.Fatal(err)
			}
		}, "is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDataDir(t, base)
			tc.damage(t, filepath.Join(dir, "hookwire.db"))
			code, _, errOut := runBinary(t, "server", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if code == 0 || len(lines) != 1 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
				t.Fatalf("hookwire server: exit %d, %d stderr lines, want a non-zero exit and one line saying %q:\n%s", code, len(lines), tc.want, errOut)
			}
			t.Logf("server: exit %d: %s", code, lines[0])
			code, out, errOut := runBinary(t, "store", "check", "--data-dir", dir)
			if code != 1 || !strings.Contains(out, "PROBLEM") || !strings.Contains(out, tc.want) || strings.Contains(out+errOut, "goroutine") {
				t.Fatalf("store check: exit %d, want 1 with a PROBLEM saying %q:\n%s%s", code, tc.want, out, errOut)
			}
		})
	}

	t.Run("allow new store", func(t *testing.T) {
		dir := copyDataDir(t, base)
		if err := os.Remove(filepath.Join(dir, "hookwire.db")); err != nil {
			t.Fatal(err)
		}
		srv := startServerArgs(t, dir, "--allow-new-store")
		if code := restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme", "", nil); code != http.StatusNotFound {
			t.Fatalf("a new store started with --allow-new-store has the old tenant (HTTP %d)", code)
		}
	})
}

// TestFlippedRecordByteIsReportedNotServed: a byte flipped inside a
// record (bbolt's structure intact, so the server starts) is caught by
// the record's checksum: the API answers an error naming the damage
// instead of the altered data, and store check names the record.
func TestFlippedRecordByteIsReportedNotServed(t *testing.T) {
	base, eventIDs := damagedStoreBase(t)
	dir := copyWholeDataDir(t, base)
	db := filepath.Join(dir, "hookwire.db")
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	mark := []byte("MARK-0123")
	// Free pages may hold older copies of the record's page: change every
	// copy, so the live one is among them ("MARK-0123" -> "MARK-1123").
	n := 0
	for off := 0; ; {
		i := bytes.Index(data[off:], mark)
		if i < 0 {
			break
		}
		data[off+i+5] ^= 0x01
		n++
		off += i + len(mark)
	}
	if n == 0 {
		t.Fatal("marker not found in the store file")
	}
	if err := os.WriteFile(db, data, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir)
	var sub struct {
		Subscriptions []struct {
			ID string `json:"id"`
		} `json:"subscriptions"`
	}
	if code := restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/subscriptions", "", &sub); code != 200 || len(sub.Subscriptions) != 1 {
		t.Fatalf("list subscriptions: HTTP %d %+v", code, sub)
	}
	resend := func(eventID string) (int, string) {
		return restRaw(t, srv.httpAddr, "POST", "/v1/tenants/acme/events/"+eventID+":resend", `{"subscription_id":"`+sub.Subscriptions[0].ID+`"}`)
	}
	code, body := resend(eventIDs[123])
	if code != http.StatusInternalServerError || !strings.Contains(body, "damaged") || strings.Contains(body, "MARK-1123") {
		t.Fatalf("resend of the damaged event: HTTP %d %s; want 500 saying the stored data is damaged", code, body)
	}
	var errBody struct {
		Code int `json:"code"`
	}
	_ = json.Unmarshal([]byte(body), &errBody)
	if errBody.Code != 15 { // DATA_LOSS
		t.Errorf("gRPC code %d, want 15 (DataLoss)", errBody.Code)
	}
	if code, body := resend(eventIDs[122]); code != 200 {
		t.Fatalf("resend of an intact event: HTTP %d %s", code, body)
	}
	srv.kill(syscall.SIGTERM)
	code, out, _ := runBinary(t, "store", "check", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "checksum mismatch") || !strings.Contains(out, "record events/") {
		t.Fatalf("store check: exit %d, want 1 naming the record:\n%s", code, out)
	}
}
