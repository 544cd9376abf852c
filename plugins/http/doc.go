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
//
// The body is sent byte-for-byte and the request's headers (the control
// plane's signature) exactly as given; the transport never signs anything
// and holds no secrets. It does not decide about retries either: the outcome
// and Retry-After go back to the control plane, which does.
//
// It has no SSRF guard yet: any address, loopback included, is reachable.
package httptransport
