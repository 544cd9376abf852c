package sdk

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

// APIVersion is the newest transport API version this SDK speaks. The host
// and the plugin negotiate the highest version both support during the
// go-plugin handshake (see VersionedPlugins).
const APIVersion = 1

// PluginName is the name under which a transport is registered in the
// go-plugin plugin set. Hosts dispense it by this name.
const PluginName = "transport"

// Handshake is the go-plugin handshake shared by the Hookwire agent and every
// transport plugin. The magic cookie is not a security measure: it only
// stops a plugin binary from doing anything surprising when a user runs it
// by hand. ProtocolVersion is the default used when VersionedPlugins is not
// consulted; the negotiated transport API version comes from
// VersionedPlugins.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  APIVersion,
	MagicCookieKey:   "HOOKWIRE_PLUGIN",
	MagicCookieValue: "7c3f9a1e5d2b48c6a0e4f8b1d93c5a72e6b0f4d8a1c7e3b9",
}

// VersionedPlugins returns the plugin sets keyed by transport API version.
// A plugin passes its implementation; a host passes nil (go-plugin only uses
// the host's copy to create clients). go-plugin picks the highest version
// present on both sides, so a newer SDK can keep serving older hosts by
// listing every version it still supports here.
func VersionedPlugins(t Transport) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {PluginName: &TransportPlugin{Impl: t}},
	}
}

// TransportPlugin is the go-plugin glue for a Transport. On the plugin side
// it registers Impl as the gRPC TransportService; on the host side it
// returns a *Client. It supports gRPC only.
type TransportPlugin struct {
	plugin.NetRPCUnsupportedPlugin

	// Impl is the transport being served. Unused on the host side.
	Impl Transport
}

var _ plugin.GRPCPlugin = (*TransportPlugin)(nil)

// GRPCServer registers the transport with the plugin's gRPC server.
func (p *TransportPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return fmt.Errorf("serve transport plugin: no Transport implementation given")
	}
	transportv1.RegisterTransportServiceServer(s, NewServer(p.Impl))
	return nil
}

// GRPCClient returns a *Client for the plugin behind conn. go-plugin cancels
// ctx when the plugin process exits; the client then fails every pending
// delivery at once.
func (p *TransportPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewClient(ctx, conn), nil
}
