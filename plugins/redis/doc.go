// Package redistransport is Hookwire's built-in "redis" transport: it
// appends a prepared webhook to a Redis stream with XADD and classifies
// Redis's answer.
//
// It owns the redis target configuration, one go-redis client per distinct
// url (each with its own small connection pool, which replaces broken
// connections), and the mapping from Redis answers to delivery outcomes.
//
// # Target configuration
//
//	url     required  redis://[user:password@]host:6379/db, rediss:// for
//	                  TLS, or unix:///path/to/redis.sock. Standalone Redis
//	                  (or a proxy in front of it); Redis Cluster is not
//	                  supported. A distinct url gets its own client.
//	stream  required  key of the stream; XADD creates it when missing.
//	maxlen  optional  whole number >= 1: trim the stream on every XADD with
//	                  MAXLEN ~ maxlen (approximate, so cheap; Redis may keep
//	                  a few more entries).
//
// Unknown fields are refused.
//
// # Entry
//
// Each delivery is one entry with an auto-generated id and these fields, in
// this order: "body" (the payload byte-for-byte), "content-type" (the
// event's, application/json when it has none), then one field per request
// header under its own name, sorted: webhook-id, webhook-signature,
// webhook-timestamp. A request header named body or content-type is
// refused (REJECTED) rather than silently overwriting a field.
//
// When tracing is on, the attempt's W3C trace context adds the fields
// traceparent and tracestate (tracestate only when there is one), sorted
// with the header fields like any other header (so before webhook-id), so
// a consumer's span can join the publisher's trace; with tracing off
// neither field is present.
//
// # Egress
//
// Every connection, reconnects included, goes through the SDK's guarded
// dialer (sdk.Dialer) under the agent's egress policy (WithEgress;
// sdk.AgentEgress by default): no loopback, private, link-local... address
// unless the agent allows it with --allow-cidr. A refused address is
// REJECTED with a message naming the --allow-cidr that would allow it.
// A unix:// url is a service on the agent's own host and counts as
// loopback.
//
// # Outcomes
//
//	Redis answered with the entry id                         SUCCESS
//	dial refused, DNS, connection broken                     CONNECTION_ERROR
//	address refused by the agent's egress policy             REJECTED
//	attempt deadline (req.Timeout / ctx)                     TIMEOUT
//	OOM, BUSY, LOADING, TRYAGAIN, CLUSTERDOWN, MASTERDOWN,
//	  NOREPLICAS, max clients reached                        THROTTLED
//	bad configuration, NOAUTH/WRONGPASS, NOPERM, WRONGTYPE
//	  (the key is not a stream), READONLY replica, MOVED/ASK REJECTED
//	any other error reply                                    FAILED
//
// go-redis retries a command once on a broken pooled connection. XADD is
// not idempotent, so a reply lost after Redis applied it can leave two
// entries; receivers de-duplicate by webhook-id, as with any at-least-once
// delivery.
package redistransport
