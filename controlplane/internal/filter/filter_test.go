package filter

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

const orderPayload = `{
  "id": 42,
  "amount": 150.5,
  "count": 3,
  "big": 9007199254740993,
  "ratio": 2.5e-1,
  "currency": "EUR",
  "customer": {"name": "Ada", "tier": "gold", "address": {"country": "FR", "city": "Paris"}},
  "items": [
    {"sku": "A", "qty": 2, "price": 10},
    {"sku": "B", "qty": 1, "price": 5.5, "tags": ["sale"]}
  ],
  "tags": ["new", "vip"],
  "orders": [{"lines": [{"sku": "X"}]}, {"lines": [{"sku": "Y"}, {"sku": "Z"}]}],
  "active": true,
  "note": null,
  "ünï": "cödé"
}`

var orderMetadata = map[string]string{"region": "eu", "tenant": "acme"}

func mustCompile(t testing.TB, expr string) *Filter {
	t.Helper()
	f, err := Compile(expr)
	if err != nil {
		t.Fatalf("Compile(%q): %v", expr, err)
	}
	return f
}

func TestMatch(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		// Numbers: integral literals are ints, the rest doubles; both compare naturally.
		{`payload.amount > 100`, true},
		{`payload.amount > 200`, false},
		{`payload.amount > 150.4 && payload.amount < 150.6`, true},
		{`payload.amount == 150.5`, true},
		{`payload.id == 42`, true},
		{`payload.id == 42.0`, true},
		{`payload.id == 43`, false},
		{`payload.id > 41.5`, true},
		{`payload.id in [1, 42, 99]`, true},
		{`payload.count + 1 == 4`, true},
		{`payload.big == 9007199254740993`, true},
		{`payload.big == 9007199254740992`, false},
		{`payload.ratio == 0.25`, true},
		{`double(payload.count) * 1.5 == 4.5`, true},
		{`payload.count * 1.5 == 4.5`, false}, // int * double: no such overload, an error
		// Strings and nested objects.
		{`payload.currency == "EUR"`, true},
		{`payload.currency == "USD"`, false},
		{`payload.customer.address.country == "FR"`, true},
		{`payload["customer"]["address"]["city"] == "Paris"`, true},
		{`payload.customer.tier in ["gold", "platinum"]`, true},
		{`payload.customer.name.startsWith("A") && payload.customer.name.endsWith("a")`, true},
		{`payload.customer.name.matches("^[A-Z][a-z]+$")`, true},
		{`payload.customer.name.contains("x")`, false},
		{`payload["ünï"] == "cödé"`, true},
		// Lists.
		{`payload.items.exists(i, i.sku == "A")`, true},
		{`payload.items.exists(i, i.sku == "Z")`, false},
		{`payload.items.all(i, i.qty > 0)`, true},
		{`payload.items.all(i, i.qty > 1)`, false},
		{`payload.items.exists_one(i, i.price < 6)`, true},
		{`payload.items.filter(i, i.price > 6).size() == 1`, true},
		{`payload.items.map(i, i.qty).exists(q, q == 2)`, true},
		{`payload.items.exists(i, has(i.tags) && "sale" in i.tags)`, true},
		{`payload.orders.exists(o, o.lines.exists(l, l.sku == "Z"))`, true},
		{`payload.orders.exists(o, o.lines.exists(l, l.sku == "W"))`, false},
		{`"vip" in payload.tags`, true},
		{`"old" in payload.tags`, false},
		{`size(payload.tags) == 2 && payload.tags[0] == "new"`, true},
		{`payload.tags == ["new", "vip"]`, true},
		{`payload.customer.address == {"country": "FR", "city": "Paris"}`, true},
		// Presence and null.
		{`has(payload.customer)`, true},
		{`has(payload.missing)`, false},
		{`!has(payload.missing)`, true},
		{`has(payload.customer.address.zip)`, false},
		{`has(payload.note)`, true},
		{`payload.note == null`, true},
		{`"customer" in payload`, true},
		// Missing fields mean no match, whichever way the expression
		// leans; so do errors (reported, see wantErr).
		{`payload.missing == 1`, false},
		{`payload.missing != 1`, false},
		{`!(payload.missing == 1)`, false},
		{`payload.tags[5] == "x"`, false},
		{`payload.currency > 1`, false},
		{`payload.note.x == 1`, false},
		{`has(payload.missing) && payload.missing.x == 1`, false},
		{`!has(payload.missing) || payload.missing.x == 1`, true},
		// Dyn results: only a boolean true matches.
		{`payload.active`, true},
		{`payload.currency`, false},
		{`payload.missing`, false},
		// Type and metadata.
		{`type == "order.created"`, true},
		{`type.startsWith("order.")`, true},
		{`type == "order.deleted"`, false},
		{`type in ["order.created", "order.updated"]`, true},
		{`metadata["region"] == "eu"`, true},
		{`metadata.region == "eu"`, true},
		{`"tenant" in metadata`, true},
		{`has(metadata.tenant)`, true},
		{`has(metadata.missing)`, false},
		{`metadata["missing"] == "x"`, false},
		{`metadata.exists(k, k == "tenant" && metadata[k] == "acme")`, true},
		{`payload.amount > 100 && metadata["region"] == "eu" && type == "order.created"`, true},
		{`payload.amount > 100 && metadata["region"] == "us"`, false},
		{"payload.amount > 100 &&\n  // a comment\n  metadata.region == 'eu'", true},
		// Constant expressions.
		{`true`, true},
		{`false`, false},
	}
	// The expressions that cannot be evaluated on the event, with the
	// error Evaluate reports; the others report none.
	wantErr := map[string]string{
		`payload.count * 1.5 == 4.5`: "the filter failed on this event: no such overload",
		`payload.currency > 1`:       "the filter failed on this event: no such overload",
		`payload.currency`:           "the filter failed on this event: its result is a string, not a boolean",
	}
	ev := NewEvent("order.created", "application/json", []byte(orderPayload), orderMetadata)
	for _, tt := range tests {
		f := mustCompile(t, tt.expr)
		if got := f.MatchEvent(ev); got != tt.want {
			t.Errorf("%s: MatchEvent = %v, want %v", tt.expr, got, tt.want)
		}
		if got := f.Match("order.created", "application/json", []byte(orderPayload), orderMetadata); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.expr, got, tt.want)
		}
		got, err := f.Evaluate(ev, DefaultLimits())
		if got != tt.want || errText(err) != wantErr[tt.expr] {
			t.Errorf("%s: Evaluate = %v, %q; want %v, %q", tt.expr, got, errText(err), tt.want, wantErr[tt.expr])
		}
		var ee *EvalError
		if err != nil && (!errors.As(err, &ee) || ee.Reason != ReasonError) {
			t.Errorf("%s: error %#v is not an *EvalError with reason %q", tt.expr, err, ReasonError)
		}
		// The cost-tracked program must agree with the fast one.
		got, err = trackedEval(f, ev, DefaultLimits())
		if got != tt.want || errText(err) != wantErr[tt.expr] {
			t.Errorf("%s: tracked evaluation = %v, %q; want %v, %q", tt.expr, got, errText(err), tt.want, wantErr[tt.expr])
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// trackedEval evaluates with the program that enforces lim's budget,
// whatever the event's scale.
func trackedEval(f *Filter, ev *Event, lim Limits) (bool, error) {
	l := f.limits(lim)
	prog, err := l.trackedProgram(f)
	if err != nil {
		return false, err
	}
	out, _, err := prog.Eval(ev.activation())
	return result(out, err, l, true)
}

func TestMatchPayloadShapes(t *testing.T) {
	tests := []struct {
		payload string
		expr    string
		want    bool
	}{
		{`[1, 2, 3]`, `payload == [1, 2, 3]`, true},
		{`[1, 2, 3]`, `payload.exists(x, x == 2)`, true},
		{`"hello"`, `payload == "hello"`, true},
		{`"hello"`, `payload.startsWith("he")`, true},
		{`42`, `payload == 42`, true},
		{`-0`, `payload == 0`, true},
		{`1e2`, `payload == 100`, true},
		{`12345678901234567890123`, `payload > 1e22`, true},
		{`1e400`, `payload > 1.7e308`, true},
		{`null`, `payload == null`, true},
		{`true`, `payload`, true},
		{`false`, `payload`, false},
		{`{}`, `size(payload) == 0`, true},
		{`{"a": {}}`, `has(payload.a) && !has(payload.a.b)`, true},
		{`{"a": 1, "a": 2}`, `payload.a == 2`, true},
		{"  \n\t{\"a\": 1}\r\n ", `payload.a == 1`, true},
		{`{"s": "\u00e9\ud83d\ude00\n"}`, `payload.s == "é😀\n"`, true},
		{`{"a": 1}`, `payload.a == 1u`, true},
		{`{"deep": {"a": {"b": {"c": {"d": [[[{"e": true}]]]}}}}}`, `payload.deep.a.b.c.d[0][0][0].e`, true},
	}
	for _, tt := range tests {
		f := mustCompile(t, tt.expr)
		if got := f.Match("t", "application/json", []byte(tt.payload), nil); got != tt.want {
			t.Errorf("payload %s, %s: got %v, want %v", tt.payload, tt.expr, got, tt.want)
		}
	}
}

func TestNonJSONNeverMatches(t *testing.T) {
	filters := []string{`true`, `type == "order.created"`, `metadata.region == "eu"`, `!has(payload.x)`, `payload == null`}
	tests := []struct {
		name, contentType, payload string
	}{
		{"text/plain content type", "text/plain", `{"a": 1}`},
		{"xml content type", "application/xml", `{"a": 1}`},
		{"json-like content type", "application/jsonl", `{"a": 1}`},
		{"x-json content type", "application/x-json", `{"a": 1}`},
		{"empty payload", "application/json", ``},
		{"whitespace payload", "application/json", "  \n"},
		{"plain text", "application/json", `hello`},
		{"truncated", "application/json", `{"a": 1`},
		{"trailing data", "application/json", `{"a": 1} x`},
		{"two values", "application/json", `{"a": 1}{"b": 2}`},
		{"two scalars", "application/json", `1 2`},
		{"single quotes", "application/json", `{'a': 1}`},
		{"trailing comma", "application/json", `{"a": 1,}`},
		{"NaN", "application/json", `NaN`},
		{"leading zero", "application/json", `01`},
		{"control character", "application/json", "\"a\x01b\""},
		{"binary", "application/json", "\x00\xff\xfe"},
	}
	for _, tt := range tests {
		ev := NewEvent("order.created", tt.contentType, []byte(tt.payload), orderMetadata)
		if ev.IsJSON() {
			t.Errorf("%s: IsJSON() = true", tt.name)
		}
		for _, expr := range filters {
			if mustCompile(t, expr).MatchEvent(ev) {
				t.Errorf("%s: %s matched", tt.name, expr)
			}
		}
	}
}

func TestJSONDepthLimit(t *testing.T) {
	// The same limit as encoding/json.
	for depth, want := range map[int]bool{maxJSONDepth: true, maxJSONDepth + 1: false} {
		payload := []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
		if got := NewEvent("t", "", payload, nil).IsJSON(); got != want || got != json.Valid(payload) {
			t.Errorf("depth %d: IsJSON = %v, want %v", depth, got, want)
		}
	}
}

func TestIsJSONContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"":                                  true,
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"Application/JSON;charset=UTF-8":    true,
		" application/json ":                true,
		"application/cloudevents+json":      true,
		"application/vnd.api+json; v=2":     true,
		"application/problem+JSON":          true,
		"text/json+json":                    true,
		"application/jsonl":                 false,
		"application/x-ndjson":              false,
		"application/xml":                   false,
		"text/plain":                        false,
		"application/octet-stream":          false,
		"+json":                             false,
		"/+json":                            false,
		"application/+json":                 false,
		"json":                              false,
		"application/json-patch+xml":        false,
		"multipart/form-data; boundary=x":   false,
		"application/x-www-form-urlencoded": false,
	} {
		if got := IsJSONContentType(ct); got != want {
			t.Errorf("IsJSONContentType(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	long := "payload.a == '" + strings.Repeat("x", MaxSourceLength) + "'"
	tests := []struct {
		expr string
		want string // the full error text
	}{
		{`paylod.amount > 100`, `filter: line 1, column 1: undeclared reference to 'paylod'`},
		{`payload.amount > 100 && paylod.x == 1`, `filter: line 1, column 25: undeclared reference to 'paylod'`},
		{"payload.amount > 100 &&\n  metadata.region == 'eu' ||\n    typ == 'x'", `filter: line 3, column 5: undeclared reference to 'typ'`},
		{`payload["üüü"] == "é" && paylod.x == 1`, `filter: line 1, column 26: undeclared reference to 'paylod'`},
		{"type == 'a'\n\n  && bogus(1)", `filter: line 3, column 11: undeclared reference to 'bogus'`},
		{`payload.amount >`, `filter: line 1, column 17: syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`},
		{"payload.a == 1 &&\n  payload.b === 2", `filter: line 2, column 15: syntax error: token recognition error at: '= '`},
		{`type == 'unterminated`, `filter: line 1, column 9: syntax error: token recognition error at: ''unterminated'`},
		{`type + 1 == "x"`, `filter: line 1, column 6: found no matching overload for '_+_' applied to '(string, int)'`},
		{`metadata.region > 1`, `filter: line 1, column 17: found no matching overload for '_>_' applied to '(string, int)'`},
		{`type.matches("(")`, "filter: error parsing regexp: missing closing ): `(`"},
		{`1 + 2`, `filter: the filter must be a boolean expression, but this one evaluates to int`},
		{`type`, `filter: the filter must be a boolean expression, but this one evaluates to string`},
		{`metadata`, `filter: the filter must be a boolean expression, but this one evaluates to map(string, string)`},
		{`size(payload.items)`, `filter: the filter must be a boolean expression, but this one evaluates to int`},
		{`payload.items.map(i, i.sku == "A")`, `filter: the filter must be a boolean expression, but this one evaluates to list(bool)`},
		{`null`, `filter: the filter must be a boolean expression, but this one evaluates to null`},
		{``, `filter: the filter expression is empty`},
		{" \n\t", `filter: the filter expression is empty`},
		{"type == '\xff'", `filter: the filter expression is not valid UTF-8`},
		{long, fmt.Sprintf("filter: the filter expression is %d characters long; the limit is 4096", len(long))},
		{strings.Repeat("(", 40) + "true" + strings.Repeat(")", 40), `filter: the expression is nested too deeply; the limit is 32 levels`},
		{"payload.a" + strings.Repeat(" + 1", 40) + " == 1", `filter: the expression is nested too deeply; the limit is 32 levels`},
	}
	for _, tt := range tests {
		f, err := Compile(tt.expr)
		if err == nil {
			t.Errorf("Compile(%q) = %v, want an error", tt.expr, f.Source())
			continue
		}
		var ce *CompileError
		if !errors.As(err, &ce) {
			t.Errorf("Compile(%q): error %T is not a *CompileError", tt.expr, err)
		}
		if err.Error() != tt.want {
			t.Errorf("Compile(%q):\n got: %s\nwant: %s", tt.expr, err, tt.want)
		}
	}
}

func TestCompileErrorPosition(t *testing.T) {
	_, err := Compile("type == 'order.created' &&\n   paylod.amount > 100")
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *CompileError", err)
	}
	want := CompileError{Line: 2, Column: 4, Message: "undeclared reference to 'paylod'"}
	if *ce != want {
		t.Fatalf("got %+v, want %+v", *ce, want)
	}
}

func TestCompileAcceptsRealisticFilters(t *testing.T) {
	var ors []string
	for i := range 60 {
		ors = append(ors, fmt.Sprintf("payload.status == 'state-%d'", i))
	}
	for _, expr := range []string{
		strings.Join(ors, " || "),
		"payload.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t == 1",
		"payload.orders.exists(o, o.lines.exists(l, l.items.exists(i, i.sku == 'A')))",
		"((((((((((payload.a == 1))))))))))",
		"payload.amount > 100 ? metadata.region == 'eu' : type.startsWith('order.')",
		"timestamp(payload.created_at) > timestamp('2024-01-01T00:00:00Z')",
		"duration(payload.ttl) < duration('1h')",
		"string(payload.id) == '42' && int(payload.count) == 3",
		"payload.email.matches('^[^@]+@example\\\\.com$')",
		"size(payload.items.filter(i, i.qty > 1)) > 0",
		"payload.items.all(i, i.price * i.qty < 1000)",
	} {
		if _, err := Compile(expr); err != nil {
			t.Errorf("Compile(%q): %v", expr, err)
		}
	}
}

// issueExpr is the filter of issue 11: four comprehensions nested over the
// same payload list.
const issueExpr = `payload.items.all(a, payload.items.all(b, payload.items.all(c, payload.items.all(d, a+b+c+d >= 0))))`

func TestCheckCost(t *testing.T) {
	lim := DefaultLimits()
	// Ordinary filters fit the budget of the largest payload.
	for _, expr := range []string{
		`payload.amount > 100`,
		`payload.status == "paid" && payload.currency in ["EUR", "USD"]`,
		`payload.customer.tier in ["gold", "platinum"] && has(payload.customer.email) && payload.customer.email.endsWith(".fr")`,
		`type.startsWith("order.") && metadata["region"] == "eu"`,
		`payload.items.exists(i, i.sku == "A")`,
		`payload.items.all(i, i.qty > 0 && i.price * i.qty < 1000)`,
		`payload.items.exists(i, i.sku == "A" && i.qty > 2 && i.price < 100.0 || i.tags.size() > 3)`,
		`payload.items.exists(i, i.sku == "A") || payload.items.exists(i, i.sku == "B")`,
		`size(payload.items.filter(i, i.qty > 1)) > 0`,
		`payload.items.map(i, i.sku).exists(s, s == "A")`,
		`payload.tags.exists(t, t.startsWith("urgent"))`,
		`"vip" in payload.tags`,
		`payload.description.contains("urgent")`,
		`payload.email.matches('^[^@]+@example\\.com$')`,
		`payload.name == payload.other`,
		`payload.exists(k, k.startsWith("x-"))`,
		`metadata.exists(k, k.endsWith("ant") && metadata[k].contains("acme"))`,
		`timestamp(payload.created_at) > timestamp("2024-01-01T00:00:00Z")`,
		strings.Repeat(`payload.status == "state" || `, 100) + `true`,
	} {
		f := mustCompile(t, expr)
		if err := f.CheckCost(lim); err != nil {
			t.Errorf("CheckCost(%s): %v", expr, err)
			continue
		}
		// An accepted filter is evaluated without cost tracking for
		// every payload the server accepts.
		if s := f.limits(lim).safeScale; s < lim.MaxPayloadBytes {
			t.Errorf("%s: safe scale %d below the payload limit %d", expr, s, lim.MaxPayloadBytes)
		}
	}
	// Nested comprehensions over payload lists do not, nor do string
	// scans of every item of a list (the estimate cannot tell that the
	// items' strings share the payload's bytes).
	const assumptions = " for a payload of up to 1048576 bytes (the server's --max-payload-bytes), in which a list or object has up to 524288 entries and a string up to 1048576 characters," +
		" over the budget of 16877216 units; comprehensions nested over payload lists (such as payload.items.all(a, payload.items.all(b, ...))) multiply the lengths of the lists"
	for _, expr := range []string{
		issueExpr,
		`payload.items.exists(a, payload.items.exists(b, a == b))`,
		`payload.items.map(a, payload.items.filter(b, a.id == b.parent)).size() > 0`,
		`payload.orders.exists(o, o.lines.exists(l, l.sku == "A"))`,
		`payload.tags.exists(t, t.contains("x"))`,
		`payload.items.exists(i, i.name.matches("^a"))`,
	} {
		err := mustCompile(t, expr).CheckCost(lim)
		var ce *CompileError
		if !errors.As(err, &ce) || ce.Line != 0 {
			t.Errorf("CheckCost(%s) = %v, want a *CompileError without position", expr, err)
			continue
		}
		msg := err.Error()
		est, ok := strings.CutPrefix(msg, "filter: the filter is too expensive: its estimated cost is ")
		if est, ok = strings.CutSuffix(est, assumptions); !ok || !strings.HasPrefix(est, "up to ") && expr != issueExpr {
			t.Errorf("CheckCost(%s):\n got: %s\nwant: ...its estimated cost is up to N units%s", expr, msg, assumptions)
		}
		if expr == issueExpr && est != "unbounded (beyond 2^64 units)" {
			t.Errorf("CheckCost(issue's filter): estimate %q", est)
		}
	}
	// The budget follows the payload limit: with 14-byte payloads (lists
	// of at most 7 items) the issue's filter is cheap.
	if err := mustCompile(t, issueExpr).CheckCost(Limits{MaxPayloadBytes: 14}); err != nil {
		t.Errorf("CheckCost with 14-byte payloads: %v", err)
	}
	if got, want := lim.Budget(), uint64(BudgetBase+BudgetPerPayloadByte*(1<<20)); got != want || want != 16_877_216 {
		t.Errorf("Budget() = %d, want %d", got, want)
	}
}

// TestIssueFilterBeyondItsEstimate evaluates the issue's filter, as saved
// before the cost check or under a small payload limit, on events of a
// server with the default limits: small events match without cost
// tracking; large ones end in a reported budget overrun (cost limit or
// deadline) instead of a silent non-match.
func TestIssueFilterBeyondItsEstimate(t *testing.T) {
	f := mustCompile(t, issueExpr)
	lim := DefaultLimits()
	if f.CheckCost(lim) == nil {
		t.Fatal("the issue's filter passed CheckCost")
	}
	for _, tc := range []struct {
		items int
		match bool
	}{{5, true}, {30, false}, {1000, false}} {
		ev := NewEvent("t", "", []byte(`{"items":[`+strings.TrimSuffix(strings.Repeat("1,", tc.items), ",")+`]}`), nil)
		got, err := f.Evaluate(ev, lim)
		if got != tc.match {
			t.Errorf("%d items: matched = %v, want %v (error %v)", tc.items, got, tc.match, err)
		}
		var ee *EvalError
		switch {
		case tc.match && err != nil:
			t.Errorf("%d items: error %v", tc.items, err)
		case !tc.match && (!errors.As(err, &ee) || ee.Reason != ReasonCost):
			t.Errorf("%d items: error %#v, want an *EvalError with reason %q", tc.items, err, ReasonCost)
		}
	}
}

func TestCostLimitStopsPathologicalFilter(t *testing.T) {
	items := `[` + strings.Repeat(`{"x":1},`, 999) + `{"x":1}]`
	ev := NewEvent("t", "application/json", []byte(`{"items":`+items+`}`), nil)
	lim := Limits{MaxPayloadBytes: 0} // budget BudgetBase
	for _, expr := range []string{
		`payload.items.all(a, payload.items.all(b, payload.items.all(c, a.x + b.x + c.x > 0)))`,
		`payload.items.map(a, payload.items.map(b, payload.items.map(c, [a, b, c]))).size() > 0`,
		`payload.items.exists(a, payload.items.exists(b, payload.items.exists(c, a.x + b.x + c.x == 0)))`,
	} {
		f := mustCompile(t, expr)
		if ev.activation(); ev.scale <= f.limits(lim).safeScale {
			t.Fatalf("%s: payload scale %d is within the safe scale %d", expr, ev.scale, f.limits(lim).safeScale)
		}
		start := time.Now()
		matched, err := f.Evaluate(ev, lim)
		var ee *EvalError
		if matched || !errors.As(err, &ee) || ee.Reason != ReasonCost {
			t.Errorf("%s: Evaluate = %v, %#v; want a cost error", expr, matched, err)
		}
		// Generous: under -race and on a loaded machine.
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: took %v", expr, d)
		}
		// It is the cost limit that stops it when there is no deadline.
		_, err = trackedEval(f, ev, lim)
		if want := "the filter exceeded its cost budget of 100000 units on this event"; errText(err) != want {
			t.Errorf("%s: tracked evaluation error = %v, want %s", expr, err, want)
		}
	}
}

