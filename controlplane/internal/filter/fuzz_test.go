package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// fuzzEvent is matched by every filter FuzzCompile accepts.
var fuzzEvent = NewEvent("order.created", "application/json", []byte(orderPayload), orderMetadata)

func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		`payload.amount > 100 && metadata["region"] == "eu"`,
		`type.startsWith("order.") && payload.items.exists(i, i.sku == "A")`,
		`has(payload.customer) && payload.customer.tier in ["gold", "platinum"]`,
		`payload.items.all(i, i.qty > 0 && i.price * i.qty < 1000)`,
		`payload.items.map(i, i.sku).filter(s, s.matches("^[A-Z]$")).size() == 2`,
		`payload.orders.exists(o, o.lines.exists(l, l.sku == "Z"))`,
		`payload.id == 42 || payload.big == 9007199254740993`,
		`double(payload.count) * 1.5 >= 4.5`,
		`payload.note == null ? true : payload.note.x == 1`,
		`timestamp(payload.created_at) > timestamp("2024-01-01T00:00:00Z")`,
		`metadata.exists(k, k.endsWith("ant") && metadata[k].size() > 2)`,
		"payload.amount > 100 &&\n  // multi-line\n  type == 'order.created'",
		`[1, 2, 3].all(x, [1, 2, 3].exists(y, x == y))`,
		`{"a": 1}.a == 1 && b"abc".size() == 3 && 1u < 2u && -1 < 0`,
		`payload.amount >`,
		`paylod.amount > 100`,
		`1 + 2`,
		`((((((((((((((((((((((((((((((((((true))))))))))))))))))))))))))))))))))`,
		"'\\u00e9' == payload[\"\u00fcn\u00ef\"]",
		`payload.items.all(a, payload.items.all(b, payload.items.all(c, a.qty + b.qty + c.qty > 0)))`,
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := compile(expr)
		if err != nil {
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile(%q): %T %v is not a *CompileError", expr, err, err)
			}
			if !strings.HasPrefix(err.Error(), "filter: ") || ce.Message == "" || ce.Line < 0 || ce.Column < 0 {
				t.Fatalf("Compile(%q): malformed error %+v", expr, *ce)
			}
			return
		}
		if flt.Source() != expr {
			t.Fatalf("Source() = %q, want %q", flt.Source(), expr)
		}
		fast, fastErr := flt.Evaluate(fuzzEvent, DefaultLimits())
		tracked, trackedErr := trackedEval(flt, fuzzEvent, DefaultLimits())
		var ee *EvalError
		if !errors.As(trackedErr, &ee) || ee.Reason != ReasonCost {
			if tracked != fast || errText(trackedErr) != errText(fastErr) {
				t.Fatalf("%q: fast evaluation %v, %v; tracked %v, %v", expr, fast, fastErr, tracked, trackedErr)
			}
		}
		if fastErr != nil && (!errors.As(fastErr, &ee) || ee.Message == "" || ee.Reason != ReasonError && ee.Reason != ReasonCost) {
			t.Fatalf("%q: malformed evaluation error %#v", expr, fastErr)
		}
		// The cost check never fails for another reason than the cost.
		if err := flt.CheckCost(DefaultLimits()); err != nil && !strings.Contains(err.Error(), "the filter is too expensive") {
			t.Fatalf("%q: CheckCost: %v", expr, err)
		}
		flt.Match("x", "text/plain", []byte("not json"), nil)
	})
}

// fuzzLimits has a small budget, so that FuzzMatch's payloads reach past
// the safe scale.
var fuzzLimits = Limits{MaxPayloadBytes: 0}

// fuzzFilter checks one field, so that its result can be computed
// independently with encoding/json.
const fuzzFilter = `payload.a == 1 || (has(payload.items) && payload.items.exists(i, i == "x"))`

