package api

import (
	"github.com/hookwire/hookwire/controlplane/internal/dispatch"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The dispatcher runs only on the cluster's leader, one per term of
// leadership (the server installs it with SetDispatcher and removes it when
// leadership ends). Calls that need it answer Unavailable meanwhile; the
// hints the write paths give it (a new delivery, a changed subscription)
// are dropped, because the next dispatcher rebuilds its queues from the
// store when it starts.

// SetDispatcher installs the running dispatcher; nil removes it.
func (s *Services) SetDispatcher(d *dispatch.Dispatcher) { s.disp.Store(d) }

// errNotLeading answers calls that need the dispatcher on a server that
// is not leading.
var errNotLeading = status.Error(codes.Unavailable, "this server is not the cluster leader right now (an election is running, or it just lost leadership); retry, or call another server")

// leading returns the running dispatcher, or errNotLeading.
func (s *Services) leading() (*dispatch.Dispatcher, error) {
	if d := s.disp.Load(); d != nil {
		return d, nil
	}
	return nil, errNotLeading
}

func (s *Services) poke(sub ids.ID) {
	if d := s.disp.Load(); d != nil {
		d.Poke(sub)
	}
}

func (s *Services) noteChanged(changes []*store.DeliveryChange) {
	if d := s.disp.Load(); d != nil {
		d.NoteChanged(changes)
	}
}

func (s *Services) noteCreated(del *hookwirev1.Delivery) {
	if d := s.disp.Load(); d != nil {
		d.NoteCreated(del)
	}
}

func (s *Services) enqueue(ready []dispatch.Ready) {
	if d := s.disp.Load(); d != nil {
		d.Enqueue(ready)
	}
}
