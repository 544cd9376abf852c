package catalog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
)

// chooser makes the random choices of the differential tests from a byte
// string, so that the fuzzer can steer them; past the end it chooses 0.
type chooser struct {
	b []byte
}

func (c *chooser) intn(n int) int {
	if len(c.b) == 0 || n <= 1 {
		return 0
	}
	v := int(c.b[0])
	c.b = c.b[1:]
	return v % n
}

func (c *chooser) pick(list []string) string { return list[c.intn(len(list))] }

var (
	testPatterns = []string{"t.a", "t.b", "t.*", "*", "*.a", "t.*.c", "*.*", "*.*.c", "hookwire.*", "hookwire.x", "u", "t.a.b.c", "*.b.*"}
	testTypes    = []string{"t.a", "t.b", "t.x.c", "t.a.b.c", "t.b.b", "hookwire.x", "hookwire.y.c", "u", "a", "x.b.c.d"}
	// Paths and constants chosen to collide: numbers equal across int,
	// uint and double, strings that look like numbers, nested objects.
	testPaths  = []string{"payload.a", "payload.b", "payload.a.b", `payload["a"]["b"]`, `payload["x y"]`, "payload.n", "metadata.region", "type"}
	testConsts = []string{"1", "1.0", "1u", "2", "-0.0", "0", "0u", "9007199254740993", "9007199254740992.0", "9223372036854775807",
		"18446744073709551615u", "1.5", `"1"`, `"a"`, `"eu"`, `"t.a"`, "true", "false", "null"}
	testJSON = []string{"1", "1.0", "1e0", "2", "-0", "0.0", "-0.0", "9007199254740993", "9007199254740992", "9223372036854775807",
		"9223372036854775808", "18446744073709551615", "1.5", `"1"`, `"a"`, `"eu"`, "true", "false", "null", "[1]", "{}", "1e400"}
)

func (c *chooser) conjunct() string {
	p := c.pick(testPaths)
	k := c.pick(testConsts)
	if strings.HasPrefix(p, "metadata") || p == "type" {
		k = c.pick([]string{`"eu"`, `"us"`, `"t.a"`, `"t.b"`, `"1"`})
	}
	switch c.intn(9) {
	case 0, 1:
		return p + " == " + k
	case 2:
		return k + " == " + p
	case 3:
		return fmt.Sprintf("%s in [%s, %s]", p, k, c.pick(testConsts))
	case 4:
		return p + " != " + k
	case 5:
		switch {
		case strings.HasPrefix(p, "payload."):
			return "has(" + p + ")"
		case strings.HasPrefix(p, "payload"):
			return p + ` != null`
		}
		return p + ` != ""`
	case 6:
		return fmt.Sprintf("(%s || %s == %s)", c.conjunct(), p, k)
	case 7:
		if strings.HasPrefix(p, "payload") {
			return p + " > 1"
		}
		return p + `.startsWith("t")`
	default:
		return fmt.Sprintf("(%s && %s)", c.conjunct(), c.conjunct())
	}
}

func (c *chooser) filterExpr() string {
	if c.intn(4) == 0 {
		return ""
	}
	expr := c.conjunct()
	for range c.intn(3) {
		expr += " && " + c.conjunct()
	}
	return expr
}

func (c *chooser) sub(t testing.TB, tenant string) *Sub {
	id := ids.New(time.Now())
	s := &Sub{ID: id, IDText: ids.Format(ids.Subscription, id), Tenant: tenant}
	for range 1 + c.intn(3) {
		p := c.pick(testPatterns)
		if !slices.ContainsFunc(s.patterns, func(x pattern) bool { return x.text == p }) {
			s.patterns = append(s.patterns, compile(p))
		}
	}
	if expr := c.filterExpr(); expr != "" {
		f, err := filter.Compile(expr)
		if err != nil {
			t.Fatalf("generated filter %q: %v", expr, err)
		}
		s.Filter = f
	}
	return s
}

func (c *chooser) jsonValue(depth int) string {
	if depth < 2 && c.intn(3) == 0 {
		return c.object(depth + 1)
	}
	return c.pick(testJSON)
}

func (c *chooser) object(depth int) string {
	var fields []string
	for _, k := range []string{"a", "b", "x y", "n"} {
		if c.intn(3) != 0 {
			fields = append(fields, fmt.Sprintf("%q: %s", k, c.jsonValue(depth)))
		}
	}
	return "{" + strings.Join(fields, ", ") + "}"
}

func (c *chooser) event() *filter.Event {
	typ := c.pick(testTypes)
	meta := map[string]string{}
	if r := c.intn(4); r > 0 {
		meta["region"] = []string{"", "eu", "us", "1"}[r]
	}
	switch c.intn(8) {
	case 0:
		return filter.NewEvent(typ, "text/plain", []byte(`{"a": 1}`), meta)
	case 1:
		return filter.NewEvent(typ, "application/json", []byte(`[{"a": 1}]`), meta)
	default:
		return filter.NewEvent(typ, "application/json", []byte(c.object(0)), meta)
	}
}

