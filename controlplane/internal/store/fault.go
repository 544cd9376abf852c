package store

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Where a damaged file shows up at run time.
//
// bbolt trusts the file: it follows page ids from the mapping without
// bounds checks and asserts page headers with panics. Open validates the
// whole file before bbolt reads it (verify.go), so a file damaged at rest
// is refused with an error. What can still go wrong is damage while the
// process runs (another process writing the file, a failing disk): reads
// then run into bbolt's assertions, or into a fault when a page lies
// beyond the end of a file that shrank. Every transaction the store runs
// in its own goroutines (reads in view, writes in the committer) goes
// through catchFault, which makes faults panic (debug.SetPanicOnFault)
// and turns a panic raised inside bbolt into an error wrapping
// ErrCorrupt; a panic raised elsewhere is a bug and is not hidden. bbolt
// also walks the tree in goroutines of its own (the free-page scan at
// open and after a failed commit); the validation at open is what keeps
// those from meeting a damaged page.

// catchFault runs fn, converting a fault or a panic raised inside bbolt
// into an error wrapping ErrCorrupt.
func catchFault(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if !fromStorage(r, debug.Stack()) {
			panic(r)
		}
		err = fmt.Errorf("%w: reading it failed: %v", ErrCorrupt, r)
	}()
	return fn()
}

// safeView is db.View through catchFault.
func safeView(db *bolt.DB, fn func(tx *bolt.Tx) error) error {
	return catchFault(func() error { return db.View(fn) })
}

// fromStorage reports whether a recovered panic comes from reading the
// file: a memory fault, or a panic raised by bbolt's code.
func fromStorage(r any, stack []byte) bool {
	if re, ok := r.(runtime.Error); ok {
		if _, fault := re.(interface{ Addr() uintptr }); fault {
			return true
		}
	}
	return strings.HasPrefix(panickedIn(string(stack)), "go.etcd.io/bbolt")
}

// panickedIn names the function that raised the innermost panic in a
// goroutine stack dump taken while panicking (runtime frames skipped).
func panickedIn(stack string) string {
	lines := strings.Split(stack, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "panic(") {
			continue
		}
		for _, f := range lines[i+1:] {
			if f == "" || f[0] == '\t' || strings.HasPrefix(f, "runtime.") {
				continue
			}
			return f
		}
		return ""
	}
	return ""
}
