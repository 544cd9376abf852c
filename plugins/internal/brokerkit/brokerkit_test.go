package brokerkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

func TestConfigReader(t *testing.T) {
	cfg, _ := structpb.NewStruct(map[string]any{
		"name": "x", "flag": true, "n": 3, "frac": 2.5, "big": 1e6, "zzz": 1, "aaa": 2,
	})
	c := ReadConfig(cfg, "demo", "name", "flag", "n", "frac", "big", "missing")
	if got := c.String("name", true, "e.g."); got != "x" {
		t.Errorf("String = %q", got)
	}
	if c.String("missing", true, "ex") != "" || c.String("missing", false, "") != "" {
		t.Error("missing string should be empty")
	}
	if !c.Bool("flag", false) || c.Bool("absent", false) {
		t.Error("Bool")
	}
	if n, ok := c.Int("n", 0, 1, 5); n != 3 || !ok {
		t.Errorf("Int = %d, %v", n, ok)
	}
	if n, ok := c.Int("absent", 7, 1, 5); n != 7 || !ok {
		t.Errorf("Int(absent) = %d, %v; want the default", n, ok)
	}
	if _, ok := c.Int("frac", 0, 0, 10); ok {
		t.Error("a fraction was accepted")
	}
	if _, ok := c.Int("big", 0, 0, 10); ok {
		t.Error("an out-of-range number was accepted")
	}
	if _, ok := c.Int("name", 0, 0, 10); ok {
		t.Error("a string was accepted as a number")
	}
	want := []string{
		`unknown field "aaa": the demo transport accepts only name, flag, n, frac, big and missing`,
		`unknown field "zzz": the demo transport accepts only name, flag, n, frac, big and missing`,
		`missing is required, e.g. "ex"`,
		"frac must be a whole number, not 2.5",
		"big must be between 0 and 10, not 1e+06",
		"name must be a number, not a string",
	}
	if got := c.Problems(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n got %q\nwant %q", got, want)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct {
		in       string
		hideUser bool
		want     string
	}{
		{"amqp://guest:guest@h:5672/vh", false, "amqp://guest:xxxxx@h:5672/vh"},
		{"nats://token@h:4222", true, "nats://xxxxx@h:4222"},
		{"nats://user@h:4222", false, "nats://user@h:4222"},
		{"nats://a:b@h1, nats://h2", true, "nats://a:xxxxx@h1,nats://h2"},
		{"redis://h:bad port", false, "(unparsable URL)"},
	} {
		if got := Redact(tc.in, tc.hideUser); got != tc.want {
			t.Errorf("Redact(%q, %v) = %q, want %q", tc.in, tc.hideUser, got, tc.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestUnanswered(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	live := context.Background()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want transportv1.Outcome
	}{
		{expired, errors.New("read: use of closed connection"), transportv1.Outcome_OUTCOME_TIMEOUT},
		{live, fmt.Errorf("wrapped: %w", context.DeadlineExceeded), transportv1.Outcome_OUTCOME_TIMEOUT},
		{live, timeoutErr{}, transportv1.Outcome_OUTCOME_TIMEOUT},
		{canceled, context.Canceled, transportv1.Outcome_OUTCOME_CONNECTION_ERROR},
		{live, errors.New("dial tcp: connection refused"), transportv1.Outcome_OUTCOME_CONNECTION_ERROR},
	} {
		res := Unanswered(tc.ctx, tc.err, time.Second, "publish to x")
		if res.GetOutcome() != tc.want || !strings.HasPrefix(res.GetError(), "publish to x: ") {
			t.Errorf("Unanswered(%v) = %v %q, want %v", tc.err, res.GetOutcome(), res.GetError(), tc.want)
		}
	}
}

func TestAttemptContext(t *testing.T) {
	_, cancel, d := AttemptContext(context.Background(), &transportv1.DeliveryRequest{})
	cancel()
	if d != sdk.DefaultTimeout {
		t.Errorf("default timeout = %v", d)
	}
	ctx, cancel, d := AttemptContext(context.Background(), &transportv1.DeliveryRequest{Timeout: durationpb.New(time.Second)})
	defer cancel()
	if dl, ok := ctx.Deadline(); d != time.Second || !ok || time.Until(dl) > time.Second {
		t.Errorf("timeout = %v, deadline set %v", d, ok)
	}
}

func TestURLSyntaxProblem(t *testing.T) {
	if p := URLSyntaxProblem("redis://u:hunter2@h:port", "redis://host"); strings.Contains(p, "hunter2") || p == "" {
		t.Errorf("problem = %q: want one, without the password", p)
	}
	if p := URLSyntaxProblem("redis://h:1", "x"); p != "" {
		t.Errorf("valid URL reported: %q", p)
	}
}
