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
// Any evaluation error (a missing key, a type mismatch, an exceeded cost
// limit) makes the filter not match; Match never panics and never reports
// an error. Use has(payload.x) or the in operator to test for optional
// fields. An expression whose result is not a boolean at run time (possible
// only when it is typed dyn, e.g. plain payload.active) does not match
// either.
//
// An expression is at most MaxSourceLength characters long, nests at most
// MaxNesting levels deep, and may spend at most CostLimit units of CEL's
// cost model per evaluation (one unit is roughly one operation; see
// cel.CostLimit). An expression that can exceed the limit whatever the
// payload is refused at compile time.
//
// At compile time, CEL's static cost estimate also yields the largest
// payload (measured by its longest list, map, string or key) for which the
// filter provably stays within CostLimit. Events within that size are
// evaluated without run-time cost tracking, which is several times faster;
// larger ones run with cel.CostLimit enforced, and, because cel-go's cost
// tracker slows down more than linearly over long comprehensions, under a
// MaxEvalTime deadline as well.
package filter

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/checker"
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
	// CostLimit bounds a single evaluation, in CEL cost units (roughly one
	// per operation; string and list operations cost in proportion to the
	// size of their operands). A filter runs once per event and
	// subscription, so the budget is modest: enough for a comprehension
	// over ten thousand payload items with a few comparisons each.
	CostLimit = 100_000
	// InterruptCheckFrequency is how many comprehension iterations run
	// between checks of the context passed to MatchEventContext.
	InterruptCheckFrequency = 100
	// MaxEvalTime bounds, as a backstop, an evaluation that the static
	// cost estimate cannot prove to be within CostLimit.
	MaxEvalTime = 100 * time.Millisecond
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
	// fast evaluates without cost tracking; it is used when the static
	// cost estimate proves the evaluation stays within CostLimit.
	fast cel.Program
	// tracked enforces CostLimit at run time.
	tracked cel.Program
	// safeSize is a payload size (see Event) up to which the estimated
	// worst-case cost stays within CostLimit.
	safeSize int
	// term is the filter's index term, nil when it has none.
	term *Term
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
	safeSize, err := safePayloadSize(env, ast)
	if err != nil {
		return nil, err
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
	tracked, err := env.Program(ast,
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(InterruptCheckFrequency),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, &CompileError{Message: err.Error()}
	}
	return &Filter{src: expr, fast: fast, tracked: tracked, safeSize: safeSize, term: extractTerm(ast)}, nil
}

// maxEstimatedSize is the largest payload size the static cost analysis
// considers; larger payloads always take the cost-tracked path.
const maxEstimatedSize = 1 << 26

// safePayloadSize returns a payload size (the longest list, map, string or
// key in the payload; see Event), within 1/32 of the largest, for which
// CEL's static estimate of the filter's worst-case cost is within
// CostLimit. It refuses a filter whose worst case exceeds the limit even
// for a payload of size 0.
func safePayloadSize(env *cel.Env, ast *cel.Ast) (int, error) {
	maxCost := func(size int) (uint64, error) {
		est, err := env.EstimateCost(ast, sizeEstimator{payloadSize: uint64(size)})
		if err != nil {
			return 0, &CompileError{Message: "cannot estimate the cost of the filter: " + err.Error()}
		}
		return est.Max, nil
	}
	c, err := maxCost(0)
	if err != nil {
		return 0, err
	}
	if c > CostLimit {
		return 0, &CompileError{Message: fmt.Sprintf("the filter is too expensive: it can cost up to %d units whatever the payload; the limit is %d", c, CostLimit)}
	}
	if c, err = maxCost(maxEstimatedSize); err != nil {
		return 0, err
	} else if c <= CostLimit {
		return maxEstimatedSize, nil
	}
	// Binary search for a size within the limit, close enough (1/32) to the
	// largest one: the estimate grows with the size, and any size within
	// the limit is a correct answer.
	lo, hi := 0, maxEstimatedSize // maxCost(lo) <= CostLimit < maxCost(hi)
	for hi-lo > 1 && hi-lo > lo/32 {
		mid := lo + (hi-lo)/2
		c, err := maxCost(mid)
		if err != nil {
			return 0, err
		}
		if c <= CostLimit {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
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

// sizeEstimator feeds CEL's static cost estimator the sizes of the
// variables: type and metadata are bounded by the event API's validation
// rules, and every list, map and string taken from the payload (the only
// other source of values of unknown size) is assumed to be payloadSize
// long at most.
type sizeEstimator struct {
	payloadSize uint64
}

func (e sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	var max uint64
	switch p := n.Path(); {
	case len(p) == 1 && p[0] == variableType:
		max = maxTypeLength
	case len(p) == 1 && p[0] == variableMetadata:
		max = maxMetadataPairs
	case len(p) == 2 && p[0] == variableMetadata && p[1] == "@keys":
		max = maxMetadataKeyLen
	case len(p) == 2 && p[0] == variableMetadata && p[1] == "@values":
		max = maxMetadataValLen
	default:
		max = e.payloadSize
	}
	return &checker.SizeEstimate{Min: 0, Max: max}
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}
