package catalog

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/signing"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

func record(t *testing.T, tenant string, types ...string) *Sub {
	t.Helper()
	sub := &hookwirev1.Subscription{
		Id:         ids.Format(ids.Subscription, ids.New(time.Now())),
		Tenant:     tenant,
		EventTypes: types,
		Status:     hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_ENABLED,
		Target:     &hookwirev1.Target{Transport: "http"},
	}
	key, err := signing.NewHMACKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := SealKey(testKeyring(t), sub, 1, key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Prepare(&storev1.SubscriptionRecord{Subscription: sub, SigningKeys: []*storev1.SigningKey{sk}}, testKeyring(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMatch(t *testing.T) {
	c := New(filter.DefaultLimits())
	exact := record(t, "acme", "order.created")
	orders := record(t, "acme", "order.*")
	all := record(t, "acme", "*")
	both := record(t, "acme", "order.created", "order.*")
	other := record(t, "globex", "*")
	for _, s := range []*Sub{exact, orders, all, both, other} {
		c.Put(s)
	}
	names := map[ids.ID]string{exact.ID: "exact", orders.ID: "orders", all.ID: "all", both.ID: "both", other.ID: "other"}
	cases := []struct {
		tenant, typ string
		want        []string
	}{
		{"acme", "order.created", []string{"all", "both", "exact", "orders"}},
		{"acme", "order.created.v2", []string{"all", "both", "orders"}},
		{"acme", "order", []string{"all"}},
		{"acme", "invoice.paid", []string{"all"}},
		{"globex", "order.created", []string{"other"}},
		{"initech", "order.created", nil},
		{"acme", "hookwire.delivery.exhausted", nil},
	}
	for _, tc := range cases {
		var got []string
		for _, s := range c.Match(tc.tenant, tc.typ) {
			got = append(got, names[s.ID])
		}
		sort.Strings(got)
		if len(got) != len(tc.want) {
			t.Errorf("Match(%s, %s) = %v, want %v", tc.tenant, tc.typ, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("Match(%s, %s) = %v, want %v", tc.tenant, tc.typ, got, tc.want)
				break
			}
		}
	}
	c.Remove(exact.ID)
	c.Remove(all.ID)
	if got := c.Match("acme", "order.created"); len(got) != 2 {
		t.Errorf("after Remove, Match = %d subs, want 2", len(got))
	}
	if c.Get(exact.ID) != nil || c.Get(orders.ID) == nil {
		t.Error("Get does not reflect Remove")
	}
}

func TestPatternSegments(t *testing.T) {
	cases := []struct {
		pat, name string
		want      bool
	}{
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.b.c", true},
		{"a.*.c", "a.c", false},
		{"*.created", "order.created", true},
		{"*.created", "created", false},
		{"a.b", "a.b", true},
	}
	for _, tc := range cases {
		if got := compile(tc.pat).match(tc.name); got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.pat, tc.name, got, tc.want)
		}
	}
}

// TestMatchEventReportsFilterFailures: a filter that cannot be evaluated
// is reported with its reason, under the catalog's limits; a missing field
// is no match and no failure.
func TestMatchEventReportsFilterFailures(t *testing.T) {
	items := `[` + strings.TrimSuffix(strings.Repeat("1,", 200), ",") + `]`
	ev := func() *filter.Event {
		return filter.NewEvent("order.created", "application/json", []byte(`{"amount":"x","items":`+items+`}`), nil)
	}
	sub := func(expr string) *Sub {
		s := record(t, "acme", "order.*")
		f, err := filter.Compile(expr)
		if err != nil {
			t.Fatal(err)
		}
		s.Filter = f
		return s
	}
	typeErr := sub(`payload.amount > 100`)
	nested := sub(`payload.items.all(a, payload.items.all(b, a + b > 0))`)
	missing := sub(`payload.missing > 1`)
	present := sub(`has(payload.items) && payload.items.size() == 200`)
	for _, tc := range []struct {
		name   string
		limits filter.Limits
		want   map[*Sub]string // failures by reason
	}{
		// 200 items squared fit the default budget: only the type error.
		{"default limits", filter.DefaultLimits(), map[*Sub]string{typeErr: filter.ReasonError}},
		// With 100-byte payloads the budget is 101,600 units: the nested
		// comprehension over 200 items overruns it.
		{"100-byte payloads", filter.Limits{MaxPayloadBytes: 100}, map[*Sub]string{typeErr: filter.ReasonError, nested: filter.ReasonCost}},
	} {
		c := New(tc.limits)
		for _, s := range []*Sub{typeErr, nested, missing, present} {
			c.Put(s)
		}
		matched, failed := c.MatchEvent("acme", ev())
		want := []*Sub{present}
		if _, ok := tc.want[nested]; !ok {
			want = append(want, nested)
		}
		if got, w := idTexts(matched), idTexts(want); !slices.Equal(got, w) {
			t.Errorf("%s: matched %v, want %v", tc.name, got, w)
		}
		got := map[*Sub]string{}
		for _, f := range failed {
			got[f.Sub] = f.Err.Reason
			if f.Err.Message == "" {
				t.Errorf("%s: failure of %s without a message", tc.name, f.Sub.IDText)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: failures %v, want %v", tc.name, failed, tc.want)
		}
		for s, reason := range tc.want {
			if got[s] != reason {
				t.Errorf("%s: failure of %s = %q, want %q", tc.name, s.IDText, got[s], reason)
			}
		}
	}
}

// Explain must decide exactly as MatchEvent does, subscription by
// subscription, and say which step ruled a subscription out.
func TestExplainAgreesWithMatchEvent(t *testing.T) {
	c := New(filter.DefaultLimits())
	sub := func(expr string, types ...string) *Sub {
		s := record(t, "acme", types...)
		if expr != "" {
			f, err := filter.Compile(expr)
			if err != nil {
				t.Fatal(err)
			}
			s.Filter = f
		}
		c.Put(s)
		return s
	}
	plain := sub("", "order.*")
	exact := sub("", "order.created")
	all := sub("", "*")
	ops := sub("", "hookwire.*")
	indexed := sub(`payload.region == "eu"`, "order.*")
	scanned := sub(`payload.total > 100`, "order.*")
	failing := sub(`payload.name > 1`, "order.*")
	metaOnly := sub(`metadata["tier"] == "gold"`, "*")
	subs := []*Sub{plain, exact, all, ops, indexed, scanned, failing, metaOnly}
	names := map[*Sub]string{plain: "plain", exact: "exact", all: "all", ops: "ops", indexed: "indexed", scanned: "scanned", failing: "failing", metaOnly: "meta"}

	for _, tc := range []struct {
		typ, contentType, payload string
		metadata                  map[string]string
		want                      map[*Sub]Verdict // the others: Takes
	}{
		{"order.created", "application/json", `{"region":"eu","total":150,"name":"x"}`, nil,
			map[*Sub]Verdict{ops: TypeMismatch, failing: FilterFailed, metaOnly: FilterFalse}},
		{"order.paid", "application/json", `{"region":"us","total":50,"name":2}`, map[string]string{"tier": "gold"},
			map[*Sub]Verdict{exact: TypeMismatch, ops: TypeMismatch, indexed: FilterFalse, scanned: FilterFalse}},
		{"order.paid", "application/xml", `<order/>`, map[string]string{"tier": "gold"},
			map[*Sub]Verdict{exact: TypeMismatch, ops: TypeMismatch, indexed: PayloadNotJSON, scanned: PayloadNotJSON, failing: PayloadNotJSON, metaOnly: PayloadNotJSON}},
		// Operational events reach only patterns that name them.
		{"hookwire.filter.failed", "application/json", `{}`, nil,
			map[*Sub]Verdict{plain: TypeMismatch, exact: TypeMismatch, all: TypeMismatch, indexed: TypeMismatch, scanned: TypeMismatch, failing: TypeMismatch, metaOnly: TypeMismatch}},
	} {
		ev := filter.NewEvent(tc.typ, tc.contentType, []byte(tc.payload), tc.metadata)
		matched, failed := c.MatchEvent("acme", ev)
		for _, s := range subs {
			want := tc.want[s]
			got, evalErr := c.Explain(s, filter.NewEvent(tc.typ, tc.contentType, []byte(tc.payload), tc.metadata))
			if got != want {
				t.Errorf("%s: Explain(%s) = %d, want %d", tc.typ, names[s], got, want)
			}
			if (got == FilterFailed) != (evalErr != nil) {
				t.Errorf("%s: Explain(%s) = %d with error %v", tc.typ, names[s], got, evalErr)
			}
			if inMatched := slices.Contains(matched, s); inMatched != (got == Takes) {
				t.Errorf("%s: %s: MatchEvent matched %v, Explain says %d", tc.typ, names[s], inMatched, got)
			}
			inFailed := slices.ContainsFunc(failed, func(f FilterFailure) bool { return f.Sub == s })
			if inFailed != (got == FilterFailed) {
				t.Errorf("%s: %s: MatchEvent failed %v, Explain says %d", tc.typ, names[s], inFailed, got)
			}
		}
	}
	if got := exact.EventTypes(); !slices.Equal(got, []string{"order.created"}) {
		t.Errorf("EventTypes = %v", got)
	}
}
