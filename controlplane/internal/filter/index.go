package filter

import (
	"math"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// Indexing.
//
// A filter that is a chain of && whose conjuncts include an equality
// between a value of the event and a constant, such as
//
//	payload.customer.tier == "gold" && payload.amount > 100
//	metadata["region"] in ["eu", "uk"] && has(payload.id)
//
// can only be true for events whose value at that path equals the
// constant: CEL's && is true only when every operand is true, and a
// missing key or a value of another type makes the equality an error or
// false. Such a filter exposes the equality as its Term; a caller holding
// many filters indexes them by (Path, Key) and evaluates only the filters
// whose key an event's value has (Event.Key), plus the filters without a
// term. The term is a necessary condition only: a candidate's full
// expression still decides, so the index never changes a result.
//
// Keys follow CEL's heterogeneous equality, which is what == and in use:
// values of different kinds are never equal, and numbers of any type (int,
// uint, double) compare by value, an int against a double after converting
// the int to double. A Key therefore holds every number as its float64
// conversion: two numbers CEL finds equal always have the same Key (the
// converse does not hold for large integers, which only makes an extra
// candidate).

// A Path names a value of an event that a filter term tests: the event
// type, one metadata value, or a value inside the JSON payload reached
// through object keys. Paths are immutable.
type Path struct {
	root string   // variablePayload, variableType or variableMetadata
	keys []string // object keys below the root
	text string
}

// String returns the path as a CEL expression, e.g. payload["a"]["b"];
// equal paths have equal strings.
func (p *Path) String() string { return p.text }

func newPath(root string, keys []string) *Path {
	// Quote keys so that no two paths share a text.
	text := root
	for _, k := range keys {
		text += "[" + quoteKey(k) + "]"
	}
	return &Path{root: root, keys: keys, text: text}
}

// quoteKey quotes an object key unambiguously (a Go-syntax quoted string).
func quoteKey(k string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(k); i++ {
		switch c := k[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			if c < 0x20 || c >= 0x7f {
				const hex = "0123456789abcdef"
				b.WriteString(`\x`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// A Key is a scalar value normalised for equality as CEL sees it (see the
// package's notes on indexing). Keys are comparable and usable as map
// keys.
type Key struct {
	kind keyKind
	num  float64
	str  string
}

type keyKind uint8

const (
	keyNull keyKind = iota + 1
	keyBool
	keyNumber
	keyString
)

// keyOf returns the key of a CEL scalar, or false for any other value
// (lists, maps, bytes, errors) and for NaN, which equals nothing.
func keyOf(v ref.Val) (Key, bool) {
	switch v := v.(type) {
	case types.String:
		return Key{kind: keyString, str: string(v)}, true
	case types.Int:
		return numberKey(float64(v))
	case types.Uint:
		return numberKey(float64(v))
	case types.Double:
		return numberKey(float64(v))
	case types.Bool:
		k := Key{kind: keyBool}
		if v {
			k.num = 1
		}
		return k, true
	case types.Null:
		return Key{kind: keyNull}, true
	}
	return Key{}, false
}

func numberKey(f float64) (Key, bool) {
	if math.IsNaN(f) {
		return Key{}, false
	}
	if f == 0 {
		f = 0 // -0 == 0
	}
	return Key{kind: keyNumber, num: f}, true
}

// A Term is a necessary condition of a filter: the filter is true for an
// event only if the event's value at Path has one of Keys.
type Term struct {
	Path *Path
	Keys []Key
}

// Term returns the filter's index term, or false when the filter has none
// (it must then be evaluated for every event).
func (f *Filter) Term() (Term, bool) {
	if f.term == nil {
		return Term{}, false
	}
	return *f.term, true
}

// maxTermKeys bounds the constants of an indexed in-list.
const maxTermKeys = 64

// extractTerm picks the index term of a checked expression: among its
// top-level && conjuncts, an equality of a payload or metadata value with
// a constant first, then a membership in a constant list, then an
// equality of the event type.
func extractTerm(a *cel.Ast) *Term {
	var best *Term
	rank := 0
	var walk func(e celast.Expr)
	walk = func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		args := call.Args()
		if call.IsMemberFunction() || len(args) != 2 {
			return
		}
		switch call.FunctionName() {
		case operators.LogicalAnd:
			walk(args[0])
			walk(args[1])
			return
		case operators.Equals:
			path, lit := termPath(args[0]), args[1]
			if path == nil {
				path, lit = termPath(args[1]), args[0]
			}
			if path == nil || lit.Kind() != celast.LiteralKind {
				return
			}
			k, ok := keyOf(lit.AsLiteral())
			if !ok {
				return
			}
			r := 3
			if path.root == variableType {
				r = 1
			}
			if r > rank {
				best, rank = &Term{Path: path, Keys: []Key{k}}, r
			}
		case operators.In:
			path := termPath(args[0])
			if path == nil || args[1].Kind() != celast.ListKind || rank >= 2 {
				return
			}
			list := args[1].AsList()
			if len(list.OptionalIndices()) > 0 || len(list.Elements()) > maxTermKeys {
				return
			}
			var keys []Key
			for _, el := range list.Elements() {
				if el.Kind() != celast.LiteralKind {
					return
				}
				k, ok := keyOf(el.AsLiteral())
				if !ok {
					return
				}
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
			if len(keys) == 0 {
				return // never true; not worth an index entry
			}
			best, rank = &Term{Path: path, Keys: keys}, 2
		}
	}
	walk(a.NativeRep().Expr())
	return best
}

// termPath returns the path an expression reads when it is a variable
// followed by field selections or indexes with constant strings, such as
// payload.a["b"], metadata.region or type; otherwise nil.
func termPath(e celast.Expr) *Path {
	var keys []string
	for {
		switch e.Kind() {
		case celast.IdentKind:
			root := e.AsIdent()
			switch {
			case root == variablePayload:
			case root == variableMetadata && len(keys) == 1:
			case root == variableType && len(keys) == 0:
			default:
				return nil
			}
			slices.Reverse(keys)
			return newPath(root, keys)
		case celast.SelectKind:
			sel := e.AsSelect()
			if sel.IsTestOnly() {
				return nil
			}
			keys = append(keys, sel.FieldName())
			e = sel.Operand()
		case celast.CallKind:
			call := e.AsCall()
			args := call.Args()
			if call.FunctionName() != operators.Index || call.IsMemberFunction() || len(args) != 2 || args[1].Kind() != celast.LiteralKind {
				return nil
			}
			s, ok := args[1].AsLiteral().(types.String)
			if !ok {
				return nil
			}
			keys = append(keys, string(s))
			e = args[0]
		default:
			return nil
		}
	}
}

// Type returns the event type.
func (e *Event) Type() string { return e.eventType }

// Key returns the key of the event's value at path p, or false when the
// event has no scalar value there (or its payload is not JSON, in which
// case no filter matches it).
func (e *Event) Key(p *Path) (Key, bool) {
	act := e.activation()
	if act == nil {
		return Key{}, false
	}
	switch p.root {
	case variableType:
		return Key{kind: keyString, str: e.eventType}, true
	case variableMetadata:
		v, ok := e.metadata[p.keys[0]]
		if !ok {
			return Key{}, false
		}
		return Key{kind: keyString, str: v}, true
	}
	v := act.payload
	for _, k := range p.keys {
		m, ok := v.(traits.Mapper)
		if !ok {
			return Key{}, false
		}
		if v, ok = m.Find(types.String(k)); !ok {
			return Key{}, false
		}
	}
	return keyOf(v)
}
