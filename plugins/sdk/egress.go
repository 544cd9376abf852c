package sdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// EgressEnv names the environment variable through which the agent gives
// every plugin process its egress policy: the networks (CIDRs, comma
// separated) that its transports may connect to although the deny list
// covers them, from the agent's --allow-cidr flags. Unset or empty means
// none: no loopback, private, link-local... address at all. Serve refuses
// to start when it is set to something that does not parse.
const EgressEnv = "HOOKWIRE_EGRESS_ALLOW_CIDRS"

// Egress is an egress policy: which addresses a transport may connect to.
// The zero Egress is the safe default: no connection to any address in the
// deny list (see DeniedRanges). Dialer enforces it.
//
// The policy is enforced against the IP address actually being connected
// to, after DNS resolution. A host name that resolves to a public address
// when a subscription is created and to 127.0.0.1 later (DNS rebinding) is
// therefore still refused.
type Egress struct {
	// AllowCIDRs are networks the transport may connect to even though the
	// deny list covers them, e.g. 10.20.0.0/16 for targets inside a private
	// network the agent serves. An address inside any of them is allowed;
	// the IPv4-mapped IPv6 form of an allowed IPv4 address is allowed too.
	// A unix-domain socket is a service on the agent's own host, like
	// loopback: it is allowed only when 127.0.0.1 or ::1 is.
	AllowCIDRs []netip.Prefix
}

// AgentEgress returns the egress policy the agent passed to this plugin
// process in EgressEnv. Without it, it is the zero Egress. A malformed
// value is an error (Serve reports it and exits).
func AgentEgress() (Egress, error) {
	return ParseEgressEnv(os.Getenv(EgressEnv))
}

// ParseEgressEnv parses the value of EgressEnv: CIDRs separated by commas.
func ParseEgressEnv(v string) (Egress, error) {
	var list []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, s)
		}
	}
	cidrs, err := ParseCIDRs(list)
	if err != nil {
		return Egress{}, fmt.Errorf("%s: %w", EgressEnv, err)
	}
	return Egress{AllowCIDRs: cidrs}, nil
}

// Environ returns the "KEY=VALUE" environment entry that passes e to a
// plugin process (EgressEnv). Hosts set it even when e allows nothing, so a
// value inherited from their own environment cannot widen the policy.
func (e Egress) Environ() string {
	parts := make([]string, 0, len(e.AllowCIDRs))
	for _, p := range e.AllowCIDRs {
		parts = append(parts, p.String())
	}
	return EgressEnv + "=" + strings.Join(parts, ",")
}

// ParseCIDRs parses networks such as "10.0.0.0/8" or "fd00:ec2::254/128".
// A bare address ("10.1.2.3") means that single address. Host bits must be
// zero ("10.1.2.3/8" is refused, because it is probably a typo for either
// 10.1.2.3/32 or 10.0.0.0/8).
func ParseCIDRs(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR network or IP address (write it like 10.0.0.0/8 or fd00::/8)", s)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("%q has an IPv6 zone; write the address without %%%s", s, a.Zone())
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR network (write it like 10.0.0.0/8 or fd00::/8): %v", s, err)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%q has bits set after the /%d prefix; did you mean %s (the whole network) or %s/%d (one address)?",
				s, p.Bits(), p.Masked(), p.Addr(), p.Addr().BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}

// DeniedRange is one entry of the deny list.
type DeniedRange struct {
	// Prefix is the denied network.
	Prefix netip.Prefix
	// Rule says what kind of network it is, e.g. "loopback".
	Rule string
}

