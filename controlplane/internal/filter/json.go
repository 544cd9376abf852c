package filter

import (
	"encoding/json"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// maxJSONDepth is the deepest nesting of arrays and objects accepted, the
// same as encoding/json's.
const maxJSONDepth = 10000

// parseJSON parses b as exactly one JSON value (RFC 8259; surrounding
// whitespace allowed) straight into CEL values, and returns its scale (see
// Event.scale): the larger of twice the number of entries of its longest
// list or object and the length in code points of its longest string or
// object key. It accepts exactly what encoding/json accepts and decodes strings
// the same way, invalid UTF-8 included.
func parseJSON(b []byte) (ref.Val, int, bool) {
	// One copy of the payload as a string: plain strings and object keys
	// are substrings of it, which costs no further allocation.
	p := jsonParser{buf: string(b)}
	p.skipSpace()
	v, ok := p.value(0)
	if !ok {
		return nil, 0, false
	}
	p.skipSpace()
	if p.pos != len(p.buf) {
		return nil, 0, false
	}
	return v, max(2*p.entries, p.chars), true
}

type jsonParser struct {
	buf     string
	pos     int
	entries int // entries of the longest list or object so far
	chars   int // code points of the longest string or key so far
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.buf) {
		switch p.buf[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// literal consumes word if the input continues with it.
func (p *jsonParser) literal(word string) bool {
	if len(p.buf)-p.pos < len(word) || p.buf[p.pos:p.pos+len(word)] != word {
		return false
	}
	p.pos += len(word)
	return true
}

func (p *jsonParser) value(depth int) (ref.Val, bool) {
	if p.pos >= len(p.buf) {
		return nil, false
	}
	switch c := p.buf[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, ok := p.string()
		if !ok {
			return nil, false
		}
		return types.String(s), true
	case c == 't':
		return types.True, p.literal("true")
	case c == 'f':
		return types.False, p.literal("false")
	case c == 'n':
		return types.NullValue, p.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return nil, false
}

func (p *jsonParser) object(depth int) (ref.Val, bool) {
	if depth > maxJSONDepth {
		return nil, false
	}
	p.pos++ // {
	m := make(map[string]any)
	p.skipSpace()
	if p.pos < len(p.buf) && p.buf[p.pos] == '}' {
		p.pos++
		return types.NewStringInterfaceMap(adapter, m), true
	}
	for {
		if p.pos >= len(p.buf) || p.buf[p.pos] != '"' {
			return nil, false
		}
		key, ok := p.string()
		if !ok {
			return nil, false
		}
		p.skipSpace()
		if p.pos >= len(p.buf) || p.buf[p.pos] != ':' {
			return nil, false
		}
		p.pos++
		p.skipSpace()
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		m[key] = v // the last of duplicate keys wins, as in encoding/json
		p.skipSpace()
		if p.pos >= len(p.buf) {
			return nil, false
		}
		switch p.buf[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			p.entries = max(p.entries, len(m))
			return types.NewStringInterfaceMap(adapter, m), true
		default:
			return nil, false
		}
	}
}

func (p *jsonParser) array(depth int) (ref.Val, bool) {
	if depth > maxJSONDepth {
		return nil, false
	}
	p.pos++ // [
	var vals []ref.Val
	p.skipSpace()
	if p.pos < len(p.buf) && p.buf[p.pos] == ']' {
		p.pos++
		return types.NewRefValList(adapter, []ref.Val{}), true
	}
	for {
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		vals = append(vals, v)
		p.skipSpace()
		if p.pos >= len(p.buf) {
			return nil, false
		}
		switch p.buf[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case ']':
			p.pos++
			p.entries = max(p.entries, len(vals))
			return types.NewRefValList(adapter, vals[:len(vals):len(vals)]), true
		default:
			return nil, false
		}
	}
}

// string parses a string token. Plain ASCII strings without escapes are
// sliced directly; any other is handed to encoding/json so that escapes and
// invalid UTF-8 decode exactly as they do there.
func (p *jsonParser) string() (string, bool) {
	start := p.pos
	p.pos++ // opening quote
	plain := true
	for p.pos < len(p.buf) {
		c := p.buf[p.pos]
		switch {
		case c == '"':
			p.pos++
			var s string
			if plain {
				s = p.buf[start+1 : p.pos-1]
			} else if json.Unmarshal([]byte(p.buf[start:p.pos]), &s) != nil {
				return "", false
			}
			n := len(s)
			if !plain {
				n = utf8.RuneCountInString(s) // CEL's size(): code points
			}
			p.chars = max(p.chars, n)
			return s, true
		case c == '\\':
			plain = false
			p.pos++
			if p.pos >= len(p.buf) {
				return "", false
			}
			switch p.buf[p.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.pos++
			case 'u':
				p.pos++
				for range 4 {
					if p.pos >= len(p.buf) || !isHex(p.buf[p.pos]) {
						return "", false
					}
					p.pos++
				}
			default:
				return "", false
			}
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			plain = false
			p.pos++
		default:
			p.pos++
		}
	}
	return "", false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number parses a number token: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonParser) number() (ref.Val, bool) {
	start := p.pos
	neg := p.buf[p.pos] == '-'
	if neg {
		p.pos++
	}
	digits := p.pos
	switch {
	case p.pos >= len(p.buf) || !isDigit(p.buf[p.pos]):
		return nil, false
	case p.buf[p.pos] == '0':
		p.pos++
	default:
		for p.pos < len(p.buf) && isDigit(p.buf[p.pos]) {
			p.pos++
		}
	}
	intEnd := p.pos
	if p.pos < len(p.buf) && p.buf[p.pos] == '.' {
		p.pos++
		if p.pos >= len(p.buf) || !isDigit(p.buf[p.pos]) {
			return nil, false
		}
		for p.pos < len(p.buf) && isDigit(p.buf[p.pos]) {
			p.pos++
		}
	}
	if p.pos < len(p.buf) && (p.buf[p.pos] == 'e' || p.buf[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.buf) && (p.buf[p.pos] == '+' || p.buf[p.pos] == '-') {
			p.pos++
		}
		if p.pos >= len(p.buf) || !isDigit(p.buf[p.pos]) {
			return nil, false
		}
		for p.pos < len(p.buf) && isDigit(p.buf[p.pos]) {
			p.pos++
		}
	}
	if p.pos == intEnd && intEnd-digits <= 18 {
		// An integer literal short enough not to overflow: no allocation.
		var n int64
		for i := digits; i < intEnd; i++ {
			n = n*10 + int64(p.buf[i]-'0')
		}
		if neg {
			n = -n
		}
		return types.Int(n), true
	}
	return number(p.buf[start:p.pos]), true
}
