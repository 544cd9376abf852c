package catalog

import (
	"strings"

	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
)

// The per-tenant matching index.
//
// Subscriptions are grouped by event-type pattern: exact patterns in a map,
// patterns with "*" segments in a trie of segments, so that finding the
// groups an event type selects costs a few map lookups, not one pattern
// test per subscription. Within a group, subscriptions are split by
// filter: none (plain), a filter with an index term (see filter.Term),
// kept by (path, key), and a filter without one (scan). Matching an event
// reads the event's value at each indexed path of a selected group once,
// and evaluates only the filters whose key it has, plus the scan ones.

// tenantIndex is one tenant's matching index.
type tenantIndex struct {
	exact map[string]*group
	trie  *typeNode // patterns with "*" segments; nil when none
	// filtered counts the subscriptions with a filter.
	filtered int
}

// group holds the subscriptions of one event-type pattern.
type group struct {
	all   []*Sub // every subscription, in insertion order
	plain []*Sub // without a filter
	scan  []*Sub // with a filter that has no index term
	// paths are the index terms' paths, in first-use order; byPath finds
	// them by their text.
	paths  []*pathIndex
	byPath map[string]*pathIndex
}

// pathIndex holds the subscriptions of a group whose filter's index term
// reads path, by the keys the term accepts.
type pathIndex struct {
	path *filter.Path
	subs map[filter.Key][]*Sub
	n    int // subscriptions
}

// typeNode is a node of the wildcard-pattern trie: one per pattern prefix.
type typeNode struct {
	children map[string]*typeNode
	star     *typeNode // after a "*" segment
	group    *group    // patterns ending here
}

func (n *typeNode) empty() bool {
	return n.group == nil && n.star == nil && len(n.children) == 0
}

// groupFor returns the group of pattern p, creating it when create is set;
// it returns nil when there is none.
func (ti *tenantIndex) groupFor(p pattern, create bool) *group {
	if !p.wildcard {
		g := ti.exact[p.text]
		if g == nil && create {
			g = &group{}
			ti.exact[p.text] = g
		}
		return g
	}
	if ti.trie == nil {
		if !create {
			return nil
		}
		ti.trie = &typeNode{}
	}
	n := ti.trie
	for _, seg := range p.segments {
		var next *typeNode
		if seg == "*" {
			next = n.star
		} else {
			next = n.children[seg]
		}
		if next == nil {
			if !create {
				return nil
			}
			next = &typeNode{}
			if seg == "*" {
				n.star = next
			} else {
				if n.children == nil {
					n.children = map[string]*typeNode{}
				}
				n.children[seg] = next
			}
		}
		n = next
	}
	if n.group == nil && create {
		n.group = &group{}
	}
	return n.group
}

// dropGroup removes pattern p's group, which has become empty, and the
// trie nodes that lead only to it.
func (ti *tenantIndex) dropGroup(p pattern) {
	if !p.wildcard {
		delete(ti.exact, p.text)
		return
	}
	if ti.trie == nil {
		return
	}
	var prune func(n *typeNode, segs []string) bool
	prune = func(n *typeNode, segs []string) bool {
		if len(segs) == 0 {
			n.group = nil
			return n.empty()
		}
		if segs[0] == "*" {
			if n.star != nil && prune(n.star, segs[1:]) {
				n.star = nil
			}
		} else if c := n.children[segs[0]]; c != nil && prune(c, segs[1:]) {
			delete(n.children, segs[0])
		}
		return n.empty()
	}
	if prune(ti.trie, p.segments) {
		ti.trie = nil
	}
}

// appendGroups appends the groups whose pattern matches eventType, each
// once.
func (ti *tenantIndex) appendGroups(dst []*group, eventType string) []*group {
	if g := ti.exact[eventType]; g != nil {
		dst = append(dst, g)
	}
	if ti.trie == nil {
		return dst
	}
	m := trieMatch{
		segs: strings.Split(eventType, "."),
		dst:  dst,
		// Only patterns that start with the prefix themselves match
		// operational events: those start with the literal segment, so
		// a "*" in first position never does.
		operational: strings.HasPrefix(eventType, OperationalPrefix),
	}
	m.walk(ti.trie, 0, 0)
	return m.dst
}