// TestStaticEstimateBoundsActualCost checks the premise of the fast path:
// when the event is within a filter's safe scale, the actual cost is
// within the budget.
func TestStaticEstimateBoundsActualCost(t *testing.T) {
	lim := Limits{MaxPayloadBytes: 0} // budget BudgetBase
	for _, expr := range []string{
		`payload.items.exists(i, i.s == "zzz")`,
		`payload.items.filter(i, i.s.contains("z")).size() > 0`,
		`payload.items.exists(a, payload.items.exists(b, a.s + b.s == "zz"))`,
		`payload.items.all(a, payload.items.all(b, payload.items.all(c, a.n + b.n + c.n < 100)))`,
		`payload.items.map(i, i.s + i.s).exists(s, s.matches("^z+$"))`,
		`payload.exists(k, k.startsWith("zz"))`,
		`"zz" in payload.items`,
	} {
		f := mustCompile(t, expr)
		l := f.limits(lim)
		n := min(l.safeScale/2, 5000)
		var b strings.Builder
		b.WriteString(`{"items":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"n":%d,"s":"%s"}`, i%7, strings.Repeat("a", min(i, n/10)))
		}
		b.WriteString(`]}`)
		ev := NewEvent("t", "", []byte(b.String()), nil)
		if !ev.IsJSON() {
			t.Fatal("payload is not JSON")
		}
		if ev.scale > l.safeScale {
			t.Fatalf("%s: scale %d over the safe scale %d", expr, ev.scale, l.safeScale)
		}
		prog, err := l.trackedProgram(f)
		if err != nil {
			t.Fatal(err)
		}
		_, det, err := prog.Eval(ev.activation())
		if err != nil && strings.Contains(err.Error(), "cost limit") {
			t.Errorf("%s: scale %d (safe %d): %v", expr, ev.scale, l.safeScale, err)
			continue
		}
		if c := *det.ActualCost(); c > l.budget {
			t.Errorf("%s: scale %d (safe %d): actual cost %d", expr, ev.scale, l.safeScale, c)
		}
	}
}