// referenceMatch is what MatchEvent must return: every subscription
// tested, pattern by pattern, then filter by filter.
func referenceMatch(subs []*Sub, tenant string, ev *filter.Event) []string {
	matched, _ := referenceMatchAndFail(subs, tenant, ev)
	return matched
}

// referenceMatchAndFail is referenceMatch that also returns the
// subscriptions whose filter fails on the event, except those whose index
// term rules the event out: their filter cannot be true, so the catalog
// does not evaluate it (CEL may still find an error in another conjunct,
// as in error && missing field).
func referenceMatchAndFail(subs []*Sub, tenant string, ev *filter.Event) (out, failed []string) {
	operational := strings.HasPrefix(ev.Type(), OperationalPrefix)
	for _, s := range subs {
		if s.Tenant != tenant {
			continue
		}
		typeOK := false
		for _, p := range s.patterns {
			switch {
			case !p.wildcard:
				typeOK = typeOK || p.text == ev.Type()
			case operational && !strings.HasPrefix(p.text, OperationalPrefix):
			default:
				typeOK = typeOK || p.match(ev.Type())
			}
		}
		if !typeOK {
			continue
		}
		if s.Filter == nil {
			out = append(out, s.IDText)
			continue
		}
		switch ok, err := s.Filter.Evaluate(ev, filter.DefaultLimits()); {
		case ok:
			out = append(out, s.IDText)
		case err != nil && !termRulesOut(s.Filter, ev):
			failed = append(failed, s.IDText+": "+err.Error())
		}
	}
	slices.Sort(out)
	slices.Sort(failed)
	return out, failed
}

// termRulesOut reports whether the filter's index term excludes the event.
func termRulesOut(f *filter.Filter, ev *filter.Event) bool {
	term, ok := f.Term()
	if !ok {
		return false
	}
	k, ok := ev.Key(term.Path)
	return !ok || !slices.Contains(term.Keys, k)
}

func failureTexts(failed []FilterFailure) []string {
	var out []string
	for _, f := range failed {
		out = append(out, f.Sub.IDText+": "+f.Err.Error())
	}
	slices.Sort(out)
	return out
}

func idTexts(subs []*Sub) []string {
	out := make([]string, 0, len(subs))
	for _, s := range subs {
		out = append(out, s.IDText)
	}
	slices.Sort(out)
	return out
}

// checkAgainstReference builds a catalog from the choices, changes it,
// and compares MatchEvent (and Match) with the reference for many events.
// It returns how many filter failures it compared.
func checkAgainstReference(t testing.TB, c *chooser, nsubs, nevents int) (failures int) {
	cat := New(filter.DefaultLimits())
	var subs []*Sub
	for i := range nsubs {
		s := c.sub(t, []string{"acme", "globex"}[i%2])
		cat.Put(s)
		subs = append(subs, s)
	}
	// Replace and remove some, so that the index is also checked after
	// changes.
	for i := range subs {
		switch c.intn(6) {
		case 0:
			cat.Remove(subs[i].ID)
			subs[i] = &Sub{Tenant: "removed"}
		case 1:
			repl := c.sub(t, subs[i].Tenant)
			repl.ID, repl.IDText = subs[i].ID, subs[i].IDText
			cat.Put(repl)
			subs[i] = repl
		}
	}
	for range nevents {
		ev := c.event()
		for _, tenant := range []string{"acme", "globex", "initech"} {
			want, wantFailed := referenceMatchAndFail(subs, tenant, ev)
			got, failed := cat.MatchEvent(tenant, ev)
			if g := idTexts(got); !slices.Equal(g, want) {
				t.Fatalf("tenant %s, event type %s: MatchEvent = %v, want %v\n%s", tenant, ev.Type(), g, want, describe(subs))
			}
			if f := failureTexts(failed); !slices.Equal(f, wantFailed) {
				t.Fatalf("tenant %s, event type %s: MatchEvent failures = %v, want %v\n%s", tenant, ev.Type(), f, wantFailed, describe(subs))
			}
			failures += len(wantFailed)
			// Match: types only.
			var typeOnly []*Sub
			for _, s := range subs {
				if s.Tenant == tenant {
					ts := *s
					ts.Filter = nil
					typeOnly = append(typeOnly, &ts)
				}
			}
			if g, w := idTexts(cat.Match(tenant, ev.Type())), referenceMatch(typeOnly, tenant, ev); !slices.Equal(g, w) {
				t.Fatalf("tenant %s: Match(%s) = %v, want %v", tenant, ev.Type(), g, w)
			}
		}
	}
	// Removing everything leaves nothing behind.
	for _, s := range subs {
		if s.Tenant != "removed" {
			cat.Remove(s.ID)
		}
	}
	if len(cat.tenants) != 0 || len(cat.subs) != 0 {
		t.Fatalf("after removing every subscription: %d tenants, %d subscriptions left", len(cat.tenants), len(cat.subs))
	}
	return failures
}

