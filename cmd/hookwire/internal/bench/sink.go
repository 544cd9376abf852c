package bench

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// faultKind is what the sink does instead of accepting a webhook.
type faultKind int

const (
	faultNone  faultKind = iota
	fault500             // answer 500
	fault429             // answer 429 with Retry-After: 1
	faultHang            // hold the request until the sender gives up
	faultReset           // reset the connection (RST) without answering
	numFaultKinds
)

var faultNames = [...]string{"none", "500", "429", "hang", "reset"}

func (k faultKind) String() string { return faultNames[k] }

// arrival is one accepted webhook: when its payload says it was sent and
// when it arrived, in unix nanoseconds.
type arrival struct{ sent, at int64 }

// rec is what the sink knows of one (subscription, seq) pair.
type rec struct {
	id      uint64 // FNV-1a of the first webhook-id
	n       uint32 // accepted arrivals
	otherID uint32 // arrivals that carried a different webhook-id
}

// hit is one request for a webhook-id, kept while retries are tracked (see
// trackRetries): when it arrived, when the sink had answered, and the fault
// it got (faultNone: accepted).
type hit struct {
	at, end int64 // unix nanoseconds
	kind    faultKind
}

func recKey(sub int, seq int64) uint64 { return uint64(sub)<<40 | uint64(seq) }

// Sink is the loopback receiver: an in-process net/http server that
// records, for each accepted webhook, its arrival time, its payload's send
// time and seq, and its webhook-id. URLs are /s/<tag>/<sub>: the tag names
// the current scenario (anything else is counted as a stray), sub the
// subscription. It answers 204 with no body, or injects a fault.
type Sink struct {
	lis  net.Listener
	srv  *http.Server
	base string

	count  atomic.Int64
	strays atomic.Int64
	fault  atomic.Pointer[func(id string, seq int64) faultKind]

	mu      sync.Mutex
	tag     string
	samples []arrival
	recs    map[uint64]rec
	faults  [numFaultKinds]int
	// hits, when not nil, holds every request of each webhook-id that got
	// a fault, in arrival order (trackRetries).
	hits map[string][]hit
}

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func startSink(listen, advertise string) (*Sink, error) {
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	s := &Sink{lis: lis, recs: map[uint64]rec{}}
	s.base = strings.TrimSuffix(advertise, "/")
	if s.base == "" {
		s.base = "http://" + lis.Addr().String()
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	go func() { _ = s.srv.Serve(lis) }()
	return s, nil
}

func (s *Sink) Close() { _ = s.srv.Close() }

// egressFlags lets local agents' http transport deliver to the sink: it
// listens on a loopback (or private) address over plain http, which the
// transport refuses by default.
func (s *Sink) egressFlags() []string {
	host, _, err := net.SplitHostPort(s.lis.Addr().String())
	ip := net.ParseIP(host)
	if err != nil || ip == nil {
		return []string{"--allow-insecure-http"}
	}
	bits := 128
	if ip.To4() != nil {
		bits = 32
	}
	if ip.IsUnspecified() {
		return []string{"--allow-insecure-http", "--allow-cidr", "127.0.0.0/8"}
	}
	return []string{"--allow-insecure-http", "--allow-cidr", (&net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}).String()}
}

// url is the target URL for subscription sub of the scenario tag.
func (s *Sink) url(tag string, sub int) string {
	return s.base + "/s/" + tag + "/" + strconv.Itoa(sub)
}

// reset starts a new scenario: counts, samples and records are cleared and
// only requests for tag are recorded.
func (s *Sink) reset(tag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tag = tag
	s.count.Store(0)
	s.strays.Store(0)
	s.samples = s.samples[:0]
	s.recs = map[uint64]rec{}
	s.faults = [numFaultKinds]int{}
	s.hits = nil
	s.fault.Store(nil)
}

func (s *Sink) setFault(f func(id string) faultKind) {
	if f == nil {
		s.fault.Store(nil)
		return
	}
	s.setFaultSeq(func(id string, _ int64) faultKind { return f(id) })
}

// setFaultSeq is setFault for a decision that also needs the payload's seq
// (-1 for a payload the bench did not make).
func (s *Sink) setFaultSeq(f func(id string, seq int64) faultKind) {
	if f == nil {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(&f)
}

// trackRetries makes the sink keep, until the next reset, every request of
// each webhook-id that got a fault, so the time from a failure to the next
// attempt can be measured (retryHits).
func (s *Sink) trackRetries() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits = map[string][]hit{}
}

// retryHits returns a copy of the tracked requests by webhook-id.
func (s *Sink) retryHits() map[string][]hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]hit, len(s.hits))
	for id, h := range s.hits {
		out[id] = slices.Clone(h)
	}
	return out
}

