package httptransport

import (
	"net/netip"

	"github.com/hookwire/hookwire/plugins/sdk"
)

// Policy is the http transport's egress policy: which URLs it delivers to
// and which addresses it may connect to. The zero Policy is the safe
// default: https:// URLs only, and no connection to any address in the
// deny list (see DeniedRanges).
//
// The address checks are the SDK's (sdk.Egress, enforced by sdk.Dialer),
// shared by every transport: they apply to the IP address actually being
// connected to, after DNS resolution. A host name that resolves to a public
// address when a subscription is created and to 127.0.0.1 later (DNS
// rebinding) is therefore still refused.
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

// Egress is the address part of the policy, as the SDK enforces it.
func (p Policy) Egress() sdk.Egress {
	return sdk.Egress{AllowCIDRs: p.AllowCIDRs}
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

// ParseCIDRs is sdk.ParseCIDRs.
func ParseCIDRs(list []string) ([]netip.Prefix, error) { return sdk.ParseCIDRs(list) }

// DeniedRange is one entry of the deny list (sdk.DeniedRange).
type DeniedRange = sdk.DeniedRange

// DeniedRanges returns the deny list (sdk.DeniedRanges): the networks the
// http transport refuses to connect to unless Policy.AllowCIDRs allows
// them.
func DeniedRanges() []DeniedRange { return sdk.DeniedRanges() }

// DeniedAddressError is the error of a connection the policy refused
// (sdk.DeniedAddressError). Deliveries that fail with it are REJECTED:
// retrying cannot help until the agent's policy or the target changes.
type DeniedAddressError = sdk.DeniedAddressError

// Resolver looks up the IP addresses of a host name (sdk.Resolver).
type Resolver = sdk.Resolver
