package httptransport

import (
	"context"
	"net"

	"github.com/hookwire/hookwire/plugins/sdk"
)

// WithConnect replaces the guarded dialer's final step, which connects to
// one already checked "ip:port", so tests can stand a loopback server in
// for a public address.
func WithConnect(connect func(ctx context.Context, network, address string) (net.Conn, error)) Option {
	return func(s *settings) { s.connect = connect }
}

// NetDialer returns a net.Dialer with the socket Control hook the transport
// uses under p: the last check before a socket connects.
func NetDialer(p Policy) *net.Dialer {
	return &net.Dialer{Control: sdk.NewDialer(Name, p.Egress()).Control}
}
