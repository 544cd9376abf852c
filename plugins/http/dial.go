package httptransport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Resolver looks up the IP addresses of a host name. *net.Resolver
// implements it; net.DefaultResolver is the default.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// guardedDialer resolves a target's host itself and connects only to
// addresses the policy allows. The address checked is the address dialled:
// nothing resolves the name a second time between the check and the
// connect, so DNS rebinding cannot slip a denied address in. The socket's
// Control hook checks the final address once more, as a last line of
// defence should anything else ever reach the dialer.
type guardedDialer struct {
	policy   *policy
	resolver Resolver
	// connect dials one resolved address ("ip:port"). It is the net.Dialer
	// with the Control hook; tests replace it to reach "public" addresses
	// without leaving the machine.
	connect func(ctx context.Context, network, address string) (net.Conn, error)
}

func newGuardedDialer(p *policy, r Resolver) *guardedDialer {
	if r == nil {
		r = net.DefaultResolver
	}
	d := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control:   p.control,
	}
	return &guardedDialer{policy: p, resolver: r, connect: d.DialContext}
}

// control runs after the socket is created and before it connects, with
// the numeric address being connected to.
func (p *policy) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &DeniedAddressError{Host: address, Rule: "the address being dialled cannot be parsed"}
	}
	if denied := p.check(ap.Addr()); denied != nil {
		return denied
	}
	return nil
}

// DialContext resolves address's host, drops the addresses the policy
// denies, and connects to the first allowed one that answers. If every
// address is denied it returns the *DeniedAddressError of the first.
func (d *guardedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		lookup := "ip"
		switch network {
		case "tcp4":
			lookup = "ip4"
		case "tcp6":
			lookup = "ip6"
		}
		addrs, err = d.resolver.LookupNetIP(ctx, lookup, host)
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
		if len(addrs) == 0 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no addresses found", Name: host, IsNotFound: true}}
		}
	}

	var denied *DeniedAddressError
	var dialErrs []error
	for _, a := range addrs {
		if e := d.policy.check(a); e != nil {
			e.Host = host
			if denied == nil {
				denied = e
			}
			continue
		}
		conn, err := d.connect(ctx, network, net.JoinHostPort(a.String(), portStr))
		if err == nil {
			return conn, nil
		}
		var de *DeniedAddressError
		if errors.As(err, &de) {
			de.Host = host
			if denied == nil {
				denied = de
			}
			continue
		}
		dialErrs = append(dialErrs, err)
		if ctx.Err() != nil {
			break
		}
	}
	switch {
	case len(dialErrs) == 1:
		return nil, dialErrs[0]
	case len(dialErrs) > 1:
		return nil, fmt.Errorf("%w (and %d more addresses of %s failed)", dialErrs[0], len(dialErrs)-1, host)
	default:
		return nil, denied
	}
}
