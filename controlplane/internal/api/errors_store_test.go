package api

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/hookwire/hookwire/controlplane/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestStoreErrorsMapToCodes: the store's failure modes reach clients with
// the right code and a message that says what is wrong and what to do.
func TestStoreErrorsMapToCodes(t *testing.T) {
	full := &store.UnavailableError{Cause: &fs.PathError{Op: "write", Path: "/var/lib/hookwire/hookwire.db", Err: syscall.ENOSPC}}
	for _, tc := range []struct {
		name string
		err  error
		code codes.Code
		want []string
		not  string
	}{
		{"full disk", fmt.Errorf("publish: %w", full), codes.Unavailable,
			[]string{"the store cannot accept writes: write: no space left on device; retrying", "try again later"}, "/var/lib"},
		{"closed", store.ErrClosed, codes.Unavailable, []string{"shutting down"}, ""},
		{"damaged", fmt.Errorf("%w: record events/x: checksum mismatch", store.ErrCorrupt), codes.DataLoss,
			[]string{"event evt_1", "damaged", "hookwire store check"}, "checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := status.FromError(storeError(tc.err, "event evt_1"))
			if st.Code() != tc.code {
				t.Fatalf("code %v, want %v (%s)", st.Code(), tc.code, st.Message())
			}
			for _, w := range tc.want {
				if !strings.Contains(st.Message(), w) {
					t.Errorf("message %q lacks %q", st.Message(), w)
				}
			}
			if tc.not != "" && strings.Contains(st.Message(), tc.not) {
				t.Errorf("message %q shows %q to the client", st.Message(), tc.not)
			}
		})
	}
	if !errors.Is(full, store.ErrUnavailable) || !errors.Is(full, syscall.ENOSPC) {
		t.Error("UnavailableError does not wrap both ErrUnavailable and its cause")
	}
}
