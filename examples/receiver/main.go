// Command receiver is a minimal service that receives Hookwire webhooks. It
// listens on 127.0.0.1, verifies every request with verify.Middleware and
// prints the events it accepts:
//
//	HOOKWIRE_WEBHOOK_SECRET=whsec_... go run ./examples/receiver
//	HOOKWIRE_WEBHOOK_SECRET=whpk_... go run ./examples/receiver -addr 127.0.0.1:9000 -path /hooks
//
// HOOKWIRE_WEBHOOK_SECRET holds the subscription's "whsec_" secret or its
// "whpk_" public key. During a key rotation put both the old and the new
// key in it, separated by spaces or commas.
//
// Hookwire delivers at least once, so the receiver remembers the last
// webhook-ids it processed and acknowledges repeats without processing
// them again.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hookwire/hookwire/controlplane/signing/verify"
)

// envSecret names the environment variable holding the verification keys.
const envSecret = "HOOKWIRE_WEBHOOK_SECRET"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, if set, is called with the listening
// address once requests can be sent.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, ready func(addr string)) error {
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8787", "address to listen on")
	path := fs.String("path", "/webhooks", "URL path that receives webhooks")
	if err := fs.Parse(args); err != nil {
		return err
	}
	keys := strings.FieldsFunc(getenv(envSecret), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(keys) == 0 {
		return fmt.Errorf("%s is not set: put the subscription's whsec_ secret or whpk_ public key in it", envSecret)
	}
	v, err := verify.New(keys...)
	if err != nil {
		return fmt.Errorf("%s: %w", envSecret, err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	out := &syncWriter{w: stdout}
	srv := &http.Server{
		Handler:           newHandler(v, *path, out),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
	}
	fmt.Fprintf(out, "listening on http://%s%s\n", ln.Addr(), *path)
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHandler verifies webhooks posted to path and prints them to out.
func newHandler(v *verify.Verifier, path string, out io.Writer) http.Handler {
	seen := newRecent(4096)
	v = v.With(verify.WithOnReject(func(r *http.Request, err error) {
		fmt.Fprintf(out, "rejected request from %s: %v\n", r.RemoteAddr, err)
	}))
	mux := http.NewServeMux()
	mux.Handle("POST "+path, verify.Middleware(v, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		id := r.Header.Get("webhook-id")
		if !seen.add(id) {
			fmt.Fprintf(out, "duplicate %s ignored (already processed)\n", id)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fmt.Fprintf(out, "event %s%s: %s\n", id, eventType(body), printable(body))
		w.WriteHeader(http.StatusNoContent)
	})))
	return mux
}

// eventType returns " (type)" when the body is a JSON object with a
// string "type" field.
func eventType(body []byte) string {
	var e struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(body, &e) != nil || e.Type == "" {
		return ""
	}
	return fmt.Sprintf(" (%q)", e.Type)
}

// printable shortens the body and keeps control characters off the terminal.
func printable(body []byte) string {
	const max = 2048
	var buf bytes.Buffer
	if json.Valid(body) && json.Compact(&buf, body) == nil {
		body = buf.Bytes()
	}
	s := string(body)
	if len(s) > max {
		s = s[:max] + "..."
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) || !json.Valid(body) {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// recent remembers the last n webhook ids.
type recent struct {
	mu   sync.Mutex
	ids  map[string]bool
	ring []string
	next int
}

func newRecent(n int) *recent {
	return &recent{ids: make(map[string]bool, n), ring: make([]string, n)}
}

// add records id and reports whether it was new.
func (s *recent) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids[id] {
		return false
	}
	delete(s.ids, s.ring[s.next])
	s.ring[s.next] = id
	s.ids[id] = true
	s.next = (s.next + 1) % len(s.ring)
	return true
}

// syncWriter serialises writes from concurrent requests.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Write writes p whole, one caller at a time.
func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