func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bp := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(bp)
	body, err := readBody(r.Body, (*bp)[:0], 1<<20)
	*bp = body[:0]
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := r.Header.Get("Webhook-Id")
	now := time.Now().UnixNano()
	sent, seq, ok := parsePayload(body)
	if f := s.fault.Load(); f != nil {
		fseq := seq
		if !ok {
			fseq = -1
		}
		if k := (*f)(id, fseq); k != faultNone {
			s.mu.Lock()
			s.faults[k]++
			s.mu.Unlock()
			inject(w, r, k)
			end := time.Now().UnixNano()
			s.mu.Lock()
			if s.hits != nil {
				s.hits[id] = append(s.hits[id], hit{now, end, k})
			}
			s.mu.Unlock()
			return
		}
	}
	tag, sub := parseSinkPath(r.URL.Path)
	s.mu.Lock()
	if hs, tracked := s.hits[id]; tracked {
		s.hits[id] = append(hs, hit{now, now, faultNone})
	}
	if tag != s.tag || !ok {
		s.mu.Unlock()
		s.strays.Add(1)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.samples = append(s.samples, arrival{sent, now})
	h := hashID(id)
	k := recKey(sub, seq)
	rc, seen := s.recs[k]
	if !seen {
		rc.id = h
	} else if rc.id != h {
		rc.otherID++
	}
	rc.n++
	s.recs[k] = rc
	s.mu.Unlock()
	s.count.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func readBody(r io.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= limit {
				return buf, errors.New("body too large")
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func hashID(id string) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, id)
	return h.Sum64()
}

func parseSinkPath(p string) (tag string, sub int) {
	rest, ok := strings.CutPrefix(p, "/s/")
	if !ok {
		return "", -1
	}
	tag, n, ok := strings.Cut(rest, "/")
	if !ok {
		return "", -1
	}
	sub, err := strconv.Atoi(n)
	if err != nil {
		return "", -1
	}
	return tag, sub
}

func inject(w http.ResponseWriter, r *http.Request, k faultKind) {
	switch k {
	case fault500:
		w.WriteHeader(http.StatusInternalServerError)
	case fault429:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	case faultHang:
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
		}
		w.WriteHeader(http.StatusGatewayTimeout)
	case faultReset:
		hj, ok := w.(http.Hijacker)
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST
		}
		_ = conn.Close()
	}
}

// Count is the number of accepted webhooks of the current scenario.
func (s *Sink) Count() int64 { return s.count.Load() }

// await waits until at least n webhooks were accepted, or within passes.
func (s *Sink) await(ctx context.Context, n int64, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for s.Count() < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// awaitAcked waits until every acknowledged publish in [1, maxSeq] has
// reached each of subs subscriptions, or within passes. Counting arrivals
// is not enough: publishes whose acknowledgement was lost also arrive, and
// so do duplicates, so a count can be reached while an acknowledged event
// is still missing.
func (s *Sink) awaitAcked(ctx context.Context, subs int, maxSeq int64, acked func(int64) bool, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for s.tally(subs, maxSeq, acked).Lost > 0 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// latencies returns arrival-minus-sent (ns) of accepted webhooks that keep
// returns true for.
func (s *Sink) latencies(keep func(a arrival) bool) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int64, 0, len(s.samples))
	for _, a := range s.samples {
		if keep == nil || keep(a) {
			out = append(out, a.at-a.sent)
		}
	}
	return out
}

// arrivalSpan returns the first and last arrival times of accepted
// webhooks that arrived at or after since (zero times if none did).
func (s *Sink) arrivalSpan(since time.Time) (first, last time.Time) {
	f := since.UnixNano()
	var lo, hi int64
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.samples {
		if a.at < f {
			continue
		}
		if lo == 0 || a.at < lo {
			lo = a.at
		}
		if a.at > hi {
			hi = a.at
		}
	}
	if lo == 0 {
		return time.Time{}, time.Time{}
	}
	return time.Unix(0, lo), time.Unix(0, hi)
}

// arrivalsBetween counts accepted webhooks that arrived in [from, to).
func (s *Sink) arrivalsBetween(from, to time.Time) int64 {
	f, t := from.UnixNano(), to.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, a := range s.samples {
		if a.at >= f && a.at < t {
			n++
		}
	}
	return n
}

// tally compares what arrived with what was expected: for every seq in
// [1, maxSeq] for which acked returns true, each of subscriptions
// 0..subs-1 should have received it (exactly once, ideally). MaxPerID is
// the most times one webhook-id was accepted: 1 when nothing was sent
// twice, tens or hundreds in a re-delivery storm.
type tally struct {
	Expected    int64 `json:"expected"`
	Arrived     int64 `json:"arrived"`    // accepted webhooks, duplicates included
	Distinct    int64 `json:"distinct"`   // distinct (subscription, event) pairs
	Duplicates  int64 `json:"duplicates"` // arrivals beyond the first of a pair
	OtherIDs    int64 `json:"duplicates_with_other_webhook_id"`
	MaxPerID    int64 `json:"max_per_webhook_id"`
	Lost        int64 `json:"lost"`       // expected pairs that never arrived
	Unexpected  int64 `json:"unexpected"` // pairs that arrived though not expected (unacknowledged publishes)
	lostSamples []uint64
}

func (s *Sink) tally(subs int, maxSeq int64, acked func(seq int64) bool) tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t tally
	for _, r := range s.recs {
		t.Arrived += int64(r.n)
		t.Distinct++
		t.Duplicates += int64(r.n - 1)
		t.OtherIDs += int64(r.otherID)
		t.MaxPerID = max(t.MaxPerID, int64(r.n-r.otherID))
	}
	expected := map[uint64]bool{}
	for seq := int64(1); seq <= maxSeq; seq++ {
		if !acked(seq) {
			continue
		}
		for sub := range subs {
			k := recKey(sub, seq)
			expected[k] = true
			t.Expected++
			if _, ok := s.recs[k]; !ok {
				t.Lost++
				if len(t.lostSamples) < 200 {
					t.lostSamples = append(t.lostSamples, k)
				}
			}
		}
	}
	for k := range s.recs {
		if !expected[k] {
			t.Unexpected++
		}
	}
	return t
}

func (s *Sink) faultCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k := faultKind(1); k < numFaultKinds; k++ {
		if s.faults[k] > 0 {
			out[k.String()] = s.faults[k]
		}
	}
	return out
}
