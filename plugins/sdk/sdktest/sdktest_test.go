package sdktest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	httptransport "github.com/hookwire/hookwire/plugins/http"
	"github.com/hookwire/hookwire/plugins/sdk"
	"github.com/hookwire/hookwire/plugins/sdk/sdktest"
)

// brokenEnv names the broken behaviour TestBrokenTransport runs the harness
// against, in a subprocess started by TestHarnessCatchesBrokenTransports.
const brokenEnv = "SDKTEST_BROKEN_MODE"

func TestMain(m *testing.M) {
	if os.Getenv(brokenEnv) != "" {
		os.Exit(m.Run()) // broken transports may leave goroutines behind
	}
	goleak.VerifyTestMain(m)
}

func mustStruct(t *testing.T, fields map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// httpReceiver is a loopback server that records every request.
func httpReceiver(t *testing.T) sdktest.Receiver {
	rec := sdktest.NewRecorder()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		headers := make(map[string]string, len(r.Header))
		for name := range r.Header {
			headers[name] = r.Header.Get(name)
		}
		rec.Add(sdktest.Delivery{Body: body, Headers: headers, ContentType: r.Header.Get("Content-Type")})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return sdktest.Receiver{Config: mustStruct(t, map[string]any{"url": srv.URL + "/hook"}), Arrived: rec.Arrived}
}

// unresponsiveReceiver reads each request and never answers, until the
// client goes away or the test ends.
func unresponsiveReceiver(t *testing.T) *structpb.Struct {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return mustStruct(t, map[string]any{"url": srv.URL + "/hook"})
}

func httpOptions(t *testing.T) sdktest.Options {
	return sdktest.Options{
		Target:        httpReceiver,
		InvalidConfig: mustStruct(t, map[string]any{"url": 42}),
		Unresponsive:  unresponsiveReceiver,
	}
}

func newHTTP() *httptransport.Transport {
	return httptransport.New(httptransport.WithPolicy(httptransport.DevPolicy()))
}

// TestHTTPTransportConforms runs the harness against the built-in http
// transport, allowed to reach the loopback receivers over plain http.
func TestHTTPTransportConforms(t *testing.T) {
	var made []*httptransport.Transport
	t.Cleanup(func() {
		for _, tr := range made {
			tr.CloseIdleConnections()
		}
	})
	sdktest.Run(t, func() sdk.Transport {
		tr := newHTTP()
		made = append(made, tr)
		return tr
	}, httpOptions(t))
}

func TestRecorderArrivedWaits(t *testing.T) {
	rec := sdktest.NewRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := rec.Arrived(ctx, 1); err == nil || !strings.Contains(err.Error(), "0 of 1 deliveries arrived") {
		t.Errorf("Arrived on an empty recorder with an ended ctx = %v", err)
	}
	done := make(chan []sdktest.Delivery)
	go func() {
		got, _ := rec.Arrived(context.Background(), 2)
		done <- got
	}()
	rec.Add(sdktest.Delivery{Body: []byte("a")})
	rec.Add(sdktest.Delivery{Body: []byte("b")})
	if got := <-done; len(got) != 2 || string(got[1].Body) != "b" {
		t.Errorf("Arrived(2) = %v", got)
	}
}

// broken wraps the http transport and breaks one rule of the contract.
type broken struct {
	*httptransport.Transport
	mode string
}

func (b broken) Describe(ctx context.Context) (sdk.Info, error) {
	info, err := b.Transport.Describe(ctx)
	if b.mode == "bad-schema" {
		info.TargetSchema = "{not json"
	}
	return info, err
}

func (b broken) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	switch b.mode {
	case "reencode-body":
		req = proto.Clone(req).(*transportv1.DeliveryRequest)
		req.Body = []byte(strings.Join(strings.Fields(string(req.GetBody())), " "))
	case "drop-signature":
		req = proto.Clone(req).(*transportv1.DeliveryRequest)
		delete(req.Headers, "webhook-signature")
	case "unspecified":
		res := b.Transport.Deliver(ctx, req)
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
			res.Outcome = transportv1.Outcome_OUTCOME_UNSPECIFIED
		}
		return res
	case "ignore-deadline": // and the request's timeout
		req = proto.Clone(req).(*transportv1.DeliveryRequest)
		req.Timeout = nil
		return b.Transport.Deliver(context.WithoutCancel(ctx), req)
	case "panic":
		if req.GetConfig() == nil {
			panic("config is nil")
		}
	}
	return b.Transport.Deliver(ctx, req)
}

// TestBrokenTransport is run in a subprocess, against the transport broken
// the way brokenEnv says; it is expected to fail.
func TestBrokenTransport(t *testing.T) {
	mode := os.Getenv(brokenEnv)
	if mode == "" {
		t.Skip("run by TestHarnessCatchesBrokenTransports")
	}
	opts := httpOptions(t)
	opts.MaxDuration = 2 * time.Second // the bound the broken transports overrun
	sdktest.Run(t, func() sdk.Transport { return broken{newHTTP(), mode} }, opts)
}

// TestHarnessCatchesBrokenTransports checks that the harness fails
// transports that break the contract, with a message that says how.
func TestHarnessCatchesBrokenTransports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the test binary once per broken transport")
	}
	tests := map[string][]string{
		"reencode-body":   {"--- FAIL: TestBrokenTransport/direct/Deliver ", "--- FAIL: TestBrokenTransport/grpc/Deliver ", "byte-for-byte"},
		"drop-signature":  {"header webhook-signature is missing"},
		"unspecified":     {"OUTCOME_UNSPECIFIED", "--- FAIL: TestBrokenTransport/grpc/Timeout "},
		"ignore-deadline": {"--- FAIL: TestBrokenTransport/direct/ExpiredDeadline", "--- FAIL: TestBrokenTransport/direct/Timeout", "--- FAIL: TestBrokenTransport/direct/Cancel", "hung"},
		"panic":           {"--- FAIL: TestBrokenTransport/direct/MissingConfigDoesNotPanic", "--- FAIL: TestBrokenTransport/grpc/MissingConfigDoesNotPanic", "panicked"},
		"bad-schema":      {"--- FAIL: TestBrokenTransport/grpc/Describe", "target schema is not a JSON object"},
	}
	for mode, wants := range tests {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenTransport$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+mode)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the harness passed a transport broken by %q:\n%s", mode, out)
			}
			for _, want := range wants {
				if !strings.Contains(string(out), want) {
					t.Errorf("output for %q does not contain %q:\n%s", mode, want, out)
				}
			}
		})
	}
}