// trieMatch walks the trie along an event type's segments. A "*" segment
// consumes one or more segments.
type trieMatch struct {
	segs        []string
	dst         []*group
	operational bool
	// visited records (star node, position) pairs already walked. With at
	// most one "*" before a node, each pair is reached once; with more,
	// the same pair can be reached in several ways, and walking it again
	// would repeat work and report its groups twice.
	visited map[trieVisit]struct{}
}

type trieVisit struct {
	n   *typeNode
	pos int
}

func (m *trieMatch) walk(n *typeNode, pos, stars int) {
	if pos == len(m.segs) {
		if n.group != nil {
			m.dst = append(m.dst, n.group)
		}
		return
	}
	if c := n.children[m.segs[pos]]; c != nil {
		m.walk(c, pos+1, stars)
	}
	if n.star == nil || (pos == 0 && m.operational) {
		return
	}
	for next := pos + 1; next <= len(m.segs); next++ {
		if stars > 0 {
			v := trieVisit{n.star, next}
			if _, ok := m.visited[v]; ok {
				continue
			}
			if m.visited == nil {
				m.visited = map[trieVisit]struct{}{}
			}
			m.visited[v] = struct{}{}
		}
		m.walk(n.star, next, stars+1)
	}
}

func (g *group) add(s *Sub) {
	g.all = append(g.all, s)
	if s.Filter == nil {
		g.plain = append(g.plain, s)
		return
	}
	term, ok := s.Filter.Term()
	if !ok {
		g.scan = append(g.scan, s)
		return
	}
	pi := g.byPath[term.Path.String()]
	if pi == nil {
		pi = &pathIndex{path: term.Path, subs: map[filter.Key][]*Sub{}}
		if g.byPath == nil {
			g.byPath = map[string]*pathIndex{}
		}
		g.byPath[term.Path.String()] = pi
		g.paths = append(g.paths, pi)
	}
	for _, k := range term.Keys {
		pi.subs[k] = append(pi.subs[k], s)
	}
	pi.n++
}

// remove drops s (by id) and reports whether the group is now empty.
func (g *group) remove(s *Sub) bool {
	g.all = without(g.all, s.ID)
	if s.Filter == nil {
		g.plain = without(g.plain, s.ID)
		return len(g.all) == 0
	}
	term, ok := s.Filter.Term()
	if !ok {
		g.scan = without(g.scan, s.ID)
		return len(g.all) == 0
	}
	text := term.Path.String()
	if pi := g.byPath[text]; pi != nil {
		found := false
		for _, k := range term.Keys {
			before := len(pi.subs[k])
			pi.subs[k] = without(pi.subs[k], s.ID)
			found = found || len(pi.subs[k]) < before
			if len(pi.subs[k]) == 0 {
				delete(pi.subs, k)
			}
		}
		if found {
			pi.n--
		}
		if pi.n == 0 {
			delete(g.byPath, text)
			for i, x := range g.paths {
				if x == pi {
					g.paths = append(g.paths[:i:i], g.paths[i+1:]...)
					break
				}
			}
		}
	}
	return len(g.all) == 0
}

// without returns list minus the subscription with id, as a new slice
// (readers may still hold the old one).
func without(list []*Sub, id ids.ID) []*Sub {
	out := list[:0:0]
	for _, x := range list {
		if x.ID != id {
			out = append(out, x)
		}
	}
	return out
}

// subSet tracks, during one match, the subscriptions with several
// patterns already taken: only they can be reached through two groups.
type subSet struct {
	seen map[ids.ID]struct{}
}

// take reports whether s is seen for the first time.
func (t *subSet) take(s *Sub) bool {
	if len(s.patterns) < 2 {
		return true
	}
	if _, ok := t.seen[s.ID]; ok {
		return false
	}
	if t.seen == nil {
		t.seen = map[ids.ID]struct{}{}
	}
	t.seen[s.ID] = struct{}{}
	return true
}
