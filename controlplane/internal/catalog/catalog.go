// Package catalog is the control plane's in-memory view of subscriptions:
// the event-type index used to fan out a publish, and each subscription's
// prepared delivery settings (transport, config, timeout, signer) used when
// an attempt is assigned. It is derived state: the store is the source of
// truth, and the API updates the catalog after every durable change.
package catalog

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/retry"
	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	"github.com/hookwire/hookwire/controlplane/internal/selector"
	"github.com/hookwire/hookwire/controlplane/signing"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// DefaultTimeout bounds an attempt when the subscription sets none.
const DefaultTimeout = 30 * time.Second

// Sub is a subscription prepared for matching and delivery. It is
// immutable; a change replaces it.
type Sub struct {
	ID        ids.ID
	IDText    string
	Tenant    string
	Status    hookwirev1.SubscriptionStatus
	Transport string
	Config    *structpb.Struct
	Timeout   time.Duration
	Signer    *signing.Signer
	// Filter is the compiled CEL filter, nil when none.
	Filter *filter.Filter
	// Retry is the retry schedule (nil: the default).
	Retry retry.Schedule
	// Rate (per second, 0 = unlimited), Burst and MaxInFlight (0 =
	// unlimited) are enforced across all agents.
	Rate        float64
	Burst       int
	MaxInFlight int
	// Ordered: one at a time, in publish order, per ordering key.
	Ordered bool
	// Breaker is the circuit breaker configuration, nil when off.
	Breaker *Breaker
	// FailingSince is when the current streak of failures began.
	FailingSince time.Time
	// Selector chooses the agents that may deliver (nil: any agent hosting
	// Transport).
	Selector *selector.Selector
	// Headers are the custom headers sent with every attempt (see
	// RequestHeaders), their values opened (headers.go).
	Headers  map[string]string
	patterns []pattern
}

// Breaker configures a subscription's circuit breaker.
type Breaker struct {
	ConsecutiveFailures int
	FailureRatio        float64
	MinAttempts         int
	Window, Cooldown    time.Duration
}

// Active reports whether deliveries of the subscription may go out.
func (s *Sub) Active() bool {
	return s.Status == hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_ENABLED
}

// Catalog holds every subscription. Safe for concurrent use.
type Catalog struct {
	// limits are the server's limits the filters are evaluated under.
	limits  filter.Limits
	mu      sync.RWMutex
	subs    map[ids.ID]*Sub
	tenants map[string]*tenantIndex
}

// New returns an empty catalog whose filters are evaluated under limits
// (the server's payload limit sets their cost budget).
func New(limits filter.Limits) *Catalog {
	return &Catalog{limits: limits, subs: map[ids.ID]*Sub{}, tenants: map[string]*tenantIndex{}}
}

// FilterLimits returns the limits the catalog evaluates filters under.
func (c *Catalog) FilterLimits() filter.Limits { return c.limits }

// Prepare builds a Sub from its stored record, opening its sealed signing
// keys, header values and secret target configuration values with keys
// (the master keyring).
func Prepare(rec *storev1.SubscriptionRecord, keys *secrets.Keyring) (*Sub, error) {
	sub := rec.GetSubscription()
	id, err := ids.Parse(ids.Subscription, sub.GetId())
	if err != nil {
		return nil, err
	}
	signer, err := openSigner(rec, keys)
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", sub.GetId(), err)
	}
	headers, err := openHeaders(rec, keys)
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", sub.GetId(), err)
	}
	config, err := openConfig(rec, keys)
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", sub.GetId(), err)
	}
	timeout := DefaultTimeout
	if d := sub.GetTarget().GetTimeout(); d != nil && d.AsDuration() > 0 {
		timeout = d.AsDuration()
	}
	s := &Sub{
		ID:        id,
		IDText:    sub.GetId(),
		Tenant:    sub.GetTenant(),
		Status:    sub.GetStatus(),
		Transport: sub.GetTarget().GetTransport(),
		Config:    config,
		Timeout:   timeout,
		Signer:    signer,
		Headers:   headers,
	}
	for _, t := range sub.GetEventTypes() {
		if !slices.ContainsFunc(s.patterns, func(p pattern) bool { return p.text == t }) {
			s.patterns = append(s.patterns, compile(t))
		}
	}
	if fc := sub.GetFlowControl(); fc != nil {
		s.Rate, s.Burst, s.MaxInFlight = fc.GetRatePerSecond(), int(fc.GetBurst()), int(fc.GetMaxInFlight())
		if s.Rate > 0 && s.Burst <= 0 {
			s.Burst = max(1, int(s.Rate))
		}
	}
	s.Ordered = sub.GetOrdered()
	if s.Selector, err = selector.Parse(sub.GetAgentSelector()); err != nil {
		return nil, err
	}
	if expr := sub.GetFilter(); expr != "" {
		f, err := filter.Compile(expr)
		if err != nil {
			return nil, err
		}
		s.Filter = f
	}
	if rp := sub.GetRetryPolicy(); rp != nil {
		switch {
		case rp.GetSchedule() != nil:
			delays := make(retry.Delays, len(rp.GetSchedule().GetDelays()))
			for i, d := range rp.GetSchedule().GetDelays() {
				delays[i] = d.AsDuration()
			}
			s.Retry = delays
		case rp.GetExponential() != nil:
			e := rp.GetExponential()
			s.Retry = retry.Exponential{Base: e.GetBase().AsDuration(), Cap: e.GetCap().AsDuration(), MaxAttempts: e.GetMaxAttempts()}
		}
	}
	if cb := sub.GetCircuitBreaker(); cb != nil && (cb.GetConsecutiveFailures() > 0 || cb.GetFailureRatio() > 0) {
		b := &Breaker{
			ConsecutiveFailures: int(cb.GetConsecutiveFailures()),
			FailureRatio:        cb.GetFailureRatio(),
			MinAttempts:         int(cb.GetMinAttempts()),
			Window:              cb.GetWindow().AsDuration(),
			Cooldown:            cb.GetCooldown().AsDuration(),
		}
		if b.MinAttempts <= 0 {
			b.MinAttempts = 20
		}
		if b.Window <= 0 {
			b.Window = time.Minute
		}
		if b.Cooldown <= 0 {
			b.Cooldown = 30 * time.Second
		}
		s.Breaker = b
	}
	if fs := sub.GetFailingSince(); fs != nil {
		s.FailingSince = fs.AsTime()
	}
	return s, nil
}

