package filter

import (
	"fmt"
	"math"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/checker"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
)

// Cost.
//
// A filter runs once for every event of a matching type, on the publish
// path, so what it may cost is bounded twice:
//
//   - when a subscription's filter is saved, CheckCost asks CEL's static
//     cost estimator for the filter's worst case on the largest payload the
//     server accepts, and refuses the filter when that estimate is unbounded
//     or over the budget;
//   - when an event is matched, an evaluation that the estimate cannot
//     prove to stay within the budget (a filter saved before the check
//     existed, or under a smaller payload limit) runs with the budget
//     enforced as CEL's run-time cost limit.
//
// Both use the same number, Limits.Budget: a filter accepted at save time
// never exceeds it at run time. As a backstop against what cost units do
// not capture (a unit takes tens of nanoseconds on a realistic payload,
// several times longer on an adversarial one or an overloaded server),
// every evaluation whose estimate exceeds QuickCost also stops after
// MaxEvalTime; it then counts as a budget overrun too.
//
// The estimate rests on declared sizes. A payload of at most
// MaxPayloadBytes bytes holds no string (or object key) longer than
// MaxPayloadBytes characters and no list or object with more than
// MaxPayloadBytes/2 entries (each entry takes at least two bytes, "1,").
// CEL types the payload as dyn, so the estimator cannot tell a string
// from a list by type; a payload value is taken to be a list or map (half
// the bound) where the expression iterates over it or tests membership in
// it (comprehensions, the in operator), and a string (the full bound)
// anywhere else. The event type and metadata have the bounds of the event
// API.

// Budget parameters: a filter may spend BudgetBase units plus
// BudgetPerPayloadByte units per byte of the largest accepted payload.
// One unit is roughly one CEL operation; a string or list operation costs
// in proportion to the size of its operands (see cel.CostLimit).
//
// With the default 1 MiB payload limit the budget is 16,877,216 units:
// about 32 operations per item of the longest possible list, so a
// comprehension over one payload list with a handful of tests per item
// fits, and comprehensions nested over payload lists (whose cost grows as
// a product of list lengths) do not.
const (
	BudgetBase           = 100_000
	BudgetPerPayloadByte = 16
)

// DefaultMaxPayloadBytes is the payload limit DefaultLimits assumes, the
// server's default.
const DefaultMaxPayloadBytes = 1 << 20

// Limits are the server settings a filter's cost depends on.
type Limits struct {
	// MaxPayloadBytes is the largest event payload the server accepts.
	MaxPayloadBytes int
}

// DefaultLimits are the limits of a server with default settings.
func DefaultLimits() Limits { return Limits{MaxPayloadBytes: DefaultMaxPayloadBytes} }

// Budget is the most a filter may cost on one event, in CEL cost units:
// the save-time ceiling of its estimated worst case and the run-time cost
// limit alike.
func (l Limits) Budget() uint64 {
	return BudgetBase + BudgetPerPayloadByte*uint64(max(l.MaxPayloadBytes, 0))
}

// CheckCost refuses a filter whose estimated worst-case cost on events the
// server accepts (payloads of up to lim.MaxPayloadBytes bytes) is
// unbounded or over lim.Budget. The error is a *CompileError that states
// the estimate, the budget and the size assumptions. Subscriptions are
// checked when their filter is saved; a filter refused here still
// compiles, so that subscriptions saved before the check keep working.
func (f *Filter) CheckCost(lim Limits) error {
	m, budget := max(lim.MaxPayloadBytes, 0), lim.Budget()
	est, err := f.estimate(m)
	if err != nil {
		return err
	}
	if est <= budget {
		return nil
	}
	what := fmt.Sprintf("up to %d units", est)
	if est == math.MaxUint64 {
		what = "unbounded (beyond 2^64 units)"
	}
	return &CompileError{Message: fmt.Sprintf("the filter is too expensive: its estimated cost is %s"+
		" for a payload of up to %d bytes (the server's --max-payload-bytes), in which a list or object has up to %d entries and a string up to %d characters,"+
		" over the budget of %d units; comprehensions nested over payload lists (such as payload.items.all(a, payload.items.all(b, ...))) multiply the lengths of the lists",
		what, m, m/2, m, budget)}
}

// estimate returns CEL's estimate of the filter's worst-case cost on an
// event of the given scale (see Event.scale): lists and maps in the
// payload of up to scale/2 entries, strings of up to scale characters.
func (f *Filter) estimate(scale int) (uint64, error) {
	env, err := environment()
	if err != nil {
		return 0, fmt.Errorf("filter: CEL environment: %w", err)
	}
	est, err := env.EstimateCost(f.ast, sizeEstimator{scale: uint64(scale), containers: f.containers})
	if err != nil {
		return 0, &CompileError{Message: "cannot estimate the cost of the filter: " + err.Error()}
	}
	return est.Max, nil
}

