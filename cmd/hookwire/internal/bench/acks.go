package bench

import (
	"sync"
	"sync/atomic"
)

// seqs hands out publish sequence numbers (from 1) and remembers which
// publishes were acknowledged, and optionally their event ids.
type seqs struct {
	next   atomic.Int64
	mu     sync.Mutex
	bits   []uint64
	n      int64
	events map[int64]string // seq -> event id, when keepIDs
}

func newSeqs(keepIDs bool) *seqs {
	s := &seqs{}
	if keepIDs {
		s.events = map[int64]string{}
	}
	return s
}

// take reserves n consecutive seqs and returns the first.
func (s *seqs) take(n int) int64 { return s.next.Add(int64(n)) - int64(n) + 1 }

// max is the highest seq handed out.
func (s *seqs) max() int64 { return s.next.Load() }

func (s *seqs) ack(seq int64, eventID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := int(seq / 64)
	for len(s.bits) <= w {
		s.bits = append(s.bits, 0)
	}
	if s.bits[w]&(1<<(seq%64)) == 0 {
		s.bits[w] |= 1 << (seq % 64)
		s.n++
	}
	if s.events != nil {
		s.events[seq] = eventID
	}
}

func (s *seqs) acked(seq int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := int(seq / 64)
	return w < len(s.bits) && s.bits[w]&(1<<(seq%64)) != 0
}

func (s *seqs) count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *seqs) eventID(seq int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events[seq]
}
