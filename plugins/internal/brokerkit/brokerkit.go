// Package brokerkit holds what the built-in broker transports (nats, amqp,
// mqtt, redis) share and would otherwise copy: strict reading of a target
// configuration with problems phrased for users, the attempt deadline, the
// result constructors, and the classification of errors that are not the
// broker's answer (deadline, cancellation, network). The http transport
// uses Version and KindName too.
//
// Each transport still owns its own fields, its protocol and the mapping of
// its broker's answers onto outcomes.
package brokerkit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"

	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/internal/buildinfo"
	"github.com/hookwire/hookwire/plugins/sdk"
)

// Version is this build's version (internal/buildinfo: the release's,
// else the main module's, else "dev"); the transports report it from
// Describe.
func Version() string { return buildinfo.Get().Version }

// Config reads a target configuration field by field, collecting every
// problem instead of stopping at the first, so Validate can list them all.
type Config struct {
	fields   map[string]*structpb.Value
	problems []string
}

// ReadConfig starts reading cfg for the named transport. Fields other than
// allowed are reported as problems (sorted, so messages are stable).
func ReadConfig(cfg *structpb.Struct, transport string, allowed ...string) *Config {
	c := &Config{fields: cfg.GetFields()}
	var unknown []string
	for name := range c.fields {
		if !slices.Contains(allowed, name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		c.Problemf("unknown field %q: the %s transport accepts only %s", name, transport, list(allowed))
	}
	return c
}

// Has reports whether the field is present.
func (c *Config) Has(name string) bool {
	_, ok := c.fields[name]
	return ok
}

// IsString reports whether the field is present and a string.
func (c *Config) IsString(name string) bool {
	_, ok := c.fields[name].GetKind().(*structpb.Value_StringValue)
	return ok
}

// String returns a string field. A missing required field is a problem
// whose message shows example; a missing optional one returns "".
func (c *Config) String(name string, required bool, example string) string {
	v, ok := c.fields[name]
	if !ok {
		if required {
			c.Problemf("%s is required, e.g. %q", name, example)
		}
		return ""
	}
	s, isString := v.GetKind().(*structpb.Value_StringValue)
	if !isString {
		c.Problemf("%s must be a string, not %s", name, KindName(v))
		return ""
	}
	return s.StringValue
}

// Bool returns a boolean field, or def when it is absent.
func (c *Config) Bool(name string, def bool) bool {
	v, ok := c.fields[name]
	if !ok {
		return def
	}
	b, isBool := v.GetKind().(*structpb.Value_BoolValue)
	if !isBool {
		c.Problemf("%s must be true or false, not %s", name, KindName(v))
		return def
	}
	return b.BoolValue
}

// Int returns a whole-number field within [lo, hi], or def when it is
// absent. ok is false when the field was present but unusable.
func (c *Config) Int(name string, def, lo, hi int64) (n int64, ok bool) {
	v, present := c.fields[name]
	if !present {
		return def, true
	}
	num, isNum := v.GetKind().(*structpb.Value_NumberValue)
	if !isNum {
		c.Problemf("%s must be a number, not %s", name, KindName(v))
		return def, false
	}
	f := num.NumberValue
	if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
		c.Problemf("%s must be a whole number, not %v", name, f)
		return def, false
	}
	if f < float64(lo) || f > float64(hi) {
		c.Problemf("%s must be between %d and %d, not %v", name, lo, hi, f)
		return def, false
	}
	return int64(f), true
}

// Problemf records a problem.
func (c *Config) Problemf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// Problems returns the problems found so far; nil means valid.
func (c *Config) Problems() []string { return c.problems }

// KindName names a value's JSON type for messages ("a number", "null").
func KindName(v *structpb.Value) string {
	switch v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return "null"
	case *structpb.Value_NumberValue:
		return "a number"
	case *structpb.Value_StringValue:
		return "a string"
	case *structpb.Value_BoolValue:
		return "a boolean"
	case *structpb.Value_StructValue:
		return "an object"
	case *structpb.Value_ListValue:
		return "a list"
	default:
		return "empty"
	}
}

func list(names []string) string {
	switch len(names) {
	case 0:
		return "no fields"
	case 1:
		return names[0]
	default:
		return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	}
}

// Egress returns the policy a transport enforces unless told otherwise: the
// agent's (sdk.AgentEgress), or the zero sdk.Egress (no loopback, private,
// link-local... address) when it is unset or malformed; sdk.Serve refuses
// to start with a malformed one.
func Egress() sdk.Egress {
	e, err := sdk.AgentEgress()
	if err != nil {
		return sdk.Egress{}
	}
	return e
}

