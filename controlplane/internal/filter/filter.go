// Package filter compiles and evaluates subscription payload filters.
//
// A filter is a CEL expression (https://cel.dev) that must evaluate to a
// boolean; an event is delivered to a subscription only when the
// subscription's filter evaluates to true. Three variables are declared:
//
//	payload   dyn                  the event payload, parsed as JSON
//	type      string               the event type, e.g. "order.created"
//	metadata  map(string, string)  the event metadata
//
// Examples:
//
//	payload.amount > 100 && metadata["region"] == "eu"
//	type.startsWith("order.") && payload.items.exists(i, i.sku == "A")
//	has(payload.customer) && payload.customer.tier in ["gold", "platinum"]
//
// # Payloads
//
// Only JSON payloads can match: an event whose content type is not JSON
// (application/json or any */*+json type, parameters such as charset
// allowed; an empty content type means application/json), or whose payload
// is not one valid JSON value, never matches any filter.
//
// JSON objects become CEL maps with string keys, arrays become lists, and
// strings, booleans and null map to their CEL counterparts. Numbers are
// decoded by their literal form: an integer literal (no fraction, no
// exponent) that fits in 64 bits becomes a CEL int, so that identifiers
// such as 9007199254740993 keep every digit; any other number becomes a CEL
// double. Comparisons work across the two (payload.id == 42,
// payload.amount > 100 and payload.amount > 99.5 all behave as they read,
// whether the JSON says 150 or 150.0), but arithmetic does not mix them:
// write double(payload.amount) * 1.2 to compute with a number that may be
// either.
//
// # Errors and limits
//
// A filter that cannot be evaluated for an event (a type mismatch such as
// payload.amount > 100 when amount is a string, a division by zero, a
// malformed timestamp, a result that is not a boolean, or a cost budget
// that ran out) does not match it, and Evaluate says why with an
// *EvalError: the control plane reports it in the publish answer, a
// metric, a log line and an operational event, so that no event is
// dropped silently.
//
// A field the event does not have is not such an error: an expression
// that reads a missing key or list index, and whose result depends on it,
// simply does not match (payload.amount > 100 is false for an event
// without amount; so is !(payload.amount > 100)). To match events that
// lack a field, test for it: !has(payload.amount) || payload.amount <= 100.
// An event whose content type is not JSON never matches and is not an
// error either.
//
// An expression is at most MaxSourceLength characters long and nests at
// most MaxNesting levels deep. Its cost is bounded as described in
// cost.go: CheckCost refuses, when a filter is saved, one whose estimated
// worst case exceeds Limits.Budget, and evaluations that the estimate
// does not cover run with that budget enforced.
package filter

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
)

// Limits applied to every filter.
const (
	// MaxSourceLength bounds the expression text in Unicode code points
	// (the subscription API's limit on the filter field).
	MaxSourceLength = 4096
	// MaxNesting bounds how deeply the parser lets sub-expressions nest
	// (parenthesised groups, member chains, operator chains).
	MaxNesting = 32
	// MaxNodes bounds the number of expression nodes after macro expansion.
	MaxNodes = 4096
	// InterruptCheckFrequency is how many comprehension iterations run
	// between checks of the MaxEvalTime deadline.
	InterruptCheckFrequency = 100
	// MaxEvalTime bounds, as a backstop, an evaluation whose estimated
	// cost exceeds QuickCost (see cost.go). Evaluations proven within the
	// budget take a few milliseconds on realistic payloads of the largest
	// size, but can take seconds on adversarial ones; and cel-go's cost
	// tracker, which enforces the budget on the others, slows down more
	// than linearly over long comprehensions.
	MaxEvalTime = 250 * time.Millisecond
	// MaxRegexProgramSize bounds the compiled size of regular expressions
	// used with matches().
	MaxRegexProgramSize = 1000
)

// Bounds on the event fields, from the event API's validation rules; they
// feed the compile-time cost estimate.
const (
	maxTypeLength      = 128
	maxMetadataPairs   = 50
	maxMetadataKeyLen  = 128
	maxMetadataValLen  = 1024
	variablePayload    = "payload"
	variableType       = "type"
	variableMetadata   = "metadata"
	containerSuffix    = " (in container '')"
	syntaxErrorPrefix  = "Syntax error: "
	mustBeBooleanIntro = "the filter must be a boolean expression"
)

// A CompileError describes why an expression was refused. Line and Column
// are 1-based and point at the offending part of the expression (columns
// count Unicode code points); both are 0 when the problem has no single
// position, such as an expression that is too long.
type CompileError struct {
	Line, Column int
	Message      string
}

// Error reads, for example,
// "filter: line 1, column 9: undeclared reference to 'paylod'".
func (e *CompileError) Error() string {
	if e.Line <= 0 {
		return "filter: " + e.Message
	}
	return fmt.Sprintf("filter: line %d, column %d: %s", e.Line, e.Column, e.Message)
}

