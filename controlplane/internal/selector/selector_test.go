package selector

import (
	"strings"
	"testing"
)

func TestParseAndMatch(t *testing.T) {
	s, err := Parse("region=eu-west, network in (b,a),!canary,tier!=batch")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "region=eu-west,network in (a,b),!canary,tier!=batch"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	cases := []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"region": "eu-west", "network": "a"}, true},
		{map[string]string{"region": "eu-west", "network": "b", "tier": "web"}, true},
		{map[string]string{"region": "eu-west", "network": "c"}, false},
		{map[string]string{"region": "eu-west", "network": "a", "canary": ""}, false},
		{map[string]string{"region": "eu-west", "network": "a", "tier": "batch"}, false},
		{map[string]string{"region": "us", "network": "a"}, false},
		{nil, false},
	}
	for _, c := range cases {
		if got := s.Matches(c.labels); got != c.want {
			t.Errorf("Matches(%v) = %v, want %v", c.labels, got, c.want)
		}
	}
	for _, text := range []string{"a==b", "gpu", "x notin (y)", "k8s.io/zone=z1"} {
		if _, err := Parse(text); err != nil {
			t.Errorf("Parse(%q): %v", text, err)
		}
	}
	if s, _ := Parse("  "); !s.Empty() || !s.Matches(nil) {
		t.Error("empty selector must match everything")
	}
}

func TestParseErrors(t *testing.T) {
	for text, want := range map[string]string{
		"region=eu,":                   "expected a label key",
		"region=(eu)":                  "invalid character",
		"region in eu":                 "expected '('",
		"region in (eu":                "missing ')'",
		"region in ()":                 "expected a value",
		"region < 3":                   "expected one of",
		"a=b c=d":                      "expected ','",
		"v=" + strings.Repeat("x", 64): "longer than 63",
	} {
		_, err := Parse(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", text, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("region=eu-west,network in (a,b),!canary,tier!=batch")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(text)
		if err != nil || s == nil {
			return
		}
		again, err := Parse(s.String())
		if err != nil || again.String() != s.String() {
			t.Fatalf("round trip of %q: %q, %v", text, s.String(), err)
		}
	})
}
