package main

// End-to-end tests: the real hookwire binary runs as `server` and `agent`
// processes, the agent runs the http transport as a plugin subprocess
// (`hookwire plugin http`), and deliveries land on a loopback sink.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

const e2eAdminKey = "e2e-admin-key-0123456789abcdef"

// e2eMasterKey is the master key (base64 of 32 bytes) e2e servers run with.
const e2eMasterKey = "ZTJlLW1hc3Rlci1rZXktMDEyMzQ1Njc4OWFiY2RlZmc="

var hookwireBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hookwire-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hookwireBin = filepath.Join(dir, "hookwire")
	build := exec.Command("go", "build", "-o", hookwireBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hookwire:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a hookwire subprocess.
type proc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startProc(t *testing.T, env []string, args ...string) (*proc, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(hookwireBin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("hookwire %s stderr:\n%s", args[0], p.stderr.String())
		}
	})
	return p, bufio.NewScanner(out)
}

func (p *proc) kill(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	<-p.done
}

var addrLine = regexp.MustCompile(`^gRPC (\S+)  REST http://(\S+)$`)

type server struct {
	*proc
	grpcAddr, httpAddr string
}

func startServer(t *testing.T, dir string) *server {
	t.Helper()
	p, out := startProc(t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY=" + e2eMasterKey},
		"server", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	for out.Scan() {
		if m := addrLine.FindStringSubmatch(out.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, readerOf(out)) }()
			return &server{proc: p, grpcAddr: m[1], httpAddr: m[2]}
		}
	}
	t.Fatalf("server exited before printing its addresses: %s", p.stderr.String())
	return nil
}

func readerOf(s *bufio.Scanner) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for s.Scan() {
		}
		pw.Close()
	}()
	return pr
}

func startAgent(t *testing.T, serverAddr, id string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"agent", "--server", serverAddr, "--id", id,
		"--allow-cidr", "127.0.0.0/8", "--allow-insecure-http"}, extra...) // the sink is on loopback
	p, out := startProc(t, []string{"HOOKWIRE_API_KEY=" + e2eAdminKey}, args...)
	go func() {
		for out.Scan() {
		}
	}()
	return p
}

// sink records webhooks by webhook-id.
type sink struct {
	t    *testing.T
	url  string
	mu   sync.Mutex
	got  map[string][]received
	hits chan received
	gate func(r received) // optional: called before answering
}

type received struct {
	id      string
	path    string
	body    []byte
	headers http.Header
}

func newSink(t *testing.T) *sink {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{t: t, url: "http://" + lis.Addr().String() + "/hook", got: map[string][]received{}, hits: make(chan received, 1000)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{id: r.Header.Get("webhook-id"), path: r.URL.Path, body: body, headers: r.Header.Clone()}
		s.mu.Lock()
		gate := s.gate
		s.mu.Unlock()
		if gate != nil {
			gate(rec)
		}
		s.mu.Lock()
		s.got[rec.id] = append(s.got[rec.id], rec)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		s.hits <- rec
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	return s
}

// await waits for n distinct webhook ids.
func (s *sink) await(n int, within time.Duration) {
	s.t.Helper()
	deadline := time.After(within)
	for {
		s.mu.Lock()
		have := len(s.got)
		s.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-s.hits:
		case <-deadline:
			s.t.Fatalf("sink received %d distinct deliveries within %s, want %d", have, within, n)
		}
	}
}

func (s *sink) all() map[string][]received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]received{}
	for k, v := range s.got {
		out[k] = append([]received(nil), v...)
	}
	return out
}

func restCall(t *testing.T, httpAddr, method, path, body string, out any) int {
	t.Helper()
	code, data := restRaw(t, httpAddr, method, path, body)
	if out != nil {
		if err := json.Unmarshal([]byte(data), out); err != nil {
			t.Fatalf("%s %s: %q: %v", method, path, data, err)
		}
	}
	return code
}

// restRaw sends an admin REST request and returns the status and body.
func restRaw(t *testing.T, httpAddr, method, path, body string) (int, string) {
	t.Helper()
	return bearerCall(t, httpAddr, e2eAdminKey, method, path, body)
}