// Option configures a broker transport's New (each transport re-exports
// it as its own Option).
type Option func(*settings)

type settings struct {
	egress sdk.Egress
}

// WithEgress sets the egress policy every connection of the transport is
// checked against, instead of the agent's (Egress).
func WithEgress(e sdk.Egress) Option {
	return func(s *settings) { s.egress = e }
}

// Dialer is the guarded dialer of transport name under opts: the agent's
// egress policy unless WithEgress sets another.
func Dialer(name string, opts []Option) *sdk.Dialer {
	s := settings{egress: Egress()}
	for _, o := range opts {
		o(&s)
	}
	return sdk.NewDialer(name, s.egress)
}

// AttemptContext bounds ctx by the request's timeout (sdk.DefaultTimeout
// when it has none). The plugin server already does this; doing it again
// keeps the transport correct when called directly.
func AttemptContext(ctx context.Context, req *transportv1.DeliveryRequest) (context.Context, context.CancelFunc, time.Duration) {
	timeout := sdk.DefaultTimeout
	if d := req.GetTimeout(); d != nil {
		if v := d.AsDuration(); v > 0 {
			timeout = v
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, cancel, timeout
}

// Result builds a result with a formatted error (empty for SUCCESS).
func Result(outcome transportv1.Outcome, format string, args ...any) *transportv1.DeliveryResult {
	res := &transportv1.DeliveryResult{Outcome: outcome}
	if format != "" {
		res.Error = fmt.Sprintf(format, args...)
	}
	return res
}

// Success is a SUCCESS result.
func Success() *transportv1.DeliveryResult {
	return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS}
}

// Rejected is a REJECTED result for a configuration that cannot work.
func Rejected(transport string, problems []string) *transportv1.DeliveryResult {
	return Result(transportv1.Outcome_OUTCOME_REJECTED, "invalid %s target configuration: %s", transport, strings.Join(problems, "; "))
}

// WithLatency sets the result's latency to the time since start.
func WithLatency(res *transportv1.DeliveryResult, start time.Time) *transportv1.DeliveryResult {
	res.Latency = durationpb.New(time.Since(start))
	return res
}

// Unanswered classifies an error that is not an answer from the broker: a
// connection the egress policy refused (REJECTED, with the refusal that
// names the agent's --allow-cidr flag), the attempt's deadline (TIMEOUT),
// cancellation by the host or a network failure (CONNECTION_ERROR:
// nothing, or not everything, reached the broker). what says what was
// being done, e.g. "publish to nats://host".
func Unanswered(ctx context.Context, err error, timeout time.Duration, what string) *transportv1.DeliveryResult {
	var denied *sdk.DeniedAddressError
	switch {
	case errors.As(err, &denied):
		return Result(transportv1.Outcome_OUTCOME_REJECTED, "%s: %v", what, denied)
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return Result(transportv1.Outcome_OUTCOME_TIMEOUT,
			"%s: no answer before the attempt's deadline (timeout %v): %v", what, timeout, err)
	case errors.Is(ctx.Err(), context.Canceled), errors.Is(err, context.Canceled):
		return Result(transportv1.Outcome_OUTCOME_CONNECTION_ERROR,
			"%s: canceled before the broker answered: %v", what, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Result(transportv1.Outcome_OUTCOME_TIMEOUT, "%s: %v", what, err)
	}
	return Result(transportv1.Outcome_OUTCOME_CONNECTION_ERROR, "%s: %v", what, err)
}

// Redact returns rawURL (or a comma-separated list of URLs) for messages:
// a password is replaced by "xxxxx", and so is a lone user name when
// hideUser is set (NATS puts a token there). Text that does not parse as a
// URL is replaced entirely, as it may hold a secret.
func Redact(rawURL string, hideUser bool) string {
	parts := strings.Split(rawURL, ",")
	for i, part := range parts {
		u, err := url.Parse(strings.TrimSpace(part))
		switch {
		case err != nil:
			parts[i] = "(unparsable URL)"
		case u.User == nil:
			parts[i] = u.String()
		default:
			if _, hasPassword := u.User.Password(); hasPassword {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else if hideUser {
				u.User = url.User("xxxxx")
			}
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// URLSyntaxProblem returns a problem sentence when raw does not parse as a
// URL at all, without repeating the URL (it may hold a password); "" when
// it parses. example shows the expected form.
func URLSyntaxProblem(raw, example string) string {
	_, err := url.Parse(raw)
	if err == nil {
		return ""
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Sprintf("url is not a valid URL (%v); write it as %s, percent-encoding special characters in the password", err, example)
}
