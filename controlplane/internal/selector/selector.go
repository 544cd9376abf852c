// Package selector parses and evaluates Kubernetes-style label selectors,
// which route a subscription's deliveries to agents by their labels.
//
// Grammar: requirements separated by commas, all of which must hold.
//
//	key            the label is present
//	!key           the label is absent
//	key=value      (also key==value) the label has that value
//	key!=value     the label is absent or has another value
//	key in (a,b)   the label has one of the values
//	key notin (a,b) the label is absent or has none of the values
//
// Keys are 1-253 characters of letters, digits, '.', '_', '-' and '/';
// values are at most 63 characters of letters, digits, '.', '_' and '-'.
package selector

import (
	"fmt"
	"slices"
	"strings"
)

// Op is a requirement's operator.
type Op int

// Operators.
const (
	Exists Op = iota
	NotExists
	Equals
	NotEquals
	In
	NotIn
)

// Requirement is one condition on one label.
type Requirement struct {
	Key    string
	Op     Op
	Values []string // one for Equals/NotEquals; sorted for In/NotIn
}

// Matches reports whether labels satisfy r.
func (r Requirement) Matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Op {
	case Exists:
		return ok
	case NotExists:
		return !ok
	case Equals, In:
		return ok && slices.Contains(r.Values, v)
	case NotEquals, NotIn:
		return !ok || !slices.Contains(r.Values, v)
	}
	return false
}

// String renders r in canonical form.
func (r Requirement) String() string {
	switch r.Op {
	case Exists:
		return r.Key
	case NotExists:
		return "!" + r.Key
	case Equals:
		return r.Key + "=" + r.Values[0]
	case NotEquals:
		return r.Key + "!=" + r.Values[0]
	case In:
		return r.Key + " in (" + strings.Join(r.Values, ",") + ")"
	default:
		return r.Key + " notin (" + strings.Join(r.Values, ",") + ")"
	}
}

// Selector is a parsed selector. The zero value (and nil) matches
// everything.
type Selector struct {
	Requirements []Requirement
}

// Matches reports whether labels satisfy every requirement. A nil selector
// matches everything.
func (s *Selector) Matches(labels map[string]string) bool {
	if s == nil {
		return true
	}
	for _, r := range s.Requirements {
		if !r.Matches(labels) {
			return false
		}
	}
	return true
}

// Empty reports whether the selector matches every agent.
func (s *Selector) Empty() bool { return s == nil || len(s.Requirements) == 0 }

// String renders the selector in canonical form.
func (s *Selector) String() string {
	if s == nil {
		return ""
	}
	parts := make([]string, len(s.Requirements))
	for i, r := range s.Requirements {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Parse parses a selector. The empty string gives nil (matches everything).
// Errors name the offending position and what was expected.
func Parse(text string) (*Selector, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	p := &parser{src: text}
	s := &Selector{}
	for {
		r, err := p.requirement()
		if err != nil {
			return nil, err
		}
		s.Requirements = append(s.Requirements, r)
		p.space()
		if p.eof() {
			return s, nil
		}
		if p.src[p.pos] != ',' {
			return nil, p.errorf("expected ',' between requirements")
		}
		p.pos++
	}
}

type parser struct {
	src string
	pos int
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

func (p *parser) space() {
	for !p.eof() && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("agent selector %q: at offset %d: %s", p.src, p.pos, fmt.Sprintf(format, args...))
}

func isWordByte(c byte, key bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		return true
	case c == '/':
		return key
	}
	return false
}

// word reads a key (key=true) or value.
func (p *parser) word(key bool) string {
	start := p.pos
	for !p.eof() && isWordByte(p.src[p.pos], key) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *parser) key() (string, error) {
	p.space()
	k := p.word(true)
	if k == "" {
		return "", p.errorf("expected a label key")
	}
	if len(k) > 253 {
		return "", p.errorf("label key %q is longer than 253 characters", k)
	}
	return k, nil
}

func (p *parser) value() (string, error) {
	p.space()
	v := p.word(false)
	if len(v) > 63 {
		return "", p.errorf("label value %q is longer than 63 characters", v)
	}
	return v, nil
}

func (p *parser) requirement() (Requirement, error) {
	p.space()
	if !p.eof() && p.src[p.pos] == '!' {
		p.pos++
		k, err := p.key()
		if err != nil {
			return Requirement{}, err
		}
		return Requirement{Key: k, Op: NotExists}, nil
	}
	k, err := p.key()
	if err != nil {
		return Requirement{}, err
	}
	p.space()
	rest := p.src[p.pos:]
	switch {
	case p.eof() || rest[0] == ',':
		return Requirement{Key: k, Op: Exists}, nil
	case strings.HasPrefix(rest, "!="):
		p.pos += 2
		return p.single(k, NotEquals)
	case strings.HasPrefix(rest, "=="):
		p.pos += 2
		return p.single(k, Equals)
	case strings.HasPrefix(rest, "="):
		p.pos++
		return p.single(k, Equals)
	case strings.HasPrefix(rest, "notin") && len(rest) > 5 && !isWordByte(rest[5], true):
		p.pos += 5
		return p.set(k, NotIn)
	case strings.HasPrefix(rest, "in") && len(rest) > 2 && !isWordByte(rest[2], true):
		p.pos += 2
		return p.set(k, In)
	}
	return Requirement{}, p.errorf("expected one of '=', '==', '!=', 'in', 'notin', ',' after key %q", k)
}

func (p *parser) single(k string, op Op) (Requirement, error) {
	v, err := p.value()
	if err != nil {
		return Requirement{}, err
	}
	if v == "" && !p.eof() && p.src[p.pos] != ',' {
		return Requirement{}, p.errorf("invalid character %q in value for key %q (values use letters, digits, '.', '_' and '-')", p.src[p.pos], k)
	}
	return Requirement{Key: k, Op: op, Values: []string{v}}, nil
}

func (p *parser) set(k string, op Op) (Requirement, error) {
	p.space()
	if p.eof() || p.src[p.pos] != '(' {
		return Requirement{}, p.errorf("expected '(' after %q", map[Op]string{In: "in", NotIn: "notin"}[op])
	}
	p.pos++
	var vals []string
	for {
		v, err := p.value()
		if err != nil {
			return Requirement{}, err
		}
		if v == "" {
			return Requirement{}, p.errorf("expected a value in the set for key %q", k)
		}
		vals = append(vals, v)
		p.space()
		if p.eof() {
			return Requirement{}, p.errorf("missing ')' to close the set for key %q", k)
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
			continue
		case ')':
			p.pos++
			slices.Sort(vals)
			return Requirement{Key: k, Op: op, Values: slices.Compact(vals)}, nil
		}
		return Requirement{}, p.errorf("expected ',' or ')' in the set for key %q", k)
	}
}