// OperationalPrefix starts the types of the events Hookwire itself
// publishes into a tenant's stream. Wildcard patterns match them only when
// the pattern itself starts with it, so "*" does not receive them.
const OperationalPrefix = "hookwire."

// Put adds or replaces a subscription.
func (c *Catalog) Put(s *Sub) {
	if s.Filter != nil {
		s.Filter.Prepare(c.limits) // the cost analysis, before the first event
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.subs[s.ID]; old != nil {
		c.unindex(old)
	}
	c.subs[s.ID] = s
	ti := c.tenants[s.Tenant]
	if ti == nil {
		ti = &tenantIndex{exact: map[string]*group{}}
		c.tenants[s.Tenant] = ti
	}
	for _, p := range s.patterns {
		ti.groupFor(p, true).add(s)
	}
	if s.Filter != nil {
		ti.filtered++
	}
}

// Remove drops a subscription.
func (c *Catalog) Remove(id ids.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.subs[id]; old != nil {
		c.unindex(old)
		delete(c.subs, id)
	}
}

func (c *Catalog) unindex(s *Sub) {
	ti := c.tenants[s.Tenant]
	if ti == nil {
		return
	}
	for _, p := range s.patterns {
		if g := ti.groupFor(p, false); g != nil && g.remove(s) {
			ti.dropGroup(p)
		}
	}
	if s.Filter != nil {
		ti.filtered--
	}
	if len(ti.exact) == 0 && ti.trie == nil {
		delete(c.tenants, s.Tenant)
	}
}

// IDs lists the ids of every subscription, in no order.
func (c *Catalog) IDs() []ids.ID {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]ids.ID, 0, len(c.subs))
	for id := range c.subs {
		out = append(out, id)
	}
	return out
}

// Get returns a subscription or nil.
func (c *Catalog) Get(id ids.ID) *Sub {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.subs[id]
}

