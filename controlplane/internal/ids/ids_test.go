package ids

import (
	"bytes"
	"testing"
	"time"
)

func TestFormatParseRoundTrip(t *testing.T) {
	id := New(time.Now())
	s := Format(Event, id)
	if len(s) != 30 || s[:4] != "evt_" {
		t.Fatalf("Format = %q", s)
	}
	got, err := Parse(Event, s)
	if err != nil || got != id {
		t.Fatalf("Parse(%q) = %v, %v", s, got, err)
	}
	if _, err := Parse(Delivery, s); err == nil {
		t.Fatal("Parse with the wrong prefix succeeded")
	}
	if _, err := Parse(Event, "evt_notanid"); err == nil {
		t.Fatal("Parse of garbage succeeded")
	}
}

func TestNewIsOrderedWithinAMillisecond(t *testing.T) {
	now := time.Now()
	prev := New(now)
	for range 1000 {
		next := New(now)
		if bytes.Compare(prev[:], next[:]) >= 0 {
			t.Fatalf("%v not after %v", next, prev)
		}
		prev = next
	}
}
