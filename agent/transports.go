package agent

import (
	"context"
	"fmt"

	"github.com/hookwire/hookwire/plugins/sdk"
)

// staticTransports is a TransportSource over a fixed set of transports.
type staticTransports struct {
	byName map[string]sdk.Transport
	infos  []sdk.Info
}

// StaticTransports returns a TransportSource over in-process transports,
// e.g. for `hookwire dev` or tests. It asks each for its Info once; names
// must be non-empty and unique.
func StaticTransports(ctx context.Context, transports ...sdk.Transport) (TransportSource, error) {
	s := &staticTransports{byName: make(map[string]sdk.Transport, len(transports))}
	for i, t := range transports {
		info, err := t.Describe(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe transport %d: %w", i, err)
		}
		if info.Name == "" {
			return nil, fmt.Errorf("transport %d describes itself with an empty name", i)
		}
		if _, dup := s.byName[info.Name]; dup {
			return nil, fmt.Errorf("two transports are named %q", info.Name)
		}
		s.byName[info.Name] = t
		s.infos = append(s.infos, info)
	}
	return s, nil
}

func (s *staticTransports) Transport(name string) (sdk.Transport, bool) {
	t, ok := s.byName[name]
	return t, ok
}

func (s *staticTransports) Infos() []sdk.Info { return s.infos }

// Unavailable reports nothing: in-process transports are always there.
func (s *staticTransports) Unavailable() (map[string]string, <-chan struct{}) { return nil, nil }