func TestDeadlineBackstop(t *testing.T) {
	// A long comprehension on the tracked path: cel-go's cost tracker slows
	// down more than linearly, and the deadline bounds it.
	f := mustCompile(t, `payload.items.all(a, payload.items.all(b, true))`)
	items := `[` + strings.Repeat(`1,`, 19999) + `1]`
	ev := NewEvent("t", "", []byte(`{"items":`+items+`}`), nil)
	start := time.Now()
	matched, err := f.Evaluate(ev, DefaultLimits())
	var ee *EvalError
	if matched || !errors.As(err, &ee) || ee.Reason != ReasonCost {
		t.Errorf("Evaluate = %v, %#v; want a cost error", matched, err)
	}
	if d := time.Since(start); d > MaxEvalTime+2*time.Second {
		t.Errorf("took %v", d)
	}
	t.Log(err)
}

func TestLimitsAreKeptPerFilter(t *testing.T) {
	f := mustCompile(t, `payload.items.exists(a, payload.items.exists(b, a == b))`)
	small, large := Limits{MaxPayloadBytes: 100}, DefaultLimits()
	ls, ll := f.limits(small), f.limits(large)
	if ls == ll || ls.budget != small.Budget() || ll.budget != large.Budget() {
		t.Fatalf("limits: %+v, %+v", ls, ll)
	}
	if f.limits(small) != ls || f.limits(large) != ll {
		t.Error("the settings of a Limits were computed again")
	}
	if ls.quickScale > ls.safeScale || ll.quickScale > ll.safeScale || ll.quickScale < 0 {
		t.Errorf("quick scales %d, %d above the safe scales %d, %d", ls.quickScale, ll.quickScale, ls.safeScale, ll.safeScale)
	}
	if ls.safeScale < small.MaxPayloadBytes {
		t.Errorf("safe scale %d under 100-byte payloads, for which the filter passes CheckCost (%v)", ls.safeScale, f.CheckCost(small))
	}
}

