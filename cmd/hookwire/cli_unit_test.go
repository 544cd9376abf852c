package main

// Unit tests of client helpers whose edge cases the end-to-end tests do not
// reach cheaply.

import (
	"slices"
	"strings"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

func TestChunkEventsByCountAndBytes(t *testing.T) {
	mk := func(sizes ...int) []batchEvent {
		out := make([]batchEvent, len(sizes))
		for i, n := range sizes {
			out[i] = batchEvent{line: i + 1, event: &hookwirev1.Event{Payload: make([]byte, n)}}
		}
		return out
	}
	lens := func(chunks [][]batchEvent) []int {
		out := make([]int, len(chunks))
		for i, c := range chunks {
			out[i] = len(c)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		sizes    []int
		n, bytes int
		want     []int
	}{
		{"by count", []int{1, 1, 1, 1, 1}, 2, 100, []int{2, 2, 1}},
		{"exact count", []int{1, 1, 1, 1}, 2, 100, []int{2, 2}},
		{"by bytes", []int{40, 40, 40, 40}, 10, 100, []int{2, 2}},
		{"an oversized event goes alone", []int{10, 500, 10}, 10, 100, []int{1, 1, 1}},
		{"one event", []int{5}, 1000, 100, []int{1}},
	} {
		if got := lens(chunkEvents(mk(tc.sizes...), tc.n, tc.bytes)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: chunk sizes %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMaskKeyNeverShowsTheSecret(t *testing.T) {
	tenantKey := "hwk_abcdefghijklmnop_" + strings.Repeat("s", 28) + "WXYZ"
	for key, want := range map[string]string{
		tenantKey:                        "hwk_abcdefghijklmnop_…WXYZ",
		"e2e-admin-key-0123456789abcdef": "e2e-…cdef",
		"short-key":                      "****",
		"":                               "(none)",
	} {
		if got := maskKey(key); got != want {
			t.Errorf("maskKey(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestNormalizeAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:7070":         "127.0.0.1:7070",
		"cp.example.com":         "cp.example.com:7070",
		"grpc://cp.example.com/": "cp.example.com:7070",
		"https://cp:443":         "cp:443",
		"[::1]:7070":             "[::1]:7070",
	} {
		if got := normalizeAddr(in); got != want {
			t.Errorf("normalizeAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRelativeTime(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		-300 * time.Millisecond: "just now",
		-42 * time.Second:       "42s ago",
		-5 * time.Minute:        "5m ago",
		-30 * time.Hour:         "30h ago",
		-3 * 24 * time.Hour:     "3d ago",
		90 * time.Second:        "in 1m",
	} {
		if got := relative(now.Add(d), now); got != want {
			t.Errorf("relative(%s) = %q, want %q", d, got, want)
		}
	}
	if got := relative(now.Add(-90*24*time.Hour), now); !strings.HasPrefix(got, "2025-12-") {
		t.Errorf("a time months ago shows the date, got %q", got)
	}
}

func TestJSONToYAMLKeepsOrderAndQuotesAmbiguousStrings(t *testing.T) {
	out, err := jsonToYAML([]byte(`{"id":"x","b":"true","a":"123","list":[],"nested":{"z":1,"y":[1,"2"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "id: x\nb: \"true\"\na: \"123\"\nlist: []\nnested:\n  z: 1\n  y:\n    - 1\n    - \"2\"\n"
	if string(out) != want {
		t.Errorf("yaml:\n%s\nwant:\n%s", out, want)
	}
}
