package bench

import (
	"bytes"
	"strconv"
)

// Payloads are JSON objects whose first two fields are fixed so the sink can
// read them without a JSON decoder:
//
//	{"sent":<unix nanos>,"seq":<n>,"pad":"xxxx"}
//
// sent is the time the event was due to be published (the schedule time for
// open-loop pacing, so a late publisher shows up as latency), seq is unique
// within a scenario and names the publish. pad fills the payload to the
// configured size.
var (
	prefixSent = []byte(`{"sent":`)
	fieldSeq   = []byte(`,"seq":`)
)

// makePayload returns a payload of at least size bytes.
func makePayload(sentNanos, seq int64, size int) []byte {
	b := make([]byte, 0, max(size, 64))
	b = append(b, prefixSent...)
	b = strconv.AppendInt(b, sentNanos, 10)
	b = append(b, fieldSeq...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"pad":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// parsePayload reads sent and seq from a payload made by makePayload.
func parsePayload(b []byte) (sent, seq int64, ok bool) {
	if !bytes.HasPrefix(b, prefixSent) {
		return 0, 0, false
	}
	b = b[len(prefixSent):]
	sent, b, ok = leadingInt(b)
	if !ok || !bytes.HasPrefix(b, fieldSeq) {
		return 0, 0, false
	}
	seq, _, ok = leadingInt(b[len(fieldSeq):])
	return sent, seq, ok
}

func leadingInt(b []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		n = n*10 + int64(b[i]-'0')
		i++
	}
	return n, b[i:], i > 0
}