// maxEstimatedScale is the largest event scale the cost analysis
// considers; larger events always take the cost-tracked path.
const maxEstimatedScale = 1 << 26

// limited is what evaluating a filter under one set of Limits needs.
type limited struct {
	lim    Limits
	budget uint64
	// safeScale is an event scale (see Event.scale) up to which the
	// estimated worst case stays within budget: such events are evaluated
	// without cost tracking, which is many times faster.
	safeScale int
	// quickScale is an event scale up to which the estimated worst case
	// stays within QuickCost: such events are evaluated without a
	// deadline either.
	quickScale int

	trackedOnce sync.Once
	tracked     cel.Program // enforces budget; built on first use
	trackedErr  error
}

// QuickCost is the estimated cost up to which an evaluation runs without
// the MaxEvalTime deadline (whose timer costs more than such an
// evaluation): at most a few milliseconds.
const QuickCost = 100_000

// limits returns the filter's evaluation settings for lim, computing them
// on first use (the catalog does so when a subscription is loaded).
func (f *Filter) limits(lim Limits) *limited {
	if l := f.last.Load(); l != nil && l.lim == lim {
		return l
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.byLimits[lim]
	if l == nil {
		budget := lim.Budget()
		l = &limited{lim: lim, budget: budget, safeScale: f.scaleWithin(budget, lim.MaxPayloadBytes), quickScale: f.scaleWithin(min(QuickCost, budget), 0)}
		if f.byLimits == nil {
			f.byLimits = map[Limits]*limited{}
		}
		f.byLimits[lim] = l
	}
	f.last.Store(l)
	return l
}

// Prepare computes the filter's evaluation settings for lim ahead of the
// first evaluation (a static cost analysis of a few dozen estimates).
func (f *Filter) Prepare(lim Limits) { f.limits(lim) }

// scaleWithin returns an event scale, within 1/32 of the largest, for
// which the estimated worst-case cost is within budget, and at least
// atLeast when that scale is within it (so that a filter that passes
// CheckCost is safe for every event the server accepts, whatever the
// search's precision); -1 when even an empty payload is not within it.
func (f *Filter) scaleWithin(budget uint64, atLeast int) int {
	within := func(scale int) bool {
		c, err := f.estimate(scale)
		return err == nil && c <= budget
	}
	if !within(0) {
		return -1
	}
	if within(maxEstimatedScale) {
		return maxEstimatedScale
	}
	// Binary search for a scale within the budget, close enough (1/32) to
	// the largest: the estimate grows with the scale, and any scale within
	// the budget is a correct answer.
	lo, hi := 0, maxEstimatedScale // within(lo) && !within(hi)
	for hi-lo > 1 && hi-lo > lo/32 {
		mid := lo + (hi-lo)/2
		if within(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	if atLeast > lo && atLeast < hi && within(atLeast) {
		lo = atLeast
	}
	return lo
}

// trackedProgram returns the program that enforces the budget.
func (l *limited) trackedProgram(f *Filter) (cel.Program, error) {
	l.trackedOnce.Do(func() {
		env, err := environment()
		if err != nil {
			l.trackedErr = err
			return
		}
		l.tracked, l.trackedErr = env.Program(f.ast,
			cel.CostLimit(l.budget),
			cel.InterruptCheckFrequency(InterruptCheckFrequency),
			cel.EvalOptions(cel.OptOptimize),
		)
	})
	return l.tracked, l.trackedErr
}

// containerExprs returns the ids of the expressions that the filter
// iterates over or tests membership in: at run time they are lists or
// maps (or the evaluation fails right there), never strings.
func containerExprs(a *cel.Ast) map[int64]bool {
	ids := map[int64]bool{}
	celast.PreOrderVisit(a.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.ComprehensionKind:
			ids[e.AsComprehension().IterRange().ID()] = true
		case celast.CallKind:
			if c := e.AsCall(); c.FunctionName() == operators.In && len(c.Args()) == 2 {
				ids[c.Args()[1].ID()] = true
			}
		}
	}))
	return ids
}

// sizeEstimator feeds CEL's static cost estimator the sizes of the
// variables: type and metadata are bounded by the event API's validation
// rules; a value taken from the payload has at most scale/2 entries when
// it is iterated over or tested with in (containers), and at most scale
// characters otherwise.
type sizeEstimator struct {
	scale      uint64
	containers map[int64]bool
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
	case e.containers[n.Expr().ID()]:
		max = e.scale / 2
	default:
		max = e.scale
	}
	return &checker.SizeEstimate{Min: 0, Max: max}
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}