func createSubscription(t *testing.T, httpAddr, tenant, url string) (id, secret string) {
	t.Helper()
	if code := restCall(t, httpAddr, "POST", "/v1/tenants", `{"id":"`+tenant+`"}`, nil); code != 200 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	var sub struct {
		ID            string `json:"id"`
		SigningSecret string `json:"signing_secret"`
	}
	body := `{"event_types":["order.*"],"target":{"transport":"http","config":{"url":"` + url + `"}}}`
	if code := restCall(t, httpAddr, "POST", "/v1/tenants/"+tenant+"/subscriptions", body, &sub); code != 200 {
		t.Fatalf("create subscription: HTTP %d", code)
	}
	return sub.ID, sub.SigningSecret
}

func publishREST(t *testing.T, httpAddr, tenant, body string) string {
	t.Helper()
	var pub struct {
		ID string `json:"id"`
	}
	if code := restCall(t, httpAddr, "POST", "/v1/tenants/"+tenant+"/events", body, &pub); code != 200 {
		t.Fatalf("publish: HTTP %d", code)
	}
	return pub.ID
}

func grpcClient(t *testing.T, addr string) (hookwirev1.EventServiceClient, context.Context) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(withBearer(context.Background(), e2eAdminKey), 30*time.Second)
	t.Cleanup(cancel)
	return hookwirev1.NewEventServiceClient(conn), ctx
}

func withBearer(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// verify checks a Standard Webhooks signature independently of Hookwire's
// signing package.
func verify(t *testing.T, secret string, r received) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", r.headers.Get("webhook-id"), r.headers.Get("webhook-timestamp"))
	mac.Write(r.body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got := r.headers.Get("webhook-signature"); got != want {
		t.Errorf("webhook-signature %q, want %q", got, want)
	}
}

func TestEndToEndSignedDelivery(t *testing.T) {
	sk := newSink(t)
	srv := startServer(t, t.TempDir())
	startAgent(t, srv.grpcAddr, "e2e-agent")
	_, secret := createSubscription(t, srv.httpAddr, "acme", sk.url)

	restBody := `{"id": 1, "amount": 12345678901234567890, "tags": ["a", "b"]}`
	publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":`+restBody+`}`)
	events, ctx := grpcClient(t, srv.grpcAddr)
	grpcBody := []byte("<order id=\"2\"/>")
	if _, err := events.PublishEvent(ctx, &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{Type: "order.updated", Payload: grpcBody, ContentType: "application/xml"}}); err != nil {
		t.Fatal(err)
	}
	sk.await(2, 30*time.Second)

	byBody := map[string]received{}
	for _, rs := range sk.all() {
		byBody[string(rs[0].body)] = rs[0]
	}
	for body, ct := range map[string]string{restBody: "application/json", string(grpcBody): "application/xml"} {
		r, ok := byBody[body]
		if !ok {
			t.Fatalf("sink never got body %q; got %v", body, byBody)
		}
		if got := r.headers.Get("Content-Type"); got != ct {
			t.Errorf("content-type %q, want %q", got, ct)
		}
		if !strings.HasPrefix(r.headers.Get("webhook-id"), "dlv_") {
			t.Errorf("webhook-id %q", r.headers.Get("webhook-id"))
		}
		if ts := r.headers.Get("webhook-timestamp"); ts == "" || len(ts) < 10 {
			t.Errorf("webhook-timestamp %q", ts)
		}
		verify(t, secret, r)
	}

	// The API shows both deliveries succeeded, with their attempts.
	var list struct {
		Deliveries []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"deliveries"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/deliveries?status=DELIVERY_STATUS_SUCCEEDED", "", &list)
		if len(list.Deliveries) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling the API for an eventually recorded result
	}
	if len(list.Deliveries) != 2 {
		t.Fatalf("succeeded deliveries = %+v", list)
	}
	var attempts struct {
		Attempts []struct {
			Outcome    string `json:"outcome"`
			StatusCode int    `json:"status_code"`
		} `json:"attempts"`
	}
	restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/deliveries/"+list.Deliveries[0].ID+"/attempts", "", &attempts)
	if len(attempts.Attempts) != 1 || attempts.Attempts[0].Outcome != "OUTCOME_SUCCESS" || attempts.Attempts[0].StatusCode != 204 {
		t.Fatalf("attempts = %+v", attempts)
	}
}
