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

// WantEgressRefused fails the test unless res is the named transport's
// refusal, by the agent's egress policy, to connect to the local broker on
// 127.0.0.1: REJECTED, saying why, and naming the --allow-cidr flag that
// would allow it.
func WantEgressRefused(t testing.TB, res *transportv1.DeliveryResult, transport string) {
	t.Helper()
	WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED,
		"refused to connect to 127.0.0.1: it is in 127.0.0.0/8 (loopback); the "+transport+" transport does not connect to such addresses")
	WantOutcome(t, res, transportv1.Outcome_OUTCOME_REJECTED, "start the agent with --allow-cidr 127.0.0.1/32")
}