// deniedV4 and deniedV6 are the deny list. More specific entries come
// first, so an address is named by the most precise rule.
var (
	deniedV4 = []DeniedRange{
		{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
		{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (\"this network\")"},
		{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
		{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
		{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
		{netip.MustParsePrefix("100.64.0.0/10"), "shared carrier-grade NAT (RFC 6598)"},
		{netip.MustParsePrefix("169.254.169.254/32"), "cloud instance metadata, link-local"},
		{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
		{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
		{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (RFC 2544), often used internally"},
		{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
		{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
		{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	}
	deniedV6 = []DeniedRange{
		{netip.MustParsePrefix("::1/128"), "loopback"},
		{netip.MustParsePrefix("::/128"), "unspecified"},
		{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)"},
		{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use IPv4/IPv6 translation"},
		{netip.MustParsePrefix("2001::/32"), "Teredo tunnelling"},
		{netip.MustParsePrefix("fc00::/7"), "unique local (ULA)"},
		{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
		{netip.MustParsePrefix("fe80::/10"), "link-local"},
		{netip.MustParsePrefix("ff00::/8"), "multicast"},
	}
	// IPv6 forms that carry an IPv4 address: the embedded address is
	// checked against the IPv4 deny list, so none of them can reach a
	// denied IPv4 network.
	mappedV4  = netip.MustParsePrefix("::ffff:0:0/96")
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")

	loopbackV4 = netip.MustParseAddr("127.0.0.1")
	loopbackV6 = netip.MustParseAddr("::1")
)

// DeniedRanges returns the deny list: the networks a Dialer refuses to
// connect to unless Egress.AllowCIDRs allows them. IPv6 forms that embed an
// IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96 and 6to4
// 2002::/16) are denied when the embedded address is.
func DeniedRanges() []DeniedRange {
	return slices.Concat(deniedV4, deniedV6)
}

// DeniedAddressError is the error of a connection the egress policy
// refused. A transport should report a delivery that fails with it as
// OUTCOME_REJECTED with this error's text, which names the --allow-cidr
// flag that would allow the address: retrying cannot help until the
// agent's policy or the target changes.
type DeniedAddressError struct {
	// Transport names the transport in the message ("the redis transport
	// does not connect to such addresses"); empty for a generic message.
	Transport string
	// Host is the target's host as written (a name or an IP).
	Host string
	// Addr is the IP address the transport would have connected to.
	Addr netip.Addr
	// Embedded is the IPv4 address carried inside Addr when Addr is an
	// IPv6 form of one (IPv4-mapped, NAT64, 6to4); otherwise invalid.
	Embedded netip.Addr
	// Socket is the path of the unix-domain socket refused, if that is
	// what was dialled (Addr is then invalid).
	Socket string
	// Range and Rule are the deny-list entry that matched.
	Range netip.Prefix
	Rule  string
}

func (e *DeniedAddressError) who() string {
	if e.Transport == "" {
		return "this transport"
	}
	return "the " + e.Transport + " transport"
}

func (e *DeniedAddressError) Error() string {
	if e.Socket != "" {
		return fmt.Sprintf("refused to connect to the unix-domain socket %q: it reaches a service on the agent's own host, like loopback, "+
			"and %s does not connect to such addresses unless the agent allows them (SSRF protection). "+
			"If this target is meant to be reachable from the agent, start the agent with --allow-cidr 127.0.0.1/32", e.Socket, e.who())
	}
	if !e.Range.IsValid() {
		return fmt.Sprintf("refused to connect to %q: the SSRF guard cannot check it (%s)", e.Host, e.Rule)
	}
	var b strings.Builder
	b.WriteString("refused to connect to ")
	b.WriteString(e.Addr.String())
	if _, err := netip.ParseAddr(e.Host); err != nil && e.Host != "" {
		fmt.Fprintf(&b, " (resolved from %q)", e.Host)
	}
	allow := e.Addr
	if e.Embedded.IsValid() {
		allow = e.Embedded
		fmt.Fprintf(&b, ": it carries the IPv4 address %s, which is in %s (%s)", e.Embedded, e.Range, e.Rule)
	} else {
		fmt.Fprintf(&b, ": it is in %s (%s)", e.Range, e.Rule)
	}
	fmt.Fprintf(&b, "; %s does not connect to such addresses unless the agent allows them (SSRF protection). "+
		"If this target is meant to be reachable from the agent, start the agent with ", e.who())
	single := netip.PrefixFrom(allow, allow.BitLen())
	if single == e.Range {
		fmt.Fprintf(&b, "--allow-cidr %s", single)
	} else {
		fmt.Fprintf(&b, "--allow-cidr %s (this address only) or --allow-cidr %s (the whole network)", single, e.Range)
	}
	return b.String()
}

// Check returns nil if e allows connecting to a, and the reason otherwise
// (a *DeniedAddressError without Transport and Host).
func (e Egress) Check(a netip.Addr) error {
	if d := compileEgress(e).check(a); d != nil {
		return d
	}
	return nil
}

// egress is an Egress prepared for checks on the hot path.
type egress struct {
	allow []netip.Prefix
}

func compileEgress(e Egress) *egress {
	allow := make([]netip.Prefix, 0, len(e.AllowCIDRs))
	for _, pre := range e.AllowCIDRs {
		if pre.IsValid() {
			allow = append(allow, pre.Masked())
		}
	}
	return &egress{allow: allow}
}

// check returns nil if the transport may connect to a, and the reason
// otherwise.
func (p *egress) check(a netip.Addr) *DeniedAddressError {
	if !a.IsValid() {
		return &DeniedAddressError{Addr: a, Rule: "not a valid IP address"}
	}
	a = a.WithZone("")
	embedded := embeddedV4(a)
	if p.allowed(a) || (embedded.IsValid() && p.allowed(embedded)) {
		return nil
	}
	if embedded.IsValid() {
		if r, ok := match(deniedV4, embedded); ok {
			return &DeniedAddressError{Addr: a, Embedded: embedded, Range: r.Prefix, Rule: r.Rule}
		}
		return nil
	}
	list := deniedV4
	if a.Is6() {
		list = deniedV6
	}
	if r, ok := match(list, a); ok {
		return &DeniedAddressError{Addr: a, Range: r.Prefix, Rule: r.Rule}
	}
	return nil
}

func (p *egress) allowed(a netip.Addr) bool {
	for _, pre := range p.allow {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

func match(list []DeniedRange, a netip.Addr) (DeniedRange, bool) {
	for _, r := range list {
		if r.Prefix.Contains(a) {
			return r, true
		}
	}
	return DeniedRange{}, false
}

// embeddedV4 returns the IPv4 address inside an IPv6 address that carries
// one: IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4
// (2002:aabb:ccdd::/48). Anything else gives the zero Addr.
func embeddedV4(a netip.Addr) netip.Addr {
	if !a.Is6() {
		return netip.Addr{}
	}
	b := a.As16()
	switch {
	case mappedV4.Contains(a), nat64.Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
	}
	return netip.Addr{}
}

// Resolver looks up the IP addresses of a host name. *net.Resolver
// implements it; net.DefaultResolver is the default.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer connects only where its Egress allows. It resolves a target's host
// itself and connects only to addresses the policy allows: the address
// checked is the address dialled, and nothing resolves the name a second
// time between the check and the connect, so DNS rebinding cannot slip a
// denied address in. The socket's Control hook checks the final address
// once more before it connects.
//
// Transports that connect anywhere a subscription says should make every
// connection through one Dialer built from the agent's policy:
//
//	egress, _ := sdk.AgentEgress() // Serve has checked it
//	d := sdk.NewDialer("mytransport", egress)
//	conn, err := d.DialContext(ctx, "tcp", "broker.example.com:4222")
//
// and report a *DeniedAddressError as OUTCOME_REJECTED with its message.
// A Dialer is safe for concurrent use.
type Dialer struct {
	transport string
	policy    *egress
	resolver  Resolver
	net       *net.Dialer
	connect   func(ctx context.Context, network, address string) (net.Conn, error)
}

// DialOption configures a Dialer.
type DialOption func(*Dialer)

// WithResolver replaces the DNS resolver (net.DefaultResolver) the Dialer
// uses to find the addresses it checks and then connects to.
func WithResolver(r Resolver) DialOption {
	return func(d *Dialer) {
		if r != nil {
			d.resolver = r
		}
	}
}

// WithConnect replaces the Dialer's final step, which connects to one
// already checked "ip:port", e.g. so a test can stand a loopback server in
// for a public address. nil keeps the default.
func WithConnect(connect func(ctx context.Context, network, address string) (net.Conn, error)) DialOption {
	return func(d *Dialer) {
		if connect != nil {
			d.connect = connect
		}
	}
}

// NewDialer returns a Dialer for the named transport (used in refusal
// messages) that enforces e. Each connect attempt times out after 10
// seconds, and TCP keep-alives are sent every 30.
func NewDialer(transport string, e Egress, opts ...DialOption) *Dialer {
	d := &Dialer{transport: transport, policy: compileEgress(e), resolver: net.DefaultResolver}
	d.net = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: d.Control}
	d.connect = d.net.DialContext
	for _, o := range opts {
		o(d)
	}
	return d
}

// Control is a net.Dialer Control hook that refuses to connect a socket
// to an address the policy denies. It runs after the socket is created and
// before it connects, with the numeric address being connected to. Use it
// when a library insists on its own net.Dialer; DialContext is better,
// because it also resolves names itself and names the host in refusals.
func (d *Dialer) Control(network, address string, _ syscall.RawConn) error {
	if isUnix(network) {
		return d.checkUnix(address)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &DeniedAddressError{Transport: d.transport, Host: address, Rule: "the address being dialled cannot be parsed"}
	}
	if denied := d.policy.check(ap.Addr()); denied != nil {
		denied.Transport = d.transport
		return denied
	}
	return nil
}

func isUnix(network string) bool {
	return network == "unix" || network == "unixgram" || network == "unixpacket"
}

// checkUnix allows a unix-domain socket only where loopback is allowed.
func (d *Dialer) checkUnix(path string) error {
	if d.policy.allowed(loopbackV4) || d.policy.allowed(loopbackV6) {
		return nil
	}
	return &DeniedAddressError{Transport: d.transport, Socket: path, Rule: "unix-domain socket"}
}

// Dial is DialContext without a context, for libraries whose dial hook
// takes none.
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialContext connects like net.Dialer.DialContext, but only where the
// policy allows. It resolves address's host, drops the addresses the
// policy denies, and connects to the first allowed one that answers. If
// every address is denied it returns the *DeniedAddressError of the first.
// A unix-domain socket ("unix" networks) is allowed only where loopback is.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch {
	case isUnix(network):
		if err := d.checkUnix(address); err != nil {
			return nil, err
		}
		return d.connect(ctx, network, address)
	case network != "tcp" && network != "tcp4" && network != "tcp6" &&
		network != "udp" && network != "udp4" && network != "udp6":
		return nil, &DeniedAddressError{Transport: d.transport, Host: address, Rule: fmt.Sprintf("network %q is not supported", network)}
	}
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
		case "tcp4", "udp4":
			lookup = "ip4"
		case "tcp6", "udp6":
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
			e.Transport, e.Host = d.transport, host
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
			de.Transport, de.Host = d.transport, host
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
