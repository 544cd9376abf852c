package filter

import (
	"slices"
	"testing"
)

func TestTerm(t *testing.T) {
	num := func(f float64) Key { k, _ := numberKey(f); return k }
	str := func(s string) Key { return Key{kind: keyString, str: s} }
	cases := []struct {
		expr string
		path string // "" when the filter has no term
		keys []Key
	}{
		{`payload.seq == 5`, `payload["seq"]`, []Key{num(5)}},
		{`5 == payload.seq`, `payload["seq"]`, []Key{num(5)}},
		{`payload.seq == 5u`, `payload["seq"]`, []Key{num(5)}},
		{`payload.seq == 5.0`, `payload["seq"]`, []Key{num(5)}},
		{`payload.seq == -0.0`, `payload["seq"]`, []Key{num(0)}},
		{`payload["a"].b["c.d"] == "x"`, `payload["a"]["b"]["c.d"]`, []Key{str("x")}},
		{`payload.ok == true`, `payload["ok"]`, []Key{{kind: keyBool, num: 1}}},
		{`payload.note == null`, `payload["note"]`, []Key{{kind: keyNull}}},
		{`payload.amount > 100 && payload.kind == "a"`, `payload["kind"]`, []Key{str("a")}},
		{`(payload.a > 1 && (has(payload.b) && payload.c == "x")) && payload.d != 2`, `payload["c"]`, []Key{str("x")}},
		{`payload.tier in ["gold", "silver", "gold"]`, `payload["tier"]`, []Key{str("gold"), str("silver")}},
		{`payload.n in [1, 1.0, 1u, 2]`, `payload["n"]`, []Key{num(1), num(2)}},
		{`metadata.region == "eu"`, `metadata["region"]`, []Key{str("eu")}},
		{`metadata["region"] == "eu"`, `metadata["region"]`, []Key{str("eu")}},
		{`type == "order.created"`, `type`, []Key{str("order.created")}},
		// Equality beats membership, which beats the event type.
		{`type == "t" && payload.a in [1, 2] && payload.b == 3`, `payload["b"]`, []Key{num(3)}},
		{`type == "t" && payload.a in [1, 2]`, `payload["a"]`, []Key{num(1), num(2)}},
		// Not a necessary equality with a constant.
		{`payload.seq == 5 || payload.seq == 6`, "", nil},
		{`!(payload.seq == 5)`, "", nil},
		{`payload.seq != 5`, "", nil},
		{`payload.a == payload.b`, "", nil},
		{`payload.seq == 2 + 3`, "", nil},
		{`payload.b == b"x"`, "", nil},
		{`payload.items[0] == "x"`, "", nil},
		{`payload.items.exists(i, i == "x")`, "", nil},
		{`has(payload.a) == true`, "", nil},
		{`payload.a in [1, payload.b]`, "", nil},
		{`payload.a in []`, "", nil},
		{`payload.size() == 2`, "", nil},
		{`payload.a == 1 ? true : payload.b == 2`, "", nil},
	}
	for _, tc := range cases {
		f := mustCompile(t, tc.expr)
		term, ok := f.Term()
		if tc.path == "" {
			if ok {
				t.Errorf("%s: term %s %v, want none", tc.expr, term.Path, term.Keys)
			}
			continue
		}
		if !ok || term.Path.String() != tc.path || !slices.Equal(term.Keys, tc.keys) {
			t.Errorf("%s: term %v, want %s %v", tc.expr, term, tc.path, tc.keys)
		}
	}
}

