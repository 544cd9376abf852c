// Package catalog is the control plane's in-memory view of subscriptions:
// the event-type index used to fan out a publish, and each subscription's
// prepared delivery settings (transport, config, timeout, signer) used when
// an attempt is assigned. It is derived state: the store is the source of
// truth, and the API updates the catalog after every durable change.
package catalog

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
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
	patterns  []pattern
}

// Active reports whether deliveries of the subscription may go out.
func (s *Sub) Active() bool {
	return s.Status == hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_ENABLED
}

// Catalog holds every subscription. Safe for concurrent use.
type Catalog struct {
	mu      sync.RWMutex
	subs    map[ids.ID]*Sub
	tenants map[string]*tenantIndex
}

type tenantIndex struct {
	exact    map[string][]*Sub
	wildcard []*Sub
}

// New returns an empty catalog.
func New() *Catalog {
	return &Catalog{subs: map[ids.ID]*Sub{}, tenants: map[string]*tenantIndex{}}
}

// Prepare builds a Sub from its stored record.
func Prepare(rec *storev1.SubscriptionRecord) (*Sub, error) {
	sub := rec.GetSubscription()
	id, err := ids.Parse(ids.Subscription, sub.GetId())
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for _, k := range rec.GetSigningKeys() {
		keys = append(keys, k.GetKey())
	}
	signer, err := signing.NewSigner(keys...)
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
		Config:    sub.GetTarget().GetConfig(),
		Timeout:   timeout,
		Signer:    signer,
	}
	for _, t := range sub.GetEventTypes() {
		s.patterns = append(s.patterns, compile(t))
	}
	return s, nil
}

// Put adds or replaces a subscription.
func (c *Catalog) Put(s *Sub) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.subs[s.ID]; old != nil {
		c.unindex(old)
	}
	c.subs[s.ID] = s
	ti := c.tenants[s.Tenant]
	if ti == nil {
		ti = &tenantIndex{exact: map[string][]*Sub{}}
		c.tenants[s.Tenant] = ti
	}
	wild := false
	for _, p := range s.patterns {
		if p.wildcard {
			wild = true
			continue
		}
		ti.exact[p.text] = append(ti.exact[p.text], s)
	}
	if wild {
		ti.wildcard = append(ti.wildcard, s)
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
		if !p.wildcard {
			ti.exact[p.text] = without(ti.exact[p.text], s)
			if len(ti.exact[p.text]) == 0 {
				delete(ti.exact, p.text)
			}
		}
	}
	ti.wildcard = without(ti.wildcard, s)
}

func without(list []*Sub, s *Sub) []*Sub {
	out := list[:0:0]
	for _, x := range list {
		if x.ID != s.ID {
			out = append(out, x)
		}
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
// wait), each once.
func (c *Catalog) Match(tenant, eventType string) []*Sub {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ti := c.tenants[tenant]
	if ti == nil {
		return nil
	}
	out := append([]*Sub(nil), ti.exact[eventType]...)
	for _, s := range ti.wildcard {
		if containsSub(out, s) {
			continue
		}
		for _, p := range s.patterns {
			if p.wildcard && p.match(eventType) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func containsSub(list []*Sub, s *Sub) bool {
	for _, x := range list {
		if x.ID == s.ID {
			return true
		}
	}
	return false
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
