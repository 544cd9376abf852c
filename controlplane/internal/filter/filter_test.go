package filter

import (
	"context"
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
		{`payload.count * 1.5 == 4.5`, false}, // int * double: no such overload, so no match
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
		// Errors mean no match, whichever way the expression leans.
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
	ev := NewEvent("order.created", "application/json", []byte(orderPayload), orderMetadata)
	for _, tt := range tests {
		f := mustCompile(t, tt.expr)
		if got := f.MatchEvent(ev); got != tt.want {
			t.Errorf("%s: MatchEvent = %v, want %v", tt.expr, got, tt.want)
		}
		if got := f.Match("order.created", "application/json", []byte(orderPayload), orderMetadata); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.expr, got, tt.want)
		}
		if got := f.MatchEventContext(context.Background(), ev); got != tt.want {
			t.Errorf("%s: MatchEventContext = %v, want %v", tt.expr, got, tt.want)
		}
		// The cost-tracked program must agree with the fast one.
		if got := trackedMatch(f, ev); got != tt.want {
			t.Errorf("%s: tracked evaluation = %v, want %v", tt.expr, got, tt.want)
		}
	}
}

func trackedMatch(f *Filter, ev *Event) bool {
	out, _, err := f.tracked.Eval(ev.activation())
	return err == nil && out == trueVal
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

func TestCompileRefusesHopelessCost(t *testing.T) {
	list := "[" + strings.TrimSuffix(strings.Repeat("1,", 50), ",") + "]"
	expr := fmt.Sprintf("%s.all(a, %s.all(b, %s.all(c, a + b + c > 0)))", list, list, list)
	_, err := Compile(expr)
	if err == nil || !strings.Contains(err.Error(), "the filter is too expensive") {
		t.Fatalf("Compile = %v, want a too-expensive error", err)
	}
	t.Log(err)
}

func TestCostLimitStopsPathologicalFilter(t *testing.T) {
	items := `[` + strings.Repeat(`{"x":1},`, 999) + `{"x":1}]`
	ev := NewEvent("t", "application/json", []byte(`{"items":`+items+`}`), nil)
	for _, expr := range []string{
		`payload.items.all(a, payload.items.all(b, payload.items.all(c, a.x + b.x + c.x > 0)))`,
		`payload.items.map(a, payload.items.map(b, payload.items.map(c, [a, b, c]))).size() > 0`,
		`payload.items.exists(a, payload.items.exists(b, payload.items.exists(c, a.x + b.x + c.x == 0)))`,
	} {
		f := mustCompile(t, expr)
		if ev.activation(); ev.size <= f.safeSize {
			t.Fatalf("%s: payload size %d is within the safe size %d", expr, ev.size, f.safeSize)
		}
		start := time.Now()
		if f.MatchEvent(ev) {
			t.Errorf("%s matched", expr)
		}
		// Generous: under -race and on a loaded machine.
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: took %v", expr, d)
		}
		// It is the cost limit that stops it.
		_, _, err := f.tracked.Eval(ev.activation())
		if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
			t.Errorf("%s: tracked evaluation error = %v, want cost limit exceeded", expr, err)
		}
	}
}

// TestStaticEstimateBoundsActualCost checks the premise of the fast path:
// when the payload is within a filter's safe size, the actual cost is within
// CostLimit.
func TestStaticEstimateBoundsActualCost(t *testing.T) {
	for _, expr := range []string{
		`payload.items.exists(i, i.s == "zzz")`,
		`payload.items.filter(i, i.s.contains("z")).size() > 0`,
		`payload.items.exists(a, payload.items.exists(b, a.s + b.s == "zz"))`,
		`payload.items.all(a, payload.items.all(b, payload.items.all(c, a.n + b.n + c.n < 100)))`,
		`payload.items.map(i, i.s + i.s).exists(s, s.matches("^z+$"))`,
		`payload.exists(k, k.startsWith("zz"))`,
	} {
		f := mustCompile(t, expr)
		n := min(f.safeSize, 5000)
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
		if ev.size > f.safeSize {
			t.Fatalf("%s: size %d over the safe size %d", expr, ev.size, f.safeSize)
		}
		_, det, err := f.tracked.Eval(ev.activation())
		if err != nil && strings.Contains(err.Error(), "cost limit") {
			t.Errorf("%s: size %d (safe %d): %v", expr, ev.size, f.safeSize, err)
			continue
		}
		if c := *det.ActualCost(); c > CostLimit {
			t.Errorf("%s: size %d (safe %d): actual cost %d", expr, ev.size, f.safeSize, c)
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
	if f.MatchEvent(ev) {
		t.Error("matched")
	}
	if d := time.Since(start); d > MaxEvalTime+2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestMatchEventContext(t *testing.T) {
	f := mustCompile(t, `payload.amount > 100`)
	ev := NewEvent("order.created", "", []byte(orderPayload), nil)
	if !f.MatchEventContext(context.Background(), ev) {
		t.Error("no match with a live context")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if f.MatchEventContext(ctx, ev) {
		t.Error("match with a cancelled context")
	}
	// A context that ends during the evaluation interrupts it, well before
	// the MaxEvalTime backstop.
	slow := mustCompile(t, `payload.items.all(a, payload.items.all(b, true))`)
	items := `[` + strings.Repeat(`1,`, 19999) + `1]`
	big := NewEvent("t", "", []byte(`{"items":`+items+`}`), nil)
	big.activation()
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Millisecond)
	defer cancel()
	start := time.Now()
	if slow.MatchEventContext(ctx, big) {
		t.Error("match after the deadline")
	}
	if d := time.Since(start); d >= MaxEvalTime {
		t.Errorf("took %v: the context did not interrupt the evaluation", d)
	} else {
		t.Logf("interrupted after %v", d)
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
		if ev.activation(); ev.size != math.MaxInt {
			t.Errorf("%s: size %d", name, ev.size)
		}
		if !mustCompile(t, `size(metadata) >= 0 && size(type) > 0`).MatchEvent(ev) {
			t.Errorf("%s: no match", name)
		}
	}
	// Multi-byte characters count as one.
	ev := NewEvent(strings.Repeat("é", maxTypeLength), "", []byte(`{}`), map[string]string{"k": strings.Repeat("é", maxMetadataValLen)})
	if ev.activation(); ev.size == math.MaxInt {
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