// Match returns the tenant's subscriptions whose event types match
// eventType, whatever their status (paused ones collect deliveries that
// wait) and their filters, each once.
func (c *Catalog) Match(tenant, eventType string) []*Sub {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ti := c.tenants[tenant]
	if ti == nil {
		return nil
	}
	var buf [4]*group
	var out []*Sub
	var taken subSet
	for _, g := range ti.appendGroups(buf[:0], eventType) {
		for _, s := range g.all {
			if taken.take(s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// A FilterFailure is a subscription whose filter could not be evaluated
// for an event (see filter.Filter.Evaluate); the event does not go to it.
type FilterFailure struct {
	Sub *Sub
	Err *filter.EvalError
}

// MatchEvent returns the tenant's subscriptions that take ev: its type
// matches one of their event types and their filter, if any, is true for
// it (filter.Filter.Evaluate under the catalog's limits), whatever their
// status, each once; and the subscriptions whose filter could not be
// evaluated for it. It is Match followed by the filters, but evaluates
// only the filters that the index cannot rule out (see filter.Term): a
// filter whose indexed equality cannot hold for the event is not
// evaluated, so an error elsewhere in it (which could not have made it
// match) is not reported for that event. The order of the results is
// unspecified.
func (c *Catalog) MatchEvent(tenant string, ev *filter.Event) (matched []*Sub, failed []FilterFailure) {
	// Parse the payload outside the lock, and only if a filter needs it.
	c.mu.RLock()
	ti := c.tenants[tenant]
	filtered := ti != nil && ti.filtered > 0
	c.mu.RUnlock()
	if ti == nil {
		return nil, nil
	}
	isJSON := filtered && ev.IsJSON()

	var buf [4]*group
	var out, check []*Sub
	var taken subSet
	c.mu.RLock()
	if ti = c.tenants[tenant]; ti == nil {
		c.mu.RUnlock()
		return nil, nil
	}
	if !filtered && ti.filtered > 0 {
		isJSON = ev.IsJSON() // a filtered subscription arrived meanwhile
	}
	for _, g := range ti.appendGroups(buf[:0], ev.Type()) {
		for _, s := range g.plain {
			if taken.take(s) {
				out = append(out, s)
			}
		}
		if !isJSON {
			continue // no filter matches a payload that is not JSON
		}
		for _, s := range g.scan {
			if taken.take(s) {
				check = append(check, s)
			}
		}
		for _, pi := range g.paths {
			k, ok := ev.Key(pi.path)
			if !ok {
				continue
			}
			for _, s := range pi.subs[k] {
				if taken.take(s) {
					check = append(check, s)
				}
			}
		}
	}
	c.mu.RUnlock()
	// Sub is immutable: the filters run outside the lock.
	for _, s := range check {
		ok, err := s.Filter.Evaluate(ev, c.limits)
		switch {
		case ok:
			out = append(out, s)
		case err != nil:
			ee, _ := err.(*filter.EvalError)
			if ee == nil {
				ee = &filter.EvalError{Reason: filter.ReasonError, Message: err.Error()}
			}
			failed = append(failed, FilterFailure{Sub: s, Err: ee})
		}
	}
	return out, failed
}

// pattern is one compiled event-type pattern. A "*" segment matches one or
// more dot-separated segments.
type pattern struct {
	text     string
	segments []string
	wildcard bool
}

func compile(text string) pattern {
	segs := strings.Split(text, ".")
	wild := false
	for _, s := range segs {
		if s == "*" {
			wild = true
		}
	}
	return pattern{text: text, segments: segs, wildcard: wild}
}

func (p pattern) match(eventType string) bool {
	return matchSegments(p.segments, strings.Split(eventType, "."))
}

// Pattern is an event-type pattern ("order.created", "order.*") compiled
// once, matched exactly as subscriptions match: "*" takes one or more
// segments, and only a pattern that itself starts with OperationalPrefix
// matches operational events.
type Pattern struct{ p pattern }

// CompilePattern compiles an event-type pattern.
func CompilePattern(text string) Pattern { return Pattern{p: compile(text)} }

// Match reports whether eventType matches.
func (p Pattern) Match(eventType string) bool {
	if !p.p.wildcard {
		return p.p.text == eventType
	}
	if strings.HasPrefix(eventType, OperationalPrefix) && !strings.HasPrefix(p.p.text, OperationalPrefix) {
		return false
	}
	return p.p.match(eventType)
}

func matchSegments(pat, name []string) bool {
	if len(pat) == 0 {
		return len(name) == 0
	}
	if pat[0] != "*" {
		return len(name) > 0 && pat[0] == name[0] && matchSegments(pat[1:], name[1:])
	}
	// "*" consumes one or more segments.
	for n := 1; n <= len(name); n++ {
		if matchSegments(pat[1:], name[n:]) {
			return true
		}
	}
	return false
}

// EventTypes returns the subscription's event-type patterns.
func (s *Sub) EventTypes() []string {
	out := make([]string, len(s.patterns))
	for i, p := range s.patterns {
		out[i] = p.text
	}
	return out
}

// MatchesType reports whether one of the subscription's event types
// matches eventType, as the index matches them on publish.
func (s *Sub) MatchesType(eventType string) bool {
	for _, p := range s.patterns {
		if (Pattern{p: p}).Match(eventType) {
			return true
		}
	}
	return false
}

// A Verdict is what MatchEvent decides for one subscription and event.
type Verdict int

const (
	// Takes: the subscription takes the event.
	Takes Verdict = iota
	// TypeMismatch: none of its event types matches the event's type.
	TypeMismatch
	// PayloadNotJSON: it has a filter, and the payload is not JSON.
	PayloadNotJSON
	// FilterFalse: its filter is false for the event (evaluated, or ruled
	// out by its index term).
	FilterFalse
	// FilterFailed: its filter could not be evaluated for the event.
	FilterFailed
)

// Explain says what MatchEvent decides for s and ev, taking the same
// steps: the event types, then a filter only for a JSON payload, ruled out
// by its index term where it has one, else evaluated under the catalog's
// limits. For FilterFailed it returns the evaluation error.
func (c *Catalog) Explain(s *Sub, ev *filter.Event) (Verdict, *filter.EvalError) {
	if !s.MatchesType(ev.Type()) {
		return TypeMismatch, nil
	}
	if s.Filter == nil {
		return Takes, nil
	}
	if !ev.IsJSON() {
		return PayloadNotJSON, nil
	}
	if term, ok := s.Filter.Term(); ok {
		k, ok := ev.Key(term.Path)
		if !ok || !slices.Contains(term.Keys, k) {
			return FilterFalse, nil
		}
	}
	ok, err := s.Filter.Evaluate(ev, c.limits)
	switch {
	case ok:
		return Takes, nil
	case err != nil:
		ee, _ := err.(*filter.EvalError)
		if ee == nil {
			ee = &filter.EvalError{Reason: filter.ReasonError, Message: err.Error()}
		}
		return FilterFailed, ee
	}
	return FilterFalse, nil
}
