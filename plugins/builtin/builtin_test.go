package builtin_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/plugins/builtin"
)

func TestRegistry(t *testing.T) {
	names := builtin.Names()
	if !slices.Contains(names, "http") || !slices.IsSorted(names) {
		t.Fatalf("Names() = %v, want a sorted list including http", names)
	}
	for _, name := range names {
		tr, ok := builtin.New(name)
		if !ok || tr == nil {
			t.Fatalf("New(%q) = %v, %v", name, tr, ok)
		}
		info, err := tr.Describe(context.Background())
		if err != nil {
			t.Fatalf("describe %s: %v", name, err)
		}
		if info.Name != name {
			t.Errorf("built-in %q describes itself as %q", name, info.Name)
		}
	}
	if _, ok := builtin.New("carrier-pigeon"); ok {
		t.Error(`New("carrier-pigeon") found a transport`)
	}
}

func TestServeUnknownName(t *testing.T) {
	err := builtin.Serve("carrier-pigeon")
	if err == nil || !strings.Contains(err.Error(), `"carrier-pigeon"`) || !strings.Contains(err.Error(), "http") {
		t.Errorf("Serve(unknown) = %v, want an error naming it and listing the built-ins", err)
	}
}