func FuzzMatch(f *testing.F) {
	for _, seed := range []string{
		orderPayload,
		`{"a": 1}`, `{"a": 1.0}`, `{"a": 1e0}`, `{"a": 10e-1}`, `{"a": 2}`, `{"a": "1"}`, `{"a": true}`,
		`{"a": 9223372036854775807}`, `{"a": 9223372036854775808}`, `{"a": -1e400}`,
		`{"items": ["y", "x"]}`, `{"items": "x"}`, `{"items": [["x"]]}`,
		`[1]`, `1`, `"x"`, `null`, `{}`, ``, `{`, `{"a": 1} {}`, `{"a":1,}`, "\xff", `{"\u0061": 1}`,
		`{"a": [1, {"b": [null, true, false, 1.5, "s\n\u00e9"]}]}`,
		`{"s": "\ud83d\ude00 \ud800 \udc00x \u0000 \/ \b\f\r\t\\ \""}`, "{\"s\": \"\xff\xfe\xc3\"}", "{\"\xe9\": 1}",
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`, `[-0, 0.5e+3, 1E-2, -12.75, 123456789012345678, 1234567890123456789, -9223372036854775808]`,
		` [ ] `, `{"a" : { } , "b":[ ]}`, `-`, `1.`, `.5`, `1e`, `01`, `+1`, `tru`, `nul`, `"\x"`, `"\u12"`, `[1,]`, `{"a"}`, `{1:2}`,
	} {
		f.Add([]byte(seed))
	}
	flt, err := Compile(fuzzFilter)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev := NewEvent("t", "application/json", payload, nil)
		got := flt.MatchEvent(ev)
		if want := referenceMatch(payload); got != want {
			t.Fatalf("payload %q: MatchEvent = %v, want %v", payload, got, want)
		}
		if ev.IsJSON() != json.Valid(payload) {
			t.Fatalf("payload %q: IsJSON = %v, json.Valid = %v", payload, ev.IsJSON(), json.Valid(payload))
		}
		if ev.IsJSON() {
			// The parser agrees with encoding/json value for value.
			want, wantSize := referenceDecode(t, payload)
			if got := native(ev.activation().payload); !reflect.DeepEqual(got, want) {
				t.Fatalf("payload %q: parsed as %#v, encoding/json gives %#v", payload, got, want)
			}
			// Values dropped as duplicate keys may count too: the scale is
			// an upper bound. It is below the payload's length.
			if ev.scale < wantSize || ev.scale >= max(len(payload), 1) {
				t.Fatalf("payload %q: scale %d, want at least %d and under %d", payload, ev.scale, wantSize, len(payload))
			}
		}
		if NewEvent("t", "text/plain", payload, nil).IsJSON() {
			t.Fatal("a text/plain payload is JSON")
		}
		if l := flt.limits(fuzzLimits); ev.IsJSON() && ev.scale <= l.safeScale {
			// The fast path's premise: the actual cost is within the budget.
			prog, err := l.trackedProgram(flt)
			if err != nil {
				t.Fatal(err)
			}
			_, det, err := prog.Eval(ev.activation())
			if err != nil && strings.Contains(err.Error(), "cost limit") {
				t.Fatalf("payload %q: scale %d within the safe scale %d, but %v", payload, ev.scale, l.safeScale, err)
			}
			if det != nil && *det.ActualCost() > l.budget {
				t.Fatalf("payload %q: actual cost %d", payload, *det.ActualCost())
			}
		}
	})
}

// referenceDecode decodes payload with encoding/json, numbers as the
// package documents them, and computes the payload's scale.
func referenceDecode(t *testing.T, payload []byte) (any, int) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("payload %q: %v", payload, err)
	}
	size := 0
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case json.Number:
			if !strings.ContainsAny(string(v), ".eE") {
				if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
					return i
				}
			}
			f, _ := strconv.ParseFloat(string(v), 64)
			return f
		case string:
			size = max(size, utf8.RuneCountInString(v))
		case []any:
			size = max(size, 2*len(v))
			for i := range v {
				v[i] = walk(v[i])
			}
		case map[string]any:
			size = max(size, 2*len(v))
			for k := range v {
				size = max(size, utf8.RuneCountInString(k))
				v[k] = walk(v[k])
			}
		}
		return v
	}
	return walk(v), size
}

// native converts a parsed payload back to Go values.
func native(v ref.Val) any {
	switch v := v.(type) {
	case types.Int:
		return int64(v)
	case types.Double:
		return float64(v)
	case types.String:
		return string(v)
	case types.Bool:
		return bool(v)
	case types.Null:
		return nil
	case traits.Lister:
		n := int(v.Size().(types.Int))
		out := make([]any, n)
		for i := range n {
			out[i] = native(v.Get(types.Int(i)))
		}
		return out
	case traits.Mapper:
		out := map[string]any{}
		for it := v.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			out[string(k.(types.String))] = native(v.Get(k))
		}
		return out
	}
	return fmt.Sprintf("unexpected %T", v)
}

// referenceMatch computes fuzzFilter with encoding/json alone.
func referenceMatch(payload []byte) bool {
	if !json.Valid(payload) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return false
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return false // payload.a on a non-map is an error, and so is the whole || here
	}
	a := obj["a"]
	aIsOne := false
	if n, ok := a.(json.Number); ok {
		f, _ := strconv.ParseFloat(string(n), 64)
		aIsOne = f == 1
	}
	if aIsOne {
		return true
	}
	items, hasItems := obj["items"]
	if !hasItems {
		return false // false || false, or error || false
	}
	switch items := items.(type) {
	case []any:
		for _, it := range items {
			if s, ok := it.(string); ok && s == "x" {
				return true // CEL's || lets true win over an error on the left
			}
		}
	case map[string]any:
		_, ok := items["x"] // exists over a map ranges over its keys
		return ok
	}
	return false // no match, or exists over a scalar: an error
}