func TestCompileCache(t *testing.T) {
	a := mustCompile(t, `type == "cache.test"`)
	b := mustCompile(t, `type == "cache.test"`)
	if a != b {
		t.Error("the same text compiled twice gave different filters")
	}
	if a.Source() != `type == "cache.test"` || a.String() != a.Source() {
		t.Errorf("Source() = %q", a.Source())
	}

	c := newLRU(2)
	f1, f2, f3 := &Filter{src: "1"}, &Filter{src: "2"}, &Filter{src: "3"}
	c.add("1", f1)
	c.add("2", f2)
	if got, _ := c.get("1"); got != f1 { // 1 is now the most recent
		t.Fatal("get(1) missed")
	}
	c.add("3", f3) // evicts 2
	if _, ok := c.get("2"); ok {
		t.Error("2 was not evicted")
	}
	if got := c.add("1", &Filter{src: "1'"}); got != f1 {
		t.Error("add of a cached key replaced the filter")
	}
	if c.len() != 2 {
		t.Errorf("len = %d", c.len())
	}
	c.purge()
	if c.len() != 0 {
		t.Errorf("len after purge = %d", c.len())
	}

	for i := range CacheSize + 10 {
		mustCompile(t, fmt.Sprintf("payload.n == %d", i))
	}
	if n := cache.len(); n > CacheSize {
		t.Errorf("cache holds %d filters, over %d", n, CacheSize)
	}
}