func TestEventKey(t *testing.T) {
	ev := NewEvent("order.created", "application/json", []byte(`{"a": {"b": 9007199254740993, "c": [1], "d": null, "e": 1.5e0, "f": "s"}, "g": true}`), map[string]string{"region": "eu"})
	path := func(expr string) *Path {
		term, ok := mustCompile(t, expr+` == "1"`).Term()
		if !ok {
			t.Fatalf("%s: no term", expr)
		}
		return term.Path
	}
	cases := []struct {
		path string
		want Key
		ok   bool
	}{
		{`payload.a.b`, Key{kind: keyNumber, num: 9007199254740992}, true},
		{`payload.a.c`, Key{}, false},
		{`payload.a.d`, Key{kind: keyNull}, true},
		{`payload.a.e`, Key{kind: keyNumber, num: 1.5}, true},
		{`payload.a.f`, Key{kind: keyString, str: "s"}, true},
		{`payload.a.missing`, Key{}, false},
		{`payload.a.f.deeper`, Key{}, false},
		{`payload.g`, Key{kind: keyBool, num: 1}, true},
		{`metadata.region`, Key{kind: keyString, str: "eu"}, true},
		{`metadata.zone`, Key{}, false},
	}
	for _, tc := range cases {
		got, ok := ev.Key(path(tc.path))
		if ok != tc.ok || got != tc.want {
			t.Errorf("Key(%s) = %v, %v; want %v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
	if k, ok := ev.Key(mustTerm(t, `type == "x"`).Path); !ok || k.str != "order.created" {
		t.Errorf("Key(type) = %v, %v", k, ok)
	}
	if _, ok := NewEvent("t", "text/plain", []byte(`{"a": 1}`), nil).Key(path(`payload.a`)); ok {
		t.Error("a text/plain payload has a key")
	}
}

func mustTerm(t testing.TB, expr string) Term {
	t.Helper()
	term, ok := mustCompile(t, expr).Term()
	if !ok {
		t.Fatalf("%s: no term", expr)
	}
	return term
}

// FuzzTerm checks the property the index relies on: whenever a filter with
// a term matches an event, the event's key at the term's path is one of
// the term's keys.
func FuzzTerm(f *testing.F) {
	for _, seed := range []struct{ expr, payload string }{
		{`payload.seq == 5`, `{"seq": 5}`},
		{`payload.seq == 5`, `{"seq": 5.0}`},
		{`payload.seq == 5u`, `{"seq": 5e0}`},
		{`payload.seq == 5.0`, `{"seq": 5}`},
		{`payload.seq == 9007199254740993`, `{"seq": 9007199254740992.0}`},
		{`payload.seq == 9223372036854775807`, `{"seq": 9223372036854775808}`},
		{`payload.seq == 18446744073709551615u`, `{"seq": 18446744073709551615}`},
		{`payload.seq == -0.0`, `{"seq": 0}`},
		{`payload.seq == 0`, `{"seq": -0.0}`},
		{`payload.seq in [1, 2.5, 3u]`, `{"seq": 2.5}`},
		{`payload.seq in [1.0, "1", true, null]`, `{"seq": null}`},
		{`payload.a.b == "x" && payload.n > 1`, `{"a": {"b": "x"}, "n": 2}`},
		{`payload["a"]["b"] == true`, `{"a": {"b": true}}`},
		{`metadata.region == "eu" && payload.x == 1`, `{"x": 1}`},
		{`type == "t" && payload.s in ["a", "b"]`, `{"s": "b"}`},
		{`payload.seq == 1e400`, `{"seq": 1e999}`},
		{`payload.s == "\u00e9"`, `{"s": "\u00e9"}`},
		{`payload.s == b"x"`, `{"s": "x"}`},
	} {
		f.Add(seed.expr, []byte(seed.payload))
	}
	meta := map[string]string{"region": "eu"}
	f.Fuzz(func(t *testing.T, expr string, payload []byte) {
		flt, err := compile(expr)
		if err != nil {
			return
		}
		term, ok := flt.Term()
		if !ok {
			return
		}
		ev := NewEvent("t", "application/json", payload, meta)
		if !flt.MatchEvent(ev) {
			return
		}
		k, ok := ev.Key(term.Path)
		if !ok || !slices.Contains(term.Keys, k) {
			t.Fatalf("%q matches %q, but its key at %s is %v (%v), not one of %v", expr, payload, term.Path, k, ok, term.Keys)
		}
	})
}
