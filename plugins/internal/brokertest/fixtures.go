package brokertest

import (
	"crypto/rand"
	"strings"
	"testing"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// Config builds a target configuration for a test.
func Config(t testing.TB, fields map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatalf("config %v: %v", fields, err)
	}
	return s
}

// RandomBody returns n arbitrary bytes: not UTF-8, not JSON, so a transport
// that re-encodes the body is caught.
func RandomBody(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// WantOutcome fails the test unless res has the outcome and its error text
// mentions errContains.
func WantOutcome(t testing.TB, res *transportv1.DeliveryResult, want transportv1.Outcome, errContains string) {
	t.Helper()
	if res.GetOutcome() != want {
		t.Fatalf("outcome = %v (%s), want %v", res.GetOutcome(), res.GetError(), want)
	}
	if !strings.Contains(res.GetError(), errContains) {
		t.Fatalf("error = %q, want it to mention %q", res.GetError(), errContains)
	}
}