// A Filter is a compiled filter expression. It is immutable and safe for
// concurrent use.
type Filter struct {
	src string
	ast *cel.Ast
	// fast evaluates without cost tracking; it is used when the static
	// cost estimate proves the evaluation stays within the budget.
	fast cel.Program
	// containers are the expressions the cost estimate takes for lists
	// or maps (see containerExprs).
	containers map[int64]bool
	// term is the filter's index term, nil when it has none.
	term *Term

	// Evaluation settings per Limits (normally one): last is the most
	// recently used, byLimits all of them, guarded by mu.
	last     atomic.Pointer[limited]
	mu       sync.Mutex
	byLimits map[Limits]*limited
}

// Source returns the expression text the filter was compiled from.
func (f *Filter) Source() string { return f.src }

// String returns the expression text.
func (f *Filter) String() string { return f.src }

// Compile parses and type-checks expr. Compiled filters are cached by their
// exact text, so compiling the same expression again is cheap and returns
// the same *Filter. Errors are *CompileError values.
func Compile(expr string) (*Filter, error) {
	if f, ok := cache.get(expr); ok {
		return f, nil
	}
	f, err := compile(expr)
	if err != nil {
		return nil, err
	}
	return cache.add(expr, f), nil
}

func compile(expr string) (*Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, &CompileError{Message: "the filter expression is empty"}
	}
	if !utf8.ValidString(expr) {
		return nil, &CompileError{Message: "the filter expression is not valid UTF-8"}
	}
	if n := utf8.RuneCountInString(expr); n > MaxSourceLength {
		return nil, &CompileError{Message: fmt.Sprintf("the filter expression is %d characters long; the limit is %d", n, MaxSourceLength)}
	}
	env, err := environment()
	if err != nil {
		return nil, fmt.Errorf("filter: CEL environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, issueError(iss)
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, &CompileError{Message: fmt.Sprintf("%s, but this one evaluates to %s", mustBeBooleanIntro, cel.FormatCELType(t))}
	}
	fast, err := env.Program(ast,
		cel.InterruptCheckFrequency(InterruptCheckFrequency),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		// Planning fails, for instance, on a constant regular expression
		// that does not compile.
		return nil, &CompileError{Message: err.Error()}
	}
	return &Filter{src: expr, ast: ast, fast: fast, containers: containerExprs(ast), term: extractTerm(ast)}, nil
}

// issueError turns CEL's issues into a CompileError for the first issue in
// source order.
func issueError(iss *cel.Issues) *CompileError {
	errs := slices.Clone(iss.Errors())
	if len(errs) == 0 {
		return &CompileError{Message: iss.String()}
	}
	slices.SortStableFunc(errs, func(a, b *cel.Error) int {
		return cmp.Or(cmp.Compare(a.Location.Line(), b.Location.Line()),
			cmp.Compare(a.Location.Column(), b.Location.Column()))
	})
	// Errors without a location (limits) sort first; prefer one that has a
	// position when there is one.
	first := errs[0]
	for _, e := range errs {
		if e.Location.Line() > 0 {
			first = e
			break
		}
	}
	ce := &CompileError{Message: cleanMessage(first.Message)}
	if first.Location.Line() > 0 && first.Location.Column() >= 0 {
		ce.Line, ce.Column = first.Location.Line(), first.Location.Column()+1
	}
	return ce
}

func cleanMessage(m string) string {
	if strings.Contains(m, "recursion limit exceeded") || strings.Contains(m, "max recursion depth exceeded") {
		return fmt.Sprintf("the expression is nested too deeply; the limit is %d levels", MaxNesting)
	}
	m = strings.TrimSuffix(m, containerSuffix)
	if rest, ok := strings.CutPrefix(m, syntaxErrorPrefix); ok {
		m = "syntax error: " + rest
	}
	return m
}

var (
	envOnce sync.Once
	envVal  *cel.Env
	envErr  error
)

// environment returns the CEL environment shared by all filters.
func environment() (*cel.Env, error) {
	envOnce.Do(func() {
		envVal, envErr = cel.NewEnv(
			cel.Variable(variablePayload, cel.DynType),
			cel.Variable(variableType, cel.StringType),
			cel.Variable(variableMetadata, cel.MapType(cel.StringType, cel.StringType)),
			cel.CrossTypeNumericComparisons(true),
			cel.DefaultUTCTimeZone(true),
			cel.ParserRecursionLimit(MaxNesting),
			cel.ParserExpressionSizeLimit(MaxSourceLength),
			cel.ExpressionNodeLimit(MaxNodes),
			cel.RegexProgramSizeLimit(MaxRegexProgramSize),
		)
	})
	return envVal, envErr
}
