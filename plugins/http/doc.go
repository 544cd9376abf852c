// Package httptransport is Hookwire's built-in "http" transport: it POSTs a
// prepared webhook to an http or https URL and classifies the answer.
//
// It owns the http target configuration (url, optional custom headers), the
// shared connection pool, and the mapping from HTTP responses and network
// errors to delivery outcomes:
//
//	2xx                                  SUCCESS
//	410                                  GONE (the subscription is disabled)
//	429, 502, 503, 504                   THROTTLED (Retry-After honoured)
//	timeout (request timeout or ctx)     TIMEOUT
//	DNS, refused, reset, TLS, EOF        CONNECTION_ERROR
//	any other status, including 3xx      FAILED (redirects are never followed)
//	invalid target configuration         REJECTED
//	target refused by the egress policy  REJECTED
//
// The body is sent byte-for-byte and the request's headers (the control
// plane's signature) exactly as given; the transport never signs anything
// and holds no secrets. It does not decide about retries either: the outcome
// and Retry-After go back to the control plane, which does.
//
// # Egress policy (SSRF protection)
//
// Subscriptions are written by tenants, and the agent often runs inside a
// private network, so a target URL must not become a way into that network
// or into the cloud's metadata service. By default (the zero Policy):
//
//   - only https:// URLs are delivered to; an http:// target is REJECTED
//     unless Policy.AllowInsecureHTTP is set;
//   - the transport never connects to loopback, private (RFC 1918),
//     link-local (169.254.0.0/16 with the 169.254.169.254 metadata address,
//     fe80::/10), carrier-grade NAT (100.64.0.0/10), unspecified, multicast,
//     broadcast and reserved addresses, IPv6 unique-local (fc00::/7) and a
//     few special-purpose ranges (DeniedRanges lists them all), nor to the
//     IPv6 forms that carry one of those IPv4 addresses (IPv4-mapped
//     ::ffff:a.b.c.d, NAT64, 6to4).
//
// The address checks are the SDK's (sdk.Egress, enforced by sdk.Dialer),
// which every built-in transport shares; only the https-only rule is the
// http transport's own. Policy.AllowCIDRs overrides the deny list for the
// networks it names. A refused connection yields REJECTED with an error that names the address,
// the rule, and the --allow-cidr that would allow it.
//
// The check happens when the transport dials: it resolves the host itself
// and connects only to the checked address, and a Control hook on the
// socket checks the final address again. DNS rebinding (a name that
// resolves to a public address when it is checked and to an internal one
// when it is used) therefore cannot get around it, and neither can
// redirects, which are never followed. Proxy environment variables
// (HTTPS_PROXY and friends) are ignored for the same reason.
//
// Validate does not apply the policy: the control plane validates targets
// without knowing which agent will deliver them, and each agent has its own
// policy. An http:// or internal target is a valid configuration that a
// particular agent may refuse.
//
// # How the policy reaches the plugin process
//
// The agent runs this transport as `hookwire plugin http`, a subprocess,
// and passes the policy as that command's arguments, which the agent builds
// from its own flags: `--allow-cidr CIDR` (repeatable, given to every
// built-in) and `--allow-insecure-http`. Arguments keep the policy explicit
// (visible in the process list). The agent also sets sdk.EgressEnv for
// every plugin, always, so a variable inherited from its own environment
// cannot widen the policy.
package httptransport