func TestEventParsesOnce(t *testing.T) {
	ev := NewEvent("order.created", "application/json; charset=utf-8", []byte(orderPayload), orderMetadata)
	if ev.act != nil {
		t.Fatal("NewEvent parsed eagerly")
	}
	act := ev.activation()
	if act == nil || !ev.IsJSON() {
		t.Fatal("payload did not parse")
	}
	for _, expr := range []string{`payload.id == 42`, `type == "order.created"`, `metadata.region == "eu"`} {
		if !mustCompile(t, expr).MatchEvent(ev) {
			t.Errorf("%s did not match", expr)
		}
	}
	if ev.activation() != act {
		t.Error("the activation was rebuilt")
	}
	if ev.payload != nil {
		t.Error("the raw payload is still referenced after parsing")
	}
}

func TestEventBeyondAPILimits(t *testing.T) {
	// Metadata larger than the event API allows voids the static estimate:
	// such events take the cost-tracked path, and still match.
	big := map[string]string{}
	for i := range maxMetadataPairs + 1 {
		big[fmt.Sprint("k", i)] = "v"
	}
	for name, ev := range map[string]*Event{
		"metadata pairs": NewEvent("t", "", []byte(`{}`), big),
		"metadata value": NewEvent("t", "", []byte(`{}`), map[string]string{"k": strings.Repeat("v", maxMetadataValLen+1)}),
		"metadata key":   NewEvent("t", "", []byte(`{}`), map[string]string{strings.Repeat("k", maxMetadataKeyLen+1): "v"}),
		"type":           NewEvent(strings.Repeat("t", maxTypeLength+1), "", []byte(`{}`), nil),
	} {
		if ev.activation(); ev.scale != math.MaxInt {
			t.Errorf("%s: scale %d", name, ev.scale)
		}
		if !mustCompile(t, `size(metadata) >= 0 && size(type) > 0`).MatchEvent(ev) {
			t.Errorf("%s: no match", name)
		}
	}
	// Multi-byte characters count as one.
	ev := NewEvent(strings.Repeat("é", maxTypeLength), "", []byte(`{}`), map[string]string{"k": strings.Repeat("é", maxMetadataValLen)})
	if ev.activation(); ev.scale == math.MaxInt {
		t.Error("limits counted in bytes")
	}
}

func TestConcurrentUse(t *testing.T) {
	exprs := []string{
		`payload.amount > 100`,
		`payload.items.exists(i, i.sku == "A")`,
		`metadata.region == "eu" && type == "order.created"`,
		`has(payload.missing)`,
	}
	want := []bool{true, true, true, false}
	var wg sync.WaitGroup
	for range 8 {
		ev := NewEvent("order.created", "", []byte(orderPayload), orderMetadata)
		for g := range 4 {
			wg.Go(func() {
				for i := range 50 {
					k := (g + i) % len(exprs)
					f, err := Compile(exprs[k])
					if err != nil {
						t.Error(err)
						return
					}
					if got := f.MatchEvent(ev); got != want[k] {
						t.Errorf("%s = %v", exprs[k], got)
					}
				}
			})
		}
	}
	wg.Wait()
}
