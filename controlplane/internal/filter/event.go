package filter

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// An Event is the input of a filter evaluation. Its payload is parsed once,
// on first use, however many filters are matched against it, and an Event
// is safe for concurrent use by several goroutines.
//
// NewEvent keeps references to payload and metadata rather than copying
// them: do not modify either while the Event is in use.
type Event struct {
	eventType   string
	contentType string
	payload     []byte
	metadata    map[string]string

	once sync.Once
	act  *activation // nil when the payload is not JSON
	// size is the length of the longest list, map, string or object key in
	// the payload (strings counted in bytes); it bounds the cost of a
	// filter's evaluation.
	size int
}

// NewEvent returns an Event for the given event type, payload content type,
// payload bytes and metadata. It does no work until a filter needs it.
func NewEvent(eventType, contentType string, payload []byte, metadata map[string]string) *Event {
	return &Event{eventType: eventType, contentType: contentType, payload: payload, metadata: metadata}
}

// IsJSON reports whether the event's payload is JSON and can therefore
// match filters: its content type is JSON and it parses as one JSON value.
func (e *Event) IsJSON() bool { return e.activation() != nil }

func (e *Event) activation() *activation {
	e.once.Do(e.parse)
	return e.act
}

func (e *Event) parse() {
	defer func() { e.payload = nil }() // the raw bytes are not needed after this
	if !IsJSONContentType(e.contentType) {
		return
	}
	payload, size, ok := parseJSON(e.payload)
	if !ok {
		return
	}
	e.size = size
	if !withinAPILimits(e.eventType, e.metadata) {
		// The cost estimate assumes the event API's limits; without them
		// the estimate proves nothing, so take the cost-tracked path.
		e.size = math.MaxInt
	}
	e.act = &activation{
		payload:  payload,
		typ:      types.String(e.eventType),
		metadata: types.NewStringStringMap(adapter, e.metadata),
	}
}

// withinAPILimits reports whether the event type and metadata respect the
// event API's limits, which the static cost estimate relies on.
func withinAPILimits(eventType string, metadata map[string]string) bool {
	if len(metadata) > maxMetadataPairs || tooLong(eventType, maxTypeLength) {
		return false
	}
	for k, v := range metadata {
		if tooLong(k, maxMetadataKeyLen) || tooLong(v, maxMetadataValLen) {
			return false
		}
	}
	return true
}

// tooLong reports whether s has more than n code points.
func tooLong(s string, n int) bool {
	return len(s) > n && utf8.RuneCountInString(s) > n
}

// IsJSONContentType reports whether a payload content type denotes JSON:
// application/json or any type with the +json structured syntax suffix
// (application/cloudevents+json, ...), case-insensitively and with any
// parameters (charset=utf-8, ...). The empty content type counts as JSON
// because it defaults to application/json.
func IsJSONContentType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return true
	}
	slash := strings.IndexByte(ct, '/')
	if slash <= 0 {
		return false
	}
	if strings.EqualFold(ct, "application/json") {
		return true
	}
	sub := ct[slash+1:]
	const suffix = "+json"
	return len(sub) > len(suffix) && strings.EqualFold(sub[len(sub)-len(suffix):], suffix)
}

// adapter is the type adapter of the payload's maps and lists. They hold
// CEL values already (the payload is converted up front, once per event),
// so it only ever passes ref.Val values through.
var adapter = types.DefaultTypeAdapter

var trueVal ref.Val = types.True

// number converts a JSON number literal: integer literals that fit in an
// int64 become ints, everything else a double (±Inf past the double range).
func number(s string) ref.Val {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return types.Int(i)
		}
	}
	f, _ := strconv.ParseFloat(s, 64)
	return types.Double(f)
}

// activation binds the filter variables for one event.
type activation struct {
	payload  ref.Val
	typ      ref.Val
	metadata ref.Val
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case variablePayload:
		return a.payload, true
	case variableType:
		return a.typ, true
	case variableMetadata:
		return a.metadata, true
	}
	return nil, false
}

func (a *activation) Parent() cel.Activation { return nil }

// Match reports whether the filter matches an event; it is a convenience
// wrapper around MatchEvent for a single filter. When several filters are
// matched against the same event, build one Event with NewEvent and call
// MatchEvent on each, so that the payload is parsed once.
func (f *Filter) Match(eventType, contentType string, payload []byte, metadata map[string]string) bool {
	return f.MatchEvent(NewEvent(eventType, contentType, payload, metadata))
}

// MatchEvent reports whether the filter evaluates to true for the event.
// A non-JSON payload, an evaluation error (missing key, type mismatch,
// exceeded cost limit) or a non-boolean result all mean no match.
func (f *Filter) MatchEvent(ev *Event) bool {
	return f.match(nil, ev)
}

// MatchEventContext is MatchEvent with cancellation: once ctx (non-nil) is
// done, comprehensions stop within InterruptCheckFrequency iterations and
// the filter does not match.
func (f *Filter) MatchEventContext(ctx context.Context, ev *Event) bool {
	if ctx.Err() != nil {
		return false
	}
	return f.match(ctx, ev)
}

// match evaluates the filter. When the static cost estimate proves that
// the evaluation stays within CostLimit for a payload of this size, it runs
// the untracked program; otherwise it runs the program that enforces
// CostLimit, under a MaxEvalTime deadline because cel-go's cost tracker
// slows down more than linearly on long comprehensions.
func (f *Filter) match(ctx context.Context, ev *Event) (matched bool) {
	act := ev.activation()
	if act == nil {
		return false
	}
	defer func() {
		if recover() != nil {
			matched = false
		}
	}()
	var (
		out ref.Val
		err error
	)
	switch {
	case ev.size <= f.safeSize && ctx == nil:
		out, _, err = f.fast.Eval(act)
	case ev.size <= f.safeSize:
		out, _, err = f.fast.ContextEval(ctx, act)
	default:
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, MaxEvalTime)
		defer cancel()
		out, _, err = f.tracked.ContextEval(ctx, act)
	}
	return err == nil && out == trueVal
}
