// Package multiaddr lets a gRPC client take a comma-separated list of
// server addresses ("a:7070,b:7070,c:7070"): the servers of one cluster,
// any of which answers any call. The client connects to the first that
// accepts (gRPC's pick_first over every address) and, when that connection
// is lost, to the next that does.
package multiaddr

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// Split returns the addresses of a comma-separated list, trimmed, without
// empty entries.
func Split(list string) []string {
	var out []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Dial returns the target and dial option of a gRPC client for list: a
// single address is used as it is (any gRPC target); several must each be
// host:port and are tried in order.
func Dial(list string) (target string, opts []grpc.DialOption, err error) {
	addrs := Split(list)
	switch len(addrs) {
	case 0:
		return "", nil, fmt.Errorf("no server address in %q", list)
	case 1:
		return addrs[0], nil, nil
	}
	state := resolver.State{}
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return "", nil, fmt.Errorf("server address %q in %q: want host:port", a, list)
		}
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
	}
	r := manual.NewBuilderWithScheme("hookwire-servers")
	r.InitialState(state)
	return r.Scheme() + ":///" + addrs[0], []grpc.DialOption{grpc.WithResolvers(r)}, nil
}
