package filter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
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
	// scale bounds the sizes in the payload: no list or object in it has
	// more than scale/2 entries and no string or key more than scale
	// characters. A payload of n bytes has a scale below n. It is what the
	// static cost estimate of a filter is computed for (see cost.go).
	scale int
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
	payload, scale, ok := parseJSON(e.payload)
	if !ok {
		return
	}
	e.scale = scale
	if !withinAPILimits(e.eventType, e.metadata) {
		// The cost estimate assumes the event API's limits; without them
		// the estimate proves nothing, so take the cost-tracked path.
		e.scale = math.MaxInt
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

// MatchEvent reports whether the filter evaluates to true for the event
// under DefaultLimits; an evaluation error means no match. Callers that
// must report errors use Evaluate.
func (f *Filter) MatchEvent(ev *Event) bool {
	ok, _ := f.Evaluate(ev, DefaultLimits())
	return ok
}

// Evaluate reports whether the filter evaluates to true for the event.
// The error, an *EvalError, says why the filter could not be evaluated
// (see the package's notes on errors); the filter does not match then.
// A payload that is not JSON, or a missing field the result depends on,
// is no match and no error.
//
// When the static cost estimate proves that the evaluation stays within
// lim.Budget for an event of this scale, the program runs without cost
// tracking; otherwise it runs with the budget as CEL's cost limit. Either
// way it runs under a MaxEvalTime deadline, unless the estimate is within
// QuickCost.
func (f *Filter) Evaluate(ev *Event, lim Limits) (matched bool, err error) {
	act := ev.activation()
	if act == nil {
		return false, nil
	}
	l := f.limits(lim)
	defer func() {
		if r := recover(); r != nil {
			matched, err = false, &EvalError{Reason: ReasonError, Message: fmt.Sprintf("internal error: %v", r)}
		}
	}()
	if ev.scale <= l.quickScale {
		out, _, err := f.fast.Eval(act)
		return result(out, err, l, false)
	}
	prog, tracked := f.fast, ev.scale > l.safeScale
	if tracked {
		if prog, err = l.trackedProgram(f); err != nil {
			return false, &EvalError{Reason: ReasonError, Message: err.Error()}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), MaxEvalTime)
	defer cancel()
	out, _, err := prog.ContextEval(ctx, act)
	return result(out, err, l, tracked)
}

// Reasons an evaluation failed, as EvalError.Reason.
const (
	// ReasonError: the expression failed on this event (type mismatch,
	// division by zero, bad conversion, non-boolean result).
	ReasonError = "error"
	// ReasonCost: the evaluation ran out of its cost budget or time.
	ReasonCost = "cost"
)

// An EvalError says why a filter could not be evaluated for an event.
type EvalError struct {
	// Reason is ReasonError or ReasonCost.
	Reason string
	// Message is CEL's error, or a description of the budget overrun.
	Message string
}

// Error reads, for example, "the filter failed on this event: no such
// overload" or "the filter exceeded its cost budget of 100000 units on
// this event".
func (e *EvalError) Error() string {
	if e.Reason == ReasonCost {
		return e.Message
	}
	return "the filter failed on this event: " + e.Message
}

// result interprets an evaluation's outcome; tracked says that the
// estimate did not cover it.
func result(out ref.Val, err error, l *limited, tracked bool) (bool, error) {
	if err == nil {
		if b, ok := out.(types.Bool); ok {
			return bool(b), nil
		}
		return false, &EvalError{Reason: ReasonError, Message: fmt.Sprintf("its result is a %s, not a boolean", out.Type().TypeName())}
	}
	var cancelled interpreter.EvalCancelledError
	switch {
	case errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded:
		return false, &EvalError{Reason: ReasonCost, Message: fmt.Sprintf("the filter exceeded its cost budget of %d units on this event", l.budget)}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, interpreter.InterruptError{}) || errors.As(err, &cancelled):
		msg := fmt.Sprintf("the filter did not finish within %v on this event", MaxEvalTime)
		if tracked {
			msg += fmt.Sprintf(" (its cost could not be proven within the budget of %d units)", l.budget)
		}
		return false, &EvalError{Reason: ReasonCost, Message: msg}
	}
	if missingField(err) {
		return false, nil
	}
	return false, &EvalError{Reason: ReasonError, Message: err.Error()}
}

// missingField reports whether err is CEL's error for reading a key,
// attribute or list index the event does not have.
func missingField(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "no such key: ") || strings.HasPrefix(m, "no such attribute") ||
		strings.HasPrefix(m, "index out of bounds: ") ||
		strings.HasPrefix(m, "index '") && strings.Contains(m, "' out of range in list size '")
}
