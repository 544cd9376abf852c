// Package ids makes and parses the identifiers of stored records: 128-bit
// ULIDs (time-ordered, so keys sort by creation) shown to users with a
// type prefix, e.g. "evt_01J9Z3...". Keys in the store use the 16 raw bytes.
package ids

import (
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// Prefixes of the record kinds.
const (
	Event        = "evt"
	Delivery     = "dlv"
	Subscription = "sub"
	Lease        = "lse"
)

// ID is the raw 16-byte form used as a store key.
type ID = ulid.ULID

var (
	mu      sync.Mutex
	entropy = ulid.Monotonic(rand.Reader, 0)
)

// New returns a fresh ID for time t; IDs made in the same millisecond by this
// process still sort in creation order.
func New(t time.Time) ID {
	mu.Lock()
	defer mu.Unlock()
	id, err := ulid.New(ulid.Timestamp(t), entropy)
	if err != nil {
		// Monotonic entropy overflows only after 2^80 IDs in one
		// millisecond, and crypto/rand does not fail on supported systems.
		panic(fmt.Sprintf("ids: %v", err))
	}
	return id
}

// Format returns the user-facing text form, prefix + "_" + ULID.
func Format(prefix string, id ID) string {
	var buf [4 + ulid.EncodedSize]byte
	n := copy(buf[:], prefix)
	buf[n] = '_'
	_ = id.MarshalTextTo(buf[n+1:])
	return string(buf[:n+1+ulid.EncodedSize])
}

// Parse reads a text ID with the expected prefix.
func Parse(prefix, s string) (ID, error) {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok {
		return ID{}, fmt.Errorf("%q is not a valid id: it must start with %s_", s, prefix)
	}
	id, err := ulid.ParseStrict(rest)
	if err != nil {
		return ID{}, fmt.Errorf("%q is not a valid id: %v", s, err)
	}
	return id, nil
}