func describe(subs []*Sub) string {
	var b strings.Builder
	for _, s := range subs {
		if s.Tenant == "removed" {
			continue
		}
		var pats []string
		for _, p := range s.patterns {
			pats = append(pats, p.text)
		}
		fmt.Fprintf(&b, "  %s %s %v filter=%q\n", s.IDText, s.Tenant, pats, s.Filter)
	}
	return b.String()
}

func TestMatchEventAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	failures := 0
	for range 30 {
		b := make([]byte, 4096)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		failures += checkAgainstReference(t, &chooser{b: b}, 60, 40)
	}
	if failures == 0 {
		t.Error("no filter failed on any event: the failures went unchecked")
	}
	t.Logf("%d filter failures compared", failures)
}

func FuzzMatchEvent(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyz"))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 4 {
		b := make([]byte, 512)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstReference(t, &chooser{b: data}, 12, 8)
	})
}

func TestMatchEventIndexed(t *testing.T) {
	// 1,000 subscriptions on one type, each taking one seq: an event
	// evaluates one filter, and the JSON number form does not matter.
	c := New(filter.DefaultLimits())
	var want *Sub
	for i := range 1000 {
		id := ids.New(time.Now())
		f, err := filter.Compile(fmt.Sprintf("payload.seq == %d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		s := &Sub{ID: id, IDText: ids.Format(ids.Subscription, id), Tenant: "acme", Filter: f, patterns: []pattern{compile("bench.cel")}}
		c.Put(s)
		if i == 41 {
			want = s
		}
	}
	for _, payload := range []string{`{"seq": 42}`, `{"seq": 42.0}`, `{"seq": 4.2e1}`} {
		got, failed := c.MatchEvent("acme", filter.NewEvent("bench.cel", "application/json", []byte(payload), nil))
		if len(got) != 1 || got[0] != want || len(failed) != 0 {
			t.Errorf("%s: matched %v, want %s", payload, idTexts(got), want.IDText)
		}
	}
	if got, _ := c.MatchEvent("acme", filter.NewEvent("bench.cel", "application/json", []byte(`{"seq": "42"}`), nil)); len(got) != 0 {
		t.Errorf(`"42" matched %v`, idTexts(got))
	}
}

// TestMatchEventConstants crosses every constant with every JSON value, in
// == and in, both ways round and nested: the index must agree with CEL's
// equality on each pair.
func TestMatchEventConstants(t *testing.T) {
	c := New(filter.DefaultLimits())
	var subs []*Sub
	for _, k := range testConsts {
		for _, form := range []string{"payload.a == %s", "%s == payload.a", "payload.a in [%s]", `payload.a in [%s, "zz"]`, "payload.o.p == %s && payload.a != 99"} {
			id := ids.New(time.Now())
			f, err := filter.Compile(fmt.Sprintf(form, k))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := f.Term(); !ok {
				t.Fatalf("%s: no index term", f)
			}
			s := &Sub{ID: id, IDText: ids.Format(ids.Subscription, id), Tenant: "acme", Filter: f, patterns: []pattern{compile("t.*")}}
			c.Put(s)
			subs = append(subs, s)
		}
	}
	matched := 0
	for _, v := range testJSON {
		ev := filter.NewEvent("t.x", "application/json", []byte(fmt.Sprintf(`{"a": %s, "o": {"p": %s}}`, v, v)), nil)
		want := referenceMatch(subs, "acme", ev)
		got, _ := c.MatchEvent("acme", ev)
		if got := idTexts(got); !slices.Equal(got, want) {
			t.Errorf("value %s: MatchEvent = %v, want %v\n%s", v, got, want, describe(subs))
		}
		matched += len(want)
	}
	if matched < len(testJSON) {
		t.Fatalf("only %d matches in all: the test checks too little", matched)
	}
}

// TestMatchEventConcurrent changes the catalog while events are matched
// (run with -race): every result must be one of the two states a
// subscription toggles between.
func TestMatchEventConcurrent(t *testing.T) {
	c := New(filter.DefaultLimits())
	mk := func(id ids.ID, expr string) *Sub {
		s := &Sub{ID: id, IDText: ids.Format(ids.Subscription, id), Tenant: "acme", patterns: []pattern{compile("t.*"), compile("t.a")}}
		if expr != "" {
			f, err := filter.Compile(expr)
			if err != nil {
				t.Fatal(err)
			}
			s.Filter = f
		}
		return s
	}
	id := ids.New(time.Now())
	states := []*Sub{mk(id, "payload.a == 1"), mk(id, ""), mk(id, "payload.a + 0 == 1")}
	stable := mk(ids.New(time.Now()), "payload.a in [1, 2]")
	c.Put(stable)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			if i%7 == 0 {
				c.Remove(id)
				continue
			}
			c.Put(states[i%len(states)])
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		got, _ := c.MatchEvent("acme", filter.NewEvent("t.a", "application/json", []byte(`{"a": 1}`), nil))
		if len(got) < 1 || len(got) > 2 || !slices.Contains(got, stable) {
			t.Fatalf("matched %v", idTexts(got))
		}
	}
}
