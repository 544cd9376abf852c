package httptransport

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Policy is the http transport's egress policy: which URLs it delivers to
// and which addresses it may connect to. The zero Policy is the safe
// default: https:// URLs only, and no connection to any address in the
// deny list (see DeniedRanges).
//
// The policy is enforced when the transport dials, against the IP address
// actually being connected to, after DNS resolution. A host name that
// resolves to a public address when a subscription is created and to
// 127.0.0.1 later (DNS rebinding) is therefore still refused.
type Policy struct {
	// AllowInsecureHTTP permits plain http:// URLs. Without it only https://
	// targets are delivered to, and an http:// target is REJECTED.
	AllowInsecureHTTP bool
	// AllowCIDRs are networks the transport may connect to even though the
	// deny list covers them, e.g. 10.20.0.0/16 for targets inside a private
	// network the agent serves. An address inside any of them is allowed;
	// the IPv4-mapped IPv6 form of an allowed IPv4 address is allowed too.
	AllowCIDRs []netip.Prefix
}

// DevPolicy is the policy of `hookwire dev`: plain http is allowed, and so
// are the loopback networks (127.0.0.0/8 and ::1), so a receiver on
// localhost works. Everything else on the deny list stays denied.
func DevPolicy() Policy {
	return Policy{
		AllowInsecureHTTP: true,
		AllowCIDRs:        []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	}
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
)

// DeniedRanges returns the deny list: the networks the http transport
// refuses to connect to unless Policy.AllowCIDRs allows them. IPv6 forms
// that embed an IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64
// 64:ff9b::/96 and 6to4 2002::/16) are denied when the embedded address is.
func DeniedRanges() []DeniedRange {
	return slices.Concat(deniedV4, deniedV6)
}

// DeniedAddressError is the error of a connection the policy refused.
// Deliveries that fail with it are REJECTED: retrying cannot help until the
// agent's policy or the target changes.
type DeniedAddressError struct {
	// Host is the target's host as written in the URL (a name or an IP).
	Host string
	// Addr is the IP address the transport would have connected to.
	Addr netip.Addr
	// Embedded is the IPv4 address carried inside Addr when Addr is an
	// IPv6 form of one (IPv4-mapped, NAT64, 6to4); otherwise invalid.
	Embedded netip.Addr
	// Range and Rule are the deny-list entry that matched.
	Range netip.Prefix
	Rule  string
}

func (e *DeniedAddressError) Error() string {
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
	b.WriteString("; the http transport does not connect to such addresses unless the agent allows them (SSRF protection). " +
		"If this target is meant to be reachable from the agent, start the agent with ")
	single := netip.PrefixFrom(allow, allow.BitLen())
	if single == e.Range {
		fmt.Fprintf(&b, "--allow-cidr %s", single)
	} else {
		fmt.Fprintf(&b, "--allow-cidr %s (this address only) or --allow-cidr %s (the whole network)", single, e.Range)
	}
	return b.String()
}

// policy is a Policy prepared for checks on the hot path.
type policy struct {
	allowInsecureHTTP bool
	allow             []netip.Prefix
}

func compile(p Policy) *policy {
	allow := make([]netip.Prefix, 0, len(p.AllowCIDRs))
	for _, pre := range p.AllowCIDRs {
		if pre.IsValid() {
			allow = append(allow, pre.Masked())
		}
	}
	return &policy{allowInsecureHTTP: p.AllowInsecureHTTP, allow: allow}
}

// check returns nil if the transport may connect to a, and the reason
// otherwise.
func (p *policy) check(a netip.Addr) *DeniedAddressError {
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

func (p *policy) allowed(a netip.Addr) bool {
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
