package bench

import (
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, size := range []int{0, 40, 256, 4096} {
		p := makePayload(1764246000123456789, 42, size)
		if len(p) < size {
			t.Errorf("size %d: payload has %d bytes", size, len(p))
		}
		sent, seq, ok := parsePayload(p)
		if !ok || sent != 1764246000123456789 || seq != 42 {
			t.Errorf("size %d: parsed %d %d %v from %s", size, sent, seq, ok, p)
		}
	}
	if _, _, ok := parsePayload([]byte(`{"other":1}`)); ok {
		t.Error("parsed a foreign payload")
	}
}

func TestPercentiles(t *testing.T) {
	var xs []int64
	for i := 100; i >= 1; i-- {
		xs = append(xs, int64(i)*int64(time.Millisecond))
	}
	p := percentiles(xs)
	if p.N != 100 || p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 {
		t.Errorf("percentiles = %+v", p)
	}
	if (percentiles(nil) != Percentiles{}) {
		t.Error("empty input")
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 50,
	// cutime 30, cstime 20 ticks; start time 12345.
	line := "4870 (we (ird) name) S 4867 4867 32352 0 -1 4194304 95 0 0 0 250 50 30 20 20 0 1 0 12345 3133440 360 18446744073709551615"
	ps, ok := parseStat(4870, []byte(line))
	if !ok || ps.ppid != 4867 || ps.start != 12345 || ps.self != 3 || ps.reaped != 0.5 {
		t.Fatalf("parseStat = %+v %v", ps, ok)
	}
}

func TestSinkPathAndTally(t *testing.T) {
	if tag, sub := parseSinkPath("/s/e2e-ab-1/7"); tag != "e2e-ab-1" || sub != 7 {
		t.Errorf("parseSinkPath = %q %d", tag, sub)
	}
	if _, sub := parseSinkPath("/hook"); sub != -1 {
		t.Error("foreign path accepted")
	}
	s := &Sink{recs: map[uint64]rec{}}
	s.recs[recKey(0, 1)] = rec{id: hashID("dlv_a"), n: 2}
	s.recs[recKey(1, 1)] = rec{id: hashID("dlv_b"), n: 1}
	s.recs[recKey(0, 2)] = rec{id: hashID("dlv_c"), n: 1}
	s.recs[recKey(0, 9)] = rec{id: hashID("dlv_d"), n: 1, otherID: 0}
	acked := func(seq int64) bool { return seq <= 3 }
	got := s.tally(2, 3, acked)
	// Expected pairs: seqs 1..3 × subs 0,1 = 6; arrived: (0,1),(1,1),(0,2).
	if got.Expected != 6 || got.Lost != 3 || got.Duplicates != 1 || got.Unexpected != 1 || got.Arrived != 5 {
		t.Errorf("tally = %+v", got)
	}
}

func TestSeqs(t *testing.T) {
	s := newSeqs(true)
	first := s.take(3)
	if first != 1 || s.max() != 3 {
		t.Fatalf("take = %d, max = %d", first, s.max())
	}
	s.ack(2, "evt_2")
	s.ack(2, "evt_2")
	if !s.acked(2) || s.acked(1) || s.acked(1000) || s.count() != 1 || s.eventID(2) != "evt_2" {
		t.Error("ack bookkeeping")
	}
}

func TestExpand(t *testing.T) {
	got, err := expand([]string{"latency", "all"})
	if err != nil || len(got) != len(Scenarios) || got[0] != "latency" {
		t.Errorf("expand = %v, %v", got, err)
	}
	if _, err := expand([]string{"nope"}); err == nil {
		t.Error("unknown scenario accepted")
	}
}

func TestRoundKeepsCounts(t *testing.T) {
	if got := round(23933); got != 23933 {
		t.Errorf("round(23933) = %v", got)
	}
	if got := round(0.123456); got != 0.1235 {
		t.Errorf("round(0.123456) = %v", got)
	}
}
